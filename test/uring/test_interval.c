/* SPDX-License-Identifier: MIT */
/* Intervals: the schedule each missed-tick policy keeps when the consumer
 * is slow once, or slower than the period every time. The assertions are
 * on deadlines and counts, which follow from the policy whatever the
 * machine's load, not on how long anything took. */
#include <stdlib.h>

#include "helpers.h"

#define MS 1000000ull
#define PERIOD (20 * MS)
#define TICKS 6

/* What a consumer saw: when it asked for each tick, when each was ready,
 * its deadline and its result. */
struct trace {
	struct afe_interval iv;
	uint64_t start, work_ns[TICKS];
	uint64_t asked[TICKS], ready[TICKS], deadline[TICKS];
	intptr_t result[TICKS];
};

/* Takes TICKS ticks; after tick i it works (sleeps) work_ns[i]. */
struct consumer {
	struct afe_future base;
	struct trace *c;
	int i;
	struct afe_interval_tick tick;
	struct afe_sleep work;
};

static int consumer_poll(struct afe_future *f, struct afe_context *cx)
{
	struct consumer *self = afe_container_of(f, struct consumer, base);
	struct trace *c = self->c;
	AFE_ASYNC_BEGIN(f, cx);
	for (self->i = 0; self->i < TICKS; self->i++) {
		c->asked[self->i] = afe_now_ns();
		afe_interval_tick_init(&self->tick, &c->iv);
		AFE_AWAIT(&self->tick.base);
		c->ready[self->i] = afe_now_ns();
		c->result[self->i] = self->tick.base.result;
		c->deadline[self->i] = self->tick.deadline_ns;
		afe_sleep_init(&self->work, c->work_ns[self->i]);
		AFE_AWAIT(&self->work.base);
	}
	AFE_RETURN(0);
	AFE_ASYNC_END;
}

/* Runs a consumer of policy whose work after tick i is work_ns[i]. */
static struct trace *run_consumer(enum afe_interval_policy policy, const uint64_t *work_ns)
{
	struct trace *c = calloc(1, sizeof(*c));
	cr_assert(c);
	for (int i = 0; i < TICKS; i++)
		c->work_ns[i] = work_ns[i];
	struct afe_runtime *rt = test_runtime(2);
	c->start = afe_now_ns();
	cr_assert_eq(afe_interval_init_at(&c->iv, c->start, PERIOD, policy), 0);
	struct consumer run = {.c = c};
	afe_future_init(&run.base, consumer_poll);
	cr_assert_eq(test_block_on(rt, &run), 0);
	test_runtime_destroy(rt);
	for (int i = 0; i < TICKS; i++) { /* never early, whatever the policy */
		cr_assert_geq(c->ready[i], c->deadline[i], "tick %d early", i);
		cr_assert_geq(c->result[i], 0, "tick %d: %ld", i, (long)c->result[i]);
	}
	return c;
}

/* Slow once: 3.5 periods of work after the first tick, none after. */
static const uint64_t slow_once[TICKS] = {PERIOD * 7 / 2};
/* Slower than the period every time: 2.5 periods after each tick. */
static const uint64_t slow_always[TICKS] = {PERIOD * 5 / 2, PERIOD * 5 / 2, PERIOD * 5 / 2,
					    PERIOD * 5 / 2, PERIOD * 5 / 2, PERIOD * 5 / 2};

/* SKIP keeps the grid: each tick is a whole number of periods after the
 * start, one more than the ticks it dropped after the one before. (Tick 0
 * itself may be late on a loaded machine: what follows holds anyway.) */
static void check_skip_grid(const struct trace *c)
{
	uint64_t expect = c->start + (uint64_t)c->result[0] * PERIOD;
	for (int i = 0; i < TICKS; i++) {
		if (i > 0)
			expect += (uint64_t)(c->result[i] + 1) * PERIOD;
		cr_assert_eq(c->deadline[i], expect, "tick %d off the grid", i);
	}
}

/* DELAY: after a tick taken less than a period late the next is a period
 * after it (no drift by a sleep's own lateness); after one taken a period
 * late or more, a period after it was taken (between asking and ready). */
