/* SPDX-License-Identifier: MIT */
/*
 * The consumer: serves a name, adopts the producers that connect, hands
 * their requests to the tasks receiving, and sends replies back.
 *
 * Receiving tasks take requests off the producers' rings themselves. When
 * none is there they wait on a local notify, counted in `idle`; the
 * consumer's task (the pump) sleeps on the consumer's bell, wanting frames
 * only while some receiver is idle, and wakes one receiver when frames
 * come (a receiver that finds more than it takes wakes the next). The pump
 * also adopts producers that connect, and drops those that disconnect or
 * die (a peer watch task per producer waits on its pidfd, or without pidfds
 * looks at its pid every AFE_IPC_PEER_RECHECK_NS).
 *
 * Each producer has a lock (private to this process) taken around every
 * ring access, so that dropping a producer never races a reply to it; a
 * reply carries the producer's generation, so a reply for a producer that
 * went away (and whose entry another took) fails with -EPIPE.
 *
 * A reply waits for room in its producer's reply ring at most room_ns: the
 * tasks replying are the user's few request tasks, shared by every
 * producer, and one producer that stops draining (stopped, stuck,
 * hostile) would hold them all. Past it, the producer is stalled: that
 * reply and every later one to it fail with -ETIMEDOUT at once, so that
 * its streams end and free their tasks, until its ring has room for a
 * reset frame (AFE_IPC_F_RESET), which ends the calls it has pending: a
 * stream missing a reply must not end as if whole. The reset goes before
 * any later reply (under the peer's lock), from whichever reply comes
 * first or from the pump, which wants room while a reset is owed. A cap
 * on the tasks one producer may hold would need the size of the user's
 * pool, and would still let a stopped producer hold its share for ever;
 * a deadline bounds what any producer can hold, however many tasks.
 *
 * A producer's request ring found spoilt (a sequence number no claim
 * explains: see ipc_slots.h) is owed a reset too, with -EPROTO: the
 * request in that slot is lost, and the producer ends its calls at once
 * and leaves, rather than wait for their timeouts.
 *
 * Lifetime: the consumer is counted by its user (until close), its tasks,
 * and each receive and reply from its start to its end.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <unistd.h>

#include <sys/mman.h>

#include "ipc_internal.h"
#include "../core/runtime_internal.h"

struct peer {
	pthread_mutex_t lock; /* guards everything below, and the rings' use */
	bool live;
	bool watched; /* a peer watch watches its process (the pump's field) */
	/* The claim the pump last saw in the entry while it was not live, and
	 * when (this process's clock): see free_abandoned. The pump's. */
	uint32_t claim;
	uint64_t claim_seen_ns, claim_checked_ns;
	uint32_t gen;
	struct afe_ipc_slots requests, replies;
	struct afe_join_handle peer_watch;
	_Atomic bool died; /* set by the peer watch; the pump drops it */
	/* Replies to generation stalled_gen were dropped (reset_status
	 * -ETIMEDOUT), or its request ring is spoilt (-EPROTO): it is owed a
	 * reset (while it is still gen) before any other reply. */
	bool stalled;
	uint32_t stalled_gen;
	int32_t reset_status;
};

struct afe_ipc_consumer {
	struct afe_runtime *rt;
	/* The shared-memory object; for a consumer serving in-process only,
	 * a header of its own (entries never used: the pump sleeps on it). */
	struct afe_ipc_header *hdr;
	bool shm;
	char path[AFE_IPC_NAME_MAX + 2];
	_Atomic int refs;
	_Atomic bool closed, name_released;
	_Atomic uint32_t idle, room_waiters, next_peer;
	_Atomic uint32_t live_peers; /* a bit per live peer: scans skip the rest */
	_Atomic uint32_t stalled_peers; /* peers stalled: the pump wants room */
	uint64_t room_ns; /* how long a reply waits for room */
	struct afe_notify work, room;
	/* Wakes the pump for events of this process (a producer's death, a
	 * close): unlike the bell, nothing a peer writes can silence it. */
	struct afe_notify kick;
	bool serve_all;
	uint8_t served[32]; /* a bit per function id */
	_Atomic uint64_t calls, replies, malformed, unknown_fn, peers_gone, repairs, timeouts;
	struct peer peers[AFE_IPC_MAX_PRODUCERS];
	/* The producers of this process (the in-process link). */
	pthread_mutex_t local_lock;
	struct afe_ipc_producer **locals;
	uint32_t n_locals, locals_cap, next_local;
	_Atomic bool has_locals; /* n_locals > 0: takes skip the lock otherwise */
	/* Set up: the name is registered before, so that a second consumer
	 * of it is refused early; producers that find it meanwhile are
	 * refused until then. */
	_Atomic bool ready;
};

