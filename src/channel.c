/* SPDX-License-Identifier: MIT */
/*
 * The channel: a ring of items and two waiter lists behind one spinlock.
 *
 * Invariants (under the lock):
 * - receivers wait only while the ring is empty, senders only while it is
 *   full (for a rendezvous channel, always: it has no ring), so at most
 *   one list holds live waiters, except for branches of one select.
 * - an item moves at most once: from a sender (its future's item, or the
 *   caller of try_send) to the ring or straight into a waiting receiver's
 *   buffer; and from the ring to a receiver. A receive that frees a slot
 *   of a full ring refills it from the first waiting sender, so senders
 *   are served in order and the woken sender finds its send done.
 * - an operation that is a select's branch claims the select's race before
 *   it changes anything; if it cannot, it changes nothing (see waitq.h).
 *   A send or receive that claimed it to pair with a waiting party that
 *   then turned out gone (its own select decided meanwhile) and that
 *   would now wait gives the claim back (afe_race_unclaim): a select is
 *   never committed to an operation that has not happened.
 * - once closed, no item moves from a waiting sender: close completes
 *   every one of them with -EPIPE, even while it has the lock released
 *   to wake a batch.
 * - an unbounded ring grows into memory allocated with the lock released
 *   (struct grow); only the copy of the items is done under it, amortised
 *   O(1) per item.
 */
#include <stdlib.h>
#include <string.h>

#include "afe/channel.h"
#include "../pool/spinlock.h"
#include "waitq.h"

enum op_outcome { OP_DONE, OP_WAIT, OP_LOST, OP_GROW };

/* An unbounded ring's next buffer, allocated without the lock: send_try
 * asks for `want` slots (OP_GROW), the caller unlocks, allocates and
 * tries again; a buffer replaced by it is freed after the unlock. */
struct grow {
	size_t want, slots; /* slots: what buf holds room for */
	unsigned char *buf, *old;
	bool failed;	    /* the allocation of `slots` failed */
};

static struct afe_chan_send *send_of(struct afe_waiter *w)
{
	return afe_container_of(w, struct afe_chan_send, wait);
}

static struct afe_chan_recv *recv_of(struct afe_waiter *w)
{
	return afe_container_of(w, struct afe_chan_recv, wait);
}

/* ---- the ring (under the lock) ------------------------------------------ */

static unsigned char *slot(struct afe_chan *ch, size_t i)
{
	size_t at = ch->head + i;
	if (at >= ch->slots)
		at -= ch->slots;
	return ch->buf + at * ch->item_size;
}

static void ring_put(struct afe_chan *ch, const void *item)
{
	memcpy(slot(ch, ch->len), item, ch->item_size);
	ch->len++;
}

static void ring_take(struct afe_chan *ch, void *out)
{
	memcpy(out, ch->buf + ch->head * ch->item_size, ch->item_size);
	if (++ch->head == ch->slots)
		ch->head = 0;
	ch->len--;
}

/* Unbounded channels: doubles the ring into g->buf, keeping the items in
 * order. -EAGAIN: allocate g->want slots first (with the lock released). */
static int ring_grow(struct afe_chan *ch, struct grow *g)
{
	size_t slots = ch->slots ? ch->slots * 2 : 16;
	if (slots < ch->slots || slots > SIZE_MAX / ch->item_size)
		return -ENOMEM;
	if (g->slots != slots || !g->buf) {
		if (g->failed && g->slots == slots)
			return -ENOMEM;
		g->want = slots;
		return -EAGAIN;
	}
	unsigned char *buf = g->buf;
	g->buf = NULL;
	size_t first = ch->slots - ch->head < ch->len ? ch->slots - ch->head : ch->len;
	if (first)
		memcpy(buf, ch->buf + ch->head * ch->item_size, first * ch->item_size);
	if (ch->len > first)
		memcpy(buf + first * ch->item_size, ch->buf, (ch->len - first) * ch->item_size);
	g->old = ch->buf;
	ch->buf = buf;
	ch->slots = slots;
	ch->head = 0;
	return 0;
}

/* With the lock released: gets the buffer send_try asked for. */
static void grow_alloc(struct afe_chan *ch, struct grow *g)
{
	free(g->buf);
	g->slots = g->want;
	g->buf = malloc(g->want * ch->item_size);
	g->failed = !g->buf;
}

static void grow_done(struct grow *g)
{
	free(g->buf);
	free(g->old);
}

/* ---- the operations (under the lock) -------------------------------------- */

