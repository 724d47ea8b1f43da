/* SPDX-License-Identifier: MIT */
/*
 * Intervals: ticks every period, on a schedule fixed at the start.
 *
 *   afe_interval_init(&self->every, 100 * 1000000ull, AFE_INTERVAL_SKIP);
 *   for (;;) {
 *       afe_interval_tick_init(&self->tick, &self->every);
 *       AFE_AWAIT(&self->tick.base);   // result: ticks skipped, or -errno
 *       flush_metrics(self);
 *   }
 *
 * Tick k is due at start + k * period; the first (k = 0) is due at the
 * start, so it is ready at once with afe_interval_init. A tick waits in a
 * sleep (afe/sleep.h): never early, and at most about a millisecond late
 * on an idle runtime.
 *
 * Missed ticks. A tick is ready at once when asked for after its time.
 * It is late when the tick after it is due as well: the consumer came
 * back a whole period or more after the tick's time (its work took longer
 * than the period). The policy decides what follows a late tick:
 *
 * - AFE_INTERVAL_SKIP (the default, 0): the ticks whose time also passed
 *   are dropped; the tick returned stands for the latest of them (its
 *   deadline) and its result counts the ones dropped. The next tick is
 *   the first of the original schedule still to come. Ticks stay on the
 *   grid (every whole second stays every whole second) and a slow
 *   consumer is never handed a backlog: for periodic work (heartbeats,
 *   flushes, sampling) one late run does the job of several, and a burst
 *   of catch-up runs would only make it later still.
 * - AFE_INTERVAL_BURST: no tick is dropped; the late ones are ready at
 *   once, one after the other, until the consumer has caught up with the
 *   schedule. For counting work whose every tick matters (a rate limiter
 *   refilling a token per tick). A consumer always slower than its period
 *   never catches up: each tick is ready at once, forever.
 * - AFE_INTERVAL_DELAY: the schedule moves: the tick after a late one is
 *   due one period after the late one was taken, and the grid starts
 *   again from there. A slow consumer gets its next tick a full period
 *   after it took the last, however late it is.
 *
 * An interval is the caller's memory (no allocation) and has one consumer:
 * at most one tick future of an interval may be in use at a time.
 */
#ifndef AFE_INTERVAL_H
#define AFE_INTERVAL_H

#include <stdint.h>

#include "common.h"
#include "future.h"
#include "sleep.h"

enum afe_interval_policy {
	AFE_INTERVAL_SKIP = 0,
	AFE_INTERVAL_BURST = 1,
	AFE_INTERVAL_DELAY = 2,
};

/* An interval's schedule; its fields are the library's. */
struct afe_interval {
	uint64_t period_ns;
	uint64_t next_ns; /* when the next tick is due (CLOCK_MONOTONIC) */
	enum afe_interval_policy policy;
};

/* One tick: a future ready when the interval's next tick is due. */
struct afe_interval_tick {
	struct afe_future base;
	struct afe_interval *iv;
	/* Once ready with result >= 0: the time (CLOCK_MONOTONIC, ns) this
	 * tick was due; under AFE_INTERVAL_SKIP, the latest of the due
	 * ticks it stands for. */
	uint64_t deadline_ns;
	/* Private. */
	struct afe_sleep sleep;
};

/*
 * Makes iv an interval of period_ns nanoseconds whose first tick is due
 * now (afe_interval_init) or at the CLOCK_MONOTONIC time first_ns
 * (afe_interval_init_at). Returns 0, or -EINVAL for a null iv, a period
 * of 0 or an unknown policy (iv is then left alone).
 */
AFE_EXPORT int afe_interval_init(struct afe_interval *iv, uint64_t period_ns,
				 enum afe_interval_policy policy);
AFE_EXPORT int afe_interval_init_at(struct afe_interval *iv, uint64_t first_ns,
				    uint64_t period_ns, enum afe_interval_policy policy);

/*
 * Makes t a future ready at iv's next tick, and takes that tick when
 * ready. Result: the number of ticks dropped just before this one
 * (AFE_INTERVAL_SKIP only; always 0 under the other policies), with
 * t->deadline_ns set; or, with the tick left for the next tick future,
 * -ECANCELED when cancelled, -ESHUTDOWN or -EINVAL as afe_sleep gives
 * them (the runtime shutting down, polled outside a runtime); -EINVAL
 * for a null iv.
 */
AFE_EXPORT void afe_interval_tick_init(struct afe_interval_tick *t, struct afe_interval *iv);

#endif /* AFE_INTERVAL_H */