static void consumer_unref(struct afe_ipc_consumer *c)
{
	if (atomic_fetch_sub(&c->refs, 1) != 1)
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

void afe__ipc_consumer_unref(struct afe_ipc_consumer *c)
{
	consumer_unref(c);
}

static bool serves(const struct afe_ipc_consumer *c, unsigned fn)
{
	return c->serve_all || (c->served[fn / 8] >> (fn % 8) & 1);
}

static void ref_consumer(void *c)
{
	atomic_fetch_add(&((struct afe_ipc_consumer *)c)->refs, 1);
}

static void unref_consumer(void *c)
{
	consumer_unref(c);
}

/* Keeps the consumer's mapping alive while a bell ring is held back. */
static const struct afe_signal_owner consumer_owner = {ref_consumer, unref_consumer};

/* ---- producers coming and going ------------------------------------------- */

/* Stops using peer i and frees its entry. From the pump. */
static void drop_peer(struct afe_ipc_consumer *c, unsigned i)
{
	struct peer *peer = &c->peers[i];
	pthread_mutex_lock(&peer->lock);
	bool was_live = peer->live;
	peer->live = false;
	atomic_fetch_and(&c->live_peers, ~(1u << i));
	pthread_mutex_unlock(&peer->lock);
	if (!was_live)
		return;
	afe_join_handle_drop(&peer->peer_watch); /* a child handle: cancels it */
	atomic_fetch_add(&c->peers_gone, 1);
	/* The entry is free again unless its producer already moved on. */
	struct afe_ipc_entry *e = &c->hdr->entries[i];
	if (atomic_load(&e->generation) == peer->gen) {
		uint32_t state = atomic_load(&e->state);
		if (state == AFE_IPC_ENTRY_LIVE || state == AFE_IPC_ENTRY_GONE)
			atomic_compare_exchange_strong(&e->state, &state, AFE_IPC_ENTRY_FREE);
	}
}

/* Watches peer's process, pid, through pidfd (the peer watch closes it), or
 * by pid where pidfds are missing: its death rings our bell. With pidfd
 * another error (out of fds, or of memory), the peer is served unwatched,
 * and sync_peers tries again. From the pump. */
static void watch_peer(struct afe_ipc_consumer *c, struct peer *peer, int pidfd, pid_t pid)
{
	peer->watched = false;
	if (afe_ipc_pidfd_missing(pidfd))
		pidfd = -1;
	else if (pidfd < 0)
		return;
	atomic_fetch_add(&c->refs, 1);
	if (afe_ipc_peer_watch_start(c->rt, pidfd, pid, true, &peer->died, NULL, &c->kick,
				     unref_consumer, c, &peer->peer_watch) < 0)
		memset(&peer->peer_watch, 0, sizeof(peer->peer_watch));
	else
		peer->watched = true;
}

/* Starts serving the producer of entry i. From the pump. */
static void adopt_peer(struct afe_ipc_consumer *c, unsigned i, uint32_t gen)
{
	struct afe_ipc_entry *e = &c->hdr->entries[i];
	struct peer *peer = &c->peers[i];
	pid_t pid = atomic_load(&e->pid);
	int pidfd = afe_ipc_pidfd_open(pid);
	if (pidfd == -ESRCH) {
		/* It died before we saw it: free its entry. */
		uint32_t live = AFE_IPC_ENTRY_LIVE;
		if (atomic_load(&e->generation) == gen)
			atomic_compare_exchange_strong(&e->state, &live, AFE_IPC_ENTRY_FREE);
		return;
	}
	pthread_mutex_lock(&peer->lock);
	peer->gen = gen;
	atomic_store(&peer->died, false);
	afe_ipc_slots_attach(&peer->requests, afe_ipc_requests_of(c->hdr, i), AFE_IPC_RING_SLOTS);
	afe_ipc_slots_attach(&peer->replies, afe_ipc_replies_of(c->hdr, i), AFE_IPC_RING_SLOTS);
	peer->live = true;
	atomic_fetch_or(&c->live_peers, 1u << i);
	pthread_mutex_unlock(&peer->lock);
	watch_peer(c, peer, pidfd, pid);
}

/* A peer adopted without a peer watch: its pidfd again, or its death. */
static void watch_again(struct afe_ipc_consumer *c, unsigned i)
{
	pid_t pid = atomic_load(&c->hdr->entries[i].pid);
	int pidfd = afe_ipc_pidfd_open(pid);
	if (pidfd == -ESRCH)
		atomic_store(&c->peers[i].died, true);
	else
		watch_peer(c, &c->peers[i], pidfd, pid);
}

/* How often the pump looks whether the claimer of an entry still runs
 * (three syscalls), while the claim lasts: a claimer takes well under a
 * millisecond to publish its entry LIVE. */
#define AFE_IPC_CLAIM_CHECK_NS (100 * 1000000ull)

/* How long an entry may stay claimed by a process that runs: its pid may
 * name another process since its claimer died. A claimer stalled that long
 * finds its entry freed, and claims another (claim_entry). */
#define AFE_IPC_CLAIM_MAX_NS (2000 * 1000000ull)

/* Whether process pid runs: not gone, nor a zombie. One we cannot look at
 * (out of fds) is taken to run. */
static bool process_runs(pid_t pid)
{
	int fd = afe_ipc_pidfd_open(pid);
	if (afe_ipc_pidfd_missing(fd))
		return !afe_ipc_process_ended(pid, 0);
	if (fd < 0)
		return fd != -ESRCH && fd != -EINVAL;
	struct pollfd exited = {.fd = fd, .events = POLLIN};
	bool runs = poll(&exited, 1, 0) == 0;
	close(fd);
	return runs;
}

/*
 * Frees entry i, which holds state, none of FREE, LIVE and GONE, and no
 * live peer of ours: garbage a peer wrote (freed at once), or a claim
 * (afe_ipc_claimer), freed once its claimer is seen dead, or once this
 * pump saw the same claim for AFE_IPC_CLAIM_MAX_NS. A claim is timed on
 * this process's clock from the pump's first sight of it, its claimer
 * looked at then and every AFE_IPC_CLAIM_CHECK_NS after. From the pump.
 */
static void free_abandoned(struct afe_ipc_consumer *c, unsigned i, uint32_t state)
{
	struct peer *peer = &c->peers[i];
	pid_t claimer = afe_ipc_claimer(state);
	uint64_t now = afe_now_ns();
	if (claimer) {
		if (state != peer->claim) { /* a claim seen the first time */
			peer->claim = state;
			peer->claim_seen_ns = now;
		} else if (now - peer->claim_checked_ns < AFE_IPC_CLAIM_CHECK_NS) {
			return;
		}
		peer->claim_checked_ns = now;
		if (now - peer->claim_seen_ns < AFE_IPC_CLAIM_MAX_NS && process_runs(claimer))
			return;
	}
	/* Unless the state changed since: a claimer that published LIVE
	 * meanwhile keeps its entry (its CAS from the claim, in claim_entry,
	 * and this one: one of them fails). */
	atomic_compare_exchange_strong(&c->hdr->entries[i].state, &state, AFE_IPC_ENTRY_FREE);
	peer->claim = 0;
}

/* Brings the peers in line with the entries. From the pump. */
static void sync_peers(struct afe_ipc_consumer *c)
{
	for (unsigned i = 0; i < AFE_IPC_MAX_PRODUCERS; i++) {
		struct afe_ipc_entry *e = &c->hdr->entries[i];
		struct peer *peer = &c->peers[i];
		if (peer->live && !peer->watched)
			watch_again(c, i);
		uint32_t state = atomic_load_explicit(&e->state, memory_order_acquire);
		uint32_t gen = atomic_load(&e->generation);
		bool stale = peer->live && (state != AFE_IPC_ENTRY_LIVE || gen != peer->gen ||
					    atomic_load(&peer->died));
		if (stale) {
			drop_peer(c, i);
			/* Look again: what we read is stale now. A producer that
			 * died left its entry LIVE (drop_peer freed it since),
			 * and its pidfd still opens while it is a zombie: adopted
			 * again, it would take replies into its rings, from a
			 * cursor back at 0, until the next pass dropped it. */
			state = atomic_load_explicit(&e->state, memory_order_acquire);
			gen = atomic_load(&e->generation);
		}
		if (!afe_ipc_claimer(state))
			peer->claim = 0; /* a claim seen again later is a new one */
		if (state == AFE_IPC_ENTRY_LIVE && !peer->live && !atomic_load(&c->closed))
			adopt_peer(c, i, gen);
		else if (state == AFE_IPC_ENTRY_GONE && !peer->live)
			/* A producer that left before we adopted it: it is
			 * done with the entry (it leaves only then). */
			atomic_compare_exchange_strong(&e->state, &state, AFE_IPC_ENTRY_FREE);
		else if (state != AFE_IPC_ENTRY_FREE && state != AFE_IPC_ENTRY_LIVE && !peer->live)
			free_abandoned(c, i, state);
	}
}

/* Whether an entry changed since sync_peers last looked: the pump checks
 * after publishing what it waits for, since a producer that connected
 * just before that rang a bell nobody wanted. */
static bool roster_changed(struct afe_ipc_consumer *c)
{
	for (unsigned i = 0; i < AFE_IPC_MAX_PRODUCERS; i++) {
		struct afe_ipc_entry *e = &c->hdr->entries[i];
		struct peer *peer = &c->peers[i];
		uint32_t state = atomic_load(&e->state);
		bool live = state == AFE_IPC_ENTRY_LIVE;
		if (live != peer->live || (live && atomic_load(&e->generation) != peer->gen) ||
		    (peer->live && atomic_load(&peer->died)) ||
		    (state == AFE_IPC_ENTRY_GONE && !peer->live)) /* to free */
			return true;
	}
	return false;
}

/* ---- producers of this process ----------------------------------------------- */

int afe__ipc_consumer_adopt_local(struct afe_ipc_consumer *c, struct afe_ipc_producer *p)
{
	int err = 0;
	pthread_mutex_lock(&c->local_lock);
	if (!atomic_load(&c->ready) || atomic_load(&c->closed)) {
		err = -ECONNREFUSED;
	} else if (c->n_locals == c->locals_cap) {
		uint32_t cap = c->locals_cap ? 2 * c->locals_cap : 4;
		struct afe_ipc_producer **grown = realloc(c->locals, cap * sizeof(*grown));
		if (grown) {
			c->locals = grown;
			c->locals_cap = cap;
		} else {
			err = -ENOMEM;
		}
	}
	if (!err) {
		c->locals[c->n_locals++] = p;
		atomic_store(&c->has_locals, true);
		atomic_fetch_add(&c->refs, 1); /* p's, until it is freed */
	}
	pthread_mutex_unlock(&c->local_lock);
	return err;
}

void afe__ipc_consumer_forget_local(struct afe_ipc_consumer *c, struct afe_ipc_producer *p)
{
	pthread_mutex_lock(&c->local_lock);
	for (uint32_t i = 0; i < c->n_locals; i++) {
		if (c->locals[i] == p) {
			c->locals[i] = c->locals[--c->n_locals];
			break;
		}
	}
	atomic_store(&c->has_locals, c->n_locals > 0);
	pthread_mutex_unlock(&c->local_lock);
}

void afe__ipc_consumer_request_queued(struct afe_ipc_consumer *c)
{
	/* The queue's lock was released before: a receiver that counted
	 * itself idle after this load looks at the queue once more. */
	atomic_thread_fence(memory_order_seq_cst);
	if (atomic_load_explicit(&c->idle, memory_order_relaxed))
		afe_notify_one(&c->work);
}

/* Takes the oldest request queued by one of the producers of this process,
 * starting with a different one each time. 0 or -EAGAIN. */
static int take_local(struct afe_ipc_consumer *c, struct afe_ipc_request *req)
{
	if (!atomic_load(&c->has_locals))
		return -EAGAIN;
	int err = -EAGAIN;
	pthread_mutex_lock(&c->local_lock);
	for (uint32_t k = 0; k < c->n_locals && err; k++)
		err = afe_ipc_link_local_take(c->locals[(c->next_local + k) % c->n_locals], req);
	c->next_local++;
	pthread_mutex_unlock(&c->local_lock);
	if (err == 0)
		req->peer = AFE_IPC_MAX_PRODUCERS; /* none of the shared memory's */
	return err;
}

static bool any_local_request(struct afe_ipc_consumer *c)
{
	if (!atomic_load(&c->has_locals))
		return false;
	bool has = false;
	pthread_mutex_lock(&c->local_lock);
	for (uint32_t i = 0; i < c->n_locals && !has; i++)
		has = afe_ipc_link_local_has_request(c->locals[i]);
	pthread_mutex_unlock(&c->local_lock);
	return has;
}

/* The consumer closed: its producers of this process end their calls with
 * -EPIPE. */
static void fail_locals(struct afe_ipc_consumer *c)
{
	pthread_mutex_lock(&c->local_lock);
	struct afe_ipc_producer **gone = c->locals;
	uint32_t n = c->n_locals;
	c->locals = NULL;
	c->n_locals = c->locals_cap = 0;
	atomic_store(&c->has_locals, false);
	for (uint32_t i = 0; i < n; i++)
		afe__ipc_producer_ref(gone[i]); /* they may close meanwhile */
	pthread_mutex_unlock(&c->local_lock);
	for (uint32_t i = 0; i < n; i++) {
		afe_ipc_link_local_consumer_gone(gone[i]);
		afe__ipc_producer_unref(gone[i]);
	}
	free(gone);
}

/* ---- the rings ------------------------------------------------------------ */

/* Whether some live producer's request ring holds a frame (a hint). */
static bool any_request(struct afe_ipc_consumer *c)
{
	if (any_local_request(c))
		return true;
	uint32_t live = atomic_load_explicit(&c->live_peers, memory_order_acquire);
	for (unsigned i = 0; i < AFE_IPC_MAX_PRODUCERS; i++) {
		if (!(live >> i & 1))
			continue;
		struct peer *peer = &c->peers[i];
		pthread_mutex_lock(&peer->lock);
		bool has = peer->live && afe_ipc_slots_has_frame(&peer->requests);
		pthread_mutex_unlock(&peer->lock);
		if (has)
			return true;
	}
	return false;
}

/* ---- stalled producers -------------------------------------------------------- */

static void unstall_locked(struct afe_ipc_consumer *c, struct peer *peer)
{
	peer->stalled = false;
	/* The pump stops wanting room for it at its next look; relaxed: a
	 * room wake it gets meanwhile only costs a look. */
	atomic_fetch_sub_explicit(&c->stalled_peers, 1, memory_order_relaxed);
}

/* Pushes the reset a stalled peer is owed, if it has room: 0, -EAGAIN, or
 * -EPROTO (the ring is spoilt: the producer finds out by itself). With
 * peer->lock held; the peer is live, of generation stalled_gen. */
static int push_reset_locked(struct afe_ipc_consumer *c, struct peer *peer)
{
	struct afe_ipc_frame reset = {.kind = AFE_IPC_REPLY, .flags = AFE_IPC_F_RESET,
				      .status = peer->reset_status};
	int err = afe_ipc_slots_push(&peer->replies, &reset, NULL);
	if (err != -EAGAIN)
		unstall_locked(c, peer);
	return err;
}

/* Pushes a reply to a live peer, after the reset it is owed: 0, -EAGAIN
 * (no room), the reset's status (stalled, still no room for the reset),
 * -EPROTO. With peer->lock held. */
static int push_reply_locked(struct afe_ipc_consumer *c, struct peer *peer,
			     const struct afe_ipc_frame *f, const void *payload)
{
	if (peer->stalled && peer->stalled_gen == peer->gen) {
		int32_t status = peer->reset_status;
		int err = push_reset_locked(c, peer);
		if (err < 0)
			return err == -EAGAIN ? status : err;
	}
	return afe_ipc_slots_push(&peer->replies, f, payload);
}

/* Owes peer i (of generation gen) a reset with status: -ETIMEDOUT once a
 * reply to it waited room_ns for room, -EPROTO once its request ring was
 * found spoilt (which wins). Pushes it at once if there is room. If not,
 * replies to the peer fail at once until there is: wakes the replies
 * waiting for room (those to it fail, the others wait on), and the pump,
 * to want room. */
static void stall_peer(struct afe_ipc_consumer *c, uint32_t i, uint32_t gen, int32_t status)
{
	struct peer *peer = &c->peers[i];
	int err = -EPIPE;
	pthread_mutex_lock(&peer->lock);
	if (peer->live && peer->gen == gen) {
		/* seq_cst, then afe_ipc_bell_rearm's fence and look at wants:
		 * pairs with the pump's publish of wants, then its fresh look
		 * at stalled_peers (pump_wants); one of the two sees the other. */
		if (!peer->stalled)
			atomic_fetch_add_explicit(&c->stalled_peers, 1, memory_order_seq_cst);
		bool owed = peer->stalled && peer->stalled_gen == gen; /* perhaps an earlier gen's */
		if (!owed || peer->reset_status != -EPROTO)
			peer->reset_status = status;
		peer->stalled = true;
		peer->stalled_gen = gen;
		err = push_reset_locked(c, peer);
	}
	pthread_mutex_unlock(&peer->lock);
	if (err == -EAGAIN) {
		afe_notify_all(&c->room);
		afe_ipc_bell_rearm(&c->hdr->bell, AFE_IPC_WANT_ROOM);
	} else if (err != -EPIPE) {
		afe_ipc_bell_ring(&c->hdr->entries[i].bell, AFE_IPC_WANT_FRAME);
	}
}

/* Sends the stalled peers that have room the reset they are owed, and
 * forgets those that went. Whether it sent one (the pump looks again).
 * From the pump. */
static bool send_resets(struct afe_ipc_consumer *c)
{
	/* Relaxed: a hint; the pump looked at it through pump_wants just before. */
	if (!atomic_load_explicit(&c->stalled_peers, memory_order_relaxed))
		return false;
	bool sent = false;
	for (unsigned i = 0; i < AFE_IPC_MAX_PRODUCERS; i++) {
		struct peer *peer = &c->peers[i];
		int err = -EAGAIN;
		pthread_mutex_lock(&peer->lock);
		if (peer->stalled && (!peer->live || peer->stalled_gen != peer->gen))
			unstall_locked(c, peer);
		else if (peer->stalled)
			err = push_reset_locked(c, peer);
		pthread_mutex_unlock(&peer->lock);
		if (err != -EAGAIN) {
			afe_ipc_bell_ring(&c->hdr->entries[i].bell, AFE_IPC_WANT_FRAME);
			sent = true;
		}
	}
	return sent;
}

/* ---- sending -------------------------------------------------------------------- */

static int send_frame(struct afe_ipc_consumer *c, uint32_t i, uint32_t gen,
		      const struct afe_ipc_frame *f, const void *payload)
{
	struct peer *peer = &c->peers[i];
	pthread_mutex_lock(&peer->lock);
	bool live = peer->live && peer->gen == gen;
	int err = live ? push_reply_locked(c, peer, f, payload) : -EPIPE;
	/* Its next request is in: this reply's wake can go with the next. */
	bool more = live && afe_ipc_slots_has_frame(&peer->requests);
	pthread_mutex_unlock(&peer->lock);
	/* -EPROTO: the ring is spoilt (see ipc_slots.h). The producer's pump,
	 * woken, finds it so too and ends its calls at once. */
	if (err == 0 || err == -EPROTO)
		afe_ipc_bell_ring_later(&c->hdr->entries[i].bell, AFE_IPC_WANT_FRAME, more,
					&consumer_owner, c);
	return err;
}

/* Ends a request we drop with err (best effort: the reply ring may be
 * full): -ENOSYS for a function not served, -EPROTO for a malformed one,
 * so that its caller learns at once instead of at its timeout. */
static void refuse(struct afe_ipc_consumer *c, uint32_t i, uint32_t gen, uint64_t call_id,
		   uint16_t fn, int32_t err)
{
	struct afe_ipc_frame no = {.call_id = call_id, .fn = fn <= 255 ? fn : 0,
				   .kind = AFE_IPC_REPLY, .status = err};
	send_frame(c, i, gen, &no, NULL);
}

/* How many frames one take may drop (malformed, or for a function not
 * served) before it lets the worker run other tasks: a peer writing bad
 * frames as fast as they are dropped must not hold a worker for ever. */
#define AFE_IPC_DROP_BUDGET 64

/* Takes one request for a served function from peer i's ring. */
static int take_from_peer(struct afe_ipc_consumer *c, unsigned i, struct afe_ipc_request *req,
			  unsigned *dropped)
{
	struct peer *peer = &c->peers[i];
	struct afe_ipc_frame f;
	for (;;) {
		f.kind = 0; /* stays 0 unless pop read a frame */
		pthread_mutex_lock(&peer->lock);
		int err = peer->live ? afe_ipc_slots_pop(&peer->requests, &f, req->args) : -EAGAIN;
		uint32_t gen = peer->gen;
		pthread_mutex_unlock(&peer->lock);
		if (err == -EAGAIN)
			return -EAGAIN;
		afe_ipc_bell_ring_later(&c->hdr->entries[i].bell, AFE_IPC_WANT_ROOM, false,
					&consumer_owner, c);
		if (err == -EPROTO) /* the ring is spoilt: its producer is told */
			stall_peer(c, i, gen, -EPROTO);
		bool request = err == 0 && f.kind == AFE_IPC_REQUEST;
		if (!request || !serves(c, f.fn)) {
			if (request) {
				atomic_fetch_add(&c->unknown_fn, 1);
				refuse(c, i, gen, f.call_id, f.fn, -ENOSYS);
			} else {
				atomic_fetch_add(&c->malformed, 1);
				if (f.kind == AFE_IPC_REQUEST) /* read, but malformed */
					refuse(c, i, gen, f.call_id, f.fn, -EPROTO);
			}
			if (++*dropped == AFE_IPC_DROP_BUDGET)
				return -EBUSY;
			continue;
		}
		atomic_fetch_add(&c->calls, 1);
		req->fn = f.fn;
		req->len = f.len;
		req->streamed = f.flags & AFE_IPC_F_STREAM;
		req->call_id = f.call_id;
		req->peer = i;
		req->peer_gen = gen;
		req->local = NULL;
		return 0;
	}
}

/* The same from the producers of this process. */
static int take_from_locals(struct afe_ipc_consumer *c, struct afe_ipc_request *req,
			    unsigned *dropped)
{
	while (take_local(c, req) == 0) {
		if (serves(c, req->fn)) {
			atomic_fetch_add(&c->calls, 1);
			return 0;
		}
		atomic_fetch_add(&c->unknown_fn, 1);
		afe_ipc_link_local_reply(req->local, req->call_id, -ENOSYS, false, NULL, 0);
		afe__ipc_producer_unref(req->local);
		req->local = NULL;
		if (++*dropped == AFE_IPC_DROP_BUDGET)
			return -EBUSY;
	}
	return -EAGAIN;
}

/* Takes one request for a served function into req, from the producers'
 * rings and those of this process in turn. 0, -EAGAIN when there is none,
 * or -EBUSY after dropping AFE_IPC_DROP_BUDGET requests (yield, then take
 * again). */
static int take_request(struct afe_ipc_consumer *c, struct afe_ipc_request *req)
{
	unsigned dropped = 0;
	unsigned start = atomic_fetch_add_explicit(&c->next_peer, 1, memory_order_relaxed);
	uint32_t live = atomic_load_explicit(&c->live_peers, memory_order_acquire);
	for (unsigned k = 0; k <= AFE_IPC_MAX_PRODUCERS; k++) {
		unsigned i = (start + k) % (AFE_IPC_MAX_PRODUCERS + 1);
		int err = -EAGAIN;
		if (i == AFE_IPC_MAX_PRODUCERS)
			err = take_from_locals(c, req, &dropped);
		else if (live >> i & 1)
			err = take_from_peer(c, i, req, &dropped);
		if (err != -EAGAIN)
			return err;
	}
	return -EAGAIN;
}

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
 * dead producer left, see free_abandoned, is seen within it). Idle, each
 * re-check costs a wake of the ring thread (its timer) and of one worker,
 * and one look at the 16 entries: measured on the 2-vCPU test machine (a
 * consumer serving nothing for 20 s, 2 workers), the process used 9.6 ms
 * of CPU, 0.05% of one CPU, against 0.02 ms without it.
 */
