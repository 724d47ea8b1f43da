/* SPDX-License-Identifier: MIT */
/* What the producer and the consumer share. */
#ifndef AFE_IPC_INTERNAL_H
#define AFE_IPC_INTERNAL_H

#include <afe.h>
#include <afe/ipc.h>
#include <stdlib.h>
#include <string.h>

#include "ipc_peer_watch.h"
#include "ipc_shm.h"

/* ---- the in-process link ---------------------------------------------------
 * A producer that connects to a consumer of its own process skips the
 * shared memory: its calls' ids wait in a queue of the producer, the
 * consumer's receivers copy the arguments straight from the call, and a
 * reply goes straight into the call (or its callback). */

/* The consumers serving in this process, by name (ipc_link_local.c). register:
 * 0, or -EADDRINUSE (one serves name already), -ENOMEM. */
int afe_ipc_link_local_register(const char *name, struct afe_ipc_consumer *c);
void afe_ipc_link_local_unregister(struct afe_ipc_consumer *c);

/* The consumer's side (ipc_consumer_locals.c). adopt: 0, p now counts c and its
 * receivers read p's queue; -ECONNREFUSED once c is closed. */
int afe__ipc_consumer_adopt_local(struct afe_ipc_consumer *c, struct afe_ipc_producer *p);
void afe__ipc_consumer_forget_local(struct afe_ipc_consumer *c, struct afe_ipc_producer *p);
/* A call was queued for c: wakes an idle receiver. */
void afe__ipc_consumer_request_queued(struct afe_ipc_consumer *c);
void afe__ipc_consumer_unref(struct afe_ipc_consumer *c);

/* The producer's side, for the consumer (ipc_link_local.c). take: 0 with the
 * oldest queued call's request in req (req->local then counts p), or
 * -EAGAIN. reply: delivers to the call, 0 or -EPIPE once p is closed. */
int afe_ipc_link_local_take(struct afe_ipc_producer *p, struct afe_ipc_request *req);
bool afe_ipc_link_local_has_request(struct afe_ipc_producer *p);
int afe_ipc_link_local_reply(struct afe_ipc_producer *p, uint64_t call_id, int32_t status,
			     bool more, const void *bytes, uint32_t len);
/* The consumer closed: p's calls end with -EPIPE, and later ones too. */
void afe_ipc_link_local_consumer_gone(struct afe_ipc_producer *p);
void afe__ipc_producer_ref(struct afe_ipc_producer *p);
void afe__ipc_producer_unref(struct afe_ipc_producer *p);
/* One attempt to connect, on rt (config checked); and the attempts of a
 * config's connect_wait_ms, on the calling thread (ipc_connect_wait.c). */
int afe__ipc_connect_once(struct afe_ipc_producer **out, struct afe_runtime *rt, const char *name,
			  const struct afe_ipc_producer_config *config);
int afe__ipc_connect_waiting(struct afe_ipc_producer **out, struct afe_runtime *rt,
			     const char *name, const struct afe_ipc_producer_config *config);
/* The pause before the next attempt to connect, after one of ms. */
static inline uint32_t afe__ipc_connect_backoff_ms(uint32_t ms)
{
	return ms == 0 ? 2 : ms >= 50 ? 100 : 2 * ms;
}

/* Ends a child future that may be waiting (a sleep, a notified), so that
 * nothing points into it afterwards. Both complete a cancel at once. */
static inline void afe_ipc_withdraw(struct afe_future *f, const struct afe_context *cx)
{
	if (afe_future_is_done(f))
		return;
	struct afe_context cancel = *cx;
	cancel.cancel = true;
	while (afe_future_poll(f, &cancel) == AFE_PENDING)
		;
}

/* Where the typed helpers encode, between begin and arm (on one thread). */
extern _Thread_local unsigned char afe_ipc_scratch[AFE_IPC_MAX_PAYLOAD];
extern _Thread_local struct afe_ipc_writer afe_ipc_scratch_writer;

static inline struct afe_ipc_writer *afe_ipc_scratch_begin(void)
{
	afe_ipc_writer_init(&afe_ipc_scratch_writer, afe_ipc_scratch, AFE_IPC_MAX_PAYLOAD);
	return &afe_ipc_scratch_writer;
}

/* Copies the scratch bytes into *dst (inline when they fit, else the
 * heap; a previous heap buffer is freed). 0, the writer's error, -ENOMEM. */
