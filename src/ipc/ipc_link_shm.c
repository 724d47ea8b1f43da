/* SPDX-License-Identifier: MIT */
/*
 * The producer's shared-memory link (see ipc_producer.h): requests go into
 * this producer's request ring in the consumer's object; a pump task takes
 * the replies off its reply ring and hands them to the call layer, and
 * sleeps on the producer's bell with a watch when there are none; a
 * peer watch task waits on a pidfd of the consumer (without pidfds, looks at
 * its pid now and then) and ends every call with -EPIPE when it dies.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <unistd.h>

#include "ipc_bell_sleep.h"
#include "ipc_producer.h"
#include "../core/runtime_internal.h"
#include "../sync/notify_internal.h"

static void ref_producer(void *p)
{
	afe__ipc_producer_ref(p);
}

static void unref_producer(void *p)
{
	afe__ipc_producer_unref(p);
}

/* Keeps the producer's mapping alive while a bell ring is held back. */
static const struct afe_burst_wake_owner producer_owner = {ref_producer, unref_producer};

/* Whether the entry is still the one we claimed (LIVE, our generation). */
static bool entry_ours(struct afe_ipc_producer *p)
{
	return atomic_load_explicit(&p->entry->state, memory_order_relaxed) ==
		       AFE_IPC_ENTRY_LIVE &&
	       atomic_load_explicit(&p->entry->generation, memory_order_relaxed) == p->gen;
}

/* Also when our entry is no longer ours: the consumer freed it, or the
 * object was wiped (see ipc_guard.h) and another producer took it. */
static bool consumer_gone(struct afe_ipc_producer *p)
{
	/* gone: seq_cst, every access: pairs with spoil's store (no request
	 * goes in after it, see shm_send under the lock), with the pump's
	 * and the peer watch's stores, and it is looked at in the pump's
	 * re-check after publishing wants. Not weakened. */
	if (atomic_load_explicit(&p->gone, memory_order_seq_cst))
		return true;
	if (entry_ours(p))
		return false;
	/* For good, whatever the entry says later. */
	atomic_store_explicit(&p->gone, true, memory_order_seq_cst);
	return true;
}

/* A ring of ours holds a sequence number no claim explains (see
 * ipc_slots.h): what went into it may never come out, so every call ends
 * with -EPROTO, now and later, instead of waiting for its timeout. The pump
 * ends the calls and gives the entry back; a new connection gets fresh
 * rings. Rings our bell, for a pump asleep. Unless the entry is no longer
 * ours: a wiped object (see ipc_guard.h) zeroes the rings too, and ends the
 * calls with -EPIPE. */
static void spoil(struct afe_ipc_producer *p)
{
	if (consumer_gone(p))
		return;
	/* Pairs with the acquire load of afe__ipc_producer_gone_error. */
	atomic_store_explicit(&p->spoilt, true, memory_order_release);
	/* Pairs with consumer_gone's load: no request goes in after it. */
	atomic_store_explicit(&p->gone, true, memory_order_seq_cst);
	afe_ipc_bell_ring(&p->entry->bell, AFE_IPC_WANT_ANY);
}

/* Takes every reply waiting in the ring, until it is found spoilt. Never
 * once the entry is not ours: its rings may be another producer's (a pop
 * writes the slot it frees). */
static void drain(struct afe_ipc_producer *p)
{
	struct afe_ipc_frame f;
	unsigned char payload[AFE_IPC_MAX_PAYLOAD];
	unsigned n = 0;
	while (entry_ours(p)) {
		int err = afe_ipc_slots_pop(&p->replies, &f, payload);
		if (err == -EAGAIN)
			break;
		n++;
		if (err == -EPROTO) {
			/* a count */
			atomic_fetch_add_explicit(&p->malformed, 1, memory_order_relaxed);
			spoil(p);
			break;
		}
		bool reset = err == 0 && f.kind == AFE_IPC_REPLY && (f.flags & AFE_IPC_F_RESET);
		if (reset && f.status == -EPROTO) { /* our request ring is spoilt */
			spoil(p);
			break;
		}
		if (reset)
			afe__ipc_producer_fail_all(p, f.status); /* replies were dropped */
		else if (err == 0 && f.kind == AFE_IPC_REPLY)
			afe__ipc_producer_deliver(p, f.call_id, f.status, f.flags & AFE_IPC_F_MORE,
						  payload, f.len);
		else
			/* a count */
			atomic_fetch_add_explicit(&p->malformed, 1, memory_order_relaxed);
	}
	if (n)
		afe_ipc_bell_ring_later(&p->hdr->bell, AFE_IPC_WANT_ROOM, false, &producer_owner, p);
}

