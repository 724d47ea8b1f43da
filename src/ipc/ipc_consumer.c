/* SPDX-License-Identifier: MIT */
/*
 * The consumer: serves a name, adopts the producers that connect, hands
 * their requests to the tasks receiving, and sends replies back. This file
 * holds its life (serve, close, stats) and its pump task; ipc_consumer.h
 * lists the others.
 *
 * Invariants:
 *  1. Counts: the consumer is counted by its user (until close), its pump,
 *     each peer watch, each producer of this process linked to it, each
 *     bell ring held back, and each receive and reply from its start to
 *     its end. The last afe__ipc_consumer_unref frees it.
 *  2. A peer's slots are used only under its lock (private to this
 *     process), so dropping a producer never races a reply to it. Only the
 *     pump makes a peer live or not (under that lock), and only it touches
 *     the roster fields (claim, watched).
 *  3. A reply carries its peer's generation: a reply for a producer that
 *     went away (and whose entry another took) fails with -EPIPE.
 *  4. Receivers take requests themselves; one that finds none waits on the
 *     local notify `work`, counted in `idle`. The pump sleeps on the bell
 *     wanting peers' news always, frames while some receiver is idle, and
 *     room while a reply waits for it or a peer is stalled; it wakes one
 *     receiver when frames come (a receiver that finds more than it takes
 *     wakes the next). It publishes its wants, then looks again at all it
 *     would be woken for, before it sleeps (ipc_bell.h).
 *  5. Events of this process (a producer's death, a close) wake the pump
 *     through its `kick`, never through the bell alone: a peer can clear
 *     the bell's wants. What only a peer can tell waits at most
 *     AFE_IPC_PUMP_RECHECK_NS.
 *  6. A stalled peer is owed a reset (AFE_IPC_F_RESET), pushed under its
 *     lock before any later reply to it; until then every reply to it fails
 *     at once.
 *  7. `closed` is set once, for good: no producer is adopted after it, and
 *     receives and replies waiting end with -EPIPE.
 *
 * Why a peer stalls: a reply waits for room in its producer's reply slots
 * at most room_ns. The tasks replying are the user's few request tasks,
 * shared by every producer, and one producer that stops draining (stopped,
 * stuck, hostile) would hold them all. Past it, the producer is stalled:
 * that reply and every later one to it fail with -ETIMEDOUT at once, so
 * that its streams end and free their tasks, until its slots have room for
 * the reset, which ends the calls it has pending: a stream missing a reply
 * must not end as if whole. The reset goes from whichever reply comes first
 * or from the pump, which wants room while a reset is owed. A cap on the
 * tasks one producer may hold would need the size of the user's pool, and
 * would still let a stopped producer hold its share for ever; a deadline
 * bounds what any producer can hold, however many tasks.
 *
 * A producer's request slots found spoilt (a sequence number no claim
 * explains: see ipc_slots.h) are owed a reset too, with -EPROTO: the
 * request in that slot is lost, and the producer ends its calls at once and
 * leaves, rather than wait for their timeouts.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <unistd.h>

#include <sys/mman.h>

#include "ipc_bell_sleep.h"
#include "ipc_consumer.h"
#include "../core/runtime_internal.h"

void afe__ipc_consumer_unref(struct afe_ipc_consumer *c)
{
	/* acq_rel: pairs with every other holder's decrement, so the last
	 * one sees all they did with c before it frees c. */
	if (atomic_fetch_sub_explicit(&c->refs, 1, memory_order_acq_rel) != 1)
		return;
	afe_notify_destroy(&c->work);
	afe_notify_destroy(&c->room);
	afe_notify_destroy(&c->kick);
	for (unsigned i = 0; i < AFE_IPC_MAX_PRODUCERS; i++)
		pthread_mutex_destroy(&c->peers[i].lock);
	pthread_mutex_destroy(&c->local_lock);
	free(c->locals);
	if (c->shm)
		afe_ipc_shm_unmap(c->hdr);
	else
		free(c->hdr);
	free(c);
}

