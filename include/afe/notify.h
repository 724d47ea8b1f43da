/* SPDX-License-Identifier: MIT */
/*
 * Notify: tasks wait for a signal; wake one or wake all.
 *
 * notify_one wakes the longest-waiting notified future, or, when none
 * waits, leaves a permit (at most one) that the next one to wait consumes
 * at once: a notification sent just before the wait is not lost.
 * notify_all wakes every future waiting at that moment and leaves no
 * permit. A future counts as waiting once it has been polled.
 *
 * Cancelling a waiting future unlinks it (result -ECANCELED). One that
 * received a notify_one but is cancelled before it reported it passes it
 * on to the next waiter (or back as the permit).
 */
#ifndef AFE_NOTIFY_H
#define AFE_NOTIFY_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "common.h"
#include "future.h"
#include "waiter.h"

struct afe_notify {
	/* Private. */
	atomic_flag lock; /* guards the fields below */
	bool permit;
	uintptr_t epoch; /* notify_all calls so far */
	struct afe_waitq waiters;
};

AFE_EXPORT void afe_notify_init(struct afe_notify *n);

/* Returns 0, -EINVAL for a null notify, -EBUSY while a future waits on it
 * (nothing is changed). Destroy only once every call and future on it has
 * finished (see waiter.h): a notified future cancelled before it reported
 * a notify_one passes it on through the notify. */
AFE_EXPORT int afe_notify_destroy(struct afe_notify *n);

/* Wakes one waiter or stores the permit. Returns 1 when a waiter was woken,
 * 0 when the permit was stored, -EINVAL for a null notify. */
AFE_EXPORT int afe_notify_one(struct afe_notify *n);

/* Wakes every waiter: those waiting when it is called, even if another
 * notify_all overlaps. Returns how many (select branches that lost their
 * race not counted), or -EINVAL for a null notify. */
AFE_EXPORT int afe_notify_all(struct afe_notify *n);

/* The wait: result 0 once notified, -ECANCELED, -EINVAL for a null
 * notify. */
struct afe_notified {
	struct afe_future base;
	/* Private. */
	struct afe_notify *notify;
	struct afe_waiter wait;
};
AFE_EXPORT void afe_notified_init(struct afe_notified *w, struct afe_notify *n);

#endif /* AFE_NOTIFY_H */
