/* SPDX-License-Identifier: MIT */
/* The clock (afe_now_ns, afe/sleep.h): below the pool, which times its
 * spins and inline runs with it, and the ring, which times sleeps. */
#include <time.h>

#include "afe/sleep.h"

uint64_t afe_now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}
