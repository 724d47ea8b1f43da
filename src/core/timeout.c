/* SPDX-License-Identifier: MIT */
/* afe_timeout: a select between the inner future and a sleep. */
#include "afe/timeout.h"

static int timeout_poll(struct afe_future *f, struct afe_context *cx)
{
	struct afe_timeout *self = afe_container_of(f, struct afe_timeout, base);
	AFE_ASYNC_BEGIN(f, cx);
	if (!self->inner)
		AFE_RETURN(-EINVAL);
	/* Pointers into ourselves only now that we stay put. */
	self->racers[0] = self->inner;
	self->racers[1] = &self->sleep.base;
	afe_select_init(&self->race, self->racers, 2);
	AFE_AWAIT(&self->race.base);
	if (self->race.winner == 0)
		AFE_RETURN(self->inner->result);
	/* The sleep won, or failed (the ring shutting down): no result. */
	AFE_RETURN(self->sleep.base.result == 0 ? -ETIMEDOUT : self->sleep.base.result);
	AFE_ASYNC_END;
}

void afe_timeout_init(struct afe_timeout *t, struct afe_future *inner, uint64_t ns)
{
	afe_future_init(&t->base, timeout_poll);
	t->inner = inner;
	afe_sleep_init(&t->sleep, ns);
}
