/* SPDX-License-Identifier: MIT */
/*
 * When a channel, mutex, semaphore, notify, read-write lock, barrier,
 * broadcast or watch channel may be
 * destroyed and freed (include/afe/waiter.h): a future that another party
 * detached (a select's losing branch) or completed does not lock the
 * primitive again on the poll that finishes it, and a call that wakes
 * waiters does not lock it again after its last wake, so the task it woke
 * last may free it.
 *
 * "Freed" is modelled by destroying the primitive and then holding its
 * spinlock for good: a poll or call that still locked it would spin until
 * the test's timeout instead of touching freed memory.
 */
#include "helpers.h"

#define POLL(fut, cx) afe_future_poll(&(fut)->base, (cx))

static void hold_forever(atomic_flag *lock)
{
	cr_assert_not(atomic_flag_test_and_set(lock), "the lock was free");
}

/* ---- detached select branches ----------------------------------------------- */

Test(lifetime, a_branch_detached_by_close_does_not_touch_the_destroyed_channel, .timeout = 15)
{
	struct counting_waker cw;
	counting_waker_init(&cw);
	struct afe_context cx = counting_context(&cw, false);
	struct afe_chan ch;
	afe_chan_init(&ch, sizeof(int), 0);
	struct afe_token *t;
	cr_assert_eq(afe_token_new(&t), 0);
	int out = 0;
	struct afe_chan_recv r;
	struct afe_token_wait tw;
	afe_chan_recv_init(&r, &ch, &out);
	afe_token_wait_init(&tw, t);
	struct afe_future *branches[] = {&r.base, &tw.base};
	struct afe_select s;
	afe_select_init(&s, branches, 2);
	cr_assert_eq(POLL(&s, &cx), AFE_PENDING, "both branches wait");
	cr_assert_eq(afe_token_cancel(t), 0, "branch 1 wins");
	cr_assert_eq(afe_chan_close(&ch), 0, "detaches branch 0's waiter");
	cr_assert_eq(afe_chan_destroy(&ch), 0, "no waiter is linked");
	hold_forever(&ch.lock);
	cr_assert_eq(POLL(&s, &cx), AFE_READY);
	cr_assert_eq(s.base.result, 1);
	cr_assert_eq(r.base.result, -ECANCELED);
	cr_assert_eq(atomic_load(&cw.refs), 0, "the detached waiter's waker was dropped");
	afe_token_release(t);
}

Test(lifetime, a_receiver_detached_by_a_send_does_not_touch_the_destroyed_channel,
     .timeout = 15)
{
	struct counting_waker cw;
	counting_waker_init(&cw);
	struct afe_context cx = counting_context(&cw, false);
	struct afe_chan ch;
	afe_chan_init(&ch, sizeof(int), 0);
	struct afe_token *t;
	cr_assert_eq(afe_token_new(&t), 0);
	int out = 0, v = 9;
	struct afe_chan_recv r;
	struct afe_token_wait tw;
	afe_chan_recv_init(&r, &ch, &out);
	afe_token_wait_init(&tw, t);
	struct afe_future *branches[] = {&r.base, &tw.base};
	struct afe_select s;
	afe_select_init(&s, branches, 2);
	cr_assert_eq(POLL(&s, &cx), AFE_PENDING);
	cr_assert_eq(afe_token_cancel(t), 0);
	cr_assert_eq(afe_chan_try_send(&ch, &v), -EAGAIN,
		     "the receiver lost its race: it is detached, not paired with");
	cr_assert_eq(afe_chan_destroy(&ch), 0);
	hold_forever(&ch.lock);
	cr_assert_eq(POLL(&s, &cx), AFE_READY);
	cr_assert_eq(s.base.result, 1);
	cr_assert_eq(out, 0);
	cr_assert_eq(atomic_load(&cw.refs), 0);
}