static void check_delay_schedule(const struct trace *c)
{
	for (int i = 0; i + 1 < TICKS; i++) {
		uint64_t next = c->deadline[i + 1];
		if (c->ready[i] < c->deadline[i] + PERIOD) {
			cr_assert_eq(next, c->deadline[i] + PERIOD, "tick %d", i + 1);
		} else if (c->asked[i] >= c->deadline[i] + PERIOD) {
			cr_assert_geq(next, c->asked[i] + PERIOD, "tick %d", i + 1);
			cr_assert_leq(next, c->ready[i] + PERIOD, "tick %d", i + 1);
		}
	}
}

Test(interval, bad_periods_and_policies_are_einval)
{
	struct afe_interval iv = {.period_ns = 5};
	cr_assert_eq(afe_interval_init(&iv, 0, AFE_INTERVAL_SKIP), -EINVAL);
	cr_assert_eq(afe_interval_init(&iv, MS, (enum afe_interval_policy)3), -EINVAL);
	cr_assert_eq(iv.period_ns, 5, "left alone");
	cr_assert_eq(afe_interval_init(NULL, MS, AFE_INTERVAL_SKIP), -EINVAL);
	cr_assert_eq(afe_interval_init_at(NULL, 0, MS, AFE_INTERVAL_SKIP), -EINVAL);
	struct afe_runtime *rt = test_runtime(1);
	struct afe_interval_tick t;
	afe_interval_tick_init(&t, NULL);
	cr_assert_eq(test_block_on(rt, &t), -EINVAL);
	test_runtime_destroy(rt);
	cr_assert_eq(afe_interval_init(&iv, MS, AFE_INTERVAL_DELAY), 0);
	cr_assert_eq(iv.period_ns, MS);
}

Test(interval, init_at_refuses_bad_periods_and_policies_and_leaves_iv_alone)
{
	struct afe_interval iv = {.period_ns = 5, .next_ns = 6, .policy = AFE_INTERVAL_BURST};
	cr_assert_eq(afe_interval_init_at(&iv, 100, 0, AFE_INTERVAL_SKIP), -EINVAL);
	cr_assert_eq(afe_interval_init_at(&iv, 100, MS, (enum afe_interval_policy)-1), -EINVAL);
	cr_assert_eq(iv.period_ns, 5, "left alone");
	cr_assert_eq(iv.next_ns, 6);
	cr_assert_eq(iv.policy, AFE_INTERVAL_BURST);
	cr_assert_eq(afe_interval_init_at(&iv, 100, MS, AFE_INTERVAL_SKIP), 0);
	cr_assert_eq(iv.next_ns, 100);
	cr_assert_eq(iv.policy, AFE_INTERVAL_SKIP);
}

/* Polled outside a runtime a tick fails as a sleep does (-EINVAL), even
 * when it is due, and leaves the tick for the next tick future. */
Test(interval, a_tick_polled_outside_a_runtime_is_einval_and_keeps_the_tick)
{
	struct afe_interval iv;
	cr_assert_eq(afe_interval_init(&iv, MS, AFE_INTERVAL_SKIP), 0);
	uint64_t due = iv.next_ns;
	struct counting_waker cw;
	counting_waker_init(&cw);
	struct afe_context cx = counting_context(&cw, false);
	struct afe_interval_tick t;
	afe_interval_tick_init(&t, &iv);
	cr_assert_eq(afe_future_poll(&t.base, &cx), AFE_READY);
	cr_assert_eq(t.base.result, -EINVAL);
	cr_assert_eq(iv.next_ns, due, "the tick was not taken");
	cr_assert_eq(atomic_load(&cw.refs), 0);
}

/* The first tick of afe_interval_init is due at once. */
Test(interval, the_first_tick_is_ready_at_once, .timeout = 30)
{
	struct afe_interval iv;
	uint64_t before = afe_now_ns();
	cr_assert_eq(afe_interval_init(&iv, 3600 * 1000 * MS, AFE_INTERVAL_SKIP), 0);
	struct afe_interval_tick t; /* awaited in place, not copied */
	afe_interval_tick_init(&t, &iv);
	struct afe_timeout limited;
	afe_timeout_init(&limited, &t.base, 60000 * MS);
	struct afe_runtime *rt = test_runtime(1);
	cr_assert_eq(test_block_on(rt, &limited), 0);
	test_runtime_destroy(rt);
	cr_assert_geq(t.deadline_ns, before);
	cr_assert_leq(t.deadline_ns, afe_now_ns());
	cr_assert_eq(iv.next_ns, t.deadline_ns + 3600 * 1000 * MS);
}