#define AFE_IPC_PUMP_RECHECK_NS (250 * 1000000ull)

struct pump {
	struct afe_future base;
	struct afe_ipc_consumer *c;
	uint32_t word;
	uint64_t recheck_ns; /* when the pump looks again by itself */
	struct afe_watch wait; /* on the bell */
	struct afe_notified kicked;
	struct afe_sleep nap; /* until recheck_ns */
	struct afe_future *racers[3];
	struct afe_select race;
};

/* Sets up the pump's sleep: until its bell rings (the word leaves the
 * value it read), its kick, or, over shared memory, its next re-check.
 * The re-check time stays put until it comes, so a busy pump re-arms the
 * same timer and never rings the ring thread to move its deadline. */
static void arm_sleep(struct pump *self)
{
	struct afe_ipc_consumer *c = self->c;
	uint64_t now = afe_now_ns();
	if (now >= self->recheck_ns)
		self->recheck_ns = now + AFE_IPC_PUMP_RECHECK_NS;
	afe_ipc_bell_watch(&self->wait, &c->hdr->bell, self->word);
	afe_notified_init(&self->kicked, &c->kick);
	afe_sleep_until_init(&self->nap, self->recheck_ns);
	self->racers[0] = &self->wait.base;
	self->racers[1] = &self->kicked.base;
	self->racers[2] = &self->nap.base;
	/* In-process only, no peer shares the bell: nothing to re-check. */
	afe_select_init(&self->race, self->racers, c->shm ? 3 : 2);
}

