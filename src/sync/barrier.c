/* SPDX-License-Identifier: MIT */
/*
 * The barrier: a count of arrivals and a FIFO of waiting futures behind a
 * spinlock. A linked waiter's value is the generation it arrived in;
 * generations never decrease along the queue. Releasing a generation
 * bumps it first, so a wait that arrives while the release still wakes
 * its batches (spinlock briefly released) joins the next one; those
 * still linked from the released generation are only ever completed.
 * Invariant: arrived counts the linked waiters of the current generation
 * and stays below n between calls.
 */
#include "afe/barrier.h"
#include "../../pool/spinlock.h"
#include "waitq.h"

int afe_barrier_init(struct afe_barrier *b, size_t n)
{
	if (!b || !n)
		return -EINVAL;
	atomic_flag_clear(&b->lock);
	b->n = n;
	b->arrived = 0;
	b->generation = 0;
	afe_waitq_init(&b->waiters);
	return 0;
}

int afe_barrier_destroy(struct afe_barrier *b)
{
	if (!b)
		return -EINVAL;
	afe_spin_lock(&b->lock);
	int err = afe_waitq_empty(&b->waiters) ? 0 : -EBUSY;
	afe_spin_unlock(&b->lock);
	return err;
}

size_t afe_barrier_waiting(struct afe_barrier *b)
{
	if (!b)
		return 0;
	afe_spin_lock(&b->lock);
	size_t n = b->arrived;
	afe_spin_unlock(&b->lock);
	return n;
}

static bool of_current(const struct afe_barrier *b, const struct afe_waiter *w)
{
	return (uintptr_t)w->value == b->generation;
}

/* Drops from the current generation the waiters whose select another
 * branch won (claim: also claims the others' selects). Waiters of race
 * `mine` (the caller's own select, waiting twice) are left alone, else two
 * such branches would drop each other in turn. Returns false when one was
 * dropped. */
static bool drop_lost_locked(struct afe_barrier *b, bool claim, const struct afe_race *mine)
{
	bool none = true;
	struct afe_waiter *w = b->waiters.head;
	while (w) {
		struct afe_waiter *next = w->next;
		if (of_current(b, w) && (!mine || w->race != mine) &&
		    !(claim ? afe_race_claim(w->race, w->race_index) : afe_waiter_alive(w))) {
			afe_waiter_detach(&b->waiters, w);
			b->arrived--;
			none = false;
		}
		w = next;
	}
	return none;
}

/* Releases the current generation: completes its waiters, then unlocks.
 * A full batch is woken with the spinlock released only when one more
 * waiter is due: after the last wake b is not touched. */
static void release_and_unlock(struct afe_barrier *b)
{
	uintptr_t released = b->generation++;
	b->arrived = 0;
	struct afe_wake_batch batch;
	afe_wake_batch_init(&batch);
	struct afe_waiter *w;
	while ((w = b->waiters.head) && (intptr_t)(released - (uintptr_t)w->value) >= 0) {
		if (afe_wake_batch_full(&batch)) {
			afe_spin_unlock(&b->lock);
			afe_wake_batch_run(&batch);
			afe_spin_lock(&b->lock);
			continue;
		}
		struct afe_waker wake;
		afe_waiter_complete(&b->waiters, w, 0, &wake);
		afe_wake_batch_add(&batch, wake);
	}
	afe_spin_unlock(&b->lock);
	afe_wake_batch_run(&batch);
}

static void link_locked(struct afe_barrier *b, struct afe_waiter *w,
			const struct afe_context *cx, struct afe_race *race)
{
	afe_waiter_link(&b->waiters, w, cx, race);
	w->value = (intptr_t)b->generation;
	b->arrived++;
}

/* A wait arrives, the spinlock held; unlocks. Returns 1 when it filled
 * the generation (the leader, released), 0 when it waits (linked, or not
 * arrived because another branch of its select won). */
static int arrive_and_unlock(struct afe_barrier *b, struct afe_barrier_wait *bw,
			     const struct afe_context *cx)
{
	struct afe_race *race = afe_race_of(cx, &bw->base);
	drop_lost_locked(b, false, race);
	if (b->arrived + 1 < b->n) {
		link_locked(b, &bw->wait, cx, race);
		afe_spin_unlock(&b->lock);
		return 0;
	}
	if (!afe_race_claim(race, race ? race->index : 0)) {
		afe_spin_unlock(&b->lock); /* another branch of our select won */
		return 0;
	}
	if (drop_lost_locked(b, true, race)) {
		release_and_unlock(b);
		return 1;
	}
	/* One lost its race in the meantime: we wait for its replacement,
	 * uncommitted; others saw our race decided, so our task polls again
	 * (see afe_race_unclaim). */
	if (race)
		afe_race_unclaim(race, race->index);
	link_locked(b, &bw->wait, cx, race);
	afe_spin_unlock(&b->lock);
	if (race)
		afe_waker_wake_by_ref(cx->waker);
	return 0;
}

/* Not afe_wait_poll (waitq.h): a wait is counted, not granted. A waiter
 * that leaves must uncount itself, which only a poll that unlinked it
 * knows; the last to arrive releases everyone and reports 1; and it may
 * have to give back its select's claim and wait after all. */
static int wait_poll(struct afe_future *f, struct afe_context *cx)
{
	struct afe_barrier_wait *bw = afe_container_of(f, struct afe_barrier_wait, base);
	struct afe_barrier *b = bw->barrier;
	if (!b) {
		f->result = -EINVAL;
		return AFE_READY;
	}
	intptr_t value;
	unsigned settled = afe_waiter_settle(&bw->wait, &value);
	if (settled == AFE_WAIT_DONE || (settled != AFE_WAIT_LINKED && cx->cancel)) {
		/* Released, or not waiting: the barrier is not touched. */
		f->result = cx->cancel ? -ECANCELED : 0;
		return AFE_READY;
	}
	struct afe_waker stale = {0};
	afe_spin_lock(&b->lock);
	/* Relaxed: others change a linked state only under the lock we
	 * hold (its unlock/lock pair orders them before this load), and the
	 * unlocked changes are our own. */
	bool linked = atomic_load_explicit(&bw->wait.state, memory_order_relaxed) ==
		      AFE_WAIT_LINKED;
	unsigned state = afe_waiter_poll_locked(&b->waiters, &bw->wait, cx, &stale);
	int ready = AFE_READY;
	if (state == AFE_WAIT_DONE) {
		f->result = cx->cancel ? -ECANCELED : 0;
	} else if (state == AFE_WAIT_LINKED) {
		ready = AFE_PENDING;
	} else if (cx->cancel) {
		if (linked && of_current(b, &bw->wait))
			b->arrived--; /* it leaves: the generation waits for another */
		f->result = -ECANCELED;
	} else {
		int leader = arrive_and_unlock(b, bw, cx);
		afe_waker_drop(&stale);
		if (!leader)
			return AFE_PENDING;
		f->result = 1;
		return AFE_READY;
	}
	afe_spin_unlock(&b->lock);
	afe_waker_drop(&stale);
	return ready;
}

void afe_barrier_wait_init(struct afe_barrier_wait *w, struct afe_barrier *b)
{
	afe_future_init(&w->base, wait_poll);
	w->barrier = b;
	afe_waiter_reset(&w->wait);
}
