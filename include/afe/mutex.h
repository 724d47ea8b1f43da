/* SPDX-License-Identifier: MIT */
/*
 * An async mutex: locking is a future, so a task waiting for the lock
 * holds no worker thread, and a task may hold the lock across awaits.
 *
 * Fair: waiters get the lock in the order they started waiting, and
 * unlock hands it straight to the first of them (no barging). Waiting
 * allocates nothing: the lock future links itself into the mutex.
 *
 *   afe_mutex_lock_init(&self->lock, &shared->mutex);
 *   AFE_AWAIT(&self->lock.base);          // 0: we hold it
 *   ... awaits ...
 *   afe_mutex_unlock(&shared->mutex);
 *
 * Cancelling a waiting lock future unlinks it (result -ECANCELED). One that
 * was handed the lock but is cancelled before it reported success passes
 * the lock on (result -ECANCELED): it never ends up held by nobody.
 * The lock is not tied to a task: any thread may unlock it.
 */
#ifndef AFE_MUTEX_H
#define AFE_MUTEX_H

#include <stdatomic.h>
#include <stdbool.h>

#include "common.h"
#include "future.h"
#include "waiter.h"

struct afe_mutex {
	/* Private. */
	atomic_flag lock; /* guards the fields below */
	bool locked;
	struct afe_waitq waiters;
};

/* Makes an unlocked mutex. */
AFE_EXPORT void afe_mutex_init(struct afe_mutex *m);

/* Returns 0, -EINVAL for a null mutex, -EBUSY while it is locked or a lock
 * future waits on it (nothing is changed). See waiter.h for when a mutex
 * may be destroyed. */
AFE_EXPORT int afe_mutex_destroy(struct afe_mutex *m);

/* Takes the lock if it is free and nobody waits: 0, else -EBUSY
 * (-EINVAL for a null mutex). */
AFE_EXPORT int afe_mutex_try_lock(struct afe_mutex *m);

/* Releases the lock, handing it to the first waiter if any. Returns 0,
 * -EPERM if it was not locked, -EINVAL for a null mutex. */
AFE_EXPORT int afe_mutex_unlock(struct afe_mutex *m);

/* The lock future: result 0 once the lock is ours, -ECANCELED, -EINVAL
 * for a null mutex. */
struct afe_mutex_lock {
	struct afe_future base;
	/* Private. */
	struct afe_mutex *mutex;
	struct afe_waiter wait;
};
AFE_EXPORT void afe_mutex_lock_init(struct afe_mutex_lock *l, struct afe_mutex *m);

#endif /* AFE_MUTEX_H */
