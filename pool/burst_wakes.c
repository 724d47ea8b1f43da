/* SPDX-License-Identifier: MIT */
/* Wakes held back until the worker runs out of tasks: see burst_wakes.h. */
#include "burst_wakes.h"

#include "worker.h"

struct held {
	afe_burst_wake_fn *fn;
	void *arg;
	uint32_t bits;
	const struct afe_burst_wake_owner *owner;
	void *obj;
	unsigned merged;
};

static _Thread_local struct {
	struct held wakes[AFE_BURST_MAX_WAKES];
	unsigned n, polls;
	unsigned max_polls; /* the least allowed by those held */
} held;

void afe_burst_wakes_flush(void)
{
	unsigned n = held.n;
	struct held now[AFE_BURST_MAX_WAKES];
	for (unsigned i = 0; i < n; i++)
		now[i] = held.wakes[i];
	held.n = 0;
	held.polls = 0;
	for (unsigned i = 0; i < n; i++) {
		now[i].fn(now[i].arg, now[i].bits);
		now[i].owner->unref(now[i].obj);
	}
}

void afe_burst_wake_defer(afe_burst_wake_fn *fn, void *arg, uint32_t bits, bool more, unsigned max_polls,
		     const struct afe_burst_wake_owner *owner, void *obj)
{
	if (max_polls > AFE_BURST_MAX_POLLS)
		max_polls = AFE_BURST_MAX_POLLS;
	else if (max_polls == 0)
		max_polls = 1;
	struct afe_worker *w = afe_worker_current();
	if (!w || (!more && !afe_rq_len(&w->queue))) {
		/* Not a burst (a lone task, or one handing a message on to the
		 * next in the LIFO slot): holding would only add latency. */
		afe_burst_wakes_flush();
		fn(arg, bits);
		return;
	}
	for (unsigned i = 0; i < held.n; i++) {
		if (held.wakes[i].fn == fn && held.wakes[i].arg == arg) {
			held.wakes[i].bits |= bits;
			if (max_polls < held.max_polls)
				held.max_polls = max_polls;
			if (++held.wakes[i].merged >= max_polls)
				afe_burst_wakes_flush(); /* a long burst in one poll */
			return;
		}
	}
	if (held.n == AFE_BURST_MAX_WAKES)
		afe_burst_wakes_flush();
	if (held.n == 0 || max_polls < held.max_polls)
		held.max_polls = max_polls;
	owner->ref(obj);
	held.wakes[held.n++] = (struct held){fn, arg, bits, owner, obj, 0};
}

void afe_burst_wakes_after_poll(void)
{
	if (held.n && ++held.polls >= held.max_polls)
		afe_burst_wakes_flush();
}
