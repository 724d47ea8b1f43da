/* SPDX-License-Identifier: MIT */
/*
 * A watch channel: holds the latest value (a fixed size), which senders
 * replace and receivers watch. A receiver does not see every value, only
 * the latest one whenever it looks: meant for configuration, state,
 * progress. Each send bumps the value's version; a receiver remembers
 * the version it last saw, and its `changed` future completes once the
 * version differs.
 *
 *   afe_wchan_init(&w, sizeof(struct config), &initial);
 *   afe_wchan_subscribe(&w, &self->rx);       // the current value is seen
 *   afe_wchan_changed_init(&self->changed, &self->rx, &self->config);
 *   AFE_AWAIT(&self->changed.base);          // 0: the new value is copied
 *
 * send never waits: it replaces the value and wakes every changed future
 * waiting. Values are copied in and out under a spinlock: keep them
 * small (a few cache lines). close wakes every waiter: a receiver that
 * has not seen the latest value still gets it, then -EPIPE.
 *
 * A receiver (struct afe_wchan_rx) is the caller's, needs no call to drop,
 * and serves one changed future at a time. Waiting allocates nothing: the
 * future links itself into the channel. Cancelling a waiting changed
 * future unlinks it (-ECANCELED); in a select, a losing changed branch
 * took nothing (the receiver's version is unchanged).
 * All functions may be called from any thread, inside or outside tasks.
 */
#ifndef AFE_WATCH_CHAN_H
#define AFE_WATCH_CHAN_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common.h"
#include "future.h"
#include "waiter.h"

struct afe_wchan {
	/* Private. */
	atomic_flag lock; /* guards the fields below */
	bool closed;
	size_t item_size;
	uint64_t version; /* sends so far */
	unsigned char *value;
	struct afe_waitq waiters;
};

/* A receiver: the channel and the version it saw last (guarded by the
 * channel's lock). */
struct afe_wchan_rx {
	/* Private. */
	struct afe_wchan *chan;
	uint64_t seen;
};

/* Makes an open channel holding a copy of `initial` (item_size bytes;
 * NULL: zeros), version 0. Returns 0, -EINVAL (null channel, item_size 0)
 * or -ENOMEM. */
AFE_EXPORT int afe_wchan_init(struct afe_wchan *w, size_t item_size, const void *initial);

/* Frees the value. Returns 0, -EINVAL for a null channel, -EBUSY while a
 * changed future waits on it (nothing is changed). See waiter.h for when
 * it may be destroyed. */
AFE_EXPORT int afe_wchan_destroy(struct afe_wchan *w);

/* Replaces the value with a copy of item and wakes the changed futures.
 * Never waits. Returns 0, -EPIPE once closed (nothing is changed),
 * -EINVAL for a null argument. */
AFE_EXPORT int afe_wchan_send(struct afe_wchan *w, const void *item);

/* Closes the channel and wakes every waiter (see above). Returns 0,
 * -EALREADY if it was closed, -EINVAL for a null channel. */
AFE_EXPORT int afe_wchan_close(struct afe_wchan *w);

/* True once closed, and for a null channel. */
AFE_EXPORT bool afe_wchan_is_closed(struct afe_wchan *w);

/* Copies the current value into out, touching no receiver. Returns 0,
 * -EINVAL for a null argument. */
AFE_EXPORT int afe_wchan_copy(struct afe_wchan *w, void *out);

/* Makes rx a receiver of w that has seen the current value. Returns 0,
 * -EINVAL for a null argument. */
AFE_EXPORT int afe_wchan_subscribe(struct afe_wchan *w, struct afe_wchan_rx *rx);

/* Copies the current value into out (may be NULL) and marks it seen by
 * rx. Returns 1 when it was new to rx, 0 when rx had seen it, -EINVAL
 * for a null receiver or channel. */
AFE_EXPORT int afe_wchan_read(struct afe_wchan_rx *rx, void *out);

/* Whether rx has a value it has not seen: 1 yes, 0 no, -EPIPE when not
 * and the channel is closed (none will come), -EINVAL for a null
 * receiver or channel. Marks nothing. */
AFE_EXPORT int afe_wchan_has_changed(struct afe_wchan_rx *rx);

/*
 * The changed future: result 0 once the channel holds a value rx has not
 * seen; that value is copied into out (may be NULL) and marked seen. At
 * once if rx has not seen the current value. -EPIPE when the channel is
 * or gets closed and rx has seen its last value, -ECANCELED, -EINVAL for
 * a null receiver or channel.
 */
struct afe_wchan_changed {
	struct afe_future base;
	struct afe_wchan_rx *rx;
	void *out;
	/* Private. */
	struct afe_waiter wait;
};
AFE_EXPORT void afe_wchan_changed_init(struct afe_wchan_changed *c, struct afe_wchan_rx *rx,
				       void *out);

#endif /* AFE_WATCH_CHAN_H */
