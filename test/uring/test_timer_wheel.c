/* SPDX-License-Identifier: MIT */
/* The timer wheel against a brute-force model: every timer fires exactly
 * once, at the first advance that reaches its tick, never before; removed
 * timers never fire. */
#include <stdlib.h>

#include "helpers.h"
#include "uring/timer_wheel.h"

#define TIMERS 20000

static struct afe_timer timers[TIMERS];
static uint64_t deadline[TIMERS];
static bool armed[TIMERS];
static uint64_t fired_at[TIMERS];
static unsigned fire_count[TIMERS];
static uint64_t current_now;

static void on_fire(struct afe_timer *t, void *arg)
{
	(void)arg;
	size_t i = (size_t)(t - timers);
	fire_count[i]++;
	fired_at[i] = current_now;
}

static uint64_t rng_state = 88172645463325252u;
static uint64_t next_random(void)
{
	rng_state ^= rng_state << 13;
	rng_state ^= rng_state >> 7;
	rng_state ^= rng_state << 17;
	return rng_state;
}

/* Distances from a millisecond to years, so every level is used. */
static uint64_t random_distance(void)
{
	unsigned bits = (unsigned)(next_random() % 40);
	return 1 + next_random() % (UINT64_C(1) << bits);
}

Test(timer_wheel, fires_each_timer_once_at_its_tick)
{
	struct afe_timer_wheel w;
	afe_wheel_init(&w);
	current_now = 0;
	for (size_t i = 0; i < TIMERS; i++) {
		deadline[i] = random_distance();
		armed[i] = afe_wheel_insert(&w, &timers[i], deadline[i]);
		cr_assert(armed[i]);
	}
	/* Remove every tenth timer. */
	for (size_t i = 0; i < TIMERS; i += 10) {
		afe_wheel_remove(&w, &timers[i]);
		armed[i] = false;
	}
	uint64_t horizon = UINT64_C(1) << 40;
	while (current_now < horizon) {
		uint64_t next = afe_wheel_next_tick(&w);
		if (next == UINT64_MAX)
			break;
		cr_assert_geq(next, current_now);
		/* Sometimes jump straight to the next tick, sometimes past it. */
		uint64_t step = next_random() % 3 == 0 ? next - current_now : random_distance();
		current_now += step ? step : 1;
		afe_wheel_advance(&w, current_now, on_fire, NULL);
	}
	for (size_t i = 0; i < TIMERS; i++) {
		if (!armed[i]) {
			cr_assert_eq(fire_count[i], 0, "removed timer %zu fired", i);
			continue;
		}
		cr_assert_eq(fire_count[i], 1, "timer %zu fired %u times", i, fire_count[i]);
		cr_assert_geq(fired_at[i], deadline[i], "timer %zu fired early", i);
	}
	cr_assert_eq(afe_wheel_next_tick(&w), UINT64_MAX);
}

Test(timer_wheel, next_tick_is_exact_for_near_timers_and_past_ticks_are_refused)
{
	struct afe_timer_wheel w;
	afe_wheel_init(&w);
	current_now = 0;
	afe_wheel_advance(&w, 1000, on_fire, NULL);
	struct afe_timer t;
	cr_assert_not(afe_wheel_insert(&w, &t, 1000), "a tick that has come fires at once");
	cr_assert(afe_wheel_insert(&w, &t, 1010));
	cr_assert_eq(afe_wheel_next_tick(&w), 1010);
	afe_wheel_remove(&w, &t);
	/* Past the current 64-tick window: first it moves down, at 1024. */
	cr_assert(afe_wheel_insert(&w, &t, 1030));
	cr_assert_eq(afe_wheel_next_tick(&w), 1024);
	afe_wheel_advance(&w, 1024, on_fire, NULL);
	cr_assert_eq(afe_wheel_next_tick(&w), 1030);
	afe_wheel_remove(&w, &t);
	cr_assert_eq(afe_wheel_next_tick(&w), UINT64_MAX);
	cr_assert(afe_wheel_insert(&w, &t, UINT64_MAX), "the far future is accepted");
	cr_assert_lt(afe_wheel_next_tick(&w), UINT64_MAX);
}
