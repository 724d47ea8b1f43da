/* SPDX-License-Identifier: MIT */
/* The clock (afe_now_ns, afe/sleep.h): below the pool, which times its
 * spins and inline runs with it, and the ring, which times sleeps; and
 * its coarse twin (clock.h). */
#include "clock.h"

#include <time.h>

#include "afe/sleep.h"

static uint64_t now_on(clockid_t clock)
{
	struct timespec ts;
	clock_gettime(clock, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

uint64_t afe_now_ns(void)
{
	return now_on(CLOCK_MONOTONIC);
}

uint64_t afe__now_coarse_ns(void)
{
	return now_on(CLOCK_MONOTONIC_COARSE);
}
