/* SPDX-License-Identifier: MIT */
/* The semaphore: counting, FIFO fairness, cancellation, bad input. */
#include "helpers.h"

#define POLL(fut, cx) afe_future_poll(&(fut)->base, (cx))

Test(semaphore, permits_are_counted)
{
	struct counting_waker cw;
	counting_waker_init(&cw);
	struct afe_context cx = counting_context(&cw, false);
	struct afe_semaphore s;
	afe_sem_init(&s, 3);
	cr_assert_eq(afe_sem_available(&s), 3);
	cr_assert_eq(afe_sem_try_acquire(&s, 2), 0);
	cr_assert_eq(afe_sem_try_acquire(&s, 2), -EAGAIN);
	struct afe_sem_acquire a;
	afe_sem_acquire_init(&a, &s, 1);
	cr_assert_eq(POLL(&a, &cx), AFE_READY);
	cr_assert_eq(a.base.result, 0);
	cr_assert_eq(afe_sem_available(&s), 0);
	afe_sem_acquire_init(&a, &s, 2);
	cr_assert_eq(POLL(&a, &cx), AFE_PENDING);
	cr_assert_eq(afe_sem_destroy(&s), -EBUSY);
	cr_assert_eq(afe_sem_release(&s, 1), 0);
	cr_assert_eq(atomic_load(&cw.wakes), 0, "one permit is not enough");
	cr_assert_eq(afe_sem_release(&s, 2), 0);
	cr_assert_eq(atomic_load(&cw.wakes), 1);
	cr_assert_eq(afe_sem_available(&s), 1, "two went to the waiter");
	cr_assert_eq(POLL(&a, &cx), AFE_READY);
	cr_assert_eq(a.base.result, 0);
	cr_assert_eq(afe_sem_release(&s, SIZE_MAX), -EOVERFLOW);
	cr_assert_eq(afe_sem_available(&s), 1);
	cr_assert_eq(afe_sem_destroy(&s), 0);
}

/* A release that would pass SIZE_MAX is refused whole, even when a waiter
 * would take part of it at once: no permit added, nobody woken. */
Test(semaphore, an_overflowing_release_adds_nothing_and_wakes_nobody)
{
	struct counting_waker cw;
	counting_waker_init(&cw);
	struct afe_context cx = counting_context(&cw, false);
	struct afe_semaphore s;
	afe_sem_init(&s, SIZE_MAX - 1);
	struct afe_sem_acquire a;
	afe_sem_acquire_init(&a, &s, SIZE_MAX);
	cr_assert_eq(POLL(&a, &cx), AFE_PENDING);
	cr_assert_eq(afe_sem_release(&s, 2), -EOVERFLOW);
	cr_assert_eq(afe_sem_available(&s), SIZE_MAX - 1, "nothing added");
	cr_assert_eq(atomic_load(&cw.wakes), 0, "nobody woken");
	cr_assert_eq(afe_sem_release(&s, 1), 0);
	cr_assert_eq(atomic_load(&cw.wakes), 1);
	cr_assert_eq(POLL(&a, &cx), AFE_READY);
	cr_assert_eq(a.base.result, 0);
	cr_assert_eq(afe_sem_available(&s), 0);
	cr_assert_eq(afe_sem_destroy(&s), 0);
}

Test(semaphore, a_large_request_is_not_overtaken_and_leaving_lets_others_in)
{
	struct counting_waker big, small;
	counting_waker_init(&big);
	counting_waker_init(&small);
	struct afe_context cbig = counting_context(&big, false);
	struct afe_context csmall = counting_context(&small, false);
	struct afe_semaphore s;
	afe_sem_init(&s, 1);
	struct afe_sem_acquire a_big, a_small;
	afe_sem_acquire_init(&a_big, &s, 3);
	afe_sem_acquire_init(&a_small, &s, 1);
	cr_assert_eq(POLL(&a_big, &cbig), AFE_PENDING);
	cr_assert_eq(POLL(&a_small, &csmall), AFE_PENDING, "the big one waits first");
	cr_assert_eq(afe_sem_try_acquire(&s, 1), -EAGAIN, "no overtaking");
	struct afe_context cancel = counting_context(&big, true);
	cr_assert_eq(POLL(&a_big, &cancel), AFE_READY);
	cr_assert_eq(a_big.base.result, -ECANCELED);
	cr_assert_eq(atomic_load(&small.wakes), 1, "with the big one gone, the small one fits");
	cr_assert_eq(POLL(&a_small, &csmall), AFE_READY);
	cr_assert_eq(afe_sem_available(&s), 0);

	/* Granted, then cancelled before it saw it: the permits come back. */
	afe_sem_acquire_init(&a_big, &s, 2);
	cr_assert_eq(POLL(&a_big, &cbig), AFE_PENDING);
	cr_assert_eq(afe_sem_release(&s, 2), 0);
	cr_assert_eq(afe_sem_available(&s), 0);
	cr_assert_eq(POLL(&a_big, &cancel), AFE_READY);
	cr_assert_eq(a_big.base.result, -ECANCELED);
	cr_assert_eq(afe_sem_available(&s), 2);
	cr_assert_eq(atomic_load(&big.refs), 0);
	cr_assert_eq(atomic_load(&small.refs), 0);
	cr_assert_eq(afe_sem_destroy(&s), 0);
}

