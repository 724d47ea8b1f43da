/* SPDX-License-Identifier: MIT */
/*
 * What the user's request tasks await (afe/ipc.h): afe_ipc_recv takes one
 * request, waiting idle on the consumer's work notify when there is none;
 * afe_ipc_reply sends one reply, waiting for room in its producer's reply
 * slots at most room_ns before its producer is stalled.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>

#include "ipc_consumer.h"

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
		afe__ipc_consumer_unref(c);
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
		/* Relaxed: the caller holds c (see afe__ipc_consumer_unref). */
		atomic_fetch_add_explicit(&c->refs, 1, memory_order_relaxed);
	}
	if (cx->cancel)
		return recv_finish(req, cx, -ECANCELED);
	for (;;) {
		int err = afe__ipc_consumer_take_request(c, req);
		if (err == -EBUSY) {
			afe_waker_wake_by_ref(cx->waker); /* a yield: take again soon */
			return AFE_PENDING;
		}
		if (err == 0) {
			/* More there? Pass the wake on to the next idle
			 * receiver. idle: seq_cst as the idle receivers'
			 * increments (afe_ipc_wait): not weakened. */
			uint32_t idle = atomic_load_explicit(&c->idle, memory_order_seq_cst);
			if (idle > (req->waiting ? 1u : 0u) && afe__ipc_consumer_any_request(c))
				afe_notify_one(&c->work);
			return recv_finish(req, cx, 0);
		}
		/* seq_cst: pairs with close's store, then its notify_all. */
		if (atomic_load_explicit(&c->closed, memory_order_seq_cst))
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
	if (!rep)
		return afe_ipc_scratch_begin(); /* for arm to refuse */
	afe_future_init(&rep->base, reply_poll);
	if (!req || !req->consumer) { /* no request: the reply ends with -EINVAL */
		memset((char *)rep + sizeof(rep->base), 0, sizeof(*rep) - sizeof(rep->base));
		rep->bytes = rep->bytes_inline;
		return afe_ipc_scratch_begin();
	}
	more = more && req->streamed;
	if (!more && req->held)
		req->held = false; /* the final reply takes the request's count over */
	else
		/* Relaxed: the request holds the consumer (see
		 * afe__ipc_consumer_unref). */
		atomic_fetch_add_explicit(&req->consumer->refs, 1, memory_order_relaxed);
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
	if (!rep)
		return -EINVAL;
	int err = afe_ipc_scratch_take(&rep->bytes, rep->bytes_inline, sizeof(rep->bytes_inline),
				       &rep->len);
	if (err < 0)
		rep->status = err; /* the call ends with it: the caller learns */
	if (!rep->consumer) { /* no request to answer: nothing to keep */
		if (rep->bytes != rep->bytes_inline)
			free(rep->bytes);
		rep->bytes = rep->bytes_inline;
		rep->len = 0;
		return -EINVAL;
	}
	return err;
}

void afe_ipc_reply_error(struct afe_ipc_reply *rep, struct afe_ipc_request *req, int err)
{
	if (!rep)
		return;
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
	afe__ipc_consumer_unref(c);
	return AFE_READY;
}

/* Sends a reply to its producer: through its ring, or straight to the
 * call of a producer of this process. 0, -EAGAIN (no room), -EPIPE. */
static int send_reply(struct afe_ipc_consumer *c, const struct afe_ipc_reply *rep,
		      const struct afe_ipc_frame *f)
{
	if (rep->peer < AFE_IPC_MAX_PRODUCERS)
		return afe__ipc_consumer_send_frame(c, rep->peer, rep->peer_gen, f, rep->bytes);
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
	afe__ipc_consumer_stall_peer(rep->consumer, rep->peer, rep->peer_gen, -ETIMEDOUT);
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
			/* a count */
			atomic_fetch_add_explicit(&c->replies, 1, memory_order_relaxed);
			return reply_finish(rep, cx, rep->status == -EMSGSIZE ? -EMSGSIZE : 0);
		}
		if (err == -ETIMEDOUT) /* its peer stalled: the reply is dropped */
			/* a count */
			atomic_fetch_add_explicit(&c->timeouts, 1, memory_order_relaxed);
		if (err != -EAGAIN)
			return reply_finish(rep, cx, err);
		/* seq_cst: pairs with close's store, then its notify_all. */
		if (atomic_load_explicit(&c->closed, memory_order_seq_cst))
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