static void ref_consumer(void *c)
{
	/* Relaxed: a count taken while the caller holds one; the last
	 * decrement's acq_rel orders the free. */
	atomic_fetch_add_explicit(&((struct afe_ipc_consumer *)c)->refs, 1, memory_order_relaxed);
}

void afe__ipc_consumer_release(void *c)
{
	afe__ipc_consumer_unref(c);
}

/* Keeps the consumer's mapping alive while a bell ring is held back. */
const struct afe_burst_wake_owner afe__ipc_consumer_owner = {ref_consumer,
							  afe__ipc_consumer_release};

/* ---- the consumer's task -------------------------------------------------- */

/* The name the pump publishes its wants under (see afe_ipc_bell_want):
 * the object is the consumer's own, and it has one pump. */
#define AFE_IPC_CONSUMER_SLEEPER 0u

/*
 * The longest the pump sleeps before it looks again by itself. Producers
 * ring its bell only when its wants, in the shared memory, ask for what
 * they did, and a peer can clear them while the pump sleeps (four zero
 * bytes written, or a producer killed between taking them and its wake):
 * nobody would wake it again. Events of this process wake it through its
 * kick; what only a peer can tell waits at most this long (a claim a
 * dead producer left, see free_abandoned in ipc_consumer_peers.c, is seen
 * within it). Idle, each re-check costs a wake of the ring thread (its
 * timer) and of one worker, and one look at the 16 entries: measured on
 * the 2-vCPU test machine (a
 * consumer serving nothing for 20 s, 2 workers), the process used 9.6 ms
 * of CPU, 0.05% of one CPU, against 0.02 ms without it.
 */
#define AFE_IPC_PUMP_RECHECK_NS (250 * 1000000ull)

struct pump {
	struct afe_future base;
	struct afe_ipc_consumer *c;
	uint64_t recheck_ns; /* when the pump looks again by itself */
	struct afe_notified kicked;
	struct afe_sleep nap; /* until recheck_ns */
	struct afe_ipc_bell_sleep sleep;
};

static uint32_t pump_wants(void *pump)
{
	struct afe_ipc_consumer *c = ((struct pump *)pump)->c;
	/* seq_cst, all three, read after publishing wants: pair with
	 * afe_ipc_wait's increments of idle and room_waiters and with
	 * stall_peer's of stalled_peers, each followed by a fence and a look
	 * at wants (Dekker: one of the two sees the other). */
	return afe_ipc_pump_wants(atomic_load_explicit(&c->idle, memory_order_seq_cst),
				  atomic_load_explicit(&c->room_waiters, memory_order_seq_cst) +
				  atomic_load_explicit(&c->stalled_peers,
						       memory_order_seq_cst));
}

/* After publishing: a producer that connected (or left) just before rang
 * a bell nobody wanted; a close; a reset sent (it may have more). */
static bool pump_has_work(void *pump)
{
	struct afe_ipc_consumer *c = ((struct pump *)pump)->c;
	/* closed: seq_cst, pairs with afe_ipc_consumer_close's store, then
	 * its kick; looked at after publishing, as all of the re-check. */
	return afe__ipc_consumer_roster_changed(c) ||
	       atomic_load_explicit(&c->closed, memory_order_seq_cst) ||
	       afe__ipc_consumer_send_resets(c);
}

/* Wakes receivers for what came before we wanted it: they take it, so we
 * may sleep now; what comes later rings the bell. Likewise the replies
 * waiting for room. Nothing is met for good: the pump keeps its wants. */
static uint32_t pump_before_sleep(void *pump, uint32_t wants)
{
	struct afe_ipc_consumer *c = ((struct pump *)pump)->c;
	if ((wants & AFE_IPC_WANT_FRAME) && afe__ipc_consumer_any_request(c))
		afe_notify_one(&c->work);
	if (wants & AFE_IPC_WANT_ROOM)
		afe_notify_all(&c->room);
	return 0;
}

/* Besides the bell, the pump's sleep ends at its kick or, over shared
 * memory, its next re-check. The re-check time stays put until it comes,
 * so a busy pump re-arms the same timer and never rings the ring thread
 * to move its deadline. */
