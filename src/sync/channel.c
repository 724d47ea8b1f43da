/* SPDX-License-Identifier: MIT */
/*
 * The channel: a ring of items and two waiter lists behind one spinlock.
 *
 * A bounded channel's ring is lock-free (chan_ring.h): a send that finds
 * room and a receive that finds an item, outside a select, take no lock.
 * The lock guards the waiter lists, and whoever holds it may freeze an
 * end of the ring to decide before it moves it. Unbounded and rendezvous
 * channels do everything under the lock (their ring grows, or there is
 * none), as the bounded ones did before.
 *
 * Invariants (under the lock):
 * - receivers wait only while the ring is empty, senders only while it is
 *   full (for a rendezvous channel, always: it has no ring), so at most
 *   one list holds live waiters, except for branches of one select, and
 *   for the moment between a lock-free op and its serving them (below).
 * - an item moves at most once: from a sender (its future's item, or the
 *   caller of try_send) to the ring or (unbounded, rendezvous) straight
 *   into a waiting receiver's buffer; and from the ring to a receiver. A
 *   receive that frees a slot of a full ring refills it from the first
 *   waiting sender, so senders are served in order and the woken sender
 *   finds its send done. A bounded send always goes through the ring:
 *   then the first waiting receiver gets the oldest item, so each
 *   sender's items stay in order.
 * - bounded: a waiter links itself and then marks its end of the ring
 *   (chan_ring.h); a lock-free op whose CAS reads the mark takes the lock
 *   afterwards and serves the waiters (serve_and_unlock), and so does
 *   every locked op before it unlocks. Nobody waits on a ring that could
 *   serve it.
 * - an operation that is a select's branch claims the select's race before
 *   it changes anything; if it cannot, it changes nothing (see waitq.h).
 *   Bounded: it never takes the lock-free path, and claims with the end
 *   it needs frozen, once it saw room (an item) there. Unbounded and
 *   rendezvous: a send or receive that claimed it to pair with a waiting
 *   party that then turned out gone (its own select decided meanwhile)
 *   and that would now wait gives the claim back (afe_race_unclaim): a
 *   select is never committed to an operation that has not happened.
 * - once closed, no item moves from a waiting sender: close completes
 *   every one of them with -EPIPE, even while it has the lock released
 *   to wake a batch. A bounded ring refuses pushes from then on; a
 *   receiver gets -EPIPE only once every push that got in is popped.
 * - an unbounded ring grows into memory allocated with the lock released
 *   (struct grow); only the copy of the items is done under it, amortised
 *   O(1) per item.
 */
#include <stdlib.h>
#include <string.h>

#include "afe/channel.h"
#include "../../pool/spinlock.h"
#include "chan_ring.h"
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

static unsigned char *buf_slot(struct afe_chan *ch, size_t i)
{
	size_t at = ch->head + i;
	if (at >= ch->slots)
		at -= ch->slots;
	return ch->buf + at * ch->item_size;
}

static void buf_put(struct afe_chan *ch, const void *item)
{
	memcpy(buf_slot(ch, ch->len), item, ch->item_size);
	ch->len++;
}

static void buf_take(struct afe_chan *ch, void *out)
{
	memcpy(out, ch->buf + ch->head * ch->item_size, ch->item_size);
	if (++ch->head == ch->slots)
		ch->head = 0;
	ch->len--;
}

/* Unbounded channels: doubles the ring into g->buf, keeping the items in
 * order. -EAGAIN: allocate g->want slots first (with the lock released). */
