/* SPDX-License-Identifier: MIT */
/*
 * The producer's call layer and the links it sends over.
 *
 * The call layer (ipc_producer.c) keeps the pending table and the calls'
 * results, and ipc_deadlines.c their timeouts; it does not know where
 * requests go. A link does:
 * the shared-memory link (ipc_link_shm.c: rings in the consumer's object,
 * a pump task for the replies, a peer watch (pidfd)) or the in-process link
 * (ipc_link_local.c: a queue of call ids the consumer's receivers read, and
 * replies handed straight to the pending table). Tests drive the same
 * call layer through either.
 */
#ifndef AFE_IPC_PRODUCER_H
#define AFE_IPC_PRODUCER_H

#include <pthread.h>

#include "ipc_internal.h"
#include "../../pool/wake_batch.h"

#define AFE_IPC_PENDING_MASK (AFE_IPC_MAX_PENDING - 1)
_Static_assert((AFE_IPC_MAX_PENDING & AFE_IPC_PENDING_MASK) == 0, "a power of two");

struct afe_ipc_link_ops {
	/* Sends call's request, with p->lock held: 0, -EAGAIN when there is
	 * no room (the call waits for room on the shared-memory link's bell),
	 * or -EPIPE once the link is gone. Under the lock, so a link that
	 * goes (under it too) never gets a request after that. */
	int (*send)(struct afe_ipc_producer *p, const struct afe_ipc_call *call);
	/* After a send that returned 0, with the lock released: tells the
	 * consumer. */
	void (*sent)(struct afe_ipc_producer *p);
	/* Whether the consumer went away. */
	bool (*gone)(struct afe_ipc_producer *p);
	/* The user closed p: tell the consumer, end the link's tasks. */
	void (*close)(struct afe_ipc_producer *p);
	/* p is being freed: release what the link holds. */
	void (*free)(struct afe_ipc_producer *p);
};

struct afe_ipc_redial;

struct afe_ipc_producer {
	const struct afe_ipc_link_ops *link;
	/* NULL, or p reconnects (ipc_redial.c): p is then the user's handle
	 * only, with no table of its own; its calls run on a connection it
	 * holds, which it makes again after the consumer went away. */
	struct afe_ipc_redial *redial;
	struct afe_runtime *rt;
	bool owns_rt; /* connect made rt for a caller outside any runtime */
	_Atomic int refs;
	_Atomic bool gone, closed;
	/* Set before gone when a ring of the link was found spoilt (a
	 * sequence number no claim explains): calls end with -EPROTO, not
	 * -EPIPE. */
	_Atomic bool spoilt;
	pthread_mutex_t lock; /* the pending table, the calls in it, the local queue */
	/* The pending table: AFE_IPC_MAX_PENDING of each, on the heap, so
	 * that a producer that reconnects (which has none) stays small. */
	struct afe_ipc_call **pending;
	uint32_t *free_slots, n_free;
	uint32_t slots_used; /* no call ever had a slot at or past this */
	uint64_t serial;
	/* The timeout sweeper (ipc_deadlines.c): the time it sleeps until,
	 * and its waker, for a call due before then. Under lock. */
	uint64_t sweep_at;
	struct afe_waker sweeper;
	struct afe_join_handle deadlines; /* a child handle: close cancels it */
	_Atomic uint64_t n_calls, n_replies, late, malformed, timeouts;
	uint32_t timeout_ms[256];

	/* The shared-memory link. */
	struct afe_ipc_header *hdr;
	struct afe_ipc_entry *entry;
	uint32_t gen; /* the entry's generation while it is ours */
	struct afe_ipc_slots requests, replies;
	int consumer_pidfd;
	_Atomic uint32_t room_waiters;
	struct afe_notify room;
	struct afe_join_handle peer_watch;

	/* The in-process link: the ids of the calls sent, oldest first, for
	 * the consumer's receivers (under lock). A call that ended meanwhile
	 * left its id behind: the receiver skips it. */
	struct afe_ipc_consumer *consumer;
	uint64_t *queue;
	uint32_t queue_head, queue_tail;
};

