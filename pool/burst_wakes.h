/* SPDX-License-Identifier: MIT */
/*
 * Wakes a worker holds back until it runs out of queued tasks: the wake
 * of another process (a cross-process bell) that a burst of tasks would
 * otherwise send once per task. The first send of a burst would wake the
 * peer, which then takes one message, answers, and sleeps again while
 * this side still writes the rest; held back, the burst's messages go
 * with one wake, as a hand-written ring publishes once per batch.
 *
 * Only a burst is held: a wake given while the worker's run queue holds
 * other tasks. A lone task's wake (a call and its answer, one at a
 * time) goes at once with those held before it, as holding it would only
 * add to the round trip. A held wake is sent before the worker looks
 * for work elsewhere or parks, after the task polls its holder allows
 * (AFE_BURST_MAX_POLLS at most) and when the worker ends. The data it
 * announces must already be published: holding back only delays the wake,
 * as a slow waker would. A poll that blocks its worker (which no poll may
 * do) holds the worker's wakes as long.
 */
#ifndef AFE_POOL_BURST_WAKES_H
#define AFE_POOL_BURST_WAKES_H

#include <stdbool.h>
#include <stdint.h>

#define AFE_BURST_MAX_WAKES 8
#define AFE_BURST_MAX_POLLS 32

typedef void afe_burst_wake_fn(void *arg, uint32_t bits);

/* What keeps a held wake's arg alive: ref(obj) when it is held, and
 * unref(obj) once it was sent. */
struct afe_burst_wake_owner {
	void (*ref)(void *obj);
	void (*unref)(void *obj);
};

/* Calls fn(arg, bits) later on a worker in a burst (bits OR'ed with those
 * held for the same fn and arg, owner held meanwhile), at once otherwise
 * and on any other thread. more: the caller knows its burst goes on (more
 * messages to send in this poll): held even with nothing queued. Sent
 * after max_polls task polls at the latest (1 to AFE_BURST_MAX_POLLS), or
 * once held that many times. */
void afe_burst_wake_defer(afe_burst_wake_fn *fn, void *arg, uint32_t bits, bool more, unsigned max_polls,
		     const struct afe_burst_wake_owner *owner, void *obj);

/* The worker loop's: after each task poll, and when it runs out of work. */
void afe_burst_wakes_after_poll(void);
void afe_burst_wakes_flush(void);

#endif /* AFE_POOL_BURST_WAKES_H */
