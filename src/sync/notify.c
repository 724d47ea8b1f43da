/* SPDX-License-Identifier: MIT */
/*
 * Notify: a permit flag and a FIFO of notified futures behind a spinlock.
 * A waiter completed by notify_one carries NOTIFIED_ONE in its value, so
 * that if it is cancelled before reporting, it passes the notification on.
 * While linked, a waiter's value is the epoch it linked in (notify_all
 * calls before it); epochs never decrease along the queue.
 */
#include "afe/notify.h"
#include "../../pool/spinlock.h"
#include "waitq.h"

enum { NOTIFIED_ONE = 1, NOTIFIED_ALL = 2 };

void afe_notify_init(struct afe_notify *n)
{
	atomic_flag_clear(&n->lock);
	n->permit = false;
	n->epoch = 0;
	afe_waitq_init(&n->waiters);
}

int afe_notify_destroy(struct afe_notify *n)
{
	if (!n)
		return -EINVAL;
	afe_spin_lock(&n->lock);
	int err = afe_waitq_empty(&n->waiters) ? 0 : -EBUSY;
	afe_spin_unlock(&n->lock);
	return err;
}

/* With the spinlock held: notifies one waiter or stores the permit;
 * unlocks. Returns 1 when a waiter was woken. */
static int notify_one_and_unlock(struct afe_notify *n)
{
	struct afe_waker wake = {0};
	struct afe_waiter *w = afe_waitq_claim_first(&n->waiters, NULL);
	if (w)
		afe_waiter_complete(&n->waiters, w, NOTIFIED_ONE, &wake);
	else
		n->permit = true;
	afe_spin_unlock(&n->lock);
	afe_waker_wake_if_set(&wake);
	return w != NULL;
}

int afe_notify_one(struct afe_notify *n)
{
	if (!n)
		return -EINVAL;
	afe_spin_lock(&n->lock);
	return notify_one_and_unlock(n);
}

int afe_notify_all(struct afe_notify *n)
{
	if (!n)
		return -EINVAL;
	struct afe_wake_batch batch = {0};
	int woken = 0;
	afe_spin_lock(&n->lock);
	/* Only the waiters of this moment, even while the lock is released
	 * for a batch: those of this epoch or before (an overlapping earlier
	 * call may not have reached them yet), not those linked since. */
	uintptr_t epoch = n->epoch++;
	struct afe_waiter *w;
	while ((w = n->waiters.head) && (intptr_t)(epoch - (uintptr_t)w->value) >= 0) {
		/* A full batch is woken with the lock released only when one
		 * more waiter is due: after the last wake n is not touched. */
		if (afe_wake_batch_full(&batch)) {
			afe_spin_unlock(&n->lock);
			afe_wake_batch_run(&batch);
			afe_spin_lock(&n->lock);
			continue;
		}
		/* One whose race looks lost is completed too (it carries no
		 * resource, and its select may yet reopen the race: see
		 * afe_race_unclaim); only a win counts as woken. */
		if (afe_race_claim(w->race, w->race_index))
			woken++;
		struct afe_waker wake;
		afe_waiter_complete(&n->waiters, w, NOTIFIED_ALL, &wake);
		afe_wake_batch_add(&batch, wake);
	}
	afe_spin_unlock(&n->lock);
	afe_wake_batch_run(&batch);
	return woken;
}

static int notified_poll(struct afe_future *f, struct afe_context *cx)
{
	struct afe_notified *nd = afe_container_of(f, struct afe_notified, base);
	struct afe_notify *n = nd->notify;
	if (!n) {
		f->result = -EINVAL;
		return AFE_READY;
	}
	intptr_t value = 0;
	unsigned settled = afe_waiter_settle(&nd->wait, &value);
	bool notified = settled == AFE_WAIT_DONE;
	if (notified && (!cx->cancel || value != NOTIFIED_ONE)) {
		/* Cancelled after a notify_all: nothing to pass on. */
		f->result = cx->cancel ? -ECANCELED : 0;
		return AFE_READY;
	}
	if (!notified && settled != AFE_WAIT_LINKED && cx->cancel) {
		f->result = -ECANCELED; /* not waiting: the notify is not touched */
		return AFE_READY;
	}
	struct afe_waker stale = {0};
	int ready = AFE_READY;
	afe_spin_lock(&n->lock);
	if (!notified) {
		unsigned state = afe_waiter_poll_locked(&n->waiters, &nd->wait, cx, &stale);
		notified = state == AFE_WAIT_DONE;
		value = nd->wait.value;
		if (state == AFE_WAIT_LINKED) {
			ready = AFE_PENDING;
		} else if (state == AFE_WAIT_IDLE && !cx->cancel) {
			struct afe_race *race = afe_race_of(cx, f);
			if (!n->permit) {
				afe_waiter_link(&n->waiters, &nd->wait, cx, race);
				nd->wait.value = (intptr_t)n->epoch;
				ready = AFE_PENDING;
			} else if (afe_race_claim(race, race ? race->index : 0)) {
				n->permit = false;
				notified = true;
				value = NOTIFIED_ONE;
			} else {
				ready = AFE_PENDING; /* another branch of our select won */
			}
		}
	}
	if (ready == AFE_READY)
		f->result = notified ? 0 : -ECANCELED;
	if (notified && cx->cancel) {
		f->result = -ECANCELED;
		if (value == NOTIFIED_ONE) {
			notify_one_and_unlock(n); /* pass it on */
			afe_waker_drop(&stale);
			return ready;
		}
	}
	afe_spin_unlock(&n->lock);
	afe_waker_drop(&stale);
	return ready;
}

void afe_notified_init(struct afe_notified *w, struct afe_notify *n)
{
	afe_future_init(&w->base, notified_poll);
	w->notify = n;
	afe_waiter_reset(&w->wait);
}