/* Hands a reply to the pending call with call_id (its bytes, or the
 * callback), or counts it as late (or malformed: more for a call that
 * takes one reply). */
void afe__ipc_producer_deliver(struct afe_ipc_producer *p, uint64_t call_id, int32_t status,
			       bool more, const void *payload, uint32_t len);

/* Ends call with err, which its reply callback (if any) gets too: out of
 * the table, answered, its waker taken. With p->lock held; give the
 * returned waker to afe_waker_wake_if_set after unlocking. */
struct afe_waker afe__ipc_producer_fail_locked(struct afe_ipc_producer *p,
					       struct afe_ipc_call *call, int32_t err);

/* Starts p's timeout sweeper: 0 or the spawn's error. */
int afe_ipc_deadlines_start(struct afe_ipc_producer *p);

/* Sets the deadline of call, which starts at now, from its function's
 * timeout. With p->lock held; wake the returned waker (the sweeper's,
 * when call is due before it would look) after unlocking. */
struct afe_waker afe_ipc_deadline_set(struct afe_ipc_producer *p, struct afe_ipc_call *call,
				      uint64_t now);

/* Ends every pending call with err (the consumer is gone, or we close). */
void afe__ipc_producer_fail_all(struct afe_ipc_producer *p, int32_t err);

/* What a call of p gone ends with: -EPROTO once its link was spoilt, else
 * -EPIPE. Read after seeing gone. */
static inline int32_t afe__ipc_producer_gone_error(struct afe_ipc_producer *p)
{
	/* Pairs with the release store of spoilt before gone is set. */
	return atomic_load_explicit(&p->spoilt, memory_order_acquire) ? -EPROTO : -EPIPE;
}

/* ---- reconnecting (ipc_redial.c) ----------------------------------------------- */

/* Makes *p, connected to name with config (reconnect_wait_ms set), the
 * connection of a new producer that reconnects, returned in *p: 0, or
 * -ENOMEM (*p is then closed). */
int afe__ipc_redial_wrap(struct afe_ipc_producer **p, const char *name,
			 const struct afe_ipc_producer_config *config);

/* For a call of a producer that reconnects: the connection to run it on,
 * which may wait for a reconnect. AFE_PENDING (the task is woken when
 * the reconnect ends), or AFE_READY with *err 0 and call->conn set and
 * counted for the call, or *err the error the call ends with. */
int afe__ipc_redial_poll(struct afe_ipc_call *call, struct afe_context *cx, int *err);

/* Stops a call's wait for a reconnect (cancelled). */
void afe__ipc_redial_stop_waiting(struct afe_ipc_call *call, const struct afe_context *cx);

/* What afe_ipc_producer_is_gone and afe_ipc_producer_stats say of a
 * producer that reconnects. */
bool afe__ipc_redial_gone(struct afe_ipc_producer *p);
void afe__ipc_redial_stats(struct afe_ipc_producer *p, struct afe_ipc_stats *out);

/* A producer on rt with config's timeouts, not linked yet; with a
 * pending table when calls will run on it. NULL: no memory. */
struct afe_ipc_producer *afe__ipc_producer_new(struct afe_runtime *rt,
					       const struct afe_ipc_producer_config *config,
					       bool with_table);

/* Links p to the consumer serving name in this process (ipc_link_local.c): 0,
 * or -ECONNREFUSED (none does), -ENOMEM. */
int afe_ipc_link_local_connect(struct afe_ipc_producer *p, const char *name);

/* Links p to the consumer serving name through its shared-memory object
 * (ipc_link_shm.c): 0, or the errors of afe_ipc_producer_connect. On
 * failure the caller frees p (unref), which frees what the link set up. */
int afe_ipc_link_shm_connect(struct afe_ipc_producer *p, const char *name);

#endif /* AFE_IPC_PRODUCER_H */
