/* SPDX-License-Identifier: MIT */
#include <pthread.h>

#include "helpers.h"

Test(oneshot, value_sent_before_or_after_the_receiver_waits)
{
	struct counting_waker cw;
	counting_waker_init(&cw);
	struct afe_context cx = counting_context(&cw, false);
	struct afe_oneshot o;
	struct afe_oneshot_recv r;

	afe_oneshot_init(&o);
	cr_assert_eq(afe_oneshot_send(&o, 11), 0);
	afe_oneshot_recv_init(&r, &o);
	cr_assert_eq(afe_future_poll(&r.base, &cx), AFE_READY);
	cr_assert_eq(r.base.result, 11);

	afe_oneshot_init(&o);
	afe_oneshot_recv_init(&r, &o);
	cr_assert_eq(afe_future_poll(&r.base, &cx), AFE_PENDING);
	cr_assert_eq(atomic_load(&cw.refs), 1, "the receiver's waker is kept");
	cr_assert_eq(afe_oneshot_send(&o, 12), 0);
	cr_assert_eq(atomic_load(&cw.wakes), 1);
	cr_assert_eq(atomic_load(&cw.refs), 0, "the waker was consumed");
	cr_assert_eq(afe_future_poll(&r.base, &cx), AFE_READY);
	cr_assert_eq(r.base.result, 12);
	cr_assert_eq(afe_oneshot_send(&o, 13), -EALREADY);
}

/* Once a value is there, neither a second send nor a close replaces it:
 * the receiver gets the first value. */
Test(oneshot, a_refused_send_or_close_keeps_the_value_sent)
{
	struct counting_waker cw;
	counting_waker_init(&cw);
	struct afe_context cx = counting_context(&cw, false);
	struct afe_oneshot o;
	struct afe_oneshot_recv r;

	afe_oneshot_init(&o);
	cr_assert_eq(afe_oneshot_send(&o, 21), 0);
	cr_assert_eq(afe_oneshot_send(&o, 22), -EALREADY);
	cr_assert_eq(afe_oneshot_close_sender(&o), -EALREADY);
	afe_oneshot_recv_init(&r, &o);
	cr_assert_eq(afe_future_poll(&r.base, &cx), AFE_READY);
	cr_assert_eq(r.base.result, 21);

	afe_oneshot_init(&o);
	afe_oneshot_recv_init(&r, &o);
	cr_assert_eq(afe_future_poll(&r.base, &cx), AFE_PENDING);
	cr_assert_eq(afe_oneshot_close_sender(&o), 0);
	cr_assert_eq(afe_oneshot_send(&o, 23), -EALREADY, "closed: no value after all");
	cr_assert_eq(afe_future_poll(&r.base, &cx), AFE_READY);
	cr_assert_eq(r.base.result, -EPIPE);
}

Test(oneshot, closed_ends_and_bad_input)
{
	struct counting_waker cw;
	counting_waker_init(&cw);
	struct afe_context cx = counting_context(&cw, false);
	struct afe_oneshot o;
	struct afe_oneshot_recv r;

	afe_oneshot_init(&o);
	afe_oneshot_recv_init(&r, &o);
	cr_assert_eq(afe_future_poll(&r.base, &cx), AFE_PENDING);
	cr_assert_eq(afe_oneshot_close_sender(&o), 0);
	cr_assert_eq(afe_future_poll(&r.base, &cx), AFE_READY);
	cr_assert_eq(r.base.result, -EPIPE);
	cr_assert_eq(afe_oneshot_close_sender(&o), -EALREADY);

	afe_oneshot_init(&o);
	afe_oneshot_recv_init(&r, &o);
	cr_assert_eq(afe_future_poll(&r.base, &cx), AFE_PENDING);
	cx.cancel = true;
	cr_assert_eq(afe_future_poll(&r.base, &cx), AFE_READY);
	cr_assert_eq(r.base.result, -ECANCELED);
	cr_assert_eq(atomic_load(&cw.refs), 0, "the cancelled receiver dropped its waker");
	cr_assert_eq(afe_oneshot_send(&o, 1), -EPIPE, "nobody receives any more");
	cr_assert_eq(afe_oneshot_close_sender(&o), -EALREADY, "the receiver closed it");

	cr_assert_eq(afe_oneshot_send(NULL, 1), -EINVAL);
	cr_assert_eq(afe_oneshot_close_sender(NULL), -EINVAL);
	afe_oneshot_recv_init(&r, NULL);
	cr_assert_eq(afe_future_poll(&r.base, &cx), AFE_READY);
	cr_assert_eq(r.base.result, -EINVAL);
}

/* A plain thread sends to a task blocked in block_on. */
static void *send_later(void *arg)
{
	afe_oneshot_send(arg, 77);
	return NULL;
}

Test(oneshot, send_from_a_plain_thread_wakes_a_task)
{
	struct afe_runtime *rt = test_runtime(2);
	for (int i = 0; i < 200; i++) {
		struct afe_oneshot o;
		afe_oneshot_init(&o);
		struct afe_oneshot_recv r;
		afe_oneshot_recv_init(&r, &o);
		pthread_t t;
		pthread_create(&t, NULL, send_later, &o);
		cr_assert_eq(test_block_on(rt, &r), 77);
		pthread_join(t, NULL);
	}
	test_runtime_destroy(rt);
}
