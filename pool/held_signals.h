/* SPDX-License-Identifier: MIT */
/*
 * Signals a worker holds back until it runs out of queued tasks: a wake of
 * another process (a cross-process bell) that a burst of tasks would
 * otherwise send once per task. The first send of a burst would wake the
 * peer, which then takes one message, answers, and sleeps again while
 * this side still writes the rest; held back, the burst's messages go
 * with one wake, as a hand-written ring publishes once per batch.
 *
 * Only a burst is held: a signal given while the worker's run queue holds
 * other tasks. A lone task's signal (a call and its answer, one at a
 * time) goes at once with those held before it, as holding it would only
 * add to the round trip. A held signal is sent before the worker looks
 * for work elsewhere or parks, after the task polls its holder allows
 * (AFE_HOLD_MAX_POLLS at most) and when the worker ends. The data it
 * announces must already be published: holding back only delays the wake,
 * as a slow waker would. A poll that blocks its worker (which no poll may
 * do) holds the worker's signals as long.
 */
#ifndef AFE_POOL_HELD_SIGNALS_H
#define AFE_POOL_HELD_SIGNALS_H

#include <stdbool.h>
#include <stdint.h>

#define AFE_HOLD_MAX_SIGNALS 8
#define AFE_HOLD_MAX_POLLS 32

typedef void afe_signal_fn(void *arg, uint32_t bits);

/* What keeps a held signal's arg alive: ref(obj) when it is held, and
 * unref(obj) once it was sent. */
struct afe_signal_owner {
	void (*ref)(void *obj);
	void (*unref)(void *obj);
};

/* Calls fn(arg, bits) later on a worker in a burst (bits OR'ed with those
 * held for the same fn and arg, owner held meanwhile), at once otherwise
 * and on any other thread. more: the caller knows its burst goes on (more
 * messages to send in this poll): held even with nothing queued. Sent
 * after max_polls task polls at the latest (1 to AFE_HOLD_MAX_POLLS), or
 * once held that many times. */
void afe_hold_signal(afe_signal_fn *fn, void *arg, uint32_t bits, bool more, unsigned max_polls,
		     const struct afe_signal_owner *owner, void *obj);

/* The worker loop's: after each task poll, and when it runs out of work. */
void afe_held_signals_after_poll(void);
void afe_held_signals_send(void);

#endif /* AFE_POOL_HELD_SIGNALS_H */