/* Whether the sleep ended because the pump or its runtime goes away. */
static bool sleep_ended_for_good(const struct pump *self)
{
	if (self->race.base.result < 0)
		return true;
	int result = self->racers[self->race.winner]->result;
	return result == -ECANCELED || result == -ESHUTDOWN;
}

static uint32_t pump_wants(struct afe_ipc_consumer *c)
{
	/* stalled_peers: seq_cst, pairs with stall_peer's increment. */
	return afe_ipc_pump_wants(atomic_load(&c->idle),
				  atomic_load(&c->room_waiters) +
					  atomic_load_explicit(&c->stalled_peers,
							       memory_order_seq_cst));
}

static int pump_poll(struct afe_future *f, struct afe_context *cx)
{
	struct pump *self = afe_container_of(f, struct pump, base);
	struct afe_ipc_consumer *c = self->c;
	struct afe_ipc_bell *bell = &c->hdr->bell;
	AFE_ASYNC_BEGIN(f, cx);
	while (!atomic_load(&c->closed)) {
		if (c->shm && afe_ipc_shm_check(AFE_IPC_OBJECT_SIZE, c->hdr) < 0) {
			/* Wiped: another process shrank the object and a guard
			 * (ours or a producer's, see ipc_guard.h) grew it back,
			 * zeroed. Every producer goes (their entries are gone)
			 * before the header lets new ones in. */
			for (unsigned i = 0; i < AFE_IPC_MAX_PRODUCERS; i++) {
				drop_peer(c, i);
				c->peers[i].claim = 0;
			}
			afe_ipc_shm_write_header(c->hdr);
			atomic_fetch_add(&c->repairs, 1);
		}
		sync_peers(c);
		uint32_t wants = pump_wants(c);
		self->word = afe_ipc_bell_want(bell, wants, AFE_IPC_CONSUMER_SLEEPER);
		if (pump_wants(c) != wants || roster_changed(c) || atomic_load(&c->closed) ||
		    send_resets(c)) {
			afe_ipc_bell_unwant(bell, AFE_IPC_CONSUMER_SLEEPER);
			continue;
		}
		/* Wake receivers for what came before we wanted it: they take
		 * it, so we may sleep now; what comes later rings the bell. */
		if ((wants & AFE_IPC_WANT_FRAME) && any_request(c))
			afe_notify_one(&c->work);
		if (wants & AFE_IPC_WANT_ROOM)
			afe_notify_all(&c->room);
		arm_sleep(self);
		AFE_AWAIT(&self->race.base);
		afe_ipc_bell_unwant(bell, AFE_IPC_CONSUMER_SLEEPER);
		if (sleep_ended_for_good(self))
			break;
	}
	AFE_CLEANUP;
	atomic_store(&c->closed, true);
	afe_ipc_link_local_unregister(c);
	fail_locals(c);
	for (unsigned i = 0; i < AFE_IPC_MAX_PRODUCERS; i++) {
		drop_peer(c, i);
		afe_ipc_bell_ring(&c->hdr->entries[i].bell, AFE_IPC_WANT_ANY);
	}
	afe_notify_all(&c->work);
	afe_notify_all(&c->room);
	afe__system_task_done(c->rt);
	consumer_unref(c);
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
		atomic_store(&c->refs, 1);
		afe_ipc_consumer_destroy(c);
		return err;
	}
	atomic_store(&c->ready, true);
	*out = c;
	return 0;
}

