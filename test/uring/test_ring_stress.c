/* SPDX-License-Identifier: MIT */
/* Stress for the ring thread's doorbell: tasks await operations one after
 * another, so nearly every request finds the ring thread about to sleep or
 * asleep; and runtimes destroyed while their ring thread is busy, so the
 * stop finds it anywhere in its loop. A lost doorbell shows as a hang (the
 * test times out). */
#include "io_helpers.h"

#define OPS_PER_TASK 100000
#define TASKS 4

struct nop_loop {
	struct afe_future base;
	long i;
	struct afe_io io;
	struct afe_sleep nap;
};

static int nop_loop_poll(struct afe_future *f, struct afe_context *cx)
{
	struct nop_loop *self = afe_container_of(f, struct nop_loop, base);
	AFE_ASYNC_BEGIN(f, cx);
	for (self->i = 0; self->i < OPS_PER_TASK; self->i++) {
		if (self->i % 3 == 2) { /* the wheel's path too */
			afe_sleep_init(&self->nap, 1);
			AFE_AWAIT(&self->nap.base);
			if (self->nap.base.result != 0)
				AFE_RETURN(-1);
			continue;
		}
		afe_io_nop_init(&self->io);
		AFE_AWAIT(&self->io.base);
		if (self->io.base.result != 0)
			AFE_RETURN(-1);
	}
	AFE_RETURN(0);
	AFE_ASYNC_END;
}

Test(ring_stress, operations_one_after_another_never_lose_the_doorbell, .timeout = 600)
{
	struct afe_runtime *rt = test_runtime(2);
	struct afe_join_handle handles[TASKS];
	for (int i = 0; i < TASKS; i++) {
		struct nop_loop l;
		afe_future_init(&l.base, nop_loop_poll);
		cr_assert_eq(afe_spawn(rt, &l, &handles[i]), 0);
	}
	for (int i = 0; i < TASKS; i++) {
		struct afe_join j;
		afe_join_init(&j, &handles[i]);
		cr_assert_eq(test_block_on(rt, &j), 0);
	}
	test_runtime_destroy(rt);
}

/* Awaits NOPs until one fails (the runtime stops). */
static int nop_until_stopped_poll(struct afe_future *f, struct afe_context *cx)
{
	struct nop_loop *self = afe_container_of(f, struct nop_loop, base);
	AFE_ASYNC_BEGIN(f, cx);
	do {
		afe_io_nop_init(&self->io);
		AFE_AWAIT(&self->io.base);
	} while (self->io.base.result == 0);
	AFE_RETURN(0);
	AFE_ASYNC_END;
}

#define BUSY_STOPS 500

Test(ring_stress, a_runtime_destroyed_while_its_ring_is_busy_stops, .timeout = 600)
{
	for (int round = 0; round < BUSY_STOPS; round++) {
		struct afe_runtime *rt = test_runtime(1);
		struct nop_loop l;
		afe_future_init(&l.base, nop_until_stopped_poll);
		cr_assert_eq(afe_spawn(rt, &l, NULL), 0);
		/* Let the loop run a little, a different while each round. */
		for (int spin = 0; spin < round % 50 * 100; spin++)
			sched_yield();
		cr_assert_geq(afe_runtime_destroy(rt), 0, "round %d", round);
	}
}
