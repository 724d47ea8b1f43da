/* SPDX-License-Identifier: MIT */
/*
 * Waiter lists shared by the channel, mutex, semaphore, notify, rwlock,
 * barrier, broadcast and watch channel: intrusive FIFOs of struct
 * afe_waiter, each guarded by its primitive's spinlock; and the poll their
 * waiting futures share (afe_wait_poll; the channel's, the barrier's
 * and the cancel token's waits differ, see theirs).
 *
 * A waiter's life:
 *   IDLE ---(its own poll registers it, under the lock)---> LINKED
 *   LINKED --(its own cancel poll, under the lock)--------> IDLE
 *   LINKED --(another party completes it, under the lock)-> DONE
 *   LINKED --(another party finds its race lost)----------> DETACHED
 *   DONE / DETACHED --(its own next poll, without lock)---> IDLE
 * DONE and DETACHED are published with a release store after the node is
 * unlinked and (for DONE) its waker moved out; the owner's acquire load of
 * state pairs with it, so the owner may read value and reuse the node
 * without taking the lock. A DETACHED node keeps its waker: its owner
 * drops it.
 *
 * Races (see struct afe_race in future.h): a waiter that is a select's
 * branch must win the race before it is completed; one whose race another
 * branch already won is detached instead, which tells its select nothing
 * (the winner's completion wakes the same task).
 *
 * Wakers are woken and dropped only after the lock is released: a wake
 * can run a task on another thread at once, and a drop can free a task
 * whose future holds the primitive itself.
 *
 * Lifetime: a woken task may destroy and free the primitive as soon as it
 * knows nobody else uses it. So
 * - a waiting future reads DONE and DETACHED without the lock and then
 *   does not touch the primitive (except to pass on what it was handed,
 *   when cancelled: a mutex, permits, a notify_one); nor does a future
 *   that is not linked and is cancelled;
 * - a call that wakes waiters never takes the lock again after it woke
 *   its last batch: it stops as soon as nobody is left before flushing a
 *   full batch (afe_wake_batch_full, then afe_waitq_empty).
 * A detached waiter is not a lost one: its select's race may open again
 * (see the channel's send and receive, which withdraw a claim they could
 * not use), and its next poll without cancel simply tries again.
 */
#ifndef AFE_SRC_WAITQ_H
#define AFE_SRC_WAITQ_H

#include <errno.h>
#include <stdbool.h>

#include "afe/waiter.h"
#include "../../pool/list.h"
#include "../../pool/spinlock.h"
#include "../../pool/wake_batch.h"

enum { AFE_WAIT_IDLE, AFE_WAIT_LINKED, AFE_WAIT_DONE, AFE_WAIT_DETACHED };

static inline void afe_waiter_reset(struct afe_waiter *w)
{
	w->next = w->prev = NULL;
	w->waker.vtable = NULL;
	w->waker.data = NULL;
	w->race = NULL;
	w->race_index = 0;
	w->value = 0;
	atomic_init(&w->state, AFE_WAIT_IDLE);
}

static inline void afe_waitq_init(struct afe_waitq *q)
{
	q->head = q->tail = NULL;
}

static inline bool afe_waitq_empty(const struct afe_waitq *q)
{
	return q->head == NULL;
}

AFE_LIST_FUNCTIONS(afe__waitq_list, struct afe_waitq, struct afe_waiter)

static inline void afe__waitq_push(struct afe_waitq *q, struct afe_waiter *w)
{
	afe__waitq_list_push_back(q, w);
}

static inline void afe__waitq_unlink(struct afe_waitq *q, struct afe_waiter *w)
{
	afe__waitq_list_remove(q, w);
}

/* The race a poll takes part in: cx's, if this very future is the child
 * the select is polling now. */
static inline struct afe_race *afe_race_of(const struct afe_context *cx,
					   const struct afe_future *f)
{
	struct afe_race *r = cx->race;
	return (r && r->polling == f) ? r : NULL;
}

/* Claims race r (NULL: no race) for index. True when it is ours: open and
 * now claimed, or claimed by us before. */
static inline bool afe_race_claim(struct afe_race *r, intptr_t index)
{
	if (!r)
		return true;
	intptr_t open = AFE_RACE_OPEN;
	/* acq_rel: pairs with every other claim of the same race (other
	 * branches' completers and the select itself); exactly one wins. */
	return atomic_compare_exchange_strong_explicit(&r->winner, &open, index,
						       memory_order_acq_rel,
						       memory_order_acquire) ||
	       open == index;
}