void afe_ipc_consumer_close(struct afe_ipc_consumer *c)
{
	if (!c)
		return;
	/* Once: a consumer restarted under the name after this one closed
	 * owns the name's object now. */
	if (!atomic_exchange(&c->name_released, true)) {
		afe_ipc_link_local_unregister(c);
		if (c->shm)
			shm_unlink(c->path);
	}
	atomic_store(&c->closed, true);
	fail_locals(c);
	afe_notify_one(&c->kick); /* the pump sees closed and ends */
	afe_notify_all(&c->work);
	afe_notify_all(&c->room);
}

void afe_ipc_consumer_destroy(struct afe_ipc_consumer *c)
{
	if (!c)
		return;
	afe_ipc_consumer_close(c);
	consumer_unref(c);
}

void afe_ipc_consumer_stats(const struct afe_ipc_consumer *c, struct afe_ipc_stats *out)
{
	memset(out, 0, sizeof(*out));
	out->calls = atomic_load(&c->calls);
	out->replies = atomic_load(&c->replies);
	out->malformed = atomic_load(&c->malformed);
	out->unknown_fn = atomic_load(&c->unknown_fn);
	out->peers_gone = atomic_load(&c->peers_gone);
	out->repairs = atomic_load(&c->repairs);
	out->timeouts = atomic_load_explicit(&c->timeouts, memory_order_relaxed); /* a count */
}