Test(lifetime, detached_branches_do_not_touch_destroyed_locks_permits_notifies_tokens,
     .timeout = 15)
{
	struct counting_waker cw;
	counting_waker_init(&cw);
	struct afe_context cx = counting_context(&cw, false);
	struct afe_mutex m;
	struct afe_semaphore sem;
	struct afe_notify n;
	struct afe_token *t, *winner;
	afe_mutex_init(&m);
	afe_sem_init(&sem, 0);
	afe_notify_init(&n);
	cr_assert_eq(afe_token_new(&t), 0);
	cr_assert_eq(afe_token_new(&winner), 0);
	cr_assert_eq(afe_mutex_try_lock(&m), 0);
	struct afe_mutex_lock l;
	struct afe_sem_acquire a;
	struct afe_notified nd;
	struct afe_token_wait tw, ww;
	afe_mutex_lock_init(&l, &m);
	afe_sem_acquire_init(&a, &sem, 1);
	afe_notified_init(&nd, &n);
	afe_token_wait_init(&tw, t);
	afe_token_wait_init(&ww, winner);
	struct afe_future *branches[] = {&l.base, &a.base, &nd.base, &tw.base, &ww.base};
	struct afe_select s;
	afe_select_init(&s, branches, 5);
	cr_assert_eq(POLL(&s, &cx), AFE_PENDING, "every branch waits");
	cr_assert_eq(afe_token_cancel(winner), 0, "branch 4 wins");
	/* Each of these finds its waiter's race lost and detaches it. */
	cr_assert_eq(afe_mutex_unlock(&m), 0);
	cr_assert_eq(afe_sem_release(&sem, 1), 0);
	cr_assert_eq(afe_notify_one(&n), 0, "nobody took it: the permit is stored");
	cr_assert_eq(afe_token_cancel(t), 0);
	cr_assert_eq(afe_sem_available(&sem), 1, "the lost acquire took nothing");
	cr_assert_eq(afe_mutex_destroy(&m), 0);
	cr_assert_eq(afe_sem_destroy(&sem), 0);
	cr_assert_eq(afe_notify_destroy(&n), 0);
	afe_token_release(t);
	hold_forever(&m.lock);
	hold_forever(&sem.lock);
	hold_forever(&n.lock);
	cr_assert_eq(POLL(&s, &cx), AFE_READY);
	cr_assert_eq(s.base.result, 4);
	for (int i = 0; i < 3; i++)
		cr_assert_eq(branches[i]->result, -ECANCELED, "branch %d", i);
	cr_assert_eq(branches[3]->result, 0, "a withdrawn token wait says its token fired");
	cr_assert_eq(atomic_load(&cw.refs), 0);
	afe_token_release(winner);
}

/* ---- completed waits --------------------------------------------------------- */

/* A wait completed by another party finishes without locking the
 * primitive again: the call that completed it may have been its last use
 * (the mutex and the rwlock, now held by the waits, stand in with their
 * locks held; the others are destroyed first). */
