/* SPDX-License-Identifier: MIT */
/*
 * The runtime's sleeps: a timer wheel under a mutex. A sleep's first poll
 * links it into the wheel from its worker, and a cancel unlinks it there,
 * so neither costs a trip to the ring thread. The ring thread advances the
 * wheel, sleeps in io_uring_enter until the next tick that matters, and is
 * woken through its doorbell only when a new sleep is due before that.
 */
#ifndef AFE_URING_SLEEPS_H
#define AFE_URING_SLEEPS_H

#include <linux/time_types.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "timer_wheel.h"

struct afe_sleeps {
	pthread_mutex_t lock; /* guards everything below */
	struct afe_timer_wheel wheel; /* in millisecond ticks since start_ns */
	struct afe_timer *fired;      /* out of the wheel, not yet woken */
	uint64_t start_ns;
	uint64_t ring_wakes_at; /* the tick the ring thread sleeps until; 0 while it is awake */
	bool closed;		/* the ring thread ended: no new sleeps */
};

void afe__sleeps_init(struct afe_sleeps *s);
void afe__sleeps_destroy(struct afe_sleeps *s);

/* Ring thread: ends the sleeps whose time has come, waking their tasks. */
void afe__sleeps_expire(struct afe_sleeps *s);

/* Ring thread, about to sleep (its sleeping flag already set): how long it
 * may, in *ts; false when no sleep is waiting. A sleep added later that is
 * due earlier rings the doorbell. */
bool afe__sleeps_plan_wait(struct afe_sleeps *s, struct __kernel_timespec *ts);

/* Ring thread, awake again: new sleeps need no doorbell. */
void afe__sleeps_awake(struct afe_sleeps *s);

/* Ring thread, stopping: every waiting sleep ends with -ECANCELED, and
 * sleeps polled from now on with -ESHUTDOWN. */
void afe__sleeps_close(struct afe_sleeps *s);

#endif /* AFE_URING_SLEEPS_H */