/*
 * Tries to send item. OP_DONE with *result set, OP_WAIT when the caller
 * must wait (nothing changed), OP_LOST when race was won by another branch
 * (nothing changed), OP_GROW when the ring must grow first (nothing
 * changed; see struct grow). A receiver completed here has its waker in
 * *wake. Unless OP_DONE, race may have been claimed for index (see
 * op_locked).
 */
static enum op_outcome send_try(struct afe_chan *ch, const void *item, struct afe_race *race,
				intptr_t index, int *result, struct afe_waker *wake,
				struct grow *g)
{
	if (ch->closed) {
		if (!afe_race_claim(race, index))
			return OP_LOST;
		*result = -EPIPE;
		return OP_DONE;
	}
	if (AFE_UNLIKELY(!afe_waitq_empty(&ch->receivers)) && afe_waitq_has_live(&ch->receivers, race)) {
		if (!afe_race_claim(race, index))
			return OP_LOST;
		struct afe_waiter *w = afe_waitq_claim_first(&ch->receivers, race);
		if (w) {
			memcpy(recv_of(w)->out, item, ch->item_size);
			afe_waiter_complete(&ch->receivers, w, 0, wake);
			*result = 0;
			return OP_DONE;
		}
		/* Every receiver lost its race meanwhile: the ring, or wait
		 * (op_locked then gives back the claim). */
	}
	if (ch->len < ch->capacity) {
		int err = ch->len == ch->slots ? ring_grow(ch, g) : 0;
		if (err == -EAGAIN)
			return OP_GROW;
		if (!afe_race_claim(race, index))
			return OP_LOST;
		if (err == 0)
			ring_put(ch, item);
		*result = err;
		return OP_DONE;
	}
	return OP_WAIT;
}

/* Tries to receive into out; outcomes as for send_try (never OP_GROW). */
static enum op_outcome recv_try(struct afe_chan *ch, void *out, struct afe_race *race,
				intptr_t index, int *result, struct afe_waker *wake)
{
	if (ch->len) {
		if (!afe_race_claim(race, index))
			return OP_LOST;
		ring_take(ch, out);
		/* A slot is free: the first waiting sender's item takes it
		 * (not once closed: close fails every waiting sender). */
		if (AFE_UNLIKELY(!afe_waitq_empty(&ch->senders)) && !ch->closed) {
			struct afe_waiter *w = afe_waitq_claim_first(&ch->senders, NULL);
			if (w) {
				ring_put(ch, send_of(w)->item);
				afe_waiter_complete(&ch->senders, w, 0, wake);
			}
		}
		*result = 0;
		return OP_DONE;
	}
	if (!afe_waitq_empty(&ch->senders) && !ch->closed &&
	    afe_waitq_has_live(&ch->senders, race)) {
		if (!afe_race_claim(race, index))
			return OP_LOST;
		struct afe_waiter *w = afe_waitq_claim_first(&ch->senders, race);
		if (w) {
			memcpy(out, send_of(w)->item, ch->item_size);
			afe_waiter_complete(&ch->senders, w, 0, wake);
			*result = 0;
			return OP_DONE;
		}
	}
	if (ch->closed) {
		if (!afe_race_claim(race, index))
			return OP_LOST;
		*result = -EPIPE;
		return OP_DONE;
	}
	return OP_WAIT;
}

/*
 * send_try or recv_try (item NULL: receive into out). A claim of the race
 * they made but could not use (they did not finish) is given back, with
 * *reopened set: the caller then wakes its task (see afe_race_unclaim).
 */
static enum op_outcome op_locked(struct afe_chan *ch, const void *item, void *out,
				 struct afe_race *race, intptr_t index, int *result,
				 struct afe_waker *wake, struct grow *g, bool *reopened)
{
	bool was_open = afe_race_open(race);
	enum op_outcome o = item ? send_try(ch, item, race, index, result, wake, g)
				 : recv_try(ch, out, race, index, result, wake);
	if (was_open && (o == OP_WAIT || o == OP_GROW) &&
	    atomic_load_explicit(&race->winner, memory_order_relaxed) == index) {
		afe_race_unclaim(race, index);
		*reopened = true;
	}
	return o;
}

/* Closes a locked channel, completes every waiter, and unlocks it. Wakers
 * are woken in batches with the lock released; no new waiter can arrive
 * meanwhile, since the channel is closed, and no waiting sender delivers
 * (recv_try). After the last batch's wakes the channel is not touched: a
 * woken task may free it. */
