/* SPDX-License-Identifier: MIT */
/*
 * The watch channel: a value, its version and a FIFO of changed futures
 * behind a spinlock. A receiver's `seen` is read and written under the
 * lock only. A linked waiter's receiver had seen the version current when
 * it linked, so the waiters a send must serve are a prefix of the queue
 * (those linked before the latest send), whatever sends overlap while a
 * send wakes its batches with the lock released.
 */
#include <stdlib.h>
#include <string.h>

#include "afe/watch_chan.h"
#include "../../pool/spinlock.h"
#include "waitq.h"

static struct afe_wchan_changed *changed_of(struct afe_waiter *w)
{
	return afe_container_of(w, struct afe_wchan_changed, wait);
}

int afe_wchan_init(struct afe_wchan *w, size_t item_size, const void *initial)
{
	if (!w || !item_size)
		return -EINVAL;
	w->value = calloc(1, item_size);
	if (!w->value)
		return -ENOMEM;
	if (initial)
		memcpy(w->value, initial, item_size);
	atomic_flag_clear(&w->lock);
	w->closed = false;
	w->item_size = item_size;
	w->version = 0;
	afe_waitq_init(&w->waiters);
	return 0;
}

int afe_wchan_destroy(struct afe_wchan *w)
{
	if (!w)
		return -EINVAL;
	afe_spin_lock(&w->lock);
	bool busy = !afe_waitq_empty(&w->waiters);
	afe_spin_unlock(&w->lock);
	if (busy)
		return -EBUSY;
	free(w->value);
	w->value = NULL;
	return 0;
}

/* Under the lock: rx takes the current value (into out, if any). */
static void take_locked(struct afe_wchan *w, struct afe_wchan_rx *rx, void *out)
{
	if (out)
		memcpy(out, w->value, w->item_size);
	rx->seen = w->version;
}

/* Under the lock: serves the linked waiter at the head, which is due (it
 * has not seen the value, or the channel is closed): the value if it has
 * not seen it and wins its race (detached if it lost), else -EPIPE. */
static void serve_head_locked(struct afe_wchan *w, struct afe_wake_batch *batch)
{
	struct afe_waiter *wt = w->waiters.head;
	struct afe_wchan_changed *c = changed_of(wt);
	intptr_t outcome = -EPIPE;
	if (c->rx->seen != w->version) {
		if (!afe_race_claim(wt->race, wt->race_index)) {
			afe_waiter_detach(&w->waiters, wt);
			return;
		}
		take_locked(w, c->rx, c->out);
		outcome = 0;
	}
	struct afe_waker wake;
	afe_waiter_complete(&w->waiters, wt, outcome, &wake);
	afe_wake_batch_add(batch, wake);
}

/* Serves the due waiters, then unlocks. A full batch is woken with the
 * lock released only when one more waiter is due: after the last wake w
 * is not touched. */
static void serve_and_unlock(struct afe_wchan *w)
{
	struct afe_wake_batch batch;
	afe_wake_batch_init(&batch);
	struct afe_waiter *wt;
	while ((wt = w->waiters.head) &&
	       (w->closed || changed_of(wt)->rx->seen != w->version)) {
		if (afe_wake_batch_full(&batch)) {
			afe_spin_unlock(&w->lock);
			afe_wake_batch_run(&batch);
			afe_spin_lock(&w->lock);
			continue;
		}
		serve_head_locked(w, &batch);
	}
	afe_spin_unlock(&w->lock);
	afe_wake_batch_run(&batch);
}

int afe_wchan_send(struct afe_wchan *w, const void *item)
{
	if (!w || !item)
		return -EINVAL;
	afe_spin_lock(&w->lock);
	if (w->closed) {
		afe_spin_unlock(&w->lock);
		return -EPIPE;
	}
	memcpy(w->value, item, w->item_size);
	w->version++;
	serve_and_unlock(w);
	return 0;
}

int afe_wchan_close(struct afe_wchan *w)
{
	if (!w)
		return -EINVAL;
	afe_spin_lock(&w->lock);
	if (w->closed) {
		afe_spin_unlock(&w->lock);
		return -EALREADY;
	}
	w->closed = true;
	serve_and_unlock(w);
	return 0;
}

bool afe_wchan_is_closed(struct afe_wchan *w)
{
	if (!w)
		return true; /* nothing can be sent on it: as afe_chan_is_closed */
	afe_spin_lock(&w->lock);
	bool closed = w->closed;
	afe_spin_unlock(&w->lock);
	return closed;
}

int afe_wchan_copy(struct afe_wchan *w, void *out)
{
	if (!w || !out)
		return -EINVAL;
	afe_spin_lock(&w->lock);
	memcpy(out, w->value, w->item_size);
	afe_spin_unlock(&w->lock);
	return 0;
}

int afe_wchan_subscribe(struct afe_wchan *w, struct afe_wchan_rx *rx)
{
	if (!w || !rx)
		return -EINVAL;
	rx->chan = w;
	afe_spin_lock(&w->lock);
	rx->seen = w->version;
	afe_spin_unlock(&w->lock);
	return 0;
}

int afe_wchan_read(struct afe_wchan_rx *rx, void *out)
{
	if (!rx || !rx->chan)
		return -EINVAL;
	struct afe_wchan *w = rx->chan;
	afe_spin_lock(&w->lock);
	int fresh = rx->seen != w->version;
	take_locked(w, rx, out);
	afe_spin_unlock(&w->lock);
	return fresh;
}

int afe_wchan_has_changed(struct afe_wchan_rx *rx)
{
	if (!rx || !rx->chan)
		return -EINVAL;
	struct afe_wchan *w = rx->chan;
	afe_spin_lock(&w->lock);
	int r = rx->seen != w->version ? 1 : w->closed ? -EPIPE : 0;
	afe_spin_unlock(&w->lock);
	return r;
}

static unsigned changed_try_or_link(void *arg, struct afe_waiter *wt,
				    const struct afe_context *cx, struct afe_race *race,
				    intptr_t *value, struct afe_wake_batch *batch)
{
	struct afe_wchan_changed *c = arg;
	struct afe_wchan *w = c->rx->chan;
	(void)batch;
	if (c->rx->seen != w->version) {
		if (!afe_race_claim(race, race ? race->index : 0))
			return AFE_WAIT_IDLE;
		take_locked(w, c->rx, c->out);
		*value = 0;
		return AFE_WAIT_DONE;
	}
	if (w->closed) {
		*value = -EPIPE;
		return AFE_WAIT_DONE;
	}
	afe_waiter_link(&w->waiters, wt, cx, race);
	return AFE_WAIT_LINKED;
}

/* Served before a cancel could stop it: the poll reports what happened. */
static const struct afe_wait_ops changed_ops = {
	.try_or_link = changed_try_or_link,
	.reports_value = true,
};

static int changed_poll(struct afe_future *f, struct afe_context *cx)
{
	struct afe_wchan_changed *c = afe_container_of(f, struct afe_wchan_changed, base);
	if (!c->rx || !c->rx->chan) {
		f->result = -EINVAL;
		return AFE_READY;
	}
	struct afe_wchan *w = c->rx->chan;
	return afe_wait_poll(f, cx, &c->wait, &w->lock, &w->waiters, &changed_ops, c);
}

void afe_wchan_changed_init(struct afe_wchan_changed *c, struct afe_wchan_rx *rx, void *out)
{
	afe_future_init(&c->base, changed_poll);
	c->rx = rx;
	c->out = out;
	afe_waiter_reset(&c->wait);
}
