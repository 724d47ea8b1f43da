/* SPDX-License-Identifier: MIT */
/* Intervals (afe/interval.h): a schedule, and tick futures that sleep
 * until its next tick. */
#include <errno.h>

#include "afe/interval.h"

/* a + b, or UINT64_MAX when that does not fit: a schedule that far out
 * simply never ticks again. */
static uint64_t add_saturating(uint64_t a, uint64_t b)
{
	return a > UINT64_MAX - b ? UINT64_MAX : a + b;
}

int afe_interval_init_at(struct afe_interval *iv, uint64_t first_ns, uint64_t period_ns,
			 enum afe_interval_policy policy)
{
	if (!iv || period_ns == 0 || (policy != AFE_INTERVAL_SKIP && policy != AFE_INTERVAL_BURST &&
			       policy != AFE_INTERVAL_DELAY))
		return -EINVAL;
	iv->period_ns = period_ns;
	iv->next_ns = first_ns;
	iv->policy = policy;
	return 0;
}

int afe_interval_init(struct afe_interval *iv, uint64_t period_ns,
		      enum afe_interval_policy policy)
{
	return afe_interval_init_at(iv, afe_now_ns(), period_ns, policy);
}

/* Takes the tick that was due at iv->next_ns, taken at now (at or after
 * it), and plans the next by iv's policy. Returns the ticks dropped. */
static intptr_t take_tick(struct afe_interval_tick *t, uint64_t now)
{
	struct afe_interval *iv = t->iv;
	uint64_t due = iv->next_ns, period = iv->period_ns;
	t->deadline_ns = due;
	if (iv->policy == AFE_INTERVAL_BURST) {
		iv->next_ns = add_saturating(due, period);
		return 0;
	}
	if (iv->policy == AFE_INTERVAL_DELAY) {
		/* On time (now within the tick's period), keep the grid:
		 * only a tick taken a whole period late moves it. */
		uint64_t from = now - due >= period ? now : due;
		iv->next_ns = add_saturating(from, period);
		return 0;
	}
	uint64_t dropped = (now - due) / period; /* further ticks already due */
	t->deadline_ns = due + dropped * period;    /* <= now: no overflow */
	iv->next_ns = add_saturating(t->deadline_ns, period);
	return dropped > (uint64_t)INTPTR_MAX ? INTPTR_MAX : (intptr_t)dropped;
}

static int tick_poll(struct afe_future *f, struct afe_context *cx)
{
	struct afe_interval_tick *t = afe_container_of(f, struct afe_interval_tick, base);
	AFE_ASYNC_BEGIN(f, cx);
	if (!t->iv)
		AFE_RETURN(-EINVAL);
	afe_sleep_until_init(&t->sleep, t->iv->next_ns); /* ready at once when due */
	AFE_AWAIT(&t->sleep.base);
	if (t->sleep.base.result < 0)
		AFE_RETURN(t->sleep.base.result); /* the tick stays for the next */
	AFE_RETURN(take_tick(t, afe_now_ns()));
	AFE_ASYNC_END;
}

void afe_interval_tick_init(struct afe_interval_tick *t, struct afe_interval *iv)
{
	afe_future_init(&t->base, tick_poll);
	t->iv = iv;
	t->deadline_ns = 0;
}
