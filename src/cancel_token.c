/* SPDX-License-Identifier: MIT */
/* The cancellation token: a flag written once, and the waiters it wakes. */
#include "afe/cancel_token.h"
#include "../pool/spinlock.h"
#include "waitq.h"

void afe_cancel_token_init(struct afe_cancel_token *t)
{
	atomic_flag_clear(&t->lock);
	atomic_init(&t->cancelled, false);
	afe_waitq_init(&t->waiters);
}

int afe_cancel_token_destroy(struct afe_cancel_token *t)
{
	if (!t)
		return -EINVAL;
	afe_spin_lock(&t->lock);
	int err = afe_waitq_empty(&t->waiters) ? 0 : -EBUSY;
	afe_spin_unlock(&t->lock);
	return err;
}

int afe_cancel_token_cancel(struct afe_cancel_token *t)
{
	if (!t)
		return -EINVAL;
	struct afe_wake_batch batch = {0};
	afe_spin_lock(&t->lock);
	if (atomic_load_explicit(&t->cancelled, memory_order_relaxed)) {
		afe_spin_unlock(&t->lock);
		return -EALREADY;
	}
	/* Release: pairs with the acquire in afe_cancel_token_is_cancelled, so
	 * what was written before cancelling is seen by who sees the flag.
	 * No waiter links after this (the flag is read under the lock). */
	atomic_store_explicit(&t->cancelled, true, memory_order_release);
	/* A full batch is woken with the lock released only when more
	 * waiters are left: after the last wake the token is not touched (a
	 * woken task may free it). */
	for (;;) {
		if (afe_wake_batch_full(&batch)) {
			if (afe_waitq_empty(&t->waiters))
				break;
			afe_spin_unlock(&t->lock);
			afe_wake_batch_run(&batch);
			afe_spin_lock(&t->lock);
		}
		struct afe_waiter *w = afe_waitq_claim_first(&t->waiters, NULL);
		if (!w)
			break;
		struct afe_waker wake;
		afe_waiter_complete(&t->waiters, w, 0, &wake);
		afe_wake_batch_add(&batch, wake);
	}
	afe_spin_unlock(&t->lock);
	afe_wake_batch_run(&batch);
	return 0;
}

bool afe_cancel_token_is_cancelled(struct afe_cancel_token *t)
{
	/* Acquire: pairs with the release in afe_cancel_token_cancel. */
	return t && atomic_load_explicit(&t->cancelled, memory_order_acquire);
}

static int wait_poll(struct afe_future *f, struct afe_context *cx)
{
	struct afe_cancel_token_wait *tw = afe_container_of(f, struct afe_cancel_token_wait, base);
	struct afe_cancel_token *t = tw->token;
	if (!t) {
		f->result = -EINVAL;
		return AFE_READY;
	}
	intptr_t value;
	unsigned settled = afe_waiter_settle(&tw->wait, &value);
	if (settled == AFE_WAIT_DONE) {
		f->result = 0;
		return AFE_READY;
	}
	if (settled != AFE_WAIT_LINKED && cx->cancel) {
		f->result = -ECANCELED; /* not waiting: the token is not touched */
		return AFE_READY;
	}
	struct afe_waker stale = {0};
	int ready = AFE_READY;
	afe_spin_lock(&t->lock);
	unsigned state = afe_waiter_poll_locked(&t->waiters, &tw->wait, cx, &stale);
	if (state == AFE_WAIT_DONE) {
		f->result = 0;
	} else if (state == AFE_WAIT_LINKED) {
		ready = AFE_PENDING;
	} else if (cx->cancel) {
		f->result = -ECANCELED;
	} else {
		struct afe_race *race = afe_race_of(cx, f);
		if (!atomic_load_explicit(&t->cancelled, memory_order_relaxed)) {
			afe_waiter_link(&t->waiters, &tw->wait, cx, race);
			ready = AFE_PENDING;
		} else if (afe_race_claim(race, race ? race->index : 0)) {
			f->result = 0;
		} else {
			ready = AFE_PENDING; /* another branch of our select won */
		}
	}
	afe_spin_unlock(&t->lock);
	afe_waker_drop(&stale);
	return ready;
}

void afe_cancel_token_wait_init(struct afe_cancel_token_wait *w, struct afe_cancel_token *t)
{
	afe_future_init(&w->base, wait_poll);
	w->token = t;
	afe_waiter_reset(&w->wait);
}