Test(lifetime, completed_waits_do_not_touch_destroyed_primitives, .timeout = 15)
{
	struct counting_waker cw;
	counting_waker_init(&cw);
	struct afe_context cx = counting_context(&cw, false);
	struct afe_mutex m;
	struct afe_semaphore sem;
	struct afe_rwlock rw;
	struct afe_notify n;
	struct afe_chan ch;
	struct afe_bcast b;
	struct afe_wchan wc;
	struct afe_bcast_rx brx;
	struct afe_wchan_rx wrx;
	afe_mutex_init(&m);
	afe_sem_init(&sem, 0);
	afe_rwlock_init(&rw);
	afe_notify_init(&n);
	cr_assert_eq(afe_chan_init(&ch, sizeof(int), 0), 0);
	cr_assert_eq(afe_bcast_init(&b, sizeof(int), 2), 0);
	cr_assert_eq(afe_wchan_init(&wc, sizeof(int), NULL), 0);
	cr_assert_eq(afe_bcast_subscribe(&b, &brx), 0);
	cr_assert_eq(afe_wchan_subscribe(&wc, &wrx), 0);
	cr_assert_eq(afe_mutex_try_lock(&m), 0);
	cr_assert_eq(afe_rwlock_try_write(&rw), 0);
	int chan_out = 0, bcast_out = 0, wchan_out = 0, v = 5;
	struct afe_mutex_lock l;
	struct afe_sem_acquire a;
	struct afe_rwlock_read rd;
	struct afe_notified nd;
	struct afe_chan_recv r;
	struct afe_bcast_recv br;
	struct afe_wchan_changed wch;
	afe_mutex_lock_init(&l, &m);
	afe_sem_acquire_init(&a, &sem, 1);
	afe_rwlock_read_init(&rd, &rw);
	afe_notified_init(&nd, &n);
	afe_chan_recv_init(&r, &ch, &chan_out);
	afe_bcast_recv_init(&br, &brx, &bcast_out);
	afe_wchan_changed_init(&wch, &wrx, &wchan_out);
	struct afe_future *waits[] = {&l.base, &a.base, &rd.base, &nd.base,
				      &r.base, &br.base, &wch.base};
	for (size_t i = 0; i < 7; i++)
		cr_assert_eq(afe_future_poll(waits[i], &cx), AFE_PENDING, "wait %zu", i);
	cr_assert_eq(afe_mutex_unlock(&m), 0);
	cr_assert_eq(afe_sem_release(&sem, 1), 0);
	cr_assert_eq(afe_rwlock_write_unlock(&rw), 0);
	cr_assert_eq(afe_notify_one(&n), 1);
	cr_assert_eq(afe_chan_try_send(&ch, &v), 0);
	cr_assert_eq(afe_bcast_send(&b, &v), 0);
	cr_assert_eq(afe_wchan_send(&wc, &v), 0);
	cr_assert_eq(afe_sem_destroy(&sem), 0);
	cr_assert_eq(afe_notify_destroy(&n), 0);
	cr_assert_eq(afe_chan_destroy(&ch), 0);
	cr_assert_eq(afe_bcast_destroy(&b), 0);
	cr_assert_eq(afe_wchan_destroy(&wc), 0);
	hold_forever(&m.lock);
	hold_forever(&sem.lock);
	hold_forever(&rw.lock);
	hold_forever(&n.lock);
	hold_forever(&ch.lock);
	hold_forever(&b.lock);
	hold_forever(&wc.lock);
	for (size_t i = 0; i < 7; i++) {
		cr_assert_eq(afe_future_poll(waits[i], &cx), AFE_READY, "wait %zu", i);
		cr_assert_eq(waits[i]->result, 0, "wait %zu", i);
	}
	cr_assert_eq(chan_out, 5);
	cr_assert_eq(bcast_out, 5);
	cr_assert_eq(wchan_out, 5);
	cr_assert_eq(atomic_load(&cw.refs), 0);
}

/* ---- the last task woken frees the primitive ---------------------------- */

/* Exactly one full wake batch (AFE_WAKE_BATCH in src/sync/waitq.h). */
#define WAITERS 16

/* What the task woken last does: polls every waiter (all finished), then
 * destroys the primitive and "frees" it. */
struct last_one {
	struct afe_future *waiters[WAITERS];
	int (*destroy)(void *obj);
	void *obj;
	atomic_flag *lock;
	struct afe_context *cx;
	bool freed;
};

static void last_one_runs(void *arg, int nth)
{
	struct last_one *lo = arg;
	if (nth != WAITERS)
		return;
	for (int i = 0; i < WAITERS; i++)
		cr_assert_eq(afe_future_poll(lo->waiters[i], lo->cx), AFE_READY, "waiter %d", i);
	int err = lo->destroy(lo->obj);
	cr_assert_eq(err, 0, "every waiter is done");
	hold_forever(lo->lock);
	lo->freed = true;
}

static void last_one_setup(struct last_one *lo, struct hook_waker *hw, struct afe_context *cx)
{
	hook_waker_init(hw, last_one_runs, lo);
	*cx = counting_context(&hw->cw, false);
	lo->cx = cx;
	lo->freed = false;
}