/* True when race r (NULL: no race) is open now (a peek). */
static inline bool afe_race_open(const struct afe_race *r)
{
	return r && atomic_load_explicit(&r->winner, memory_order_relaxed) == AFE_RACE_OPEN;
}

/* Gives back a claim of race r for index made by this very poll, which
 * turned out unusable. Nobody else claims r for index meanwhile (only this
 * poll's branch has it); others only saw r decided, so they may have
 * detached the select's other waiters without waking it: the caller wakes
 * its task so that the select polls them again. */
static inline void afe_race_unclaim(struct afe_race *r, intptr_t index)
{
	intptr_t mine = index;
	/* acq_rel: a claim after this one must see everything done before. */
	atomic_compare_exchange_strong_explicit(&r->winner, &mine, AFE_RACE_OPEN,
						memory_order_acq_rel, memory_order_relaxed);
}

/* True when w could still win its race (a peek; the claim decides). */
static inline bool afe_waiter_alive(const struct afe_waiter *w)
{
	if (!w->race)
		return true;
	/* Acquire: pairs with the claim's CAS. */
	intptr_t winner = atomic_load_explicit(&w->race->winner, memory_order_acquire);
	return winner == AFE_RACE_OPEN || winner == w->race_index;
}

/* Under the lock: links w as waiting, taking the poll's waker. */
static inline void afe_waiter_link(struct afe_waitq *q, struct afe_waiter *w,
				   const struct afe_context *cx, struct afe_race *race)
{
	w->race = race;
	w->race_index = race ? race->index : 0;
	afe_waker_clone(&w->waker, cx->waker);
	atomic_store_explicit(&w->state, AFE_WAIT_LINKED, memory_order_relaxed);
	afe__waitq_push(q, w);
}

/* Under the lock: unlinks a linked w and finishes it with value; its
 * waker moves to *wake for waking after the unlock. The caller claimed
 * w's race (afe_waiter_claim). */
static inline void afe_waiter_complete(struct afe_waitq *q, struct afe_waiter *w,
				       intptr_t value, struct afe_waker *wake)
{
	afe__waitq_unlink(q, w);
	w->value = value;
	*wake = afe_waker_take(&w->waker);
	/* Release: pairs with the owner's acquire load in its next poll, which
	 * then reads value and what was copied into its buffers. */
	atomic_store_explicit(&w->state, AFE_WAIT_DONE, memory_order_release);
}

/* Under the lock: unlinks w, whose race another branch won. */
static inline void afe_waiter_detach(struct afe_waitq *q, struct afe_waiter *w)
{
	afe__waitq_unlink(q, w);
	/* Release: pairs with the owner's acquire load (it drops the waker). */
	atomic_store_explicit(&w->state, AFE_WAIT_DETACHED, memory_order_release);
}

/* Under the lock: the first waiter of q that wins its race, or NULL.
 * Waiters that lost theirs are detached on the way. Waiters of race
 * `mine` (the caller's own select) are skipped, never paired with. */
static inline struct afe_waiter *afe_waitq_claim_first(struct afe_waitq *q,
						       const struct afe_race *mine)
{
	struct afe_waiter *w = q->head;
	while (w) {
		struct afe_waiter *next = w->next;
		if (!w->race || (w->race != mine && afe_race_claim(w->race, w->race_index)))
			return w;
		if (w->race != mine)
			afe_waiter_detach(q, w);
		w = next;
	}
	return NULL;
}

/* Under the lock: true when q holds a waiter that could still win, not of
 * race `mine`. Detaches the lost ones met before it. */
static inline bool afe_waitq_has_live(struct afe_waitq *q, const struct afe_race *mine)
{
	struct afe_waiter *w = q->head;
	while (w) {
		struct afe_waiter *next = w->next;
		if (w->race != mine || !w->race) {
			if (afe_waiter_alive(w))
				return true;
			afe_waiter_detach(q, w);
		}
		w = next;
	}
	return false;
}

/*
 * Under the lock, first thing in a waiting future's poll. Returns
 *   AFE_WAIT_DONE:   completed by another party; the outcome is w->value
 *   AFE_WAIT_LINKED: still waiting (cancel false); the waker is refreshed
 *   AFE_WAIT_IDLE:   not waiting: the caller tries its operation, or with
 *                    cx->cancel set finishes with -ECANCELED (a linked
 *                    waiter has been unlinked)
 * A waker to drop after the unlock goes to *stale.
 */