/* SKIP: the late tick stands for the latest one due, the ones before it
 * are counted as dropped, and the schedule stays on the grid. */
Test(interval, skip_drops_the_ticks_a_slow_consumer_missed, .timeout = 60)
{
	struct trace *c = run_consumer(AFE_INTERVAL_SKIP, slow_once);
	cr_assert_geq(c->result[1], 2, "ticks 1 and 2 passed in 3.5 periods: %ld",
		      (long)c->result[1]);
	cr_assert_leq(c->deadline[1], c->asked[1], "ready at once");
	check_skip_grid(c);
	cr_assert_gt(c->deadline[2], c->asked[1], "the next tick is still to come");
	free(c);
}

/* BURST: no tick is dropped; the late ones come at once. */
Test(interval, burst_delivers_every_tick_a_slow_consumer_missed, .timeout = 60)
{
	struct trace *c = run_consumer(AFE_INTERVAL_BURST, slow_once);
	for (int i = 0; i < TICKS; i++) {
		cr_assert_eq(c->result[i], 0);
		cr_assert_eq(c->deadline[i], c->start + (uint64_t)i * PERIOD, "tick %d", i);
	}
	for (int i = 1; i <= 3; i++) /* due before the consumer came back */
		cr_assert_lt(c->deadline[i], c->asked[1], "tick %d", i);
	free(c);
}

/* DELAY: the late tick is ready at once, and the next is due a period
 * after it was taken. */
Test(interval, delay_moves_the_schedule_after_a_late_tick, .timeout = 60)
{
	struct trace *c = run_consumer(AFE_INTERVAL_DELAY, slow_once);
	cr_assert_geq(c->asked[1], c->deadline[1] + PERIOD, "tick 1 was taken late");
	check_delay_schedule(c);
	free(c);
}

/* Consumers slower than the period every time. */
Test(interval, skip_with_a_consumer_always_slower_than_the_period, .timeout = 60)
{
	struct trace *c = run_consumer(AFE_INTERVAL_SKIP, slow_always);
	check_skip_grid(c);
	for (int i = 1; i < TICKS; i++) {
		cr_assert_geq(c->result[i], 1, "tick %d dropped %ld", i, (long)c->result[i]);
		cr_assert_leq(c->deadline[i], c->asked[i], "tick %d was due already", i);
	}
	free(c);
}

Test(interval, burst_with_a_consumer_always_slower_than_the_period, .timeout = 60)
{
	struct trace *c = run_consumer(AFE_INTERVAL_BURST, slow_always);
	for (int i = 1; i < TICKS; i++) {
		cr_assert_eq(c->deadline[i], c->start + (uint64_t)i * PERIOD, "tick %d", i);
		cr_assert_lt(c->deadline[i], c->asked[i], "tick %d: falling behind", i);
	}
	free(c);
}

Test(interval, delay_with_a_consumer_always_slower_than_the_period, .timeout = 60)
{
	struct trace *c = run_consumer(AFE_INTERVAL_DELAY, slow_always);
	check_delay_schedule(c);
	for (int i = 1; i < TICKS; i++) {
		cr_assert_eq(c->result[i], 0);
		cr_assert_leq(c->deadline[i], c->asked[i], "tick %d was due already", i);
	}
	free(c);
}

/* A tick cancelled while it waits leaves the schedule as it was. */
Test(interval, a_cancelled_tick_leaves_its_tick_for_the_next, .timeout = 30)
{
	struct afe_interval iv;
	uint64_t first = afe_now_ns() + 3600 * 1000 * MS;
	cr_assert_eq(afe_interval_init_at(&iv, first, MS, AFE_INTERVAL_BURST), 0);
	struct afe_runtime *rt = test_runtime(1);
	for (int i = 0; i < 2; i++) {
		struct afe_interval_tick t;
		afe_interval_tick_init(&t, &iv);
		struct afe_timeout limited;
		afe_timeout_init(&limited, &t.base, 10 * MS);
		cr_assert_eq(test_block_on(rt, &limited), -ETIMEDOUT);
		cr_assert_eq(t.base.result, -ECANCELED);
		cr_assert_eq(iv.next_ns, first);
	}
	test_runtime_destroy(rt);
}