static void last_one_check(struct last_one *lo, struct hook_waker *hw)
{
	cr_assert(lo->freed);
	cr_assert_eq(atomic_load(&hw->cw.wakes), WAITERS);
	cr_assert_eq(atomic_load(&hw->cw.refs), 0);
}

static int destroy_chan(void *obj) { return afe_chan_destroy(obj); }
static int destroy_sem(void *obj) { return afe_sem_destroy(obj); }
static int destroy_notify(void *obj) { return afe_notify_destroy(obj); }

Test(lifetime, the_task_close_woke_last_may_free_the_channel, .timeout = 15)
{
	struct last_one lo;
	struct hook_waker hw;
	struct afe_context cx;
	last_one_setup(&lo, &hw, &cx);
	struct afe_chan ch;
	afe_chan_init(&ch, sizeof(int), 0);
	int out[WAITERS];
	struct afe_chan_recv r[WAITERS];
	for (int i = 0; i < WAITERS; i++) {
		afe_chan_recv_init(&r[i], &ch, &out[i]);
		lo.waiters[i] = &r[i].base;
		cr_assert_eq(POLL(&r[i], &cx), AFE_PENDING);
	}
	lo.destroy = destroy_chan;
	lo.obj = &ch;
	lo.lock = &ch.lock;
	cr_assert_eq(afe_chan_close(&ch), 0);
	last_one_check(&lo, &hw);
	for (int i = 0; i < WAITERS; i++)
		cr_assert_eq(r[i].base.result, -EPIPE);
}

Test(lifetime, the_task_release_woke_last_may_free_the_semaphore, .timeout = 15)
{
	struct last_one lo;
	struct hook_waker hw;
	struct afe_context cx;
	last_one_setup(&lo, &hw, &cx);
	struct afe_semaphore sem;
	afe_sem_init(&sem, 0);
	struct afe_sem_acquire a[WAITERS];
	for (int i = 0; i < WAITERS; i++) {
		afe_sem_acquire_init(&a[i], &sem, 1);
		lo.waiters[i] = &a[i].base;
		cr_assert_eq(POLL(&a[i], &cx), AFE_PENDING);
	}
	lo.destroy = destroy_sem;
	lo.obj = &sem;
	lo.lock = &sem.lock;
	cr_assert_eq(afe_sem_release(&sem, WAITERS), 0);
	last_one_check(&lo, &hw);
}

Test(lifetime, the_task_notify_all_woke_last_may_free_the_notify, .timeout = 15)
{
	struct last_one lo;
	struct hook_waker hw;
	struct afe_context cx;
	last_one_setup(&lo, &hw, &cx);
	struct afe_notify n;
	afe_notify_init(&n);
	struct afe_notified w[WAITERS];
	for (int i = 0; i < WAITERS; i++) {
		afe_notified_init(&w[i], &n);
		lo.waiters[i] = &w[i].base;
		cr_assert_eq(POLL(&w[i], &cx), AFE_PENDING);
	}
	lo.destroy = destroy_notify;
	lo.obj = &n;
	lo.lock = &n.lock;
	int woken = afe_notify_all(&n);
	cr_assert_eq(woken, WAITERS);
	last_one_check(&lo, &hw);
}

/* The read-write lock, the barrier, the broadcast and the watch channel:
 * the same guarantee. */
static int destroy_rwlock(void *obj)
{
	for (int i = 0; i < WAITERS; i++) /* the woken readers hold it */
		cr_assert_eq(afe_rwlock_read_unlock(obj), 0);
	return afe_rwlock_destroy(obj);
}
static int destroy_barrier(void *obj) { return afe_barrier_destroy(obj); }
static int destroy_bcast(void *obj) { return afe_bcast_destroy(obj); }
static int destroy_wchan(void *obj) { return afe_wchan_destroy(obj); }

