/* SPDX-License-Identifier: MIT */
/*
 * A oneshot: one value from one sender to one receiver.
 *
 * The struct lives wherever both sides can reach it (often inside a task's
 * future). Once the receive future has completed, the sender no longer
 * touches it, so it may be reinitialised and used again.
 */
#ifndef AFE_ONESHOT_H
#define AFE_ONESHOT_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "common.h"
#include "future.h"

struct afe_oneshot {
	/* Private. */
	atomic_flag lock; /* guards everything below */
	unsigned char state;
	intptr_t value;
	struct afe_waker receiver;
};

/* Makes an empty oneshot. */
AFE_EXPORT void afe_oneshot_init(struct afe_oneshot *o);

/*
 * Sends value and wakes the receiver. Callable from any thread.
 * Returns 0, -EALREADY if a value was already sent, -EPIPE if the receiver
 * closed its end (the value is not delivered), -EINVAL for a null oneshot.
 */
AFE_EXPORT int afe_oneshot_send(struct afe_oneshot *o, intptr_t value);

/*
 * Closes the sending side without a value: the receiver completes with
 * -EPIPE. Returns 0, -EALREADY once a value was sent or it was closed,
 * -EINVAL for a null oneshot.
 */
AFE_EXPORT int afe_oneshot_close_sender(struct afe_oneshot *o);

/* The receive future: ready with the value, -EPIPE when the sender
 * closed, -EINVAL for a null oneshot; cancelling it closes the receiving
 * end (result -ECANCELED; a later send gets -EPIPE), except when a select
 * withdraws it as a losing branch: the oneshot then stays open and keeps
 * a value that arrived for the next receive. Cancelled while a value is
 * there, it reports the value (result: the value), unless it is the branch
 * of a select that is itself cancelled: that reports -ECANCELED, so the
 * value is discarded. */
struct afe_oneshot_recv {
	struct afe_future base;
	/* Private. */
	struct afe_oneshot *oneshot;
};
AFE_EXPORT void afe_oneshot_recv_init(struct afe_oneshot_recv *r, struct afe_oneshot *o);

#endif /* AFE_ONESHOT_H */