static void close_and_unlock(struct afe_chan *ch)
{
	struct afe_wake_batch batch = {0};
	ch->closed = true;
	for (;;) {
		struct afe_waiter *w;
		struct afe_waker wake;
		if (afe_wake_batch_full(&batch)) {
			if (afe_waitq_empty(&ch->receivers) && afe_waitq_empty(&ch->senders))
				break;
			afe_spin_unlock(&ch->lock);
			afe_wake_batch_run(&batch);
			afe_spin_lock(&ch->lock);
		}
		if ((w = afe_waitq_claim_first(&ch->receivers, NULL))) {
			int result = -EPIPE;
			if (ch->len) { /* only a select's branches get here */
				ring_take(ch, recv_of(w)->out);
				result = 0;
			}
			afe_waiter_complete(&ch->receivers, w, result, &wake);
		} else if ((w = afe_waitq_claim_first(&ch->senders, NULL))) {
			afe_waiter_complete(&ch->senders, w, -EPIPE, &wake);
		} else {
			break;
		}
		afe_wake_batch_add(&batch, wake);
	}
	afe_spin_unlock(&ch->lock);
	afe_wake_batch_run(&batch);
}

/* ---- the public functions -------------------------------------------------- */

int afe_chan_init(struct afe_chan *ch, size_t item_size, size_t capacity)
{
	if (!ch || !item_size)
		return -EINVAL;
	atomic_flag_clear(&ch->lock);
	ch->closed = false;
	ch->item_size = item_size;
	ch->capacity = capacity;
	ch->head = ch->len = ch->slots = 0;
	ch->buf = NULL;
	afe_waitq_init(&ch->senders);
	afe_waitq_init(&ch->receivers);
	ch->sender_handles = ch->receiver_handles = 1;
	if (capacity && capacity != AFE_CHAN_UNBOUNDED) {
		if (capacity > SIZE_MAX / item_size)
			return -ENOMEM;
		ch->buf = malloc(capacity * item_size);
		if (!ch->buf)
			return -ENOMEM;
		ch->slots = capacity;
	}
	return 0;
}

int afe_chan_destroy(struct afe_chan *ch)
{
	if (!ch)
		return -EINVAL;
	afe_spin_lock(&ch->lock);
	bool busy = !afe_waitq_empty(&ch->senders) || !afe_waitq_empty(&ch->receivers);
	if (!busy) {
		free(ch->buf);
		ch->buf = NULL;
		ch->slots = ch->len = ch->head = 0;
		ch->closed = true;
	}
	afe_spin_unlock(&ch->lock);
	return busy ? -EBUSY : 0;
}

int afe_chan_close(struct afe_chan *ch)
{
	if (!ch)
		return -EINVAL;
	afe_spin_lock(&ch->lock);
	if (ch->closed) {
		afe_spin_unlock(&ch->lock);
		return -EALREADY;
	}
	close_and_unlock(ch);
	return 0;
}

bool afe_chan_is_closed(struct afe_chan *ch)
{
	if (!ch)
		return true;
	afe_spin_lock(&ch->lock);
	bool closed = ch->closed;
	afe_spin_unlock(&ch->lock);
	return closed;
}

size_t afe_chan_len(struct afe_chan *ch)
{
	if (!ch)
		return 0;
	afe_spin_lock(&ch->lock);
	size_t len = ch->len;
	afe_spin_unlock(&ch->lock);
	return len;
}

static int add_handle(struct afe_chan *ch, size_t *count)
{
	afe_spin_lock(&ch->lock);
	int err = ch->closed ? -EPIPE : 0;
	if (!err)
		++*count;
	afe_spin_unlock(&ch->lock);
	return err;
}

static int drop_handle(struct afe_chan *ch, size_t *count)
{
	afe_spin_lock(&ch->lock);
	if (*count == 0) {
		afe_spin_unlock(&ch->lock);
		return -EINVAL;
	}
	if (--*count == 0 && !ch->closed)
		close_and_unlock(ch); /* nobody can send, or nobody can receive */
	else
		afe_spin_unlock(&ch->lock);
	return 0;
}

int afe_chan_add_sender(struct afe_chan *ch)
{
	return ch ? add_handle(ch, &ch->sender_handles) : -EINVAL;
}

int afe_chan_drop_sender(struct afe_chan *ch)
{
	return ch ? drop_handle(ch, &ch->sender_handles) : -EINVAL;
}

int afe_chan_add_receiver(struct afe_chan *ch)
{
	return ch ? add_handle(ch, &ch->receiver_handles) : -EINVAL;
}

int afe_chan_drop_receiver(struct afe_chan *ch)
{
	return ch ? drop_handle(ch, &ch->receiver_handles) : -EINVAL;
}

