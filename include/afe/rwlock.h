/* SPDX-License-Identifier: MIT */
/*
 * An async read-write lock: any number of readers, or one writer.
 * Acquiring is a future, so a waiting task holds no worker thread, and a
 * task may hold the lock across awaits.
 *
 * Fair: waiters are served in the order they started waiting. A waiting
 * writer holds back the readers that come after it, so a stream of
 * readers cannot starve writers; when the writer unlocks, the readers
 * queued behind it (up to the next writer) get the lock together. An
 * unlock hands the lock straight to the waiters it lets in (no barging).
 * Waiting allocates nothing: the future links itself into the lock.
 *
 *   afe_rwlock_read_init(&self->rd, &shared->rw);
 *   AFE_AWAIT(&self->rd.base);               // 0: we read-hold it
 *   ... awaits ...
 *   afe_rwlock_read_unlock(&shared->rw);
 *
 * Cancelling a waiting future unlinks it (result -ECANCELED), which may
 * let those behind it through. One that was handed the lock but is
 * cancelled before it reported success gives it back: it never ends up
 * held by nobody. In a select, a losing read or write branch never holds
 * the lock. The lock is not tied to a task: any thread may unlock it.
 * All functions may be called from any thread, inside or outside tasks.
 */
#ifndef AFE_RWLOCK_H
#define AFE_RWLOCK_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>

#include "common.h"
#include "future.h"
#include "waiter.h"

struct afe_rwlock {
	/* Private. */
	atomic_flag lock; /* guards the fields below */
	bool writer;	  /* a writer holds it */
	size_t readers;	  /* readers holding it */
	struct afe_waitq waiters;
};

/* Makes an unlocked read-write lock. */
AFE_EXPORT void afe_rwlock_init(struct afe_rwlock *rw);

/* Returns 0, -EINVAL for a null lock, -EBUSY while it is held or a future
 * waits on it (nothing is changed). See waiter.h for when it may be
 * destroyed. */
AFE_EXPORT int afe_rwlock_destroy(struct afe_rwlock *rw);

/* Takes a read hold if no writer holds the lock and nobody waits: 0, else
 * -EBUSY (-EINVAL for a null lock). */
AFE_EXPORT int afe_rwlock_try_read(struct afe_rwlock *rw);

/* Takes the write hold if nobody holds the lock and nobody waits: 0, else
 * -EBUSY (-EINVAL for a null lock). */
AFE_EXPORT int afe_rwlock_try_write(struct afe_rwlock *rw);

/* Gives back one read hold, letting in the waiters that can go. Returns 0,
 * -EPERM if no reader holds it (unlocked or write-held), -EINVAL for a
 * null lock. */
AFE_EXPORT int afe_rwlock_read_unlock(struct afe_rwlock *rw);

/* Gives back the write hold, letting in the waiters that can go. Returns
 * 0, -EPERM if no writer holds it, -EINVAL for a null lock. */
AFE_EXPORT int afe_rwlock_write_unlock(struct afe_rwlock *rw);

/* The acquire futures: result 0 once the read (or write) hold is ours,
 * -ECANCELED, -EINVAL for a null lock. */
struct afe_rwlock_read {
	struct afe_future base;
	/* Private. */
	struct afe_rwlock *rw;
	struct afe_waiter wait;
};
AFE_EXPORT void afe_rwlock_read_init(struct afe_rwlock_read *r, struct afe_rwlock *rw);

struct afe_rwlock_write {
	struct afe_future base;
	/* Private. */
	struct afe_rwlock *rw;
	struct afe_waiter wait;
};
AFE_EXPORT void afe_rwlock_write_init(struct afe_rwlock_write *w, struct afe_rwlock *rw);

#endif /* AFE_RWLOCK_H */