/* Gives our entry back: the consumer frees it for the next producer. Only
 * once gone, from the pump done with the entry's bell and rings: a pump
 * still waking from the close would clear the wants of the producer that
 * took the entry next (which would sleep through its replies), and drain
 * its replies. Under the lock: after any send that saw us not gone. */
static void leave_entry(struct afe_ipc_producer *p)
{
	pthread_mutex_lock(&p->lock);
	uint32_t live = AFE_IPC_ENTRY_LIVE;
	/* The entry, shared with the consumer: seq_cst, as its accesses
	 * there (drop_peer, sync_peers); a cross-process protocol, not
	 * weakened. */
	if (atomic_load_explicit(&p->entry->generation, memory_order_seq_cst) == p->gen)
		atomic_compare_exchange_strong_explicit(&p->entry->state, &live, AFE_IPC_ENTRY_GONE,
							memory_order_seq_cst, memory_order_seq_cst);
	pthread_mutex_unlock(&p->lock);
	afe_ipc_bell_ring(&p->hdr->bell, AFE_IPC_WANT_ANY);
}

/* The name the pump publishes its wants under (see afe_ipc_bell_want):
 * 24 bits from the whole generation, which is unique to this claim. */
static uint32_t sleeper_name(const struct afe_ipc_producer *p)
{
	return (p->gen * 2654435761u) >> AFE_IPC_SLEEPER_SHIFT;
}

/* ---- the reply task ------------------------------------------------------- */

struct pump {
	struct afe_future base;
	struct afe_ipc_producer *p;
	struct afe_ipc_bell_sleep sleep;
};

/* Replies always: wanting them only while calls are pending cost a pump
 * wake and re-arm at the start of every call after an idle spell. */
static uint32_t pump_wants(void *pump)
{
	struct afe_ipc_producer *p = ((struct pump *)pump)->p;
	/* seq_cst, read after publishing wants: pairs with afe_ipc_wait's
	 * increment, then its fence and look at wants (Dekker). */
	return afe_ipc_pump_wants(1, atomic_load_explicit(&p->room_waiters, memory_order_seq_cst));
}

static bool pump_has_work(void *pump)
{
	struct afe_ipc_producer *p = ((struct pump *)pump)->p;
	/* closed: seq_cst, pairs with afe_ipc_producer_close's store, then
	 * its ring of our bell (Dekker with our publish of wants). */
	return afe_ipc_slots_has_frame(&p->replies) ||
	       atomic_load_explicit(&p->closed, memory_order_seq_cst) || consumer_gone(p);
}

/* Room freed before we wanted it: the calls waiting for room are woken
 * (on_met) and the pump sleeps without wanting room. */
static uint32_t pump_before_sleep(void *pump, uint32_t wants)
{
	struct afe_ipc_producer *p = ((struct pump *)pump)->p;
	return (wants & AFE_IPC_WANT_ROOM) && afe_ipc_slots_has_room(&p->requests)
		       ? AFE_IPC_WANT_ROOM
		       : 0;
}

static void pump_on_met(void *pump, uint32_t met)
{
	(void)met; /* only ever AFE_IPC_WANT_ROOM */
	afe_notify_all(&((struct pump *)pump)->p->room);
}

static bool pump_met_wanted_again(void *pump, uint32_t met)
{
	(void)met; /* only ever AFE_IPC_WANT_ROOM */
	return afe__notify_has_waiters(&((struct pump *)pump)->p->room);
}

static const struct afe_ipc_bell_sleep_ops pump_sleep = {
	.wants = pump_wants,
	.has_work = pump_has_work,
	.before_sleep = pump_before_sleep,
	.on_met = pump_on_met,
	.met_wanted_again = pump_met_wanted_again,
};

static int pump_poll(struct afe_future *f, struct afe_context *cx)
{
	struct pump *self = afe_container_of(f, struct pump, base);
	struct afe_ipc_producer *p = self->p;
	AFE_ASYNC_BEGIN(f, cx);
	for (;;) {
		drain(p);
		/* seq_cst: pairs with afe_ipc_producer_close's store. */
		if (atomic_load_explicit(&p->closed, memory_order_seq_cst) || consumer_gone(p))
			break;
		afe_ipc_bell_sleep_init(&self->sleep, &p->entry->bell, sleeper_name(p),
					&pump_sleep, self);
		AFE_AWAIT(&self->sleep.base);
		if (self->sleep.base.result < 0)
			break;
	}
	AFE_CLEANUP;
	/* seq_cst: see consumer_gone. */
	atomic_store_explicit(&p->gone, true, memory_order_seq_cst);
	afe__ipc_producer_fail_all(p, afe__ipc_producer_gone_error(p));
	leave_entry(p);
	afe__system_task_done(p->rt);
	afe__ipc_producer_unref(p);
	AFE_ASYNC_END;
}

