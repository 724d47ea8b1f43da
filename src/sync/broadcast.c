/* SPDX-License-Identifier: MIT */
/*
 * The broadcast channel: a ring of the last `capacity` items, numbered
 * from 0 by the count of items sent (tail), and a FIFO of receive futures
 * behind a spinlock. Items [oldest, tail) are kept, oldest = tail -
 * capacity (or 0). A receiver's `next` is read and written under the lock
 * only; next <= tail. A linked waiter's receiver had taken everything when
 * it linked (next == tail then), so the waiters a send must serve are a
 * prefix of the queue, whatever sends overlap while one wakes its batches
 * with the lock released.
 */
#include <stdlib.h>
#include <string.h>

#include "afe/broadcast.h"
#include "../../pool/spinlock.h"
#include "waitq.h"

static struct afe_bcast_recv *recv_of(struct afe_waiter *w)
{
	return afe_container_of(w, struct afe_bcast_recv, wait);
}

int afe_bcast_init(struct afe_bcast *b, size_t item_size, size_t capacity)
{
	if (!b || !item_size || !capacity || capacity > SIZE_MAX / item_size)
		return -EINVAL;
	b->buf = malloc(item_size * capacity);
	if (!b->buf)
		return -ENOMEM;
	atomic_flag_clear(&b->lock);
	b->closed = false;
	b->item_size = item_size;
	b->capacity = capacity;
	b->tail = 0;
	afe_waitq_init(&b->waiters);
	return 0;
}

int afe_bcast_destroy(struct afe_bcast *b)
{
	if (!b)
		return -EINVAL;
	afe_spin_lock(&b->lock);
	bool busy = !afe_waitq_empty(&b->waiters);
	afe_spin_unlock(&b->lock);
	if (busy)
		return -EBUSY;
	free(b->buf);
	b->buf = NULL;
	return 0;
}

int afe_bcast_subscribe(struct afe_bcast *b, struct afe_bcast_rx *rx)
{
	if (!b || !rx)
		return -EINVAL;
	rx->chan = b;
	afe_spin_lock(&b->lock);
	rx->next = b->tail;
	afe_spin_unlock(&b->lock);
	return 0;
}

static bool has_item(const struct afe_bcast *b, const struct afe_bcast_rx *rx)
{
	return rx->next != b->tail;
}

/* Under the lock, with has_item: rx takes its next item kept into out;
 * returns how many it lost to overwriting before it. */
static uint64_t take_locked(struct afe_bcast *b, struct afe_bcast_rx *rx, void *out)
{
	uint64_t oldest = b->tail > b->capacity ? b->tail - b->capacity : 0;
	uint64_t missed = 0;
	if (rx->next < oldest) {
		missed = oldest - rx->next;
		rx->next = oldest;
	}
	size_t slot = (size_t)(rx->next % b->capacity);
	memcpy(out, b->buf + slot * b->item_size, b->item_size);
	rx->next++;
	return missed;
}

/* Under the lock: serves the linked waiter at the head, which is due (it
 * has an item, or the channel is closed): an item if it has one and wins
 * its race (detached if it lost), else -EPIPE. */
static void serve_head_locked(struct afe_bcast *b, struct afe_wake_batch *batch)
{
	struct afe_waiter *w = b->waiters.head;
	struct afe_bcast_recv *r = recv_of(w);
	intptr_t outcome = -EPIPE;
	if (has_item(b, r->rx)) {
		if (!afe_race_claim(w->race, w->race_index)) {
			afe_waiter_detach(&b->waiters, w);
			return;
		}
		r->missed = take_locked(b, r->rx, r->out);
		outcome = 0;
	}
	struct afe_waker wake;
	afe_waiter_complete(&b->waiters, w, outcome, &wake);
	afe_wake_batch_add(batch, wake);
}

/* Serves the due waiters, then unlocks. A full batch is woken with the
 * lock released only when one more waiter is due: after the last wake b
 * is not touched. */
static void serve_and_unlock(struct afe_bcast *b)
{
	struct afe_wake_batch batch;
	afe_wake_batch_init(&batch);
	struct afe_waiter *w;
	while ((w = b->waiters.head) && (b->closed || has_item(b, recv_of(w)->rx))) {
		if (afe_wake_batch_full(&batch)) {
			afe_spin_unlock(&b->lock);
			afe_wake_batch_run(&batch);
			afe_spin_lock(&b->lock);
			continue;
		}
		serve_head_locked(b, &batch);
	}
	afe_spin_unlock(&b->lock);
	afe_wake_batch_run(&batch);
}

int afe_bcast_send(struct afe_bcast *b, const void *item)
{
	if (!b || !item)
		return -EINVAL;
	afe_spin_lock(&b->lock);
	if (b->closed) {
		afe_spin_unlock(&b->lock);
		return -EPIPE;
	}
	size_t slot = (size_t)(b->tail % b->capacity);
	memcpy(b->buf + slot * b->item_size, item, b->item_size);
	b->tail++;
	serve_and_unlock(b);
	return 0;
}

int afe_bcast_close(struct afe_bcast *b)
{
	if (!b)
		return -EINVAL;
	afe_spin_lock(&b->lock);
	if (b->closed) {
		afe_spin_unlock(&b->lock);
		return -EALREADY;
	}
	b->closed = true;
	serve_and_unlock(b);
	return 0;
}

int afe_bcast_try_recv(struct afe_bcast_rx *rx, void *out, uint64_t *missed)
{
	if (!rx || !rx->chan || !out)
		return -EINVAL;
	struct afe_bcast *b = rx->chan;
	afe_spin_lock(&b->lock);
	int err = b->closed ? -EPIPE : -EAGAIN;
	if (has_item(b, rx)) {
		uint64_t lost = take_locked(b, rx, out);
		if (missed)
			*missed = lost;
		err = 0;
	}
	afe_spin_unlock(&b->lock);
	return err;
}

static unsigned recv_try_or_link(void *arg, struct afe_waiter *w, const struct afe_context *cx,
				 struct afe_race *race, intptr_t *value,
				 struct afe_wake_batch *batch)
{
	struct afe_bcast_recv *r = arg;
	struct afe_bcast *b = r->rx->chan;
	(void)batch;
	if (has_item(b, r->rx)) {
		if (!afe_race_claim(race, race ? race->index : 0))
			return AFE_WAIT_IDLE;
		r->missed = take_locked(b, r->rx, r->out);
		*value = 0;
		return AFE_WAIT_DONE;
	}
	if (b->closed) {
		*value = -EPIPE;
		return AFE_WAIT_DONE;
	}
	afe_waiter_link(&b->waiters, w, cx, race);
	return AFE_WAIT_LINKED;
}

/* Served before a cancel could stop it: the poll reports what happened. */
static const struct afe_wait_ops recv_ops = {
	.try_or_link = recv_try_or_link,
	.reports_value = true,
};

static int recv_poll(struct afe_future *f, struct afe_context *cx)
{
	struct afe_bcast_recv *r = afe_container_of(f, struct afe_bcast_recv, base);
	if (!r->rx || !r->rx->chan || !r->out) {
		f->result = -EINVAL;
		return AFE_READY;
	}
	struct afe_bcast *b = r->rx->chan;
	return afe_wait_poll(f, cx, &r->wait, &b->lock, &b->waiters, &recv_ops, r);
}

void afe_bcast_recv_init(struct afe_bcast_recv *r, struct afe_bcast_rx *rx, void *out)
{
	afe_future_init(&r->base, recv_poll);
	r->rx = rx;
	r->out = out;
	r->missed = 0;
	afe_waiter_reset(&r->wait);
}