static unsigned pump_also(void *pump, struct afe_future **racers)
{
	struct pump *self = pump;
	struct afe_ipc_consumer *c = self->c;
	uint64_t now = afe_now_ns();
	if (now >= self->recheck_ns)
		self->recheck_ns = now + AFE_IPC_PUMP_RECHECK_NS;
	afe_notified_init(&self->kicked, &c->kick);
	afe_sleep_until_init(&self->nap, self->recheck_ns);
	racers[0] = &self->kicked.base;
	racers[1] = &self->nap.base;
	/* In-process only, no peer shares the bell: nothing to re-check. */
	return c->shm ? 2 : 1;
}

static const struct afe_ipc_bell_sleep_ops pump_sleep = {
	.wants = pump_wants,
	.has_work = pump_has_work,
	.before_sleep = pump_before_sleep,
	.also = pump_also,
};

static int pump_poll(struct afe_future *f, struct afe_context *cx)
{
	struct pump *self = afe_container_of(f, struct pump, base);
	struct afe_ipc_consumer *c = self->c;
	AFE_ASYNC_BEGIN(f, cx);
	/* seq_cst: pairs with afe_ipc_consumer_close's store. */
	while (!atomic_load_explicit(&c->closed, memory_order_seq_cst)) {
		if (c->shm && afe_ipc_shm_check(AFE_IPC_OBJECT_SIZE, c->hdr) < 0) {
			/* Wiped: another process shrank the object and a guard
			 * (ours or a producer's, see ipc_guard.h) grew it back,
			 * zeroed. Every producer goes (their entries are gone)
			 * before the header lets new ones in. */
			for (unsigned i = 0; i < AFE_IPC_MAX_PRODUCERS; i++) {
				afe__ipc_consumer_drop_peer(c, i);
				c->peers[i].claim = 0;
			}
			afe_ipc_shm_write_header(c->hdr);
			/* a count */
			atomic_fetch_add_explicit(&c->repairs, 1, memory_order_relaxed);
		}
		afe__ipc_consumer_sync_peers(c);
		afe_ipc_bell_sleep_init(&self->sleep, &c->hdr->bell, AFE_IPC_CONSUMER_SLEEPER,
					&pump_sleep, self);
		AFE_AWAIT(&self->sleep.base);
		if (self->sleep.base.result < 0)
			break;
	}
	AFE_CLEANUP;
	/* seq_cst as close's store: read by adopt, receives and replies. */
	atomic_store_explicit(&c->closed, true, memory_order_seq_cst);
	afe_ipc_link_local_unregister(c);
	afe__ipc_consumer_fail_locals(c);
	for (unsigned i = 0; i < AFE_IPC_MAX_PRODUCERS; i++) {
		afe__ipc_consumer_drop_peer(c, i);
		afe_ipc_bell_ring(&c->hdr->entries[i].bell, AFE_IPC_WANT_ANY);
	}
	afe_notify_all(&c->work);
	afe_notify_all(&c->room);
	afe__system_task_done(c->rt);
	afe__ipc_consumer_unref(c);
	AFE_ASYNC_END;
}

/* ---- serving --------------------------------------------------------------- */

void afe_ipc_consumer_config_default(struct afe_ipc_consumer_config *config)
{
	memset(config, 0, sizeof(*config));
	config->room_ms = AFE_IPC_DEFAULT_ROOM_MS;
}