/* Takes a free entry of h for this process and formats its rings. The
 * claim names us (afe_ipc_claim), so that a consumer frees the entry if we
 * die before publishing it LIVE. -EBUSY when no entry is free: the
 * consumer is told, it may free entries of producers that died. -ENOSPC
 * when /dev/shm has no room for the entry's rings. */
static int claim_entry(struct afe_ipc_header *h, struct afe_ipc_entry **out, unsigned *index,
		       uint32_t *gen)
{
	const uint32_t claim = afe_ipc_claim(getpid());
	for (unsigned i = 0; i < AFE_IPC_MAX_PRODUCERS; i++) {
		struct afe_ipc_entry *e = &h->entries[i];
		uint32_t expected = AFE_IPC_ENTRY_FREE;
		/* The entry, shared with the consumer: seq_cst, every access
		 * below but the final release CAS, pairing with the
		 * consumer's (drop_peer, sync_peers, free_abandoned); a
		 * cross-process protocol, not weakened. */
		if (!atomic_compare_exchange_strong_explicit(&e->state, &expected, claim,
							     memory_order_seq_cst,
							     memory_order_seq_cst))
			continue;
		int err = afe_ipc_shm_reserve_entry(h, i);
		if (err < 0) { /* a full /dev/shm: the entry was never used */
			/* Relaxed: we wrote nothing of it to publish. A CAS:
			 * the consumer may have taken our claim back already. */
			expected = claim;
			atomic_compare_exchange_strong_explicit(&e->state, &expected,
								AFE_IPC_ENTRY_FREE,
								memory_order_relaxed,
								memory_order_relaxed);
			return err;
		}
		afe_ipc_slots_format(afe_ipc_requests_of(h, i), AFE_IPC_RING_SLOTS);
		afe_ipc_slots_format(afe_ipc_replies_of(h, i), AFE_IPC_RING_SLOTS);
		/* The consumer frees a claim it takes for one a dead process
		 * left, or one held too long (free_abandoned, ipc_consumer_peers.c):
		 * freed under us, the entry may be another producer's already;
		 * leave its pid and generation alone, try the next one. */
		if (atomic_load_explicit(&e->state, memory_order_seq_cst) != claim)
			continue;
		/* A bell word: seq_cst as every access in ipc_bell.h. */
		atomic_store_explicit(&e->bell.wants, 0, memory_order_seq_cst);
		atomic_store_explicit(&e->pid, getpid(), memory_order_seq_cst);
		/* Unique to this claim, not the entry's count plus one: after
		 * a wipe (see ipc_guard.h) the count starts again at 0, and a
		 * wiped producer would take a new one's entry for its own. */
		static _Atomic uint32_t claims;
		/* Relaxed: only a number no other claim of ours draws. */
		uint32_t n = atomic_fetch_add_explicit(&claims, 1, memory_order_relaxed);
		uint32_t g = ((uint32_t)getpid() << 12) ^ n;
		*gen = g == atomic_load_explicit(&e->generation, memory_order_seq_cst) ? g + 1 : g;
		atomic_store_explicit(&e->generation, *gen, memory_order_seq_cst);
		/* Release: pairs with the consumer's acquire load of the state
		 * in sync_peers (it reads our rings, pid and generation after).
		 * Fails when the consumer freed the entry under us since. */
		expected = claim;
		if (!atomic_compare_exchange_strong_explicit(&e->state, &expected,
							     AFE_IPC_ENTRY_LIVE,
							     memory_order_release,
							     memory_order_relaxed))
			continue;
		*out = e;
		*index = i;
		return 0;
	}
	afe_ipc_bell_ring(&h->bell, AFE_IPC_WANT_ANY);
	return -EBUSY;
}

