/* SPDX-License-Identifier: MIT */
/*
 * The consumer's state and what its files share (all of it internal):
 *   ipc_consumer.c         the consumer's life (serve, close, stats) and its
 *                          pump task; its invariants head that file
 *   ipc_consumer_peers.c   shared-memory producers coming and going
 *   ipc_consumer_locals.c  producers of this process (the in-process link)
 *   ipc_consumer_frames.c  taking requests off the producers, pushing
 *                          replies and the resets stalled producers are owed
 *   ipc_recv_reply.c       the user's receive and reply futures
 */
#ifndef AFE_IPC_CONSUMER_H
#define AFE_IPC_CONSUMER_H

#include <pthread.h>

#include "ipc_internal.h"

struct afe_ipc_peer {
	pthread_mutex_t lock; /* guards everything below, and the rings' use */
	bool live;
	bool watched; /* a peer watch watches its process (the pump's field) */
	/* The claim the pump last saw in the entry while it was not live, and
	 * when (this process's clock): see free_abandoned. The pump's. */
	uint32_t claim;
	uint64_t claim_seen_ns, claim_checked_ns;
	uint32_t gen;
	struct afe_ipc_slots requests, replies;
	struct afe_join_handle peer_watch;
	_Atomic bool died; /* set by the peer watch; the pump drops it */
	/* Replies to generation stalled_gen were dropped (reset_status
	 * -ETIMEDOUT), or its request ring is spoilt (-EPROTO): it is owed a
	 * reset (while it is still gen) before any other reply. */
	bool stalled;
	uint32_t stalled_gen;
	int32_t reset_status;
};

struct afe_ipc_consumer {
	struct afe_runtime *rt;
	/* The shared-memory object; for a consumer serving in-process only,
	 * a header of its own (entries never used: the pump sleeps on it). */
	struct afe_ipc_header *hdr;
	bool shm;
	char path[AFE_IPC_NAME_MAX + 2];
	_Atomic int refs;
	_Atomic bool closed, name_released;
	_Atomic uint32_t idle, room_waiters, next_peer;
	_Atomic uint32_t live_peers; /* a bit per live peer: scans skip the rest */
	_Atomic uint32_t stalled_peers; /* peers stalled: the pump wants room */
	uint64_t room_ns; /* how long a reply waits for room */
	struct afe_notify work, room;
	/* Wakes the pump for events of this process (a producer's death, a
	 * close): unlike the bell, nothing a peer writes can silence it. */
	struct afe_notify kick;
	bool serve_all;
	uint8_t served[32]; /* a bit per function id */
	_Atomic uint64_t calls, replies, malformed, unknown_fn, peers_gone, repairs, timeouts;
	struct afe_ipc_peer peers[AFE_IPC_MAX_PRODUCERS];
	/* The producers of this process (the in-process link). */
	pthread_mutex_t local_lock;
	struct afe_ipc_producer **locals;
	uint32_t n_locals, locals_cap, next_local;
	_Atomic bool has_locals; /* n_locals > 0: takes skip the lock otherwise */
	/* Set up: the name is registered before, so that a second consumer
	 * of it is refused early; producers that find it meanwhile are
	 * refused until then. */
	_Atomic bool ready;
};

/* A count of c: unref gives it back and frees c with the last;
 * release is unref for a void * callback; owner keeps c (and its
 * mapping) alive while a bell ring is held back. ipc_consumer.c. */
void afe__ipc_consumer_unref(struct afe_ipc_consumer *c);
void afe__ipc_consumer_release(void *c);
extern const struct afe_burst_wake_owner afe__ipc_consumer_owner;

/* Whether c serves function fn. */
static inline bool afe__ipc_consumer_serves(const struct afe_ipc_consumer *c, unsigned fn)
{
	return c->serve_all || (c->served[fn / 8] >> (fn % 8) & 1);
}

/* Shared-memory producers coming and going (ipc_consumer_peers.c), all
 * from the pump: sync_peers brings the peers in line with the entries;
 * roster_changed says whether an entry changed since; drop_peer stops
 * using peer i and frees its entry. */
void afe__ipc_consumer_sync_peers(struct afe_ipc_consumer *c);
bool afe__ipc_consumer_roster_changed(struct afe_ipc_consumer *c);
void afe__ipc_consumer_drop_peer(struct afe_ipc_consumer *c, unsigned i);

/* Producers of this process (ipc_consumer_locals.c): take_local takes the
 * oldest request one queued (0 or -EAGAIN); any_local_request says
 * whether one is queued; fail_locals ends their calls once c closed.
 * adopt/forget/request_queued are in ipc_internal.h (the link's side). */
int afe__ipc_consumer_take_local(struct afe_ipc_consumer *c, struct afe_ipc_request *req);
bool afe__ipc_consumer_any_local_request(struct afe_ipc_consumer *c);
void afe__ipc_consumer_fail_locals(struct afe_ipc_consumer *c);

/* Frames (ipc_consumer_frames.c): take_request takes one request for a
 * served function (0, -EAGAIN, or -EBUSY: yield, then take again);
 * any_request hints whether one waits; send_frame pushes a reply to peer
 * i of generation gen (0, -EAGAIN, -EPIPE, -EPROTO, or a stalled peer's
 * reset status); stall_peer owes peer i a reset with status;
 * send_resets pushes the resets owed (from the pump: whether it sent
 * one). */
int afe__ipc_consumer_take_request(struct afe_ipc_consumer *c, struct afe_ipc_request *req);
bool afe__ipc_consumer_any_request(struct afe_ipc_consumer *c);
int afe__ipc_consumer_send_frame(struct afe_ipc_consumer *c, uint32_t i, uint32_t gen,
				 const struct afe_ipc_frame *f, const void *payload);
void afe__ipc_consumer_stall_peer(struct afe_ipc_consumer *c, uint32_t i, uint32_t gen,
				  int32_t status);
bool afe__ipc_consumer_send_resets(struct afe_ipc_consumer *c);

#endif /* AFE_IPC_CONSUMER_H */