/* A granted acquire cancelled before it reported gives its permits back;
 * releases meanwhile may have filled the count: it saturates, not wraps. */
Test(semaphore, a_cancelled_grant_gives_back_without_overflowing)
{
	struct counting_waker cw;
	counting_waker_init(&cw);
	struct afe_context cx = counting_context(&cw, false);
	struct afe_context cancel = counting_context(&cw, true);
	struct afe_semaphore s;
	afe_sem_init(&s, 0);
	struct afe_sem_acquire a;
	afe_sem_acquire_init(&a, &s, 5);
	cr_assert_eq(POLL(&a, &cx), AFE_PENDING);
	cr_assert_eq(afe_sem_release(&s, 5), 0, "granted to the waiter");
	cr_assert_eq(afe_sem_available(&s), 0);
	cr_assert_eq(afe_sem_release(&s, SIZE_MAX), 0, "the count is full");
	cr_assert_eq(POLL(&a, &cancel), AFE_READY);
	cr_assert_eq(a.base.result, -ECANCELED);
	size_t avail = afe_sem_available(&s);
	cr_assert_eq(avail, SIZE_MAX, "saturated, not wrapped round to 4");
	cr_assert_eq(atomic_load(&cw.refs), 0);
	cr_assert_eq(afe_sem_destroy(&s), 0);
}

Test(semaphore, bad_input)
{
	struct counting_waker cw;
	counting_waker_init(&cw);
	struct afe_context cx = counting_context(&cw, false);
	struct afe_semaphore s;
	afe_sem_init(&s, 1);
	cr_assert_eq(afe_sem_try_acquire(&s, 0), -EINVAL);
	cr_assert_eq(afe_sem_try_acquire(NULL, 1), -EINVAL);
	cr_assert_eq(afe_sem_release(NULL, 1), -EINVAL);
	cr_assert_eq(afe_sem_destroy(NULL), -EINVAL);
	cr_assert_eq(afe_sem_available(NULL), 0);
	struct afe_sem_acquire a;
	afe_sem_acquire_init(&a, &s, 0);
	cr_assert_eq(POLL(&a, &cx), AFE_READY);
	cr_assert_eq(a.base.result, -EINVAL);
	afe_sem_acquire_init(&a, NULL, 1);
	cr_assert_eq(POLL(&a, &cx), AFE_READY);
	cr_assert_eq(a.base.result, -EINVAL);
}

/* At most `limit` tasks are inside at once. */
struct limited {
	struct afe_future base;
	struct afe_semaphore *sem;
	atomic_int *inside, *peak;
	int i;
	struct afe_sem_acquire acq;
	struct afe_yield_now nap;
};

static int limited_poll(struct afe_future *f, struct afe_context *cx)
{
	struct limited *self = afe_container_of(f, struct limited, base);
	AFE_ASYNC_BEGIN(f, cx);
	for (self->i = 0; self->i < 500; self->i++) {
		afe_sem_acquire_init(&self->acq, self->sem, 1);
		AFE_AWAIT(&self->acq.base);
		int now = atomic_fetch_add(self->inside, 1) + 1;
		int peak = atomic_load(self->peak);
		while (now > peak && !atomic_compare_exchange_weak(self->peak, &peak, now))
			;
		afe_yield_now_init(&self->nap);
		AFE_AWAIT(&self->nap.base);
		atomic_fetch_sub(self->inside, 1);
		afe_sem_release(self->sem, 1);
	}
	AFE_RETURN(0);
	AFE_ASYNC_END;
}

Test(semaphore, limits_concurrency_between_tasks)
{
	struct afe_runtime *rt = test_runtime(2);
	struct afe_semaphore sem;
	afe_sem_init(&sem, 3);
	atomic_int inside = 0, peak = 0;
	enum { TASKS = 10 };
	struct afe_join_handle h[TASKS];
	for (int t = 0; t < TASKS; t++) {
		struct limited l = {.sem = &sem, .inside = &inside, .peak = &peak};
		afe_future_init(&l.base, limited_poll);
		cr_assert_eq(afe_spawn(rt, &l, &h[t]), 0);
	}
	for (int t = 0; t < TASKS; t++) {
		struct afe_join j;
		afe_join_init(&j, &h[t]);
		cr_assert_eq(test_block_on(rt, &j), 0);
	}
	cr_assert_leq(atomic_load(&peak), 3);
	cr_assert_eq(afe_sem_available(&sem), 3);
	cr_assert_eq(afe_sem_destroy(&sem), 0);
	test_runtime_destroy(rt);
}