static inline unsigned afe_waiter_poll_locked(struct afe_waitq *q, struct afe_waiter *w,
					      const struct afe_context *cx,
					      struct afe_waker *stale)
{
	unsigned state = atomic_load_explicit(&w->state, memory_order_relaxed);
	switch (state) {
	case AFE_WAIT_DONE:
		atomic_store_explicit(&w->state, AFE_WAIT_IDLE, memory_order_relaxed);
		return AFE_WAIT_DONE;
	case AFE_WAIT_LINKED:
		if (!cx->cancel) {
			if (!afe_waker_will_wake(&w->waker, cx->waker)) {
				*stale = w->waker;
				afe_waker_clone(&w->waker, cx->waker);
			}
			return AFE_WAIT_LINKED;
		}
		afe__waitq_unlink(q, w);
		break;
	case AFE_WAIT_DETACHED:
		break;
	default:
		return AFE_WAIT_IDLE;
	}
	*stale = afe_waker_take(&w->waker);
	w->race = NULL;
	atomic_store_explicit(&w->state, AFE_WAIT_IDLE, memory_order_relaxed);
	return AFE_WAIT_IDLE;
}

/*
 * Without the lock, first thing in a waiting future's poll. Returns
 *   AFE_WAIT_DONE:     completed by another party; the outcome is in *value
 *                      and w is idle again
 *   AFE_WAIT_DETACHED: unlinked by another party that found its race
 *                      decided; w is idle again and its waker dropped
 *   AFE_WAIT_IDLE:     not waiting
 *   AFE_WAIT_LINKED:   still linked (as of now): the rest needs the lock
 * Only LINKED can change under the owner's feet (others change it under
 * the lock); IDLE, DONE and DETACHED are the owner's. So with DONE,
 * DETACHED or IDLE and cancel set, the owner is done with the primitive
 * without ever locking it.
 */
static inline unsigned afe_waiter_settle(struct afe_waiter *w, intptr_t *value)
{
	/* Acquire: pairs with the release in afe_waiter_complete (value and
	 * whatever the completer wrote for the owner are visible) and in
	 * afe_waiter_detach. */
	unsigned state = atomic_load_explicit(&w->state, memory_order_acquire);
	if (state == AFE_WAIT_DONE) {
		*value = w->value;
	} else if (state == AFE_WAIT_DETACHED) {
		struct afe_waker stale = afe_waker_take(&w->waker);
		w->race = NULL;
		afe_waker_drop(&stale);
	} else {
		return state;
	}
	atomic_store_explicit(&w->state, AFE_WAIT_IDLE, memory_order_relaxed);
	return state;
}

/*
 * Under *lock, the lock of q's primitive: lets in the waiters at the head
 * of q in order while the first live one can go (can_go), each getting
 * what take(arg, w) takes for it, which returns the completion's value.
 * Waiters that lost their race are detached on the way. Wakers go to
 * batch; a full batch is woken with the lock briefly released only when
 * one more waiter is to be let in: never after the last one's wake.
 */
static inline void afe_waitq_grant_in_order(struct afe_waitq *q, atomic_flag *lock,
					    struct afe_wake_batch *batch,
					    bool (*can_go)(void *arg, struct afe_waiter *w),
					    intptr_t (*take)(void *arg, struct afe_waiter *w),
					    void *arg)
{
	struct afe_waiter *w;
	while ((w = q->head)) {
		if (!afe_waiter_alive(w)) {
			afe_waiter_detach(q, w);
			continue;
		}
		if (!can_go(arg, w))
			return;
		if (afe_wake_batch_full(batch)) {
			afe_spin_unlock(lock);
			afe_wake_batch_run(batch);
			afe_spin_lock(lock);
			continue;
		}
		if (!afe_race_claim(w->race, w->race_index)) {
			afe_waiter_detach(q, w);
			continue;
		}
		struct afe_waker wake;
		afe_waiter_complete(q, w, take(arg, w), &wake);
		afe_wake_batch_add(batch, wake);
	}
}

/*
 * What a primitive does in afe_wait_poll, the poll its waiting futures
 * share. Every function gets the arg given to afe_wait_poll; those called
 * under the lock collect the wakers of waiters they complete in batch, to
 * be woken after the unlock. Two kinds of completion:
 * - a grant (mutex, semaphore, rwlock, notify): its value is what it
 *   handed over, 0 for nothing; it reports 0, or, when the poll is
 *   cancelled, -ECANCELED after giving back a nonzero value;
 * - with reports_value (broadcast, watch channel): an item moved and cannot move back;
 *   the value is the result, reported even when the poll is cancelled.
 */
