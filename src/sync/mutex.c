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

/* With the spinlock held and the mutex locked: passes it to the first
 * waiter or frees it, then unlocks the spinlock and wakes that waiter. */
static void release_and_unlock(struct afe_mutex *m)
{
	struct afe_waker wake = {0};
	struct afe_waiter *w = afe_waitq_claim_first(&m->waiters, NULL);
	if (w)
		afe_waiter_complete(&m->waiters, w, 0, &wake);
	else
		m->locked = false;
	afe_spin_unlock(&m->lock);
	afe_waker_wake_if_set(&wake);
}

int afe_mutex_unlock(struct afe_mutex *m)
{
	if (!m)
		return -EINVAL;
	afe_spin_lock(&m->lock);
	if (!m->locked) {
		afe_spin_unlock(&m->lock);
		return -EPERM;
	}
	release_and_unlock(m);
	return 0;
}

static int lock_poll(struct afe_future *f, struct afe_context *cx)
{
	struct afe_mutex_lock *l = afe_container_of(f, struct afe_mutex_lock, base);
	struct afe_mutex *m = l->mutex;
	if (!m) {
		f->result = -EINVAL;
		return AFE_READY;
	}
	intptr_t value;
	unsigned settled = afe_waiter_settle(&l->wait, &value);
	bool granted = settled == AFE_WAIT_DONE;
	if (granted && !cx->cancel) {
		f->result = 0;
		return AFE_READY;
	}
	if (!granted && settled != AFE_WAIT_LINKED && cx->cancel) {
		f->result = -ECANCELED; /* not waiting: the mutex is not touched */
		return AFE_READY;
	}
	struct afe_waker stale = {0};
	int ready = AFE_READY;
	afe_spin_lock(&m->lock);
	if (!granted) {
		unsigned state = afe_waiter_poll_locked(&m->waiters, &l->wait, cx, &stale);
		granted = state == AFE_WAIT_DONE;
		if (state == AFE_WAIT_LINKED) {
			ready = AFE_PENDING;
		} else if (state == AFE_WAIT_IDLE && !cx->cancel) {
			struct afe_race *race = afe_race_of(cx, f);
			if (m->locked) {
				afe_waiter_link(&m->waiters, &l->wait, cx, race);
				ready = AFE_PENDING;
			} else if (afe_race_claim(race, race ? race->index : 0)) {
				m->locked = true;
				granted = true;
			} else {
				ready = AFE_PENDING; /* another branch of our select won */
			}
		}
	}
	if (ready == AFE_READY)
		f->result = granted ? 0 : -ECANCELED;
	if (granted && cx->cancel) {
		/* Handed the lock, but cancelled before we could report it. */
		f->result = -ECANCELED;
		release_and_unlock(m);
	} else {
		afe_spin_unlock(&m->lock);
	}
	afe_waker_drop(&stale);
	return ready;
}

void afe_mutex_lock_init(struct afe_mutex_lock *l, struct afe_mutex *m)
{
	afe_future_init(&l->base, lock_poll);
	l->mutex = m;
	afe_waiter_reset(&l->wait);
}
