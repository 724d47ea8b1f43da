/* SPDX-License-Identifier: MIT */
/* Sleeps (afe/sleep.h) and the wheel they wait in (sleeps.h). */
#include <errno.h>
#include <stddef.h>

#include "../pool/give_way.h"
#include "../pool/wake_batch.h"
#include "afe/runtime.h"
#include "afe/sleep.h"
#include "ring.h"
#include "sleeps.h"

#define NS_PER_TICK 1000000u

/* base.resume of a sleep: where it is. */
enum sleep_phase {
	PHASE_RELATIVE = 0, /* not polled yet; timer.when holds the duration */
	PHASE_ABSOLUTE = 1, /* not polled yet; timer.when holds the deadline */
	PHASE_WAITING = 2,  /* polled: in the wheel or fired (timer.pprev says) */
	PHASE_REFUSED = 3,  /* polled after the wheel closed: -ESHUTDOWN, given way */
};

static struct afe_sleep *sleep_of(struct afe_timer *t)
{
	return (struct afe_sleep *)(void *)((char *)t - offsetof(struct afe_sleep, timer));
}

/* ---- the wheel's side ------------------------------------------------------ */

void afe__sleeps_init(struct afe_sleeps *s)
{
	pthread_mutex_init(&s->lock, NULL);
	afe_wheel_init(&s->wheel);
	s->fired = NULL;
	s->start_ns = afe_now_ns();
	s->ring_wakes_at = 0;
	s->closed = false;
}

void afe__sleeps_destroy(struct afe_sleeps *s)
{
	pthread_mutex_destroy(&s->lock);
}

/* Moves a timer out of the wheel onto the fired list with its result.
 * Called with the lock held. */
static void fire(struct afe_timer *t, void *arg)
{
	struct afe_sleeps *s = arg;
	sleep_of(t)->base.result = s->closed ? -ECANCELED : 0;
	afe_timer_push(&s->fired, t);
}

/* Wakes every fired sleep, a batch per hold of the lock: a sleep whose
 * waker was taken is done, and only its poller touches it again. Called
 * with the lock held; returns with it released. */
static void wake_fired_and_unlock(struct afe_sleeps *s)
{
	for (;;) {
		struct afe_wake_batch batch;
		afe_wake_batch_init(&batch);
		while (s->fired && !afe_wake_batch_full(&batch)) {
			struct afe_sleep *sleep = sleep_of(s->fired);
			afe_wheel_remove(&s->wheel, &sleep->timer); /* pprev NULL: done */
			afe_wake_batch_add(&batch, afe_waker_take(&sleep->waker));
		}
		bool more = s->fired != NULL;
		pthread_mutex_unlock(&s->lock);
		afe_wake_batch_run(&batch);
		if (!more)
			return;
		pthread_mutex_lock(&s->lock);
	}
}

static uint64_t ticks_since_start(const struct afe_sleeps *s, uint64_t ns)
{
	return ns > s->start_ns ? (ns - s->start_ns) / NS_PER_TICK : 0;
}

void afe__sleeps_expire(struct afe_sleeps *s)
{
	uint64_t now = ticks_since_start(s, afe_now_ns());
	pthread_mutex_lock(&s->lock);
	afe_wheel_advance(&s->wheel, now, fire, s);
	wake_fired_and_unlock(s);
}

bool afe__sleeps_plan_wait(struct afe_sleeps *s, struct __kernel_timespec *ts)
{
	pthread_mutex_lock(&s->lock);
	uint64_t next = afe_wheel_next_tick(&s->wheel);
	s->ring_wakes_at = next;
	pthread_mutex_unlock(&s->lock);
	if (next == UINT64_MAX)
		return false;
	uint64_t at = s->start_ns + next * NS_PER_TICK, now = afe_now_ns();
	uint64_t ns = at > now ? at - now : 0;
	ts->tv_sec = (long long)(ns / 1000000000u);
	ts->tv_nsec = (long long)(ns % 1000000000u);
	return true;
}

void afe__sleeps_awake(struct afe_sleeps *s)
{
	pthread_mutex_lock(&s->lock);
	s->ring_wakes_at = 0;
	pthread_mutex_unlock(&s->lock);
}

