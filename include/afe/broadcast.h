/* SPDX-License-Identifier: MIT */
/*
 * A broadcast channel: every receiver sees every item, in order, items of
 * a fixed size. The channel keeps the last `capacity` items sent in a
 * ring; a send never waits: when the ring is full it overwrites the
 * oldest item. A receiver that falls more than `capacity` items behind
 * loses the overwritten ones: its next receive reports how many it
 * missed and goes on from the oldest item still kept.
 *
 *   afe_bcast_init(&b, sizeof(struct event), 64);
 *   afe_bcast_subscribe(&b, &self->rx);       // from the next item sent
 *   afe_bcast_recv_init(&self->recv, &self->rx, &self->event);
 *   AFE_AWAIT(&self->recv.base);             // 0: the item is in event
 *   if (self->recv.missed) ...               // lost just before it
 *
 * Closing wakes every waiter: receivers take what they have not seen yet
 * (of what is kept), then get -EPIPE.
 *
 * A receiver (struct afe_bcast_rx) is the caller's, needs no call to drop
 * and serves one receive at a time; the sender does not wait for it, so
 * a slow receiver only loses items. Waiting allocates nothing: the future
 * links itself into the channel. Cancelling a waiting receive unlinks it
 * (-ECANCELED, nothing taken); in a select, a losing receive took nothing.
 * Items are copied in and out under a spinlock: keep them small.
 * All functions may be called from any thread, inside or outside tasks.
 */
#ifndef AFE_BROADCAST_H
#define AFE_BROADCAST_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common.h"
#include "future.h"
#include "waiter.h"

struct afe_bcast {
	/* Private. */
	atomic_flag lock; /* guards the fields below */
	bool closed;
	size_t item_size, capacity;
	uint64_t tail; /* items sent so far; item k sits in slot k % capacity */
	unsigned char *buf;
	struct afe_waitq waiters;
};

/* A receiver: the channel and the number of the next item it takes
 * (guarded by the channel's lock). */
struct afe_bcast_rx {
	/* Private. */
	struct afe_bcast *chan;
	uint64_t next;
};

/* Makes an open channel of items of item_size bytes keeping the last
 * capacity of them. Returns 0, -EINVAL (null channel, item_size or
 * capacity 0, or a ring past SIZE_MAX bytes) or -ENOMEM. */
AFE_EXPORT int afe_bcast_init(struct afe_bcast *b, size_t item_size, size_t capacity);

/* Frees the ring. Returns 0, -EINVAL for a null channel, -EBUSY while a
 * receive waits on it (nothing is changed). See waiter.h for when it may
 * be destroyed. */
AFE_EXPORT int afe_bcast_destroy(struct afe_bcast *b);

/* Makes rx a receiver of b that starts with the next item sent. Returns
 * 0, -EINVAL for a null argument. */
AFE_EXPORT int afe_bcast_subscribe(struct afe_bcast *b, struct afe_bcast_rx *rx);

/* Sends a copy of item to every receiver, overwriting the oldest item
 * kept when the ring is full. Never waits. Returns 0, -EPIPE once closed
 * (nothing is sent), -EINVAL for a null argument. */
AFE_EXPORT int afe_bcast_send(struct afe_bcast *b, const void *item);

/* Closes the channel and wakes every waiter (see above). Returns 0,
 * -EALREADY if it was closed, -EINVAL for a null channel. */
AFE_EXPORT int afe_bcast_close(struct afe_bcast *b);

/* Takes rx's next item into out without waiting. Returns 0, with the
 * number of items rx lost to overwriting just before this one in *missed
 * (missed may be NULL); -EAGAIN when there is none yet, -EPIPE when the
 * channel is closed and rx has taken what was kept, -EINVAL for a null
 * argument. */
AFE_EXPORT int afe_bcast_try_recv(struct afe_bcast_rx *rx, void *out, uint64_t *missed);

/*
 * The receive future: result 0 with rx's next item copied into out and
 * `missed` the number of items rx lost to overwriting just before it (0
 * when none); -EPIPE once the channel is closed and rx has taken what was
 * kept, -ECANCELED when cancelled while waiting, -EINVAL for a null
 * argument. A receive completed before a cancel reached it reports 0.
 */
struct afe_bcast_recv {
	struct afe_future base;
	struct afe_bcast_rx *rx;
	void *out;
	uint64_t missed;
	/* Private. */
	struct afe_waiter wait;
};
AFE_EXPORT void afe_bcast_recv_init(struct afe_bcast_recv *r, struct afe_bcast_rx *rx,
				    void *out);

#endif /* AFE_BROADCAST_H */