static int buf_grow(struct afe_chan *ch, struct grow *g)
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
		int err = ch->len == ch->slots ? buf_grow(ch, g) : 0;
		if (err == -EAGAIN)
			return OP_GROW;
		if (!afe_race_claim(race, index))
			return OP_LOST;
		if (err == 0)
			buf_put(ch, item);
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
		buf_take(ch, out);
		/* A slot is free: the first waiting sender's item takes it
		 * (not once closed: close fails every waiting sender). */
		if (AFE_UNLIKELY(!afe_waitq_empty(&ch->senders)) && !ch->closed) {
			struct afe_waiter *w = afe_waitq_claim_first(&ch->senders, NULL);
			if (w) {
				buf_put(ch, send_of(w)->item);
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

/* Closes an unbounded or rendezvous channel (locked), completes every
 * waiter, and unlocks it. Wakers are woken in batches with the lock
 * released; no new waiter can arrive meanwhile, since the channel is
 * closed, and no waiting sender delivers (recv_try). After the last
 * batch's wakes the channel is not touched: a woken task may free it. */
static void close_locked_and_unlock(struct afe_chan *ch)
{
	struct afe_wake_batch batch;
	afe_wake_batch_init(&batch);
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
				buf_take(ch, recv_of(w)->out);
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

/* Under the lock, the start of a locked poll: where wait stands decides
 * the poll when it was completed (f->result its value), is still linked
 * (*ready pending) or is idle with cx cancelling (-ECANCELED). Returns
 * false when the operation is to be tried. The waker it replaced or
 * dropped goes to *stale, for after the unlock. */
static bool settled_locked(struct afe_future *f, const struct afe_context *cx,
			   struct afe_waitq *q, struct afe_waiter *wait, struct afe_waker *stale,
			   int *ready)
{
	unsigned state = afe_waiter_poll_locked(q, wait, cx, stale);
	if (state == AFE_WAIT_DONE)
		f->result = wait->value;
	else if (state == AFE_WAIT_LINKED)
		*ready = AFE_PENDING;
	else if (cx->cancel)
		f->result = -ECANCELED;
	else
		return false;
	return true;
}

/* ---- bounded channels: the ring, with waiters only at its ends ------------- */

static bool is_ring(const struct afe_chan *ch)
{
	return ch->capacity && ch->capacity != AFE_CHAN_UNBOUNDED;
}

/* Unlocks a bounded channel, first unmarking an end nobody waits at
 * any more (the marks are set by wait_ring). */
static void ring_unlock(struct afe_chan *ch)
{
	if (afe_waitq_empty(&ch->receivers))
		ring_unmark_waited(&ch->ring_tail);
	if (afe_waitq_empty(&ch->senders))
		ring_unmark_waited(&ch->ring_head);
	afe_spin_unlock(&ch->lock);
}

/* Under the lock: gives the ring's oldest item to the first waiting
 * receiver that wins its race, or -EPIPE once the channel is closed and
 * no push is left to publish. True when a receiver was completed (its
 * waker in *wake). */
static bool serve_receiver(struct afe_chan *ch, struct afe_waker *wake)
{
	if (afe_waitq_empty(&ch->receivers) || !(ch->closed || ring_peek_item(ch)))
		return false;
	uint64_t pos = ring_freeze(&ch->ring_head);
	bool item = ring_has_item(ch, pos);
	bool drained = !item && ch->closed && pos == ring_pos(&ch->ring_tail);
	struct afe_waiter *w =
		item || drained ? afe_waitq_claim_first(&ch->receivers, NULL) : NULL;
	if (w && item)
		ring_take_frozen(ch, pos, recv_of(w)->out);
	else
		ring_thaw(&ch->ring_head, pos);
	if (!w)
		return false;
	afe_waiter_complete(&ch->receivers, w, item ? 0 : -EPIPE, wake);
	return true;
}

/* Under the lock: moves the item of the first waiting sender that wins
 * its race into a free cell, or fails it with -EPIPE once closed. True
 * when a sender was completed (its waker in *wake). */
static bool serve_sender(struct afe_chan *ch, struct afe_waker *wake)
{
	if (afe_waitq_empty(&ch->senders))
		return false;
	if (ch->closed) {
		struct afe_waiter *w = afe_waitq_claim_first(&ch->senders, NULL);
		if (w)
			afe_waiter_complete(&ch->senders, w, -EPIPE, wake);
		return w != NULL;
	}
	if (!ring_peek_room(ch))
		return false;
	uint64_t pos = ring_freeze(&ch->ring_tail);
	struct afe_waiter *w =
		ring_has_room(ch, pos) ? afe_waitq_claim_first(&ch->senders, NULL) : NULL;
	if (!w) {
		ring_thaw(&ch->ring_tail, pos);
		return false;
	}
	ring_put_frozen(ch, pos, send_of(w)->item);
	afe_waiter_complete(&ch->senders, w, 0, wake);
	return true;
}

/* Under the lock: serves waiters while the ring lets it, then unlocks and
 * wakes them, in batches with the lock released between them. After the
 * last batch's wakes the channel is not touched: a woken task may free it
 * (the lock is taken again only while waiters are linked). */
static void serve_and_unlock(struct afe_chan *ch)
{
	struct afe_wake_batch batch;
	afe_wake_batch_init(&batch);
	for (;;) {
		struct afe_waker wake;
		while (!afe_wake_batch_full(&batch) &&
		       (serve_receiver(ch, &wake) || serve_sender(ch, &wake)))
			afe_wake_batch_add(&batch, wake);
		if (!afe_wake_batch_full(&batch) ||
		    (afe_waitq_empty(&ch->receivers) && afe_waitq_empty(&ch->senders)))
			break;
		ring_unlock(ch);
		afe_wake_batch_run(&batch);
		afe_spin_lock(&ch->lock);
	}
	ring_unlock(ch);
	afe_wake_batch_run(&batch);
}

/* Without the lock, after a lock-free push or pop: serves the waiters of
 * the other end when its CAS read them marked (RING_OK_WAITED). */
static void after_op(struct afe_chan *ch, enum ring_outcome r)
{
	if (r == RING_OK_WAITED) {
		afe_spin_lock(&ch->lock);
		serve_and_unlock(ch);
	}
}

/*
 * Under the lock: one try to send item (item NULL: receive into out) for
 * race's branch index (race NULL: not a select's branch), the race
 * claimed only once the op can happen. OP_DONE with *result set, OP_WAIT
 * (the ring is full or empty) or OP_LOST (another branch won); nothing
 * changed unless OP_DONE. linked: the caller waits in the list of its
 * end, which gets marked; then OP_WAIT is final (see chan_ring.h).
 */
static enum op_outcome ring_try_locked(struct afe_chan *ch, const void *item, void *out,
				       struct afe_race *race, intptr_t index, bool linked,
				       int *result)
{
	if (item && ch->closed) {
		if (!afe_race_claim(race, index))
			return OP_LOST;
		*result = -EPIPE;
		return OP_DONE;
	}
	if (!linked && !(item ? ring_peek_room(ch) : ch->closed || ring_peek_item(ch)))
		return OP_WAIT; /* spares the freeze */
	_Atomic uint64_t *end = item ? &ch->ring_tail : &ch->ring_head;
	uint64_t pos = ring_freeze(end);
	if (linked && item)
		ring_settle_tail(ch, pos);
	else if (linked)
		ring_settle_head(ch, pos);
	bool ready = item ? ring_has_room(ch, pos) : ring_has_item(ch, pos);
	if (ready && afe_race_claim(race, index)) {
		if (item)
			ring_put_frozen(ch, pos, item);
		else
			ring_take_frozen(ch, pos, out);
		*result = 0;
		return OP_DONE;
	}
	ring_thaw(end, pos);
	if (ready)
		return OP_LOST;
	if (!item && ch->closed && pos == ring_pos(&ch->ring_tail)) { /* drained for good */
		if (!afe_race_claim(race, index))
			return OP_LOST;
		*result = -EPIPE;
		return OP_DONE;
	}
	return OP_WAIT;
}

/* Under the lock: links w to wait in q for its op, then tries once more,
 * marking the ring (ring_try_locked). Returns that try's outcome; unless
 * OP_WAIT, w is idle again with its waker in *stale. */
static enum op_outcome wait_ring(struct afe_chan *ch, struct afe_waitq *q, struct afe_waiter *w,
				 const struct afe_context *cx, struct afe_race *race,
				 const void *item, void *out, int *result, struct afe_waker *stale)
{
	afe_waiter_link(q, w, cx, race);
	enum op_outcome o =
		ring_try_locked(ch, item, out, race, race ? race->index : 0, true, result);
	if (o != OP_WAIT) {
		afe__waitq_unlink(q, w);
		*stale = afe_waker_take(&w->waker);
		w->race = NULL;
		/* Relaxed: nobody else saw it linked (we held the lock
		 * throughout); as in afe_waiter_poll_locked. */
		atomic_store_explicit(&w->state, AFE_WAIT_IDLE, memory_order_relaxed);
	}
	return o;
}

/* op_poll for a bounded channel, after the settle (linked: the waiter
 * may still be): lock-free when the ring has room (an item) and the op is
 * no select's branch; otherwise as for the others, under the lock. */
static int ring_poll(struct afe_future *f, struct afe_context *cx, struct afe_chan *ch,
		     struct afe_waiter *wait, const void *item, void *out, bool linked)
{
	struct afe_race *race = afe_race_of(cx, f);
	if (!race && !linked) {
		enum ring_outcome r = item ? ring_push(ch, item) : ring_pop(ch, out);
		if (r == RING_OK || r == RING_OK_WAITED) {
			after_op(ch, r);
			f->result = 0;
			return AFE_READY;
		}
	}
	struct afe_waitq *q = item ? &ch->senders : &ch->receivers;
	struct afe_waker stale = {0}, unlinked = {0};
	int ready = AFE_READY;
	afe_spin_lock(&ch->lock);
	if (!settled_locked(f, cx, q, wait, &stale, &ready)) {
		int result = 0;
		intptr_t index = race ? race->index : 0;
		enum op_outcome o = ring_try_locked(ch, item, out, race, index, false, &result);
		if (o == OP_WAIT)
			o = wait_ring(ch, q, wait, cx, race, item, out, &result, &unlinked);
		if (o == OP_DONE)
			f->result = result;
		else
			ready = AFE_PENDING; /* OP_LOST: another branch won; it decides */
	}
	serve_and_unlock(ch);
	afe_waker_drop(&stale);
	afe_waker_drop(&unlinked);
	return ready;
}

/* try_send and try_recv for a bounded channel (item NULL: receive). */
static int ring_try_op(struct afe_chan *ch, const void *item, void *out)
{
	enum ring_outcome r = item ? ring_push(ch, item) : ring_pop(ch, out);
	if (r == RING_OK || r == RING_OK_WAITED) {
		after_op(ch, r);
		return 0;
	}
	if (r == RING_NONE && (item || !ring_is_closed(ch)))
		return -EAGAIN;
	int result = -EAGAIN;
	afe_spin_lock(&ch->lock);
	ring_try_locked(ch, item, out, NULL, 0, false, &result); /* OP_WAIT leaves -EAGAIN */
	serve_and_unlock(ch);
	return result;
}

/* Closes a locked channel, completes every waiter, and unlocks it. A
 * bounded one's ring refuses pushes from now on; its waiting receivers
 * still take what is buffered or being published (serve_receiver). */
static void close_and_unlock(struct afe_chan *ch)
{
	if (!is_ring(ch)) {
		close_locked_and_unlock(ch);
		return;
	}
	ch->closed = true;
	ring_close(ch);
	serve_and_unlock(ch);
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
	ch->cells = NULL;
	return is_ring(ch) ? ring_init(ch) : 0;
}

int afe_chan_destroy(struct afe_chan *ch)
{
	if (!ch)
		return -EINVAL;
	afe_spin_lock(&ch->lock);
	bool busy = !afe_waitq_empty(&ch->senders) || !afe_waitq_empty(&ch->receivers);
	if (!busy) {
		free(ch->buf);
		free(ch->cells);
		ch->buf = ch->cells = NULL;
		ch->slots = ch->len = ch->head = 0;
		ch->capacity = 0; /* what is left behaves as a closed, empty channel */
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
	if (is_ring(ch)) { /* head first: tail is not behind it then */
		uint64_t head = ring_pos(&ch->ring_head), tail = ring_pos(&ch->ring_tail);
		return tail - head < ch->capacity ? (size_t)(tail - head) : ch->capacity;
	}
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
	if (is_ring(ch))
		return ring_try_op(ch, item, NULL);
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
	if (is_ring(ch))
		return ring_try_op(ch, NULL, out);
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
 * must. The same protocol as afe_wait_poll (waitq.h), written out here:
 * through afe_wait_poll, ping_pong (a one-slot channel) ran 6% slower
 * (2.65 M round trips/s against 2.81 M, medians of 5 interleaved runs).
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
	if (is_ring(ch))
		return ring_poll(f, cx, ch, wait, item, out, state == AFE_WAIT_LINKED);
	struct afe_waitq *q = item ? &ch->senders : &ch->receivers;
	struct afe_waker wake = {0}, stale = {0};
	struct grow g = {0};
	bool reopened = false;
	int ready = AFE_READY;
	afe_spin_lock(&ch->lock);
	if (!settled_locked(f, cx, q, wait, &stale, &ready)) {
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