void afe__sleeps_close(struct afe_sleeps *s)
{
	pthread_mutex_lock(&s->lock);
	s->closed = true;
	afe_wheel_drain(&s->wheel, fire, s);
	wake_fired_and_unlock(s);
}

/* ---- the future ------------------------------------------------------------ */

static int sleep_poll(struct afe_future *f, struct afe_context *cx);

void afe_sleep_init(struct afe_sleep *s, uint64_t ns)
{
	afe_future_init(&s->base, sleep_poll);
	s->base.resume = PHASE_RELATIVE;
	s->timer.next = NULL;
	s->timer.pprev = NULL;
	s->timer.when = ns;
	s->waker.vtable = NULL;
	s->waker.data = NULL;
}

void afe_sleep_until_init(struct afe_sleep *s, uint64_t deadline_ns)
{
	afe_sleep_init(s, deadline_ns);
	s->base.resume = PHASE_ABSOLUTE;
}

/* The first poll: links s into the wheel unless its time has come. */
static int start(struct afe_sleep *s, struct afe_context *cx)
{
	struct afe_runtime *rt = afe_runtime_current();
	if (cx->cancel || !rt) {
		s->base.result = cx->cancel ? -ECANCELED : -EINVAL;
		return AFE_READY;
	}
	uint64_t now = afe_now_ns(), deadline = s->timer.when;
	if (s->base.resume == PHASE_RELATIVE) /* saturating: UINT64_MAX is never */
		deadline = deadline > UINT64_MAX - now ? UINT64_MAX : deadline + now;
	s->base.result = 0;
	if (deadline <= now)
		return AFE_READY;
	struct afe_sleeps *sleeps = afe_ring_sleeps(afe__runtime_ring(rt));
	/* The first tick at or after the deadline: never early. */
	uint64_t since = deadline - sleeps->start_ns;
	uint64_t tick = since / NS_PER_TICK + (since % NS_PER_TICK != 0);
	pthread_mutex_lock(&sleeps->lock);
	if (sleeps->closed) {
		pthread_mutex_unlock(&sleeps->lock);
		s->base.result = -ESHUTDOWN;
		s->base.resume = PHASE_REFUSED;
		return afe__give_way(cx);
	}
	if (!afe_wheel_insert(&sleeps->wheel, &s->timer, tick)) {
		pthread_mutex_unlock(&sleeps->lock);
		return AFE_READY; /* that tick has passed already */
	}
	afe_waker_clone(&s->waker, cx->waker);
	bool ring_sleeps_past_it = tick < sleeps->ring_wakes_at;
	if (ring_sleeps_past_it)
		sleeps->ring_wakes_at = 0;
	pthread_mutex_unlock(&sleeps->lock);
	s->base.resume = PHASE_WAITING;
	if (ring_sleeps_past_it)
		afe_ring_wake(afe__runtime_ring(rt));
	return AFE_PENDING;
}

static int sleep_poll(struct afe_future *f, struct afe_context *cx)
{
	struct afe_sleep *s = afe_container_of(f, struct afe_sleep, base);
	if (s->base.resume == PHASE_REFUSED) {
		if (cx->cancel)
			s->base.result = -ECANCELED;
		return AFE_READY;
	}
	if (s->base.resume != PHASE_WAITING)
		return start(s, cx);
	/* Polled on a worker of the runtime whose wheel holds it. */
	struct afe_sleeps *sleeps = afe_ring_sleeps(afe__runtime_ring(afe_runtime_current()));
	pthread_mutex_lock(&sleeps->lock);
	if (!s->timer.pprev) { /* fired: the result is set */
		pthread_mutex_unlock(&sleeps->lock);
		return AFE_READY;
	}
	if (cx->cancel) {
		afe_wheel_remove(&sleeps->wheel, &s->timer);
		struct afe_waker stale = afe_waker_take(&s->waker);
		pthread_mutex_unlock(&sleeps->lock);
		afe_waker_drop(&stale);
		s->base.result = -ECANCELED;
		return AFE_READY;
	}
	afe_waker_register(&s->waker, cx);
	pthread_mutex_unlock(&sleeps->lock);
	return AFE_PENDING;
}
