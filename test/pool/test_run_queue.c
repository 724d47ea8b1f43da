/* SPDX-License-Identifier: MIT */
/* The local run queue: FIFO order, capacity, batch stealing, and an owner
 * racing stealers where every task must be taken exactly once. */
#include <criterion/criterion.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>

#include "pool/run_queue.h"

static struct afe_runnable *fake(uintptr_t i)
{
	return (struct afe_runnable *)(i * 16 + 16);
}

static uintptr_t unfake(struct afe_runnable *t)
{
	return (uintptr_t)t / 16 - 1;
}

Test(run_queue, fifo_order_and_capacity)
{
	static struct afe_run_queue q;
	afe_rq_init(&q);
	cr_assert_null(afe_rq_pop(&q));
	for (uintptr_t i = 0; i < AFE_RQ_CAP; i++)
		cr_assert(afe_rq_push(&q, fake(i)));
	cr_assert_not(afe_rq_push(&q, fake(999)), "full");
	cr_assert_eq(afe_rq_len(&q), AFE_RQ_CAP);
	for (uintptr_t i = 0; i < AFE_RQ_CAP; i++)
		cr_assert_eq(unfake(afe_rq_pop(&q)), i);
	cr_assert_null(afe_rq_pop(&q));
}

Test(run_queue, take_batch_takes_half_from_the_head)
{
	static struct afe_run_queue q;
	afe_rq_init(&q);
	for (uintptr_t i = 0; i < 10; i++)
		afe_rq_push(&q, fake(i));
	struct afe_runnable *out[AFE_RQ_CAP];
	cr_assert_eq(afe_rq_take_batch(&q, out, AFE_RQ_CAP), 5);
	for (uintptr_t i = 0; i < 5; i++)
		cr_assert_eq(unfake(out[i]), i);
	cr_assert_eq(afe_rq_take_batch(&q, out, 1), 1, "bounded by max");
	cr_assert_eq(unfake(afe_rq_pop(&q)), 6);
	afe_rq_pop(&q), afe_rq_pop(&q), afe_rq_pop(&q);
	cr_assert_eq(afe_rq_take_batch(&q, out, 8), 0, "empty");
}

#define RACE_ITEMS 2000000u
static struct afe_run_queue race_q;
static atomic_uchar seen[RACE_ITEMS];
static atomic_bool owner_done;

/* Checked by the test thread afterwards: Criterion's asserts belong on it. */
static atomic_uint out_of_range;

static void take(struct afe_runnable *t)
{
	uintptr_t i = unfake(t);
	if (i >= RACE_ITEMS)
		atomic_fetch_add(&out_of_range, 1);
	else
		atomic_fetch_add(&seen[i], 1);
}

static void *stealer(void *arg)
{
	(void)arg;
	struct afe_runnable *out[AFE_RQ_CAP / 2];
	for (;;) {
		bool done = atomic_load(&owner_done);
		uint32_t n = afe_rq_take_batch(&race_q, out, AFE_RQ_CAP / 2);
		for (uint32_t i = 0; i < n; i++)
			take(out[i]);
		if (done && n == 0)
			return NULL;
	}
}

Test(run_queue, owner_and_stealers_take_every_item_once, .timeout = 300)
{
	afe_rq_init(&race_q);
	pthread_t thieves[3];
	for (int i = 0; i < 3; i++)
		pthread_create(&thieves[i], NULL, stealer, NULL);
	for (uintptr_t i = 0; i < RACE_ITEMS; i++) {
		while (!afe_rq_push(&race_q, fake(i))) {
			struct afe_runnable *t = afe_rq_pop(&race_q);
			if (t)
				take(t);
		}
		if (i % 3 == 0) {
			struct afe_runnable *t = afe_rq_pop(&race_q);
			if (t)
				take(t);
		}
	}
	atomic_store(&owner_done, true);
	for (int i = 0; i < 3; i++)
		pthread_join(thieves[i], NULL);
	struct afe_runnable *t;
	while ((t = afe_rq_pop(&race_q)))
		take(t);
	cr_assert_eq(atomic_load(&out_of_range), 0);
	for (uintptr_t i = 0; i < RACE_ITEMS; i++)
		cr_assert_eq(atomic_load(&seen[i]), 1, "item %lu taken %u times", (unsigned long)i,
			     (unsigned)atomic_load(&seen[i]));
}
