/* SPDX-License-Identifier: MIT */
/*
 * Sleeps: a future that is ready once a CLOCK_MONOTONIC time has come.
 *
 *   afe_sleep_init(&self->nap, 10 * 1000000ull);   // 10 ms from first poll
 *   AFE_AWAIT(&self->nap.base);                    // result 0
 *
 * A sleep is 64 bytes and allocates nothing: while it waits it is linked
 * into the runtime's timer wheel, which the ring thread advances in
 * millisecond ticks (one kernel timeout for all sleeps, not one each).
 * A sleep is never early and at most about a tick late.
 */
#ifndef AFE_SLEEP_H
#define AFE_SLEEP_H

#include <stdint.h>

#include "common.h"
#include "future.h"

/* A place in the timer wheel; its fields are the runtime's. */
struct afe_timer {
	/* Private. */
	struct afe_timer *next, **pprev;
	uint64_t when;
};

struct afe_sleep {
	struct afe_future base;
	/* Private. */
	struct afe_timer timer;
	struct afe_waker waker;
};

/*
 * Sleeps for ns nanoseconds from the first poll (afe_sleep_init) or until
 * the CLOCK_MONOTONIC time deadline_ns (afe_sleep_until_init; a time in the
 * past is ready at once). UINT64_MAX nanoseconds never ends.
 * Results: 0 once the time has come; -ECANCELED when cancelled or when the
 * runtime is destroyed while it waits; -ESHUTDOWN when first polled after
 * the runtime began to shut down (at the second poll: the first gives way,
 * see afe_runtime_destroy); -EINVAL when polled outside a runtime.
 */
AFE_EXPORT void afe_sleep_init(struct afe_sleep *s, uint64_t ns);
AFE_EXPORT void afe_sleep_until_init(struct afe_sleep *s, uint64_t deadline_ns);

/* The current CLOCK_MONOTONIC time in nanoseconds. */
AFE_EXPORT uint64_t afe_now_ns(void);

#endif /* AFE_SLEEP_H */