static inline int afe_ipc_scratch_take(unsigned char **dst, unsigned char *inline_buf,
				       size_t inline_size, uint32_t *len)
{
	if (*dst && *dst != inline_buf)
		free(*dst);
	*dst = inline_buf;
	*len = 0;
	if (afe_ipc_scratch_writer.err)
		return afe_ipc_scratch_writer.err;
	uint32_t n = afe_ipc_scratch_writer.len;
	if (n > inline_size && !(*dst = malloc(n))) {
		*dst = inline_buf;
		return -ENOMEM;
	}
	memcpy(*dst, afe_ipc_scratch, n);
	*len = n;
	return 0;
}

/* Wakes the sleeper of b only when it sleeps without wanting what (its
 * own pump, told to re-arm with what). */
static inline void afe_ipc_bell_rearm(struct afe_ipc_bell *b, uint32_t what)
{
	atomic_thread_fence(memory_order_seq_cst);
	uint32_t wants = atomic_load_explicit(&b->wants, memory_order_relaxed);
	if ((wants & AFE_IPC_WANT_ANY) && !(wants & what))
		afe_ipc_bell_ring(b, AFE_IPC_WANT_ANY);
}

/* What a pump sleeps for: always news of peers; frames while someone waits
 * for them; freed slots while someone waits for room. */
static inline uint32_t afe_ipc_pump_wants(uint32_t frame_waiters, uint32_t room_waiters)
{
	return AFE_IPC_WANT_ANY | (frame_waiters ? AFE_IPC_WANT_FRAME : 0) |
	       (room_waiters ? AFE_IPC_WANT_ROOM : 0);
}

/* Arms n on notify and polls it at once: a notify counts only for a
 * future already polled, and one that came between the caller's last
 * look and a later poll (a notify_all, which leaves no permit) would be
 * lost. A permit taken at once says what the caller's next look finds
 * out anyway; arm again. */
static inline void afe_ipc_wait_arm(struct afe_notified *n, struct afe_notify *notify,
				    struct afe_context *cx)
{
	do
		afe_notified_init(n, notify);
	while (afe_future_poll(&n->base, cx) == AFE_READY);
}

/*
 * A future waiting, on its side's local notify, for what its pump watches
 * the bell for (a frame, room). The first call arms the wait, counts it in
 * waiters and makes the pump re-arm for what, then returns AFE_READY: look
 * once more (a notify from then on is not lost). Later calls poll the
 * notified future: AFE_PENDING, or AFE_READY once notified (look again; it
 * is armed anew, and the pump re-armed too). afe_ipc_wait_end stops
 * counting it.
 */
static inline int afe_ipc_wait(bool *waiting, struct afe_notified *n, struct afe_notify *notify,
			       _Atomic uint32_t *waiters, struct afe_ipc_bell *bell,
			       uint32_t what, struct afe_context *cx)
{
	if (!*waiting) {
		*waiting = true;
		afe_ipc_wait_arm(n, notify, cx);
		/* seq_cst, then rearm's fence and look at wants: pairs with the
		 * pump's publish of wants, then its fresh look at waiters (its
		 * pump_wants); one of the two sees the other (Dekker). */
		atomic_fetch_add_explicit(waiters, 1, memory_order_seq_cst);
		afe_ipc_bell_rearm(bell, what);
		return AFE_READY;
	}
	if (afe_future_poll(&n->base, cx) == AFE_PENDING)
		return AFE_PENDING;
	/* Notified: the pump may have stopped wanting what since (it wakes
	 * the waiters, then sleeps for the rest); we may wait again. */
	afe_ipc_wait_arm(n, notify, cx);
	afe_ipc_bell_rearm(bell, what);
	return AFE_READY;
}

static inline void afe_ipc_wait_end(bool *waiting, struct afe_notified *n,
				    _Atomic uint32_t *waiters, const struct afe_context *cx)
{
	if (!*waiting)
		return;
	afe_ipc_withdraw(&n->base, cx);
	/* seq_cst as the increment (afe_ipc_wait) it undoes, against the
	 * pump's seq_cst look at waiters; a count the pump sees late costs it
	 * one wake, not a lost one. */
	atomic_fetch_sub_explicit(waiters, 1, memory_order_seq_cst);
	*waiting = false;
}

#endif /* AFE_IPC_INTERNAL_H */