struct afe_wait_ops {
	/* Under the lock, for an idle waiter w whose poll is not cancelled:
	 * tries the operation for race (NULL: no select's branch), claiming
	 * the race only once it can happen. Returns
	 *   AFE_WAIT_DONE:   done; the completion's value in *value
	 *   AFE_WAIT_LINKED: w must wait, and is linked (afe_waiter_link)
	 *   AFE_WAIT_IDLE:   another branch of the select won; nothing done
	 * It and serve may release the lock for a while (to wake a full
	 * batch, to allocate) but hold it again when they return. */
	unsigned (*try_or_link)(void *arg, struct afe_waiter *w, const struct afe_context *cx,
				struct afe_race *race, intptr_t *value,
				struct afe_wake_batch *batch);
	/* Under the lock: gives back a grant's nonzero value (the lock,
	 * permits, a notify_one) that a cancelled poll cannot report. */
	void (*give_back)(void *arg, intptr_t value, struct afe_wake_batch *batch);
	/* Under the lock, last (optional): lets in the waiters that this
	 * poll made room for (it left, or gave back). */
	void (*serve)(void *arg, struct afe_wake_batch *batch);
	bool reports_value; /* the value is the result, even when cancelled */
};

/* What a completion with value reports. */
static inline intptr_t afe__wait_result(const struct afe_wait_ops *ops,
					const struct afe_context *cx, intptr_t value)
{
	if (ops->reports_value)
		return value;
	return cx->cancel ? -ECANCELED : 0;
}

/* True when a cancelled poll must give back what a completion with value
 * handed it: then it needs the primitive alive, and its lock. */
static inline bool afe__wait_owes(const struct afe_wait_ops *ops,
				  const struct afe_context *cx, intptr_t value)
{
	return cx->cancel && !ops->reports_value && value != 0;
}

/*
 * The poll of a future waiting with w in q, a list of the primitive
 * guarded by lock; ops (called with arg) says what the primitive does.
 * Settles w without the lock (afe_waiter_settle): completed, detached or
 * idle and cancelled, it finishes without touching the primitive, unless
 * a grant is owed back. Otherwise, under the lock: a linked waiter
 * refreshes its waker or (cancelled) leaves; an idle one tries or links
 * (ops->try_or_link); a cancelled grant is given back. Wakes and drops
 * wakers only after the unlock, and then touches nothing of the
 * primitive. Returns AFE_READY (f->result set) or AFE_PENDING.
 */
static inline int afe_wait_poll(struct afe_future *f, struct afe_context *cx,
				struct afe_waiter *w, atomic_flag *lock, struct afe_waitq *q,
				const struct afe_wait_ops *ops, void *arg)
{
	intptr_t value = 0;
	unsigned state = afe_waiter_settle(w, &value);
	if (state == AFE_WAIT_DONE && !afe__wait_owes(ops, cx, value)) {
		f->result = afe__wait_result(ops, cx, value);
		return AFE_READY;
	}
	if (state != AFE_WAIT_DONE && state != AFE_WAIT_LINKED && cx->cancel) {
		f->result = -ECANCELED; /* not waiting: the primitive is not touched */
		return AFE_READY;
	}
	struct afe_waker stale = {0};
	struct afe_wake_batch batch;
	afe_wake_batch_init(&batch);
	afe_spin_lock(lock);
	if (state != AFE_WAIT_DONE) {
		state = afe_waiter_poll_locked(q, w, cx, &stale);
		value = w->value;
		if (state == AFE_WAIT_IDLE && !cx->cancel)
			state = ops->try_or_link(arg, w, cx, afe_race_of(cx, f), &value, &batch);
	}
	int ready = AFE_READY;
	if (state == AFE_WAIT_DONE) {
		f->result = afe__wait_result(ops, cx, value);
		if (afe__wait_owes(ops, cx, value))
			ops->give_back(arg, value, &batch);
	} else if (state == AFE_WAIT_IDLE && cx->cancel) {
		f->result = -ECANCELED;
	} else {
		ready = AFE_PENDING; /* linked, or another branch of the select won */
	}
	if (ops->serve)
		ops->serve(arg, &batch);
	afe_spin_unlock(lock);
	afe_wake_batch_run(&batch);
	afe_waker_drop(&stale);
	return ready;
}

#endif /* AFE_SRC_WAITQ_H */
