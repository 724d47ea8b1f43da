/* SPDX-License-Identifier: MIT */
/* Notify: one, all, and the stored permit. */
#include "helpers.h"

#define POLL(fut, cx) afe_future_poll(&(fut)->base, (cx))

Test(notify, one_wakes_the_first_waiter_or_leaves_a_permit)
{
	struct counting_waker a, b;
	counting_waker_init(&a);
	counting_waker_init(&b);
	struct afe_context ca = counting_context(&a, false), cb = counting_context(&b, false);
	struct afe_notify n;
	afe_notify_init(&n);
	cr_assert_eq(afe_notify_one(&n), 0, "nobody waits: a permit");
	cr_assert_eq(afe_notify_one(&n), 0, "still one permit");
	struct afe_notified wa, wb;
	afe_notified_init(&wa, &n);
	cr_assert_eq(POLL(&wa, &ca), AFE_READY, "the permit is consumed");
	afe_notified_init(&wa, &n);
	afe_notified_init(&wb, &n);
	cr_assert_eq(POLL(&wa, &ca), AFE_PENDING, "permits do not add up");
	cr_assert_eq(POLL(&wb, &cb), AFE_PENDING);
	cr_assert_eq(afe_notify_destroy(&n), -EBUSY);
	cr_assert_eq(afe_notify_one(&n), 1);
	cr_assert_eq(atomic_load(&a.wakes), 1);
	cr_assert_eq(atomic_load(&b.wakes), 0);
	cr_assert_eq(POLL(&wa, &ca), AFE_READY);
	cr_assert_eq(wa.base.result, 0);
	cr_assert_eq(POLL(&wb, &cb), AFE_PENDING);
	cr_assert_eq(afe_notify_one(&n), 1);
	cr_assert_eq(POLL(&wb, &cb), AFE_READY);
	cr_assert_eq(afe_notify_destroy(&n), 0);
}

Test(notify, all_wakes_every_waiter_and_leaves_no_permit)
{
	struct counting_waker cw;
	counting_waker_init(&cw);
	struct afe_context cx = counting_context(&cw, false);
	struct afe_notify n;
	afe_notify_init(&n);
	struct afe_notified w[5];
	for (int i = 0; i < 5; i++) {
		afe_notified_init(&w[i], &n);
		cr_assert_eq(POLL(&w[i], &cx), AFE_PENDING);
	}
	cr_assert_eq(afe_notify_all(&n), 5);
	for (int i = 0; i < 5; i++) {
		cr_assert_eq(POLL(&w[i], &cx), AFE_READY);
		cr_assert_eq(w[i].base.result, 0);
	}
	afe_notified_init(&w[0], &n);
	cr_assert_eq(POLL(&w[0], &cx), AFE_PENDING, "no permit left behind");
	cr_assert_eq(afe_notify_all(&n), 1);
	cr_assert_eq(POLL(&w[0], &cx), AFE_READY);
	cr_assert_eq(afe_notify_all(&n), 0);
	cr_assert_eq(atomic_load(&cw.refs), 0);
	cr_assert_eq(afe_notify_destroy(&n), 0);
}

/* Two notify_all calls overlap: the first has released the lock to wake a
 * full batch when a waiter links and the second call runs. Between them,
 * every waiter is woken, the late one included. */
struct overlap {
	struct afe_notify n;
	struct afe_notified late;
	struct afe_context *cx;
	int second;
};

static void overlap_on_wake(void *arg, int nth)
{
	struct overlap *o = arg;
	if (nth != 1)
		return;
	/* Meanwhile, on another thread: */
	afe_notified_init(&o->late, &o->n);
	cr_assert_eq(afe_future_poll(&o->late.base, o->cx), AFE_PENDING);
	o->second = afe_notify_all(&o->n);
}