/* ---- receiving -------------------------------------------------------------- */

static int recv_poll(struct afe_future *f, struct afe_context *cx);

void afe_ipc_recv_init(struct afe_ipc_request *req, struct afe_ipc_consumer *c)
{
	afe_future_init(&req->base, recv_poll);
	req->consumer = c;
	req->waiting = false;
	req->held = false;
	req->local = NULL;
	req->len = 0;
}

void afe_ipc_request_args(const struct afe_ipc_request *req, struct afe_ipc_reader *r)
{
	afe_ipc_reader_init(r, req->args, req->len);
}

/* A request taken keeps its count of the consumer: its final reply takes
 * it over (afe_ipc_reply_begin), so the consumer outlives every request
 * that still has to be answered. */
static int recv_finish(struct afe_ipc_request *req, const struct afe_context *cx, int result)
{
	struct afe_ipc_consumer *c = req->consumer;
	afe_ipc_wait_end(&req->waiting, &req->work, &c->idle, cx);
	req->base.result = result;
	req->held = result == 0;
	if (!req->held)
		consumer_unref(c);
	return AFE_READY;
}

static int recv_poll(struct afe_future *f, struct afe_context *cx)
{
	struct afe_ipc_request *req = afe_container_of(f, struct afe_ipc_request, base);
	struct afe_ipc_consumer *c = req->consumer;
	if (!c) {
		f->result = -EINVAL;
		return AFE_READY;
	}
	if (f->resume == 0) {
		f->resume = 1;
		atomic_fetch_add(&c->refs, 1);
	}
	if (cx->cancel)
		return recv_finish(req, cx, -ECANCELED);
	for (;;) {
		int err = take_request(c, req);
		if (err == -EBUSY) {
			afe_waker_wake_by_ref(cx->waker); /* a yield: take again soon */
			return AFE_PENDING;
		}
		if (err == 0) {
			/* More there? Pass the wake on to the next idle receiver. */
			if (atomic_load(&c->idle) > (req->waiting ? 1u : 0u) && any_request(c))
				afe_notify_one(&c->work);
			return recv_finish(req, cx, 0);
		}
		if (atomic_load(&c->closed))
			return recv_finish(req, cx, -EPIPE);
		if (afe_ipc_wait(&req->waiting, &req->work, &c->work, &c->idle, &c->hdr->bell,
				 AFE_IPC_WANT_FRAME, cx) == AFE_PENDING)
			return AFE_PENDING;
	}
}

