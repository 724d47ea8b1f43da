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
#include "notify_internal.h"
#include "waitq.h"

/* A completion's value: a notify_all hands over nothing (see afe_wait_ops). */
enum { NOTIFIED_ALL = 0, NOTIFIED_ONE = 1 };

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

/* With the spinlock held: notifies one waiter (its waker to *wake) or
 * stores the permit. Returns 1 when a waiter was notified. */
static int notify_one_locked(struct afe_notify *n, struct afe_waker *wake)
{
	struct afe_waiter *w = afe_waitq_claim_first(&n->waiters, NULL);
	if (w)
		afe_waiter_complete(&n->waiters, w, NOTIFIED_ONE, wake);
	else
		n->permit = true;
	return w != NULL;
}

bool afe__notify_has_waiters(struct afe_notify *n)
{
	afe_spin_lock(&n->lock);
	bool some = !afe_waitq_empty(&n->waiters);
	afe_spin_unlock(&n->lock);
	return some;
}

int afe_notify_one(struct afe_notify *n)
{
	if (!n)
		return -EINVAL;
	struct afe_waker wake = {0};
	afe_spin_lock(&n->lock);
	int woken = notify_one_locked(n, &wake);
	afe_spin_unlock(&n->lock);
	afe_waker_wake_if_set(&wake);
	return woken;
}

int afe_notify_all(struct afe_notify *n)
{
	if (!n)
		return -EINVAL;
	struct afe_wake_batch batch;
	afe_wake_batch_init(&batch);
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

static unsigned notified_try_or_link(void *arg, struct afe_waiter *w,
				     const struct afe_context *cx, struct afe_race *race,
				     intptr_t *value, struct afe_wake_batch *batch)
{
	struct afe_notify *n = arg;
	(void)batch;
	if (!n->permit) {
		afe_waiter_link(&n->waiters, w, cx, race);
		w->value = (intptr_t)n->epoch;
		return AFE_WAIT_LINKED;
	}
	if (!afe_race_claim(race, race ? race->index : 0))
		return AFE_WAIT_IDLE;
	n->permit = false;
	*value = NOTIFIED_ONE;
	return AFE_WAIT_DONE;
}

/* Notified by notify_one (or the permit), but cancelled before we could
 * report it: pass it on. */
static void notified_give_back(void *arg, intptr_t value, struct afe_wake_batch *batch)
{
	struct afe_waker wake = {0};
	(void)value;
	notify_one_locked(arg, &wake);
	afe_wake_batch_add(batch, wake);
}

static const struct afe_wait_ops notified_ops = {
	.try_or_link = notified_try_or_link,
	.give_back = notified_give_back,
};

static int notified_poll(struct afe_future *f, struct afe_context *cx)
{
	struct afe_notified *nd = afe_container_of(f, struct afe_notified, base);
	struct afe_notify *n = nd->notify;
	if (!n) {
		f->result = -EINVAL;
		return AFE_READY;
	}
	return afe_wait_poll(f, cx, &nd->wait, &n->lock, &n->waiters, &notified_ops, n);
}

void afe_notified_init(struct afe_notified *w, struct afe_notify *n)
{
	afe_future_init(&w->base, notified_poll);
	w->notify = n;
	afe_waiter_reset(&w->wait);
}
