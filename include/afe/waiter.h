/* SPDX-License-Identifier: MIT */
/*
 * The waiter: the node a waiting future keeps in its own storage and links
 * into a primitive's waiter list (channels, mutex, semaphore, notify), so
 * waiting allocates nothing.
 *
 * Public only because futures embed it: its fields belong to the
 * primitive. While linked it is guarded by the primitive's lock. Whoever
 * completes it (a sender finding a waiting receiver, an unlock handing the
 * mutex over) moves the waker out, stores the outcome in value and then
 * publishes state DONE; from then on it touches neither the node nor,
 * once it has woken the waker, the future.
 *
 * Lifetime of the primitives (all of them): destroy one, and free its
 * memory, only once nothing uses it any more: every future on it has
 * finished (returned ready, or was never polled) and every call on it has
 * returned. destroy's -EBUSY catches a waiting future, not every misuse.
 * Two guarantees make this easy to meet from a woken task: a call that
 * wakes waiters (close, cancel, notify, unlock, release) does not touch
 * the primitive after its last wake, so the task it woke last may free it;
 * and a future woken by such a call (completed, or detached as a select's
 * losing branch) does not touch the primitive again on the polls that
 * finish it - except a cancelled one that passes on what it was handed
 * (a mutex, semaphore permits, a notify_one), which needs it alive.
 */
#ifndef AFE_WAITER_H
#define AFE_WAITER_H

#include <stdatomic.h>
#include <stdint.h>

#include "future.h"

struct afe_waiter {
	/* Private. */
	struct afe_waiter *next, *prev;
	struct afe_waker waker;
	struct afe_race *race; /* the select this wait is a branch of, or NULL */
	intptr_t race_index;
	intptr_t value;		/* the outcome, once DONE */
	_Atomic unsigned state; /* idle, linked, done, detached (src/sync/waitq.h) */
};

/* A FIFO of waiters. */
struct afe_waitq {
	/* Private. */
	struct afe_waiter *head, *tail;
};

#endif /* AFE_WAITER_H */
