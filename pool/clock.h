/* SPDX-License-Identifier: MIT */
/* The coarse clock, beside afe_now_ns (afe/sleep.h, clock.c). */
#ifndef AFE_POOL_CLOCK_H
#define AFE_POOL_CLOCK_H

#include <stdint.h>

/* CLOCK_MONOTONIC_COARSE in nanoseconds: ticks of a few ms, for a
 * fraction of afe_now_ns's cost. For figures that need no finer, such as
 * a task's age in a dump. */
uint64_t afe__now_coarse_ns(void);

#endif /* AFE_POOL_CLOCK_H */
