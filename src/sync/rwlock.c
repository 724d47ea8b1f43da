/* SPDX-License-Identifier: MIT */
/*
 * The read-write lock: a writer flag, a reader count and one FIFO of read
 * and write futures behind a spinlock. A linked waiter's value says which
 * it is (WANTS_READ, WANTS_WRITE) until it is completed.
 * Invariant, restored before every unlock by grant_locked: the first live
 * waiter cannot be let in now (or there is none). A newcomer takes the
 * lock only when nobody waits, so it never overtakes; readers behind a
 * waiting writer wait for it.
 */
#include "afe/rwlock.h"
#include "../../pool/spinlock.h"
#include "waitq.h"

enum { WANTS_READ = 1, WANTS_WRITE = 2 };

static bool can_take(const struct afe_rwlock *rw, bool write)
{
	return write ? !rw->writer && rw->readers == 0 : !rw->writer;
}

static void take(struct afe_rwlock *rw, bool write)
{
	if (write)
		rw->writer = true;
	else
		rw->readers++;
}

static void give_back(struct afe_rwlock *rw, bool write)
{
	if (write)
		rw->writer = false;
	else
		rw->readers--;
}

/* Lets in the waiters at the head that can go now, in order, collecting
 * their wakers (a full batch is woken with the spinlock briefly released,
 * only when one more waiter is to be let in). */
static void grant_locked(struct afe_rwlock *rw, struct afe_wake_batch *batch)
{
	struct afe_waiter *w;
	while ((w = rw->waiters.head)) {
		if (!afe_waiter_alive(w)) {
			afe_waiter_detach(&rw->waiters, w);
			continue;
		}
		bool write = w->value == WANTS_WRITE;
		if (!can_take(rw, write))
			return;
		if (afe_wake_batch_full(batch)) {
			afe_spin_unlock(&rw->lock);
			afe_wake_batch_run(batch);
			afe_spin_lock(&rw->lock);
			continue;
		}
		if (!afe_race_claim(w->race, w->race_index)) {
			afe_waiter_detach(&rw->waiters, w);
			continue;
		}
		take(rw, write);
		struct afe_waker wake;
		afe_waiter_complete(&rw->waiters, w, 0, &wake);
		afe_wake_batch_add(batch, wake);
	}
}

static void grant_and_unlock(struct afe_rwlock *rw)
{
	struct afe_wake_batch batch = {0};
	grant_locked(rw, &batch);
	afe_spin_unlock(&rw->lock);
	afe_wake_batch_run(&batch);
}

void afe_rwlock_init(struct afe_rwlock *rw)
{
	atomic_flag_clear(&rw->lock);
	rw->writer = false;
	rw->readers = 0;
	afe_waitq_init(&rw->waiters);
}

int afe_rwlock_destroy(struct afe_rwlock *rw)
{
	if (!rw)
		return -EINVAL;
	afe_spin_lock(&rw->lock);
	bool busy = rw->writer || rw->readers || !afe_waitq_empty(&rw->waiters);
	afe_spin_unlock(&rw->lock);
	return busy ? -EBUSY : 0;
}

static int try_take(struct afe_rwlock *rw, bool write)
{
	if (!rw)
		return -EINVAL;
	struct afe_wake_batch batch = {0};
	afe_spin_lock(&rw->lock);
	grant_locked(rw, &batch); /* only lost races can leave work */
	int err = -EBUSY;
	if (afe_waitq_empty(&rw->waiters) && can_take(rw, write)) {
		take(rw, write);
		err = 0;
	}
	afe_spin_unlock(&rw->lock);
	afe_wake_batch_run(&batch);
	return err;
}

int afe_rwlock_try_read(struct afe_rwlock *rw)
{
	return try_take(rw, false);
}

int afe_rwlock_try_write(struct afe_rwlock *rw)
{
	return try_take(rw, true);
}

static int unlock(struct afe_rwlock *rw, bool write)
{
	if (!rw)
		return -EINVAL;
	afe_spin_lock(&rw->lock);
	if (write ? !rw->writer : rw->readers == 0) {
		afe_spin_unlock(&rw->lock);
		return -EPERM;
	}
	give_back(rw, write);
	grant_and_unlock(rw);
	return 0;
}

int afe_rwlock_read_unlock(struct afe_rwlock *rw)
{
	return unlock(rw, false);
}

int afe_rwlock_write_unlock(struct afe_rwlock *rw)
{
	return unlock(rw, true);
}

/* The poll of both futures; write says which hold it wants. */
static int acquire_poll(struct afe_future *f, struct afe_context *cx, struct afe_rwlock *rw,
			struct afe_waiter *wait, bool write)
{
	if (!rw) {
		f->result = -EINVAL;
		return AFE_READY;
	}
	intptr_t value;
	unsigned settled = afe_waiter_settle(wait, &value);
	bool granted = settled == AFE_WAIT_DONE;
	if (granted && !cx->cancel) {
		f->result = 0;
		return AFE_READY;
	}
	if (!granted && settled != AFE_WAIT_LINKED && cx->cancel) {
		f->result = -ECANCELED; /* not waiting: the lock is not touched */
		return AFE_READY;
	}
	struct afe_waker stale = {0};
	struct afe_wake_batch batch = {0};
	int ready = AFE_READY;
	afe_spin_lock(&rw->lock);
	if (!granted) {
		unsigned state = afe_waiter_poll_locked(&rw->waiters, wait, cx, &stale);
		granted = state == AFE_WAIT_DONE;
		if (state == AFE_WAIT_LINKED) {
			ready = AFE_PENDING;
		} else if (state == AFE_WAIT_IDLE && !cx->cancel) {
			struct afe_race *race = afe_race_of(cx, f);
			grant_locked(rw, &batch); /* only lost races can leave work */
			if (!afe_waitq_empty(&rw->waiters) || !can_take(rw, write)) {
				afe_waiter_link(&rw->waiters, wait, cx, race);
				wait->value = write ? WANTS_WRITE : WANTS_READ;
				ready = AFE_PENDING;
			} else if (afe_race_claim(race, race ? race->index : 0)) {
				take(rw, write);
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
		give_back(rw, write);
	}
	/* A waiter that left (cancelled, or gave back) may let others in. */
	grant_locked(rw, &batch);
	afe_spin_unlock(&rw->lock);
	afe_wake_batch_run(&batch);
	afe_waker_drop(&stale);
	return ready;
}

static int read_poll(struct afe_future *f, struct afe_context *cx)
{
	struct afe_rwlock_read *r = afe_container_of(f, struct afe_rwlock_read, base);
	return acquire_poll(f, cx, r->rw, &r->wait, false);
}

static int write_poll(struct afe_future *f, struct afe_context *cx)
{
	struct afe_rwlock_write *w = afe_container_of(f, struct afe_rwlock_write, base);
	return acquire_poll(f, cx, w->rw, &w->wait, true);
}

void afe_rwlock_read_init(struct afe_rwlock_read *r, struct afe_rwlock *rw)
{
	afe_future_init(&r->base, read_poll);
	r->rw = rw;
	afe_waiter_reset(&r->wait);
}

void afe_rwlock_write_init(struct afe_rwlock_write *w, struct afe_rwlock *rw)
{
	afe_future_init(&w->base, write_poll);
	w->rw = rw;
	afe_waiter_reset(&w->wait);
}
