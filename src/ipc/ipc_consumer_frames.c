/* SPDX-License-Identifier: MIT */
/*
 * The consumer's frames: requests taken off its producers' request slots
 * (and the in-process queues), replies pushed into their reply slots, and
 * the resets a stalled producer is owed (see ipc_consumer.c for why a
 * producer stalls). Every use of a peer's slots is under its lock.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>

#include "ipc_consumer.h"

/* Whether some live producer's request ring holds a frame (a hint). */
bool afe__ipc_consumer_any_request(struct afe_ipc_consumer *c)
{
	if (afe__ipc_consumer_any_local_request(c))
		return true;
	uint32_t live = atomic_load_explicit(&c->live_peers, memory_order_acquire);
	for (unsigned i = 0; i < AFE_IPC_MAX_PRODUCERS; i++) {
		if (!(live >> i & 1))
			continue;
		struct afe_ipc_peer *peer = &c->peers[i];
		pthread_mutex_lock(&peer->lock);
		bool has = peer->live && afe_ipc_slots_has_frame(&peer->requests);
		pthread_mutex_unlock(&peer->lock);
		if (has)
			return true;
	}
	return false;
}

/* ---- stalled producers -------------------------------------------------------- */

static void unstall_locked(struct afe_ipc_consumer *c, struct afe_ipc_peer *peer)
{
	peer->stalled = false;
	/* The pump stops wanting room for it at its next look; relaxed: a
	 * room wake it gets meanwhile only costs a look. */
	atomic_fetch_sub_explicit(&c->stalled_peers, 1, memory_order_relaxed);
}

/* Pushes the reset a stalled peer is owed, if it has room: 0, -EAGAIN, or
 * -EPROTO (the ring is spoilt: the producer finds out by itself). With
 * peer->lock held; the peer is live, of generation stalled_gen. */
static int push_reset_locked(struct afe_ipc_consumer *c, struct afe_ipc_peer *peer)
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
static int push_reply_locked(struct afe_ipc_consumer *c, struct afe_ipc_peer *peer,
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
void afe__ipc_consumer_stall_peer(struct afe_ipc_consumer *c, uint32_t i, uint32_t gen,
				  int32_t status)
{
	struct afe_ipc_peer *peer = &c->peers[i];
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
bool afe__ipc_consumer_send_resets(struct afe_ipc_consumer *c)
{
	/* Relaxed: a hint; the pump looked at it through pump_wants just before. */
	if (!atomic_load_explicit(&c->stalled_peers, memory_order_relaxed))
		return false;
	bool sent = false;
	for (unsigned i = 0; i < AFE_IPC_MAX_PRODUCERS; i++) {
		struct afe_ipc_peer *peer = &c->peers[i];
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

int afe__ipc_consumer_send_frame(struct afe_ipc_consumer *c, uint32_t i, uint32_t gen,
				 const struct afe_ipc_frame *f, const void *payload)
{
	struct afe_ipc_peer *peer = &c->peers[i];
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
					&afe__ipc_consumer_owner, c);
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
	afe__ipc_consumer_send_frame(c, i, gen, &no, NULL);
}

/* How many frames one take may drop (malformed, or for a function not
 * served) before it lets the worker run other tasks: a peer writing bad
 * frames as fast as they are dropped must not hold a worker for ever. */
#define AFE_IPC_DROP_BUDGET 64

/* Takes one request for a served function from peer i's ring. */
static int take_from_peer(struct afe_ipc_consumer *c, unsigned i, struct afe_ipc_request *req,
			  unsigned *dropped)
{
	struct afe_ipc_peer *peer = &c->peers[i];
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
					&afe__ipc_consumer_owner, c);
		if (err == -EPROTO) /* the ring is spoilt: its producer is told */
			afe__ipc_consumer_stall_peer(c, i, gen, -EPROTO);
		bool request = err == 0 && f.kind == AFE_IPC_REQUEST;
		if (!request || !afe__ipc_consumer_serves(c, f.fn)) {
			if (request) {
				/* a count */
				atomic_fetch_add_explicit(&c->unknown_fn, 1, memory_order_relaxed);
				refuse(c, i, gen, f.call_id, f.fn, -ENOSYS);
			} else {
				/* a count */
				atomic_fetch_add_explicit(&c->malformed, 1, memory_order_relaxed);
				if (f.kind == AFE_IPC_REQUEST) /* read, but malformed */
					refuse(c, i, gen, f.call_id, f.fn, -EPROTO);
			}
			if (++*dropped == AFE_IPC_DROP_BUDGET)
				return -EBUSY;
			continue;
		}
		atomic_fetch_add_explicit(&c->calls, 1, memory_order_relaxed); /* a count */
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
	while (afe__ipc_consumer_take_local(c, req) == 0) {
		if (afe__ipc_consumer_serves(c, req->fn)) {
			atomic_fetch_add_explicit(&c->calls, 1, memory_order_relaxed); /* a count */
			return 0;
		}
		atomic_fetch_add_explicit(&c->unknown_fn, 1, memory_order_relaxed); /* a count */
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
int afe__ipc_consumer_take_request(struct afe_ipc_consumer *c, struct afe_ipc_request *req)
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
