/* SPDX-License-Identifier: MIT */
/*
 * Channels: many senders, many receivers, items of a fixed size.
 *
 *   capacity N > 0          bounded: a ring of N items; send waits when full
 *   AFE_CHAN_UNBOUNDED      a ring that grows; send never waits
 *   0                       rendezvous: a send waits for a receiver and
 *                           hands its item over directly
 *
 * Send and receive are futures; try_send and try_recv never wait. Waiting
 * futures are linked into the channel through their own storage, first
 * come first served, so waiting allocates nothing. An item goes straight
 * from a waiting sender to a waiting receiver when it can (bounded: into
 * the ring, and out to the first waiting receiver). Each sender's items
 * arrive in the order it sent them.
 *
 * A bounded channel's ring is lock-free: a send that finds room and a
 * receive that finds an item take no lock, unless they are a select's
 * branch; the waiter lists are consulted only when it is full or empty.
 * Unbounded and rendezvous channels take a spinlock for every operation.
 *
 * Closing wakes every waiter: waiting senders fail with -EPIPE (their item
 * is not delivered), receivers take what is still buffered and then get
 * -EPIPE. The channel counts its sender and receiver handles (one of each
 * at init): dropping the last sender closes it, so a receive on a channel
 * nobody can send to any more finishes with -EPIPE instead of waiting
 * forever; dropping the last receiver closes it too, failing sends.
 *
 *   struct afe_chan ch;                       // lives as long as its users
 *   afe_chan_init(&ch, sizeof(struct msg), 64);
 *   afe_chan_send_init(&self->send, &ch, &self->msg);
 *   AFE_AWAIT(&self->send.base);             // 0, or -EPIPE once closed
 *
 * Cancelling (dropping) a waiting send or receive unlinks it: a send then
 * delivered nothing, a receive took nothing, and the result is -ECANCELED.
 * An operation that had completed before it was cancelled reports what it
 * did (0: the item was sent, or received into the buffer). In a select
 * (afe_select), at most one channel operation among the branches happens.
 *
 * All functions may be called from any thread, inside or outside tasks.
 */
#ifndef AFE_CHANNEL_H
#define AFE_CHANNEL_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common.h"
#include "future.h"
#include "waiter.h"

#define AFE_CHAN_UNBOUNDED SIZE_MAX

#define AFE_CHAN_LINE 64 /* keeps each hot word of a channel on a line of its own */

struct afe_chan {
	/* Private. */
	/* A bounded channel's ring (capacity > 0, not unbounded): lock-free
	 * while it has room or items; see src/sync/chan_ring.h. */
	_Atomic uint64_t ring_tail; /* next push's position, and flags */
	char pad_tail[AFE_CHAN_LINE - sizeof(uint64_t)];
	_Atomic uint64_t ring_head; /* next pop's position, and a flag */
	char pad_head[AFE_CHAN_LINE - sizeof(uint64_t)];
	unsigned char *cells;	     /* capacity cells of cell_size bytes */
	size_t cell_size, ring_mask; /* ring_mask: capacity - 1 for a power of two, else 0 */
	size_t item_size, capacity;
	char pad_conf[AFE_CHAN_LINE - sizeof(void *) - 4 * sizeof(size_t)];

	atomic_flag lock; /* guards every field below */
	bool closed;
	size_t head, len, slots; /* unbounded channels: first item, items, room */
	unsigned char *buf;
	struct afe_waitq senders, receivers;
	size_t sender_handles, receiver_handles;
};

/*
 * Makes an open channel of items of item_size bytes with room for capacity
 * of them (0: rendezvous, AFE_CHAN_UNBOUNDED: no limit), with one sender
 * and one receiver handle. Returns 0, -EINVAL (null channel, item_size 0)
 * or -ENOMEM.
 */
AFE_EXPORT int afe_chan_init(struct afe_chan *ch, size_t item_size, size_t capacity);

/*
 * Frees the channel's storage; items still buffered are discarded.
 * Returns 0, -EINVAL for a null channel, or -EBUSY while a send or receive
 * is waiting on it (nothing is changed: close it, let the waiters finish,
 * then destroy). A future whose wait was ended by a close (or that a
 * select withdrew after another party unlinked it) does not touch the
 * channel again, even before it is polled; nor does close after its last
 * wake. Otherwise destroy only once every call and future on the channel
 * has finished (see waiter.h).
 */
AFE_EXPORT int afe_chan_destroy(struct afe_chan *ch);

/* Closes the channel and wakes every waiter (see above). Returns 0,
 * -EALREADY if it was closed, -EINVAL for a null channel. */
AFE_EXPORT int afe_chan_close(struct afe_chan *ch);

/* True once closed (by afe_chan_close or the last handle's drop), and
 * for a null channel. */
AFE_EXPORT bool afe_chan_is_closed(struct afe_chan *ch);

/* Items buffered now (0 for a rendezvous channel). */
AFE_EXPORT size_t afe_chan_len(struct afe_chan *ch);

/*
 * Handle counts. add_* takes one more handle: 0, or -EPIPE once closed
 * (-EINVAL for a null channel). drop_* gives one back: dropping the last
 * sender or the last receiver closes the channel. Returns 0, or -EINVAL
 * for a null channel or one with no such handle left.
 */
AFE_EXPORT int afe_chan_add_sender(struct afe_chan *ch);
AFE_EXPORT int afe_chan_drop_sender(struct afe_chan *ch);
AFE_EXPORT int afe_chan_add_receiver(struct afe_chan *ch);
AFE_EXPORT int afe_chan_drop_receiver(struct afe_chan *ch);

/*
 * Sends a copy of the item at `item` without waiting: to a waiting
 * receiver, or into the buffer. Returns 0, -EAGAIN (the buffer is full, or
 * on a rendezvous channel no receiver waits), -EPIPE once closed, -ENOMEM
 * (an unbounded channel could not grow), -EINVAL for a null argument.
 */
AFE_EXPORT int afe_chan_try_send(struct afe_chan *ch, const void *item);

/*
 * Receives one item into out without waiting. Returns 0, -EAGAIN when
 * there is none yet (also once closed, while a send that got in before
 * the close still copies its item), -EPIPE when the channel is closed and
 * drained, -EINVAL for a null argument.
 */
AFE_EXPORT int afe_chan_try_recv(struct afe_chan *ch, void *out);

/*
 * The send future: result 0 once the item was delivered to a receiver or
 * the buffer, -EPIPE if the channel is or gets closed first (not
 * delivered), -ENOMEM (unbounded growth failed), -ECANCELED when
 * cancelled while waiting, -EINVAL for a null channel or item. The item
 * is read when the send completes: it must stay put until then.
 */
struct afe_chan_send {
	struct afe_future base;
	/* Private. */
	struct afe_chan *chan;
	const void *item;
	struct afe_waiter wait;
};
AFE_EXPORT void afe_chan_send_init(struct afe_chan_send *s, struct afe_chan *ch,
				   const void *item);

/*
 * The receive future: result 0 with the item copied into out, -EPIPE once
 * the channel is closed and drained, -ECANCELED when cancelled while
 * waiting, -EINVAL for a null channel or out.
 */
struct afe_chan_recv {
	struct afe_future base;
	/* Private. */
	struct afe_chan *chan;
	void *out;
	struct afe_waiter wait;
};
AFE_EXPORT void afe_chan_recv_init(struct afe_chan_recv *r, struct afe_chan *ch, void *out);

#endif /* AFE_CHANNEL_H */
