/* SPDX-License-Identifier: MIT */
/* Signals held back until the worker runs out of tasks: see held_signals.h. */
#include "held_signals.h"

#include "worker.h"

struct held {
	afe_signal_fn *fn;
	void *arg;
	uint32_t bits;
	const struct afe_signal_owner *owner;
	void *obj;
	unsigned merged;
};

static _Thread_local struct {
	struct held signals[AFE_HOLD_MAX_SIGNALS];
	unsigned n, polls;
	unsigned max_polls; /* the least allowed by those held */
} held;

void afe_held_signals_send(void)
{
	unsigned n = held.n;
	struct held now[AFE_HOLD_MAX_SIGNALS];
	for (unsigned i = 0; i < n; i++)
		now[i] = held.signals[i];
	held.n = 0;
	held.polls = 0;
	for (unsigned i = 0; i < n; i++) {
		now[i].fn(now[i].arg, now[i].bits);
		now[i].owner->unref(now[i].obj);
	}
}

void afe_hold_signal(afe_signal_fn *fn, void *arg, uint32_t bits, bool more, unsigned max_polls,
		     const struct afe_signal_owner *owner, void *obj)
{
	if (max_polls > AFE_HOLD_MAX_POLLS)
		max_polls = AFE_HOLD_MAX_POLLS;
	else if (max_polls == 0)
		max_polls = 1;
	struct afe_worker *w = afe_worker_current();
	if (!w || (!more && !afe_rq_len(&w->queue))) {
		/* Not a burst (a lone task, or one handing a message on to the
		 * next in the LIFO slot): holding would only add latency. */
		afe_held_signals_send();
		fn(arg, bits);
		return;
	}
	for (unsigned i = 0; i < held.n; i++) {
		if (held.signals[i].fn == fn && held.signals[i].arg == arg) {
			held.signals[i].bits |= bits;
			if (max_polls < held.max_polls)
				held.max_polls = max_polls;
			if (++held.signals[i].merged >= max_polls)
				afe_held_signals_send(); /* a long burst in one poll */
			return;
		}
	}
	if (held.n == AFE_HOLD_MAX_SIGNALS)
		afe_held_signals_send();
	if (held.n == 0 || max_polls < held.max_polls)
		held.max_polls = max_polls;
	owner->ref(obj);
	held.signals[held.n++] = (struct held){fn, arg, bits, owner, obj, 0};
}

void afe_held_signals_after_poll(void)
{
	if (held.n && ++held.polls >= held.max_polls)
		afe_held_signals_send();
}