Test(lifetime, the_task_write_unlock_woke_last_may_free_the_rwlock, .timeout = 15)
{
	struct last_one lo;
	struct hook_waker hw;
	struct afe_context cx;
	last_one_setup(&lo, &hw, &cx);
	struct afe_rwlock rw;
	afe_rwlock_init(&rw);
	cr_assert_eq(afe_rwlock_try_write(&rw), 0);
	struct afe_rwlock_read r[WAITERS];
	for (int i = 0; i < WAITERS; i++) {
		afe_rwlock_read_init(&r[i], &rw);
		lo.waiters[i] = &r[i].base;
		cr_assert_eq(POLL(&r[i], &cx), AFE_PENDING);
	}
	lo.destroy = destroy_rwlock;
	lo.obj = &rw;
	lo.lock = &rw.lock;
	cr_assert_eq(afe_rwlock_write_unlock(&rw), 0);
	last_one_check(&lo, &hw);
}

Test(lifetime, the_task_a_barrier_leader_woke_last_may_free_the_barrier, .timeout = 15)
{
	struct last_one lo;
	struct hook_waker hw;
	struct afe_context cx;
	last_one_setup(&lo, &hw, &cx);
	struct afe_barrier b;
	cr_assert_eq(afe_barrier_init(&b, WAITERS + 1), 0);
	struct afe_barrier_wait w[WAITERS], leader;
	for (int i = 0; i < WAITERS; i++) {
		afe_barrier_wait_init(&w[i], &b);
		lo.waiters[i] = &w[i].base;
		cr_assert_eq(POLL(&w[i], &cx), AFE_PENDING);
	}
	lo.destroy = destroy_barrier;
	lo.obj = &b;
	lo.lock = &b.lock;
	struct counting_waker cw;
	counting_waker_init(&cw);
	struct afe_context lcx = counting_context(&cw, false);
	afe_barrier_wait_init(&leader, &b);
	cr_assert_eq(POLL(&leader, &lcx), AFE_READY);
	cr_assert_eq(leader.base.result, 1);
	last_one_check(&lo, &hw);
}

Test(lifetime, the_task_a_broadcast_send_woke_last_may_free_the_channel, .timeout = 15)
{
	struct last_one lo;
	struct hook_waker hw;
	struct afe_context cx;
	last_one_setup(&lo, &hw, &cx);
	struct afe_bcast b;
	cr_assert_eq(afe_bcast_init(&b, sizeof(int), 2), 0);
	struct afe_bcast_rx rx[WAITERS];
	struct afe_bcast_recv r[WAITERS];
	int out[WAITERS], v = 1;
	for (int i = 0; i < WAITERS; i++) {
		afe_bcast_subscribe(&b, &rx[i]);
		afe_bcast_recv_init(&r[i], &rx[i], &out[i]);
		lo.waiters[i] = &r[i].base;
		cr_assert_eq(POLL(&r[i], &cx), AFE_PENDING);
	}
	lo.destroy = destroy_bcast;
	lo.obj = &b;
	lo.lock = &b.lock;
	cr_assert_eq(afe_bcast_send(&b, &v), 0);
	last_one_check(&lo, &hw);
}

Test(lifetime, the_task_a_watch_send_woke_last_may_free_the_channel, .timeout = 15)
{
	struct last_one lo;
	struct hook_waker hw;
	struct afe_context cx;
	last_one_setup(&lo, &hw, &cx);
	struct afe_wchan w;
	int v = 0;
	cr_assert_eq(afe_wchan_init(&w, sizeof(int), &v), 0);
	struct afe_wchan_rx rx[WAITERS];
	struct afe_wchan_changed c[WAITERS];
	for (int i = 0; i < WAITERS; i++) {
		afe_wchan_subscribe(&w, &rx[i]);
		afe_wchan_changed_init(&c[i], &rx[i], NULL);
		lo.waiters[i] = &c[i].base;
		cr_assert_eq(POLL(&c[i], &cx), AFE_PENDING);
	}
	lo.destroy = destroy_wchan;
	lo.obj = &w;
	lo.lock = &w.lock;
	v = 1;
	cr_assert_eq(afe_wchan_send(&w, &v), 0);
	last_one_check(&lo, &hw);
}
