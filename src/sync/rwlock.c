/* SPDX-License-Identifier: MIT */
/*
 * The read-write lock: a writer flag, a reader count and one FIFO of read
 * and write futures behind a spinlock. A waiter's value says which hold
 * it wants (WANTS_READ, WANTS_WRITE) while linked, and which it was handed
 * once completed (what a cancelled future gives back).
 * Invariant, restored before every unlock by grant_locked: the first live
 * waiter cannot be let in now (or there is none). A newcomer takes the
 * lock only when nobody waits, so it never overtakes; readers behind a
 * waiting writer wait for it.
 */
#include "afe/rwlock.h"
#include "../../pool/spinlock.h"
#include "waitq.h"

enum { WANTS_READ = 1, WANTS_WRITE = 2 };

static intptr_t hold_of(bool write)
{
	return write ? WANTS_WRITE : WANTS_READ;
}

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

static bool can_let_in(void *arg, struct afe_waiter *w)
{
	return can_take(arg, w->value == WANTS_WRITE);
}

/* The completion's value is the hold taken (what the waiter wanted). */
static intptr_t let_in(void *arg, struct afe_waiter *w)
{
	take(arg, w->value == WANTS_WRITE);
	return w->value;
}

/* Lets in the waiters at the head that can go now, in order. */
static void grant_locked(struct afe_rwlock *rw, struct afe_wake_batch *batch)
{
	afe_waitq_grant_in_order(&rw->waiters, &rw->lock, batch, can_let_in, let_in, rw);
}

static void grant_and_unlock(struct afe_rwlock *rw)
{
	struct afe_wake_batch batch;
	afe_wake_batch_init(&batch);
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
	struct afe_wake_batch batch;
	afe_wake_batch_init(&batch);
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

/* A poll of either future: afe_wait_poll's arg. */
struct wish {
	struct afe_rwlock *rw;
	bool write;
};

static unsigned wish_try_or_link(void *arg, struct afe_waiter *w, const struct afe_context *cx,
				 struct afe_race *race, intptr_t *value,
				 struct afe_wake_batch *batch)
{
	struct wish *h = arg;
	grant_locked(h->rw, batch); /* only lost races can leave work */
	if (!afe_waitq_empty(&h->rw->waiters) || !can_take(h->rw, h->write)) {
		afe_waiter_link(&h->rw->waiters, w, cx, race);
		w->value = hold_of(h->write);
		return AFE_WAIT_LINKED;
	}
	if (!afe_race_claim(race, race ? race->index : 0))
		return AFE_WAIT_IDLE;
	take(h->rw, h->write);
	*value = hold_of(h->write);
	return AFE_WAIT_DONE;
}

/* Handed the lock, but cancelled before we could report it. */
static void wish_give_back(void *arg, intptr_t value, struct afe_wake_batch *batch)
{
	struct wish *h = arg;
	(void)batch;
	give_back(h->rw, value == WANTS_WRITE);
}

/* A waiter that left (cancelled, or gave back) may let others in. */
static void wish_serve(void *arg, struct afe_wake_batch *batch)
{
	struct wish *h = arg;
	grant_locked(h->rw, batch);
}

static const struct afe_wait_ops wish_ops = {
	.try_or_link = wish_try_or_link,
	.give_back = wish_give_back,
	.serve = wish_serve,
};

/* The poll of both futures; write says which hold it wants. */
static int acquire_poll(struct afe_future *f, struct afe_context *cx, struct afe_rwlock *rw,
			struct afe_waiter *wait, bool write)
{
	if (!rw) {
		f->result = -EINVAL;
		return AFE_READY;
	}
	struct wish h = {.rw = rw, .write = write};
	return afe_wait_poll(f, cx, wait, &rw->lock, &rw->waiters, &wish_ops, &h);
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
