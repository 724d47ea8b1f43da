/* SPDX-License-Identifier: MIT */
/*
 * A counting semaphore: acquiring n permits is a future.
 *
 * Fair: waiters are served in the order they started waiting; one waiting
 * for more permits than are free holds back those behind it (no
 * starvation of large requests). Released permits go straight to the
 * waiters they satisfy. Waiting allocates nothing.
 *
 * Cancelling a waiting acquire unlinks it (result -ECANCELED), which may
 * let those behind it through. One that was granted its permits but is
 * cancelled before it reported success gives them back (the count
 * saturates at SIZE_MAX, should releases have filled it meanwhile).
 */
#ifndef AFE_SEMAPHORE_H
#define AFE_SEMAPHORE_H

#include <stdatomic.h>
#include <stddef.h>

#include "common.h"
#include "future.h"
#include "waiter.h"

struct afe_semaphore {
	/* Private. */
	atomic_flag lock; /* guards the fields below */
	size_t permits;
	struct afe_waitq waiters;
};

/* Makes a semaphore with `permits` free permits. */
AFE_EXPORT void afe_sem_init(struct afe_semaphore *s, size_t permits);

/* Returns 0, -EINVAL for a null semaphore, -EBUSY while an acquire waits
 * on it (nothing is changed). Destroy only once every call and future on
 * it has finished (see waiter.h): a granted acquire cancelled before it
 * reported gives its permits back to the semaphore. */
AFE_EXPORT int afe_sem_destroy(struct afe_semaphore *s);

/* Takes n permits if they are free and nobody waits: 0, else -EAGAIN;
 * -EINVAL for a null semaphore or n == 0. */
AFE_EXPORT int afe_sem_try_acquire(struct afe_semaphore *s, size_t n);

/* Adds n permits, waking the waiters they satisfy. Returns 0, -EINVAL for
 * a null semaphore, -EOVERFLOW if the count would pass SIZE_MAX (nothing
 * is added). */
AFE_EXPORT int afe_sem_release(struct afe_semaphore *s, size_t n);

/* Free permits now. */
AFE_EXPORT size_t afe_sem_available(struct afe_semaphore *s);

/* The acquire future: result 0 once the n permits are ours, -ECANCELED,
 * -EINVAL for a null semaphore or n == 0. */
struct afe_sem_acquire {
	struct afe_future base;
	/* Private. */
	struct afe_semaphore *sem;
	size_t n;
	struct afe_waiter wait;
};
AFE_EXPORT void afe_sem_acquire_init(struct afe_sem_acquire *a, struct afe_semaphore *s,
				     size_t n);

#endif /* AFE_SEMAPHORE_H */
