/* SPDX-License-Identifier: MIT */
/*
 * The async mutex: a flag and a FIFO of lock futures behind a spinlock.
 * Invariant: while a live waiter is linked, locked is true; unlock hands
 * the lock to the first waiter that can take it (its race, if it is a
 * select's branch, still open) without clearing locked, so nobody barges.
 */
#include "afe/mutex.h"
#include "../../pool/spinlock.h"
#include "waitq.h"

enum { HANDED = 1 }; /* a completion's value: the lock (see afe_wait_ops) */

void afe_mutex_init(struct afe_mutex *m)
{
	atomic_flag_clear(&m->lock);
	m->locked = false;
	afe_waitq_init(&m->waiters);
}

int afe_mutex_destroy(struct afe_mutex *m)
{
	if (!m)
		return -EINVAL;
	afe_spin_lock(&m->lock);
	int err = (m->locked || !afe_waitq_empty(&m->waiters)) ? -EBUSY : 0;
	afe_spin_unlock(&m->lock);
	return err;
}

int afe_mutex_try_lock(struct afe_mutex *m)
{
	if (!m)
		return -EINVAL;
	afe_spin_lock(&m->lock);
	int err = m->locked ? -EBUSY : 0;
	m->locked = true;
	afe_spin_unlock(&m->lock);
	return err;
}

/* Under the spinlock, the mutex locked: passes it to the first waiter
 * (its waker to *wake) or frees it. */
static void hand_over_locked(struct afe_mutex *m, struct afe_waker *wake)
{
	struct afe_waiter *w = afe_waitq_claim_first(&m->waiters, NULL);
	if (w)
		afe_waiter_complete(&m->waiters, w, HANDED, wake);
	else
		m->locked = false;
}

int afe_mutex_unlock(struct afe_mutex *m)
{
	if (!m)
		return -EINVAL;
	struct afe_waker wake = {0};
	afe_spin_lock(&m->lock);
	bool held = m->locked;
	if (held)
		hand_over_locked(m, &wake);
	afe_spin_unlock(&m->lock);
	afe_waker_wake_if_set(&wake);
	return held ? 0 : -EPERM;
}

static unsigned lock_try_or_link(void *arg, struct afe_waiter *w, const struct afe_context *cx,
				 struct afe_race *race, intptr_t *value,
				 struct afe_wake_batch *batch)
{
	struct afe_mutex *m = arg;
	(void)batch;
	if (m->locked) {
		afe_waiter_link(&m->waiters, w, cx, race);
		return AFE_WAIT_LINKED;
	}
	if (!afe_race_claim(race, race ? race->index : 0))
		return AFE_WAIT_IDLE;
	m->locked = true;
	*value = HANDED;
	return AFE_WAIT_DONE;
}

/* Handed the lock, but cancelled before we could report it. */
static void lock_give_back(void *arg, intptr_t value, struct afe_wake_batch *batch)
{
	struct afe_waker wake = {0};
	(void)value;
	hand_over_locked(arg, &wake);
	afe_wake_batch_add(batch, wake);
}

static const struct afe_wait_ops lock_ops = {
	.try_or_link = lock_try_or_link,
	.give_back = lock_give_back,
};

static int lock_poll(struct afe_future *f, struct afe_context *cx)
{
	struct afe_mutex_lock *l = afe_container_of(f, struct afe_mutex_lock, base);
	struct afe_mutex *m = l->mutex;
	if (!m) {
		f->result = -EINVAL;
		return AFE_READY;
	}
	return afe_wait_poll(f, cx, &l->wait, &m->lock, &m->waiters, &lock_ops, m);
}

void afe_mutex_lock_init(struct afe_mutex_lock *l, struct afe_mutex *m)
{
	afe_future_init(&l->base, lock_poll);
	l->mutex = m;
	afe_waiter_reset(&l->wait);
}