/* ---- replying --------------------------------------------------------------- */

static int reply_poll(struct afe_future *f, struct afe_context *cx);

struct afe_ipc_writer *afe_ipc_reply_begin(struct afe_ipc_reply *rep, struct afe_ipc_request *req,
					   bool more)
{
	afe_future_init(&rep->base, reply_poll);
	more = more && req->streamed;
	if (!more && req->held)
		req->held = false; /* the final reply takes the request's count over */
	else
		atomic_fetch_add(&req->consumer->refs, 1);
	rep->consumer = req->consumer;
	rep->local = req->local;
	if (rep->local && more)
		afe__ipc_producer_ref(rep->local);
	else
		req->local = NULL; /* the final reply takes the request's count over */
	rep->call_id = req->call_id;
	rep->peer = req->peer;
	rep->peer_gen = req->peer_gen;
	rep->fn = (uint16_t)req->fn;
	rep->more = more;
	rep->status = 0;
	rep->waiting = false;
	rep->timing = false;
	rep->bytes = rep->bytes_inline;
	rep->len = 0;
	return afe_ipc_scratch_begin();
}

int afe_ipc_reply_arm(struct afe_ipc_reply *rep)
{
	int err = afe_ipc_scratch_take(&rep->bytes, rep->bytes_inline, sizeof(rep->bytes_inline),
				       &rep->len);
	if (err < 0)
		rep->status = err; /* the call ends with it: the caller learns */
	return err;
}