int afe_ipc_consumer_serve(struct afe_ipc_consumer **out, struct afe_runtime *rt,
			   const char *name, const struct afe_ipc_consumer_config *config)
{
	if (!rt)
		rt = afe_runtime_current();
	if (!out || !rt || (config && config->n_functions && !config->functions))
		return -EINVAL;
	struct afe_ipc_consumer *c = calloc(1, sizeof(*c));
	if (!c)
		return -ENOMEM;
	pthread_mutex_init(&c->local_lock, NULL); /* adopt may look once registered */
	int err = afe_ipc_shm_path(c->path, sizeof(c->path), name);
	if (err == 0)
		err = afe_ipc_link_local_register(name, c);
	if (err < 0) {
		pthread_mutex_destroy(&c->local_lock);
		free(c);
		return err;
	}
	c->shm = !(config && config->in_process_only);
	if (c->shm)
		err = afe_ipc_shm_create(name, &c->hdr);
	else if (!(c->hdr = calloc(1, sizeof(*c->hdr))))
		err = -ENOMEM;
	if (err < 0) {
		afe_ipc_link_local_unregister(c);
		pthread_mutex_destroy(&c->local_lock);
		free(c);
		return err;
	}
	c->rt = rt;
	c->room_ns = (uint64_t)(config && config->room_ms ? config->room_ms
							   : AFE_IPC_DEFAULT_ROOM_MS) *
		     1000000u;
	c->serve_all = !config || !config->functions;
	for (size_t i = 0; config && i < config->n_functions; i++)
		c->served[config->functions[i] / 8] |= (uint8_t)(1u << (config->functions[i] % 8));
	afe_notify_init(&c->work);
	afe_notify_init(&c->room);
	afe_notify_init(&c->kick);
	for (unsigned i = 0; i < AFE_IPC_MAX_PRODUCERS; i++)
		pthread_mutex_init(&c->peers[i].lock, NULL);
	atomic_init(&c->refs, 2); /* the user, the pump */
	struct pump pump = {.c = c};
	afe_future_init(&pump.base, pump_poll);
	if ((err = afe__spawn_system(rt, &pump, NULL, false)) < 0) {
		/* Relaxed: nobody else holds c yet (the pump never ran, and
		 * adopt refuses it until ready). */
		atomic_store_explicit(&c->refs, 1, memory_order_relaxed);
		afe_ipc_consumer_destroy(c);
		return err;
	}
	/* Release: pairs with the acquire load in adopt_local; a producer of
	 * this process that sees ready finds c set up. */
	atomic_store_explicit(&c->ready, true, memory_order_release);
	*out = c;
	return 0;
}

void afe_ipc_consumer_close(struct afe_ipc_consumer *c)
{
	if (!c)
		return;
	/* Once: a consumer restarted under the name after this one closed
	 * owns the name's object now. */
	/* Relaxed: only which caller comes first matters; it publishes
	 * nothing. */
	if (!atomic_exchange_explicit(&c->name_released, true, memory_order_relaxed)) {
		afe_ipc_link_local_unregister(c);
		if (c->shm)
			shm_unlink(c->path);
	}
	/* seq_cst: pairs with the pump's look after publishing wants (then
	 * the kick below), with the receivers' and replies' looks before
	 * they wait (then the notifies below), and with adopt_local's. A
	 * flag read in store->load handshakes: not weakened. */
	atomic_store_explicit(&c->closed, true, memory_order_seq_cst);
	afe__ipc_consumer_fail_locals(c);
	afe_notify_one(&c->kick); /* the pump sees closed and ends */
	afe_notify_all(&c->work);
	afe_notify_all(&c->room);
}

void afe_ipc_consumer_destroy(struct afe_ipc_consumer *c)
{
	if (!c)
		return;
	afe_ipc_consumer_close(c);
	afe__ipc_consumer_unref(c);
}

void afe_ipc_consumer_stats(const struct afe_ipc_consumer *c, struct afe_ipc_stats *out)
{
	if (!out)
		return;
	memset(out, 0, sizeof(*out));
	if (!c)
		return;
	/* Relaxed, all: counts, bumped relaxed; they order nothing. */
	out->calls = atomic_load_explicit(&c->calls, memory_order_relaxed);
	out->replies = atomic_load_explicit(&c->replies, memory_order_relaxed);
	out->malformed = atomic_load_explicit(&c->malformed, memory_order_relaxed);
	out->unknown_fn = atomic_load_explicit(&c->unknown_fn, memory_order_relaxed);
	out->peers_gone = atomic_load_explicit(&c->peers_gone, memory_order_relaxed);
	out->repairs = atomic_load_explicit(&c->repairs, memory_order_relaxed);
	out->timeouts = atomic_load_explicit(&c->timeouts, memory_order_relaxed);
}
