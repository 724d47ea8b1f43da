/* SPDX-License-Identifier: MIT */
/*
 * A hierarchical timer wheel with millisecond ticks. It takes no lock:
 * its owner serialises every call (the runtime's sleeps, sleeps.h, hold
 * their mutex: workers insert and remove, the ring thread advances). Six
 * levels of 64 slots: level L's slots are 64^L ms
 * wide, so the wheel spans 64^6 ms (about 2.2 years; later deadlines wait
 * in the last level and are placed again each time it turns). Inserting and
 * removing a timer are O(1) list operations on the timer itself; a timer
 * moves down a level at most five times before it fires.
 *
 * Why not one kernel timeout per sleep: arming, firing and reaping each
 * costs a CQE and ~0.8 us of kernel time, and a hundred thousand sleepers
 * would be a hundred thousand kernel timers. Here the ring thread sleeps
 * in io_uring_enter (or epoll_wait) until the wheel's next deadline.
 */
#ifndef AFE_URING_TIMER_WHEEL_H
#define AFE_URING_TIMER_WHEEL_H

#include <stdbool.h>
#include <stdint.h>

#include "afe/sleep.h" /* struct afe_timer: next, pprev and the tick it fires at */

#define AFE_WHEEL_LEVELS 6
#define AFE_WHEEL_SLOTS 64

struct afe_timer_wheel {
	uint64_t elapsed; /* the current tick */
	uint64_t occupied[AFE_WHEEL_LEVELS]; /* a bit per non-empty slot */
	struct afe_timer *slots[AFE_WHEEL_LEVELS][AFE_WHEEL_SLOTS];
};

void afe_wheel_init(struct afe_timer_wheel *w);

/* Adds t to fire at tick `when`. Returns false, adding nothing, when that
 * tick has already come: the caller fires t at once. */
bool afe_wheel_insert(struct afe_timer_wheel *w, struct afe_timer *t, uint64_t when);

/* Takes t out of the wheel, or out of any other list built with
 * afe_timer_push (its links say which). */
void afe_wheel_remove(struct afe_timer_wheel *w, struct afe_timer *t);

/* Pushes t on a list of timers outside the wheel (head: the first). */
void afe_timer_push(struct afe_timer **head, struct afe_timer *t);

/* The first tick at which something may need doing (a timer firing or
 * moving down a level), or UINT64_MAX when the wheel is empty. */
uint64_t afe_wheel_next_tick(const struct afe_timer_wheel *w);

/* Advances to tick now, calling fire(t, arg) for every timer that is due,
 * each already taken out of the wheel. */
void afe_wheel_advance(struct afe_timer_wheel *w, uint64_t now,
		       void (*fire)(struct afe_timer *t, void *arg), void *arg);

/* Takes every timer out of the wheel, calling fire(t, arg) for each. */
void afe_wheel_drain(struct afe_timer_wheel *w, void (*fire)(struct afe_timer *t, void *arg),
		     void *arg);

#endif /* AFE_URING_TIMER_WHEEL_H */
