/* SPDX-License-Identifier: MIT */
/* The async mutex: FIFO handoff, cancellation before and after the grant,
 * destroy with waiters, and tasks holding it across awaits. */
#include "helpers.h"

#define POLL(fut, cx) afe_future_poll(&(fut)->base, (cx))

Test(mutex, lock_unlock_and_try_lock)
{
	struct counting_waker cw;
	counting_waker_init(&cw);
	struct afe_context cx = counting_context(&cw, false);
	struct afe_mutex m;
	afe_mutex_init(&m);
	struct afe_mutex_lock l;
	afe_mutex_lock_init(&l, &m);
	cr_assert_eq(POLL(&l, &cx), AFE_READY, "free: taken at once");
	cr_assert_eq(l.base.result, 0);
	cr_assert_eq(afe_mutex_try_lock(&m), -EBUSY);
	cr_assert_eq(afe_mutex_destroy(&m), -EBUSY, "locked");
	cr_assert_eq(afe_mutex_unlock(&m), 0);
	cr_assert_eq(afe_mutex_unlock(&m), -EPERM, "not locked");
	cr_assert_eq(afe_mutex_try_lock(&m), 0);
	cr_assert_eq(afe_mutex_unlock(&m), 0);
	cr_assert_eq(afe_mutex_destroy(&m), 0);
}

Test(mutex, waiters_get_the_lock_in_order)
{
	struct counting_waker cw[3];
	struct afe_context cx[3];
	struct afe_mutex_lock l[3];
	struct afe_mutex m;
	afe_mutex_init(&m);
	cr_assert_eq(afe_mutex_try_lock(&m), 0);
	for (int i = 0; i < 3; i++) {
		counting_waker_init(&cw[i]);
		cx[i] = counting_context(&cw[i], false);
		afe_mutex_lock_init(&l[i], &m);
		cr_assert_eq(POLL(&l[i], &cx[i]), AFE_PENDING);
	}
	cr_assert_eq(afe_mutex_destroy(&m), -EBUSY, "waiters are linked");
	for (int i = 0; i < 3; i++) {
		cr_assert_eq(afe_mutex_unlock(&m), 0);
		cr_assert_eq(atomic_load(&cw[i].wakes), 1, "waiter %d is next", i);
		cr_assert_eq(afe_mutex_try_lock(&m), -EBUSY, "handed over: no barging");
		cr_assert_eq(POLL(&l[i], &cx[i]), AFE_READY);
		cr_assert_eq(l[i].base.result, 0);
		for (int j = i + 1; j < 3; j++)
			cr_assert_eq(atomic_load(&cw[j].wakes), 0);
	}
	cr_assert_eq(afe_mutex_unlock(&m), 0);
	cr_assert_eq(afe_mutex_destroy(&m), 0);
}

Test(mutex, a_cancelled_waiter_leaves_and_a_cancelled_grant_hands_on)
{
	struct counting_waker a, b;
	counting_waker_init(&a);
	counting_waker_init(&b);
	struct afe_context ca = counting_context(&a, false), cb = counting_context(&b, false);
	struct afe_context cancel = counting_context(&a, true);
	struct afe_mutex m;
	afe_mutex_init(&m);
	afe_mutex_try_lock(&m);
	struct afe_mutex_lock la, lb;
	afe_mutex_lock_init(&la, &m);
	afe_mutex_lock_init(&lb, &m);
	cr_assert_eq(POLL(&la, &ca), AFE_PENDING);
	cr_assert_eq(POLL(&lb, &cb), AFE_PENDING);
	cr_assert_eq(POLL(&la, &cancel), AFE_READY);
	cr_assert_eq(la.base.result, -ECANCELED);
	cr_assert_eq(atomic_load(&a.refs), 0, "its waker dropped");
	cr_assert_eq(afe_mutex_unlock(&m), 0);
	cr_assert_eq(atomic_load(&b.wakes), 1, "b got it: a had left the line");

	/* b was handed the lock but is cancelled before it saw it. */
	afe_mutex_lock_init(&la, &m);
	cr_assert_eq(POLL(&la, &ca), AFE_PENDING);
	struct afe_context cancel_b = counting_context(&b, true);
	cr_assert_eq(POLL(&lb, &cancel_b), AFE_READY);
	cr_assert_eq(lb.base.result, -ECANCELED);
	cr_assert_eq(atomic_load(&a.wakes), 1, "the lock went on to a");
	cr_assert_eq(POLL(&la, &ca), AFE_READY);
	cr_assert_eq(la.base.result, 0);
	cr_assert_eq(afe_mutex_unlock(&m), 0);
	cr_assert_eq(afe_mutex_destroy(&m), 0);
}