void afe_ipc_reply_error(struct afe_ipc_reply *rep, struct afe_ipc_request *req, int err)
{
	afe_ipc_reply_begin(rep, req, false);
	rep->more = false;
	rep->status = err < 0 && err > -4096 ? err : -EPROTO;
}

static int reply_finish(struct afe_ipc_reply *rep, const struct afe_context *cx, int result)
{
	struct afe_ipc_consumer *c = rep->consumer;
	afe_ipc_wait_end(&rep->waiting, &rep->room, &c->room_waiters, cx);
	if (rep->timing)
		afe_ipc_withdraw(&rep->room_deadline.base, cx);
	rep->timing = false;
	if (rep->bytes != rep->bytes_inline)
		free(rep->bytes);
	rep->bytes = rep->bytes_inline;
	rep->base.result = result;
	if (rep->local)
		afe__ipc_producer_unref(rep->local);
	rep->local = NULL;
	consumer_unref(c);
	return AFE_READY;
}

/* Sends a reply to its producer: through its ring, or straight to the
 * call of a producer of this process. 0, -EAGAIN (no room), -EPIPE. */
static int send_reply(struct afe_ipc_consumer *c, const struct afe_ipc_reply *rep,
		      const struct afe_ipc_frame *f)
{
	if (rep->peer < AFE_IPC_MAX_PRODUCERS)
		return send_frame(c, rep->peer, rep->peer_gen, f, rep->bytes);
	if (!rep->local)
		return -EPIPE; /* a second final reply: the call ended */
	return afe_ipc_link_local_reply(rep->local, f->call_id, f->status, rep->more, rep->bytes,
					f->len);
}

/* The reply's wait for room: 0 while it may go on, -ETIMEDOUT once it
 * lasted room_ns (from the first call), or the sleep's error. */
static int room_deadline(struct afe_ipc_reply *rep, struct afe_context *cx)
{
	if (!rep->timing) {
		afe_sleep_init(&rep->room_deadline, rep->consumer->room_ns);
		rep->timing = true;
	}
	if (afe_future_poll(&rep->room_deadline.base, cx) == AFE_PENDING)
		return 0;
	return rep->room_deadline.base.result < 0 ? (int)rep->room_deadline.base.result
						  : -ETIMEDOUT;
}

/* The reply found no room for room_ns: it fails, and its peer stalls. */
static int reply_timed_out(struct afe_ipc_reply *rep, const struct afe_context *cx)
{
	stall_peer(rep->consumer, rep->peer, rep->peer_gen, -ETIMEDOUT);
	atomic_fetch_add_explicit(&rep->consumer->timeouts, 1, memory_order_relaxed); /* a count */
	return reply_finish(rep, cx, -ETIMEDOUT);
}

static int reply_poll(struct afe_future *f, struct afe_context *cx)
{
	struct afe_ipc_reply *rep = afe_container_of(f, struct afe_ipc_reply, base);
	struct afe_ipc_consumer *c = rep->consumer;
	if (!c) {
		f->result = -EINVAL;
		return AFE_READY;
	}
	if (cx->cancel)
		return reply_finish(rep, cx, -ECANCELED);
	struct afe_ipc_frame frame = {
		.call_id = rep->call_id,
		.len = rep->status ? 0 : rep->len,
		.fn = rep->fn,
		.kind = AFE_IPC_REPLY,
		.flags = rep->more ? AFE_IPC_F_MORE : 0,
		.status = rep->status,
	};
	for (;;) {
		int err = send_reply(c, rep, &frame);
		if (err == 0) {
			atomic_fetch_add(&c->replies, 1);
			return reply_finish(rep, cx, rep->status == -EMSGSIZE ? -EMSGSIZE : 0);
		}
		if (err == -ETIMEDOUT) /* its peer stalled: the reply is dropped */
			atomic_fetch_add_explicit(&c->timeouts, 1, memory_order_relaxed); /* a count */
		if (err != -EAGAIN)
			return reply_finish(rep, cx, err);
		if (atomic_load(&c->closed))
			return reply_finish(rep, cx, -EPIPE);
		err = room_deadline(rep, cx);
		if (err == -ETIMEDOUT)
			return reply_timed_out(rep, cx);
		if (err < 0)
			return reply_finish(rep, cx, err);
		if (afe_ipc_wait(&rep->waiting, &rep->room, &c->room, &c->room_waiters,
				 &c->hdr->bell, AFE_IPC_WANT_ROOM, cx) == AFE_PENDING)
			return AFE_PENDING;
	}
}