int afe_chan_try_send(struct afe_chan *ch, const void *item)
{
	if (!ch || !item)
		return -EINVAL;
	struct afe_waker wake = {0};
	struct grow g = {0};
	int result = -EAGAIN;
	afe_spin_lock(&ch->lock);
	while (send_try(ch, item, NULL, 0, &result, &wake, &g) == OP_GROW) {
		afe_spin_unlock(&ch->lock);
		grow_alloc(ch, &g);
		afe_spin_lock(&ch->lock);
	} /* OP_WAIT leaves -EAGAIN */
	afe_spin_unlock(&ch->lock);
	grow_done(&g);
	afe_waker_wake_if_set(&wake);
	return result;
}

int afe_chan_try_recv(struct afe_chan *ch, void *out)
{
	if (!ch || !out)
		return -EINVAL;
	struct afe_waker wake = {0};
	int result = -EAGAIN;
	afe_spin_lock(&ch->lock);
	recv_try(ch, out, NULL, 0, &result, &wake);
	afe_spin_unlock(&ch->lock);
	afe_waker_wake_if_set(&wake);
	return result;
}

/*
 * The poll shared by send and receive: a completed, detached or cancelled
 * idle wait is settled without the lock (afe_waiter_settle); otherwise,
 * under it, a waiting future refreshes its waker or (when cancelled)
 * unlinks itself, and an idle one tries its operation and waits if it
 * must.
 */
static int op_poll(struct afe_future *f, struct afe_context *cx, struct afe_chan *ch,
		   struct afe_waiter *wait, const void *item, void *out)
{
	intptr_t value = 0;
	unsigned state = afe_waiter_settle(wait, &value);
	if (state == AFE_WAIT_DONE) {
		f->result = value;
		return AFE_READY;
	}
	if (state != AFE_WAIT_LINKED && cx->cancel) {
		f->result = -ECANCELED; /* not waiting: the channel is not touched */
		return AFE_READY;
	}
	struct afe_waitq *q = item ? &ch->senders : &ch->receivers;
	struct afe_waker wake = {0}, stale = {0};
	struct grow g = {0};
	bool reopened = false;
	int ready = AFE_READY;
	afe_spin_lock(&ch->lock);
	state = afe_waiter_poll_locked(q, wait, cx, &stale);
	if (state == AFE_WAIT_DONE) {
		f->result = wait->value;
	} else if (state == AFE_WAIT_LINKED) {
		ready = AFE_PENDING;
	} else if (cx->cancel) {
		f->result = -ECANCELED;
	} else {
		struct afe_race *race = afe_race_of(cx, f);
		intptr_t index = race ? race->index : 0;
		int result = 0;
		enum op_outcome o;
		while ((o = op_locked(ch, item, out, race, index, &result, &wake, &g, &reopened)) ==
		       OP_GROW) {
			afe_spin_unlock(&ch->lock);
			grow_alloc(ch, &g);
			afe_spin_lock(&ch->lock);
		}
		if (o == OP_DONE) {
			f->result = result;
		} else {
			/* OP_LOST: another branch of our select won; it decides. */
			if (o == OP_WAIT)
				afe_waiter_link(q, wait, cx, race);
			ready = AFE_PENDING;
		}
	}
	afe_spin_unlock(&ch->lock);
	grow_done(&g);
	afe_waker_drop(&stale);
	afe_waker_wake_if_set(&wake);
	if (reopened)
		afe_context_yield(cx); /* the select polls its detached branches again */
	return ready;
}

static int send_poll(struct afe_future *f, struct afe_context *cx)
{
	struct afe_chan_send *s = afe_container_of(f, struct afe_chan_send, base);
	if (!s->chan || !s->item) {
		f->result = -EINVAL;
		return AFE_READY;
	}
	return op_poll(f, cx, s->chan, &s->wait, s->item, NULL);
}

static int recv_poll(struct afe_future *f, struct afe_context *cx)
{
	struct afe_chan_recv *r = afe_container_of(f, struct afe_chan_recv, base);
	if (!r->chan || !r->out) {
		f->result = -EINVAL;
		return AFE_READY;
	}
	return op_poll(f, cx, r->chan, &r->wait, NULL, r->out);
}

void afe_chan_send_init(struct afe_chan_send *s, struct afe_chan *ch, const void *item)
{
	afe_future_init(&s->base, send_poll);
	s->chan = ch;
	s->item = item;
	afe_waiter_reset(&s->wait);
}

void afe_chan_recv_init(struct afe_chan_recv *r, struct afe_chan *ch, void *out)
{
	afe_future_init(&r->base, recv_poll);
	r->chan = ch;
	r->out = out;
	afe_waiter_reset(&r->wait);
}
