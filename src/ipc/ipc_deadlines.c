/* SPDX-License-Identifier: MIT */
/*
 * The producer's call timeouts: one task per producer ends every call past
 * its deadline with -ETIMEDOUT.
 *
 * A call only writes its deadline into its slot of the pending table; it
 * arms no timer of its own, which would cost every call a trip through the
 * runtime's timer wheel (its lock, its waker, a clock read each poll) to
 * time out a call that almost never does. The sweeper sleeps until the
 * earliest deadline it knows of (sweep_at), then scans the table: it ends
 * the calls that are due and sleeps until the earliest deadline left. A
 * call whose deadline comes before sweep_at (the first after an idle
 * spell, or one of a function with a shorter timeout) wakes it to sleep
 * less. So a stream of calls with one timeout costs one scan per timeout
 * period, however many calls it holds.
 */
#include <errno.h>

#include "ipc_producer.h"
#include "../../pool/wake_batch.h"
#include "../core/runtime_internal.h"

struct sweeper {
	struct afe_future base;
	struct afe_ipc_producer *p;
	bool napping;
	uint64_t until; /* what nap sleeps until */
	struct afe_sleep nap;
};

/* Ends the calls due at now, a batch at most, their wakers into batch;
 * from: the slot to look at next, left where the scan stopped; *next: the
 * earliest deadline among the calls looked at and not ended. With p->lock
 * held. */
static void end_due(struct afe_ipc_producer *p, uint64_t now, uint32_t *from,
		    struct afe_wake_batch *batch, uint64_t *next)
{
	for (; *from < p->slots_used && !afe_wake_batch_full(batch); (*from)++) {
		struct afe_ipc_call *call = p->pending[*from];
		if (!call)
			continue;
		if (call->deadline > now) {
			if (call->deadline < *next)
				*next = call->deadline;
			continue;
		}
		afe_wake_batch_add(batch, afe__ipc_producer_fail_locked(p, call, -ETIMEDOUT));
		atomic_fetch_add_explicit(&p->timeouts, 1, memory_order_relaxed); /* a count */
	}
}

/* Ends the calls that are due and returns the earliest deadline left
 * (UINT64_MAX: none), now in p->sweep_at. With nothing left to wait for,
 * the sweeper's waker stays with p, for the next call to wake it. */
static uint64_t sweep(struct afe_ipc_producer *p, const struct afe_context *cx)
{
	uint64_t now = afe_now_ns(), next = UINT64_MAX;
	uint32_t from = 0;
	for (;;) {
		struct afe_wake_batch batch;
		afe_wake_batch_init(&batch);
		pthread_mutex_lock(&p->lock);
		end_due(p, now, &from, &batch, &next);
		bool done = from >= p->slots_used;
		if (done) {
			p->sweep_at = next;
			if (next == UINT64_MAX)
				afe_waker_register(&p->sweeper, cx);
		}
		pthread_mutex_unlock(&p->lock);
		afe_wake_batch_run(&batch);
		if (done)
			return next;
	}
}

/* Whether no call came meanwhile with a deadline before the nap's end;
 * if so, leaves the sweeper's waker with p for one that does. */
static bool nap_still_right(struct afe_ipc_producer *p, uint64_t until,
			    const struct afe_context *cx)
{
	pthread_mutex_lock(&p->lock);
	bool right = p->sweep_at >= until;
	if (right)
		afe_waker_register(&p->sweeper, cx);
	pthread_mutex_unlock(&p->lock);
	return right;
}

static int sweeper_poll(struct afe_future *f, struct afe_context *cx)
{
	struct sweeper *self = afe_container_of(f, struct sweeper, base);
	struct afe_ipc_producer *p = self->p;
	while (!cx->cancel) {
		if (self->napping) {
			if (afe_future_poll(&self->nap.base, cx) == AFE_PENDING) {
				if (nap_still_right(p, self->until, cx))
					return AFE_PENDING;
				afe_ipc_withdraw(&self->nap.base, cx);
			} else if (self->nap.base.result < 0) {
				break; /* the runtime is going away */
			}
			self->napping = false;
		}
		uint64_t next = sweep(p, cx);
		if (next == UINT64_MAX)
			return AFE_PENDING;
		afe_sleep_until_init(&self->nap, next);
		self->until = next;
		self->napping = true;
	}
	if (self->napping)
		afe_ipc_withdraw(&self->nap.base, cx);
	pthread_mutex_lock(&p->lock);
	struct afe_waker stale = afe_waker_take(&p->sweeper);
	p->sweep_at = 0; /* no call wakes a sweeper that is gone */
	pthread_mutex_unlock(&p->lock);
	afe_waker_drop(&stale);
	afe__system_task_done(p->rt);
	afe__ipc_producer_unref(p);
	f->result = 0;
	return AFE_READY;
}

int afe_ipc_deadlines_start(struct afe_ipc_producer *p)
{
	struct sweeper s = {.p = p};
	afe_future_init(&s.base, sweeper_poll);
	p->sweep_at = UINT64_MAX;
	afe__ipc_producer_ref(p);
	int err = afe__spawn_system(p->rt, &s, &p->deadlines, true);
	if (err < 0)
		afe__ipc_producer_unref(p);
	return err;
}

struct afe_waker afe_ipc_deadline_set(struct afe_ipc_producer *p, struct afe_ipc_call *call,
				      uint64_t now)
{
	uint64_t ns = (uint64_t)p->timeout_ms[call->fn] * 1000000u;
	call->deadline = ns > UINT64_MAX - now ? UINT64_MAX : now + ns;
	struct afe_waker w = {0};
	if (call->deadline < p->sweep_at) {
		p->sweep_at = call->deadline;
		w = afe_waker_take(&p->sweeper);
	}
	return w;
}
