/* SPDX-License-Identifier: MIT */
/*
 * The semaphore: a count and a FIFO of acquire futures behind a spinlock.
 * Invariant, restored before every unlock by grant_locked: the first live
 * waiter wants more permits than are free (or there is none). Permits go
 * to waiters in order; a newcomer takes free permits only when nobody
 * waits, so it never overtakes.
 */
#include "afe/semaphore.h"
#include "../../pool/spinlock.h"
#include "waitq.h"

static size_t wanted(struct afe_waiter *w)
{
	return afe_container_of(w, struct afe_sem_acquire, wait)->n;
}

static bool can_grant(void *arg, struct afe_waiter *w)
{
	struct afe_semaphore *s = arg;
	return wanted(w) <= s->permits;
}

/* The completion's value is the permits granted. */
static intptr_t grant(void *arg, struct afe_waiter *w)
{
	struct afe_semaphore *s = arg;
	size_t n = wanted(w);
	s->permits -= n;
	return (intptr_t)n;
}

/* Grants free permits to the waiters in order. */
static void grant_locked(struct afe_semaphore *s, struct afe_wake_batch *batch)
{
	afe_waitq_grant_in_order(&s->waiters, &s->lock, batch, can_grant, grant, s);
}

static void grant_and_unlock(struct afe_semaphore *s)
{
	struct afe_wake_batch batch;
	afe_wake_batch_init(&batch);
	grant_locked(s, &batch);
	afe_spin_unlock(&s->lock);
	afe_wake_batch_run(&batch);
}

void afe_sem_init(struct afe_semaphore *s, size_t permits)
{
	atomic_flag_clear(&s->lock);
	s->permits = permits;
	afe_waitq_init(&s->waiters);
}

int afe_sem_destroy(struct afe_semaphore *s)
{
	if (!s)
		return -EINVAL;
	afe_spin_lock(&s->lock);
	int err = afe_waitq_empty(&s->waiters) ? 0 : -EBUSY;
	afe_spin_unlock(&s->lock);
	return err;
}

int afe_sem_try_acquire(struct afe_semaphore *s, size_t n)
{
	if (!s || !n)
		return -EINVAL;
	struct afe_wake_batch batch;
	afe_wake_batch_init(&batch);
	afe_spin_lock(&s->lock);
	grant_locked(s, &batch);
	int err = -EAGAIN;
	if (afe_waitq_empty(&s->waiters) && s->permits >= n) {
		s->permits -= n;
		err = 0;
	}
	afe_spin_unlock(&s->lock);
	afe_wake_batch_run(&batch);
	return err;
}

int afe_sem_release(struct afe_semaphore *s, size_t n)
{
	if (!s)
		return -EINVAL;
	afe_spin_lock(&s->lock);
	if (n > SIZE_MAX - s->permits) {
		afe_spin_unlock(&s->lock);
		return -EOVERFLOW;
	}
	s->permits += n;
	grant_and_unlock(s);
	return 0;
}

size_t afe_sem_available(struct afe_semaphore *s)
{
	if (!s)
		return 0;
	afe_spin_lock(&s->lock);
	size_t n = s->permits;
	afe_spin_unlock(&s->lock);
	return n;
}

static unsigned acquire_try_or_link(void *arg, struct afe_waiter *w,
				    const struct afe_context *cx, struct afe_race *race,
				    intptr_t *value, struct afe_wake_batch *batch)
{
	struct afe_semaphore *s = arg;
	size_t n = wanted(w);
	grant_locked(s, batch); /* only a lost race can leave work */
	if (!afe_waitq_empty(&s->waiters) || s->permits < n) {
		afe_waiter_link(&s->waiters, w, cx, race);
		return AFE_WAIT_LINKED;
	}
	if (!afe_race_claim(race, race ? race->index : 0))
		return AFE_WAIT_IDLE;
	s->permits -= n;
	*value = (intptr_t)n;
	return AFE_WAIT_DONE;
}

/* Granted permits, but cancelled before we could report it. Releases
 * meanwhile may have filled the count: it saturates (as afe_sem_release
 * would refuse more than SIZE_MAX). */
static void acquire_give_back(void *arg, intptr_t value, struct afe_wake_batch *batch)
{
	struct afe_semaphore *s = arg;
	size_t n = (size_t)value;
	(void)batch;
	s->permits = n > SIZE_MAX - s->permits ? SIZE_MAX : s->permits + n;
}

/* A waiter that left (cancelled, or gave back) may let others in. */
static void acquire_serve(void *arg, struct afe_wake_batch *batch)
{
	grant_locked(arg, batch);
}

static const struct afe_wait_ops acquire_ops = {
	.try_or_link = acquire_try_or_link,
	.give_back = acquire_give_back,
	.serve = acquire_serve,
};

static int acquire_poll(struct afe_future *f, struct afe_context *cx)
{
	struct afe_sem_acquire *a = afe_container_of(f, struct afe_sem_acquire, base);
	struct afe_semaphore *s = a->sem;
	if (!s || !a->n) {
		f->result = -EINVAL;
		return AFE_READY;
	}
	return afe_wait_poll(f, cx, &a->wait, &s->lock, &s->waiters, &acquire_ops, s);
}

void afe_sem_acquire_init(struct afe_sem_acquire *a, struct afe_semaphore *s, size_t n)
{
	afe_future_init(&a->base, acquire_poll);
	a->sem = s;
	a->n = n;
	afe_waiter_reset(&a->wait);
}