static int start_tasks(struct afe_ipc_producer *p)
{
	struct pump pump = {.p = p};
	afe_future_init(&pump.base, pump_poll);
	/* The pump's, the peer watch's. Relaxed: the caller holds p (see
	 * afe__ipc_producer_unref). */
	atomic_fetch_add_explicit(&p->refs, 2, memory_order_relaxed);
	int err = afe__spawn_system(p->rt, &pump, NULL, false);
	if (err < 0) {
		/* Relaxed: never the last count (the caller's stays), and
		 * nobody used these two. */
		atomic_fetch_sub_explicit(&p->refs, 2, memory_order_relaxed);
		leave_entry(p);
		return err;
	}
	err = afe_ipc_peer_watch_start(p->rt, p->consumer_pidfd, p->hdr->consumer_pid, false,
				       &p->gone, &p->entry->bell, NULL, unref_producer, p,
				       &p->peer_watch);
	if (err < 0) { /* the pump ends, and leaves the entry */
		/* seq_cst: see afe_ipc_producer_close. */
		atomic_store_explicit(&p->closed, true, memory_order_seq_cst);
		afe_ipc_bell_ring(&p->entry->bell, AFE_IPC_WANT_ANY);
	}
	return err;
}

static int shm_send(struct afe_ipc_producer *p, const struct afe_ipc_call *call)
{
	struct afe_ipc_frame frame = {
		.call_id = call->id,
		.len = call->args_len,
		.fn = call->fn,
		.kind = AFE_IPC_REQUEST,
		.flags = call->on_reply ? AFE_IPC_F_STREAM : 0,
	};
	/* Never once gone: the entry may be given back (leave_entry) and its
	 * rings be the next producer's. */
	if (consumer_gone(p))
		return afe__ipc_producer_gone_error(p);
	int err = afe_ipc_slots_push(&p->requests, &frame, call->args);
	if (err == -EPROTO) {
		spoil(p);
		err = afe__ipc_producer_gone_error(p);
	}
	return err;
}

static void shm_sent(struct afe_ipc_producer *p)
{
	afe_ipc_bell_ring_later(&p->hdr->bell, AFE_IPC_WANT_FRAME, false, &producer_owner, p);
}

static void shm_close(struct afe_ipc_producer *p)
{
	afe_ipc_bell_ring(&p->entry->bell, AFE_IPC_WANT_ANY); /* the pump ends, leave_entry */
	afe_join_handle_drop(&p->peer_watch); /* a child handle: cancels it */
}

static void shm_free(struct afe_ipc_producer *p)
{
	if (p->consumer_pidfd >= 0)
		close(p->consumer_pidfd);
	afe_ipc_shm_unmap(p->hdr);
}

static const struct afe_ipc_link_ops shm_link = {
	.send = shm_send,
	.sent = shm_sent,
	.gone = consumer_gone,
	.close = shm_close,
	.free = shm_free,
};

int afe_ipc_link_shm_connect(struct afe_ipc_producer *p, const char *name)
{
	struct afe_ipc_header *h;
	int err = afe_ipc_shm_open(name, &h);
	if (err < 0)
		return err;
	int pidfd = afe_ipc_pidfd_open(h->consumer_pid);
	if (afe_ipc_pidfd_missing(pidfd)) { /* the peer watch looks at its pid */
		err = afe_ipc_process_ended(h->consumer_pid, 0) ? -ESRCH : 0;
		pidfd = -1;
	} else if (pidfd < 0) {
		err = pidfd;
	} else if (afe_ipc_pidfd_ended(pidfd)) {
		/* Dead, not reaped yet: it will never serve (a producer
		 * reconnecting right after the death would take it). */
		close(pidfd);
		pidfd = -1;
		err = -ESRCH;
	}
	if (err < 0) {
		afe_ipc_shm_unmap(h);
		return err == -ESRCH ? -ECONNREFUSED : err;
	}
	unsigned index;
	if ((err = claim_entry(h, &p->entry, &index, &p->gen)) < 0) {
		if (pidfd >= 0)
			close(pidfd);
		afe_ipc_shm_unmap(h);
		return err;
	}
	p->hdr = h;
	p->consumer_pidfd = pidfd;
	p->link = &shm_link;
	afe_ipc_slots_attach(&p->requests, afe_ipc_requests_of(h, index), AFE_IPC_RING_SLOTS);
	afe_ipc_slots_attach(&p->replies, afe_ipc_replies_of(h, index), AFE_IPC_RING_SLOTS);
	if ((err = start_tasks(p)) < 0)
		return err; /* the caller frees p, and with it the mapping */
	/* Tell the consumer a producer came. */
	afe_ipc_bell_ring(&h->bell, AFE_IPC_WANT_ANY);
	return 0;
}
