/* SPDX-License-Identifier: MIT */
/* One sleep of a pump on its bell: see ipc_bell_sleep.h and ipc_bell.h. */
#include "ipc_bell_sleep.h"

#include <errno.h>

/*
 * Steps 1-3 of ipc_bell_sleep.h. true: the pump may sleep, its wants
 * published and self->word the value to wait on. false: it looks again
 * (its wants withdrawn).
 */
static bool publish(struct afe_ipc_bell_sleep *self)
{
	const struct afe_ipc_bell_sleep_ops *ops = self->ops;
	uint32_t wants = ops->wants(self->pump);
	self->word = afe_ipc_bell_want(self->bell, wants, self->sleeper);
	/* The look again after publishing: see ipc_bell.h. */
	if (ops->wants(self->pump) != wants || ops->has_work(self->pump))
		goto withdraw;
	uint32_t met = ops->before_sleep ? ops->before_sleep(self->pump, wants) : 0;
	if (!met)
		return true;
	afe_ipc_bell_unwant(self->bell, self->sleeper);
	ops->on_met(self->pump, met);
	self->word = afe_ipc_bell_want(self->bell, wants & ~met, self->sleeper);
	/* A waiter for met that armed while the wants were withdrawn saw no
	 * sleeper to ring. It links, then fences and looks at wants; we
	 * published, fenced (afe_ipc_bell_want), and look at the waiters:
	 * one of the two sees the other (Dekker). */
	if (!ops->has_work(self->pump) && !ops->met_wanted_again(self->pump, met))
		return true;
withdraw:
	afe_ipc_bell_unwant(self->bell, self->sleeper);
	return false;
}

/* Step 4: until the word leaves self->word, or another racer ends. */
static void arm(struct afe_ipc_bell_sleep *self)
{
	afe_ipc_bell_watch(&self->watch, self->bell, self->word);
	unsigned also = self->ops->also ? self->ops->also(self->pump, self->racers + 1) : 0;
	if (!also) {
		self->wait = &self->watch.base;
		return;
	}
	self->racers[0] = &self->watch.base;
	afe_select_init(&self->race, self->racers, 1 + also);
	self->wait = &self->race.base;
}

/* The sleep's result once the wait ended: see afe_ipc_bell_sleep_init. */
static intptr_t wait_result(const struct afe_ipc_bell_sleep *self)
{
	intptr_t result;
	if (self->wait == &self->watch.base)
		result = self->watch.base.result;
	else if (self->race.base.result < 0)
		return self->race.base.result;
	else
		result = self->racers[self->race.winner]->result;
	return result == -ECANCELED || result == -ESHUTDOWN ? result : 0;
}

static int bell_sleep_poll(struct afe_future *f, struct afe_context *cx)
{
	struct afe_ipc_bell_sleep *self = afe_container_of(f, struct afe_ipc_bell_sleep, base);
	AFE_ASYNC_BEGIN(f, cx);
	if (!publish(self))
		AFE_RETURN(0);
	arm(self);
	AFE_AWAIT(self->wait);
	afe_ipc_bell_unwant(self->bell, self->sleeper);
	AFE_RETURN(wait_result(self));
	AFE_ASYNC_END;
}

void afe_ipc_bell_sleep_init(struct afe_ipc_bell_sleep *s, struct afe_ipc_bell *bell,
			     uint32_t sleeper, const struct afe_ipc_bell_sleep_ops *ops, void *pump)
{
	afe_future_init(&s->base, bell_sleep_poll);
	s->ops = ops;
	s->pump = pump;
	s->bell = bell;
	s->sleeper = sleeper;
}
