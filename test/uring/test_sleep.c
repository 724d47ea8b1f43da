/* SPDX-License-Identifier: MIT */
/* Sleeps: cancelling one that waits, one that never ends, a short sleep
 * added while the ring thread sleeps towards a far deadline, and a sleep
 * polled outside a runtime. */
#include <stdlib.h>
#include <unistd.h>

#include "helpers.h"

#define MS 1000000u

Test(sleep, cancelling_a_waiting_sleep_ends_it_with_ecanceled)
{
	struct afe_runtime *rt = test_runtime(2);
	struct afe_sleep forever;
	afe_sleep_init(&forever, UINT64_MAX);
	struct afe_timeout limited;
	afe_timeout_init(&limited, &forever.base, 10 * MS);
	uint64_t start = afe_now_ns();
	cr_assert_eq(test_block_on(rt, &limited), -ETIMEDOUT);
	cr_assert_lt(afe_now_ns() - start, 2000 * (uint64_t)MS);

	struct afe_join_handle h;
	afe_sleep_init(&forever, UINT64_MAX);
	cr_assert_eq(afe_spawn(rt, &forever, &h), 0);
	struct afe_cancel c;
	afe_cancel_init(&c, &h);
	intptr_t cancelled = test_block_on(rt, &c);
	cr_assert_eq(cancelled, -ECANCELED);
	test_runtime_destroy(rt);
}

/* The ring thread sleeps towards the hour-long sleep's tick; a 10 ms sleep
 * added then must wake it through the doorbell. */
Test(sleep, an_earlier_sleep_wakes_the_ring_thread, .timeout = 60)
{
	struct afe_runtime *rt = test_runtime(2);
	struct afe_sleep far;
	afe_sleep_init(&far, 3600000 * (uint64_t)MS);
	cr_assert_eq(afe_spawn(rt, &far, NULL), 0);
	for (int i = 0; i < 20; i++) {
		usleep(5000); /* the ring thread is asleep by now */
		struct afe_sleep near;
		afe_sleep_init(&near, 10 * MS);
		uint64_t start = afe_now_ns();
		cr_assert_eq(test_block_on(rt, &near), 0);
		uint64_t took = afe_now_ns() - start;
		cr_assert_geq(took, 10 * MS);
		cr_assert_lt(took, 1000 * (uint64_t)MS, "took %llu ns", (unsigned long long)took);
	}
	test_runtime_destroy(rt); /* the far sleep ends with -ECANCELED */
}

/* Many tasks sleep and cancel sleeps at random at once: every sleep ends
 * exactly once, with 0 or -ECANCELED (TSan watches the wheel's lock). */
struct sleep_churn {
	struct afe_future base;
	unsigned seed;
	int i;
	long ended;
	struct afe_sleep nap, guard;
	struct afe_timeout limited;
};

static int sleep_churn_poll(struct afe_future *f, struct afe_context *cx)
{
	struct sleep_churn *self = afe_container_of(f, struct sleep_churn, base);
	AFE_ASYNC_BEGIN(f, cx);
	for (self->i = 0; self->i < 2000; self->i++) {
		self->seed = self->seed * 1103515245u + 12345u;
		afe_sleep_init(&self->nap, (self->seed >> 16) % 3 * MS);
		afe_timeout_init(&self->limited, &self->nap.base, (self->seed >> 20) % 3 * MS);
		AFE_AWAIT(&self->limited.base);
		intptr_t r = self->limited.base.result;
		if (r != 0 && r != -ETIMEDOUT)
			AFE_RETURN(-1);
		self->ended++;
	}
	AFE_RETURN(self->ended);
	AFE_ASYNC_END;
}

Test(sleep, sleeps_and_cancels_from_many_tasks, .timeout = 300)
{
	struct afe_runtime *rt = test_runtime(4);
	enum { TASKS = 64 };
	struct afe_join_handle handles[TASKS];
	for (int i = 0; i < TASKS; i++) {
		struct sleep_churn c = {.seed = (unsigned)i};
		afe_future_init(&c.base, sleep_churn_poll);
		cr_assert_eq(afe_spawn(rt, &c, &handles[i]), 0);
	}
	for (int i = 0; i < TASKS; i++) {
		struct afe_join j;
		afe_join_init(&j, &handles[i]);
		intptr_t ended = test_block_on(rt, &j);
		cr_assert_eq(ended, 2000);
	}
	test_runtime_destroy(rt);
}

Test(sleep, polled_outside_a_runtime_is_einval)
{
	struct counting_waker cw;
	counting_waker_init(&cw);
	struct afe_context cx = counting_context(&cw, false);
	struct afe_sleep nap;
	afe_sleep_init(&nap, MS);
	cr_assert_eq(afe_future_poll(&nap.base, &cx), AFE_READY);
	cr_assert_eq(nap.base.result, -EINVAL);
	afe_sleep_until_init(&nap, 0);
	cr_assert_eq(afe_future_poll(&nap.base, &cx), AFE_READY);
	cr_assert_eq(nap.base.result, -EINVAL);
}