Test(mutex, bad_input)
{
	struct counting_waker cw;
	counting_waker_init(&cw);
	struct afe_context cx = counting_context(&cw, false);
	cr_assert_eq(afe_mutex_destroy(NULL), -EINVAL);
	cr_assert_eq(afe_mutex_try_lock(NULL), -EINVAL);
	cr_assert_eq(afe_mutex_unlock(NULL), -EINVAL);
	struct afe_mutex_lock l;
	afe_mutex_lock_init(&l, NULL);
	cr_assert_eq(POLL(&l, &cx), AFE_READY);
	cr_assert_eq(l.base.result, -EINVAL);
}

/* Tasks increment a shared counter non-atomically, holding the lock across
 * a yield between the read and the write: a lost update shows a race. */
struct shared {
	struct afe_mutex m;
	long counter;
};

struct incrementer {
	struct afe_future base;
	struct shared *s;
	long i, n, seen;
	struct afe_mutex_lock lock;
	struct afe_yield_now nap;
};

static int incrementer_poll(struct afe_future *f, struct afe_context *cx)
{
	struct incrementer *self = afe_container_of(f, struct incrementer, base);
	AFE_ASYNC_BEGIN(f, cx);
	for (self->i = 0; self->i < self->n; self->i++) {
		afe_mutex_lock_init(&self->lock, &self->s->m);
		AFE_AWAIT(&self->lock.base);
		self->seen = self->s->counter;
		afe_yield_now_init(&self->nap);
		AFE_AWAIT(&self->nap.base);
		self->s->counter = self->seen + 1;
		afe_mutex_unlock(&self->s->m);
	}
	AFE_RETURN(0);
	AFE_ASYNC_END;
}

struct joiner {
	struct afe_future base;
	struct afe_join_handle *handles;
	int i, n;
	struct afe_join join;
};

static int joiner_poll(struct afe_future *f, struct afe_context *cx)
{
	struct joiner *self = afe_container_of(f, struct joiner, base);
	AFE_ASYNC_BEGIN(f, cx);
	for (self->i = 0; self->i < self->n; self->i++) {
		afe_join_init(&self->join, &self->handles[self->i]);
		AFE_AWAIT(&self->join.base);
	}
	AFE_RETURN(0);
	AFE_ASYNC_END;
}

Test(mutex, tasks_hold_it_across_awaits)
{
	struct afe_runtime *rt = test_runtime(2);
	struct shared s = {.counter = 0};
	afe_mutex_init(&s.m);
	enum { TASKS = 8, EACH = 2000 };
	struct afe_join_handle h[TASKS];
	for (int t = 0; t < TASKS; t++) {
		struct incrementer inc = {.s = &s, .n = EACH};
		afe_future_init(&inc.base, incrementer_poll);
		cr_assert_eq(afe_spawn(rt, &inc, &h[t]), 0);
	}
	struct joiner j = {.handles = h, .n = TASKS};
	afe_future_init(&j.base, joiner_poll);
	test_block_on(rt, &j);
	cr_assert_eq(s.counter, TASKS * EACH, "no lost update");
	cr_assert_eq(afe_mutex_destroy(&s.m), 0);
	test_runtime_destroy(rt);
}