Test(notify, overlapping_notify_all_calls_wake_every_waiter)
{
	enum { N = 17 }; /* one more than a wake batch */
	struct overlap o;
	struct hook_waker hw;
	hook_waker_init(&hw, overlap_on_wake, &o);
	struct afe_context cx = counting_context(&hw.cw, false);
	o.cx = &cx;
	o.second = -1;
	afe_notify_init(&o.n);
	struct afe_notified w[N];
	for (int i = 0; i < N; i++) {
		afe_notified_init(&w[i], &o.n);
		cr_assert_eq(POLL(&w[i], &cx), AFE_PENDING);
	}
	int first = afe_notify_all(&o.n);
	cr_assert_eq(first + o.second, N + 1, "each waiter woken once, the late one too");
	for (int i = 0; i < N; i++)
		cr_assert_eq(POLL(&w[i], &cx), AFE_READY);
	cr_assert_eq(POLL(&o.late, &cx), AFE_READY, "the late waiter was not lost");
	cr_assert_eq(atomic_load(&hw.cw.refs), 0);
	cr_assert_eq(afe_notify_destroy(&o.n), 0);
}

Test(notify, a_cancelled_notification_is_passed_on, .timeout = 15)
{
	struct counting_waker a, b;
	counting_waker_init(&a);
	counting_waker_init(&b);
	struct afe_context ca = counting_context(&a, false), cb = counting_context(&b, false);
	struct afe_context cancel_a = counting_context(&a, true);
	struct afe_notify n;
	afe_notify_init(&n);
	struct afe_notified wa, wb;
	afe_notified_init(&wa, &n);
	afe_notified_init(&wb, &n);
	cr_assert_eq(POLL(&wa, &ca), AFE_PENDING);
	cr_assert_eq(POLL(&wb, &cb), AFE_PENDING);
	cr_assert_eq(afe_notify_one(&n), 1);
	cr_assert_eq(POLL(&wa, &cancel_a), AFE_READY);
	cr_assert_eq(wa.base.result, -ECANCELED);
	cr_assert_eq(atomic_load(&b.wakes), 1, "passed on to b");
	cr_assert_eq(POLL(&wb, &cb), AFE_READY);
	cr_assert_eq(wb.base.result, 0);

	/* A waiter cancelled while waiting just leaves. */
	afe_notified_init(&wa, &n);
	cr_assert_eq(POLL(&wa, &ca), AFE_PENDING);
	cr_assert_eq(POLL(&wa, &cancel_a), AFE_READY);
	cr_assert_eq(wa.base.result, -ECANCELED);
	cr_assert_eq(afe_notify_one(&n), 0, "nobody waits any more");
	cr_assert_eq(atomic_load(&a.refs), 0);

	/* One woken by notify_all has nothing to pass on: cancelled, it wakes
	 * nobody and does not lock the notify (held meanwhile, standing for
	 * freed memory: a lock would hang until the timeout). */
	afe_notified_init(&wa, &n);
	afe_notified_init(&wb, &n);
	cr_assert_eq(POLL(&wa, &ca), AFE_READY, "takes the permit stored above");
	afe_notified_init(&wa, &n);
	cr_assert_eq(POLL(&wa, &ca), AFE_PENDING);
	cr_assert_eq(afe_notify_all(&n), 1);
	cr_assert_eq(POLL(&wb, &cb), AFE_PENDING, "notify_all left no permit");
	cr_assert_not(atomic_flag_test_and_set(&n.lock), "the lock was free");
	cr_assert_eq(POLL(&wa, &cancel_a), AFE_READY);
	cr_assert_eq(wa.base.result, -ECANCELED);
	atomic_flag_clear(&n.lock);
	cr_assert_eq(atomic_load(&b.wakes), 1, "nothing was passed on to b");
	struct afe_context cancel_b = counting_context(&b, true);
	cr_assert_eq(POLL(&wb, &cancel_b), AFE_READY);
	cr_assert_eq(atomic_load(&a.refs), 0);
	cr_assert_eq(atomic_load(&b.refs), 0);
	cr_assert_eq(afe_notify_destroy(&n), 0);
}

Test(notify, bad_input)
{
	struct counting_waker cw;
	counting_waker_init(&cw);
	struct afe_context cx = counting_context(&cw, false);
	cr_assert_eq(afe_notify_one(NULL), -EINVAL);
	cr_assert_eq(afe_notify_all(NULL), -EINVAL);
	cr_assert_eq(afe_notify_destroy(NULL), -EINVAL);
	struct afe_notified w;
	afe_notified_init(&w, NULL);
	cr_assert_eq(POLL(&w, &cx), AFE_READY);
	cr_assert_eq(w.base.result, -EINVAL);
}

