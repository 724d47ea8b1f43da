/* SPDX-License-Identifier: MIT */
/*
 * A time limit for any future: races it against a sleep. For operations on
 * the ring, afe_io_set_timeout (a linked timeout in the kernel) is cheaper.
 *
 *   afe_timeout_init(&self->limited, &self->work.base, 500 * 1000000ull);
 *   AFE_AWAIT(&self->limited.base);   // work's result, or -ETIMEDOUT
 *
 * On expiry the inner future is cancelled and awaited before the timeout
 * completes, so nothing it started is left running.
 */
#ifndef AFE_TIMEOUT_H
#define AFE_TIMEOUT_H

#include <stdint.h>

#include "combinators.h"
#include "common.h"
#include "future.h"
#include "sleep.h"

struct afe_timeout {
	struct afe_future base;
	struct afe_future *inner;
	/* Private. */
	struct afe_sleep sleep;
	struct afe_future *racers[2];
	struct afe_select race;
};

/* Limits inner (which must stay put while awaited) to ns nanoseconds from
 * the first poll. A NULL inner makes the result -EINVAL. */
AFE_EXPORT void afe_timeout_init(struct afe_timeout *t, struct afe_future *inner, uint64_t ns);

#endif /* AFE_TIMEOUT_H */
