/* SPDX-License-Identifier: MIT */
/*
 * The consumer's shared-memory producers coming and going: its pump
 * brings its peers (one per entry of the object) in line with the
 * entries, adopting a producer that published its entry LIVE, dropping
 * one that left, died (its peer watch says so) or lost its entry, and
 * freeing entries that a dead or stalled claimer or garbage left. All of
 * it runs on the pump.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <unistd.h>

#include "ipc_consumer.h"

/* Stops using peer i and frees its entry. From the pump. */
void afe__ipc_consumer_drop_peer(struct afe_ipc_consumer *c, unsigned i)
{
	struct afe_ipc_peer *peer = &c->peers[i];
	pthread_mutex_lock(&peer->lock);
	bool was_live = peer->live;
	peer->live = false;
	/* seq_cst, as the fetch_or in adopt_peer: the scans' acquire loads
	 * are hints re-checked under the lock; not weakened. */
	atomic_fetch_and_explicit(&c->live_peers, ~(1u << i), memory_order_seq_cst);
	pthread_mutex_unlock(&peer->lock);
	if (!was_live)
		return;
	afe_join_handle_drop(&peer->peer_watch); /* a child handle: cancels it */
	atomic_fetch_add_explicit(&c->peers_gone, 1, memory_order_relaxed); /* a count */
	/* The entry is free again unless its producer already moved on. */
	struct afe_ipc_entry *e = &c->hdr->entries[i];
	/* The entry, in memory the producers share: seq_cst, as every access
	 * of its state, generation and pid here, pairing with the producer's
	 * claim and publish (claim_entry) and its leave_entry; a cross-process
	 * protocol, not weakened. */
	if (atomic_load_explicit(&e->generation, memory_order_seq_cst) == peer->gen) {
		uint32_t state = atomic_load_explicit(&e->state, memory_order_seq_cst);
		if (state == AFE_IPC_ENTRY_LIVE || state == AFE_IPC_ENTRY_GONE)
			atomic_compare_exchange_strong_explicit(&e->state, &state,
								AFE_IPC_ENTRY_FREE,
								memory_order_seq_cst,
								memory_order_seq_cst);
	}
}

/* Watches peer's process, pid, through pidfd (the peer watch closes it), or
 * by pid where pidfds are missing: its death rings our bell. With pidfd
 * another error (out of fds, or of memory), the peer is served unwatched,
 * and sync_peers tries again. From the pump. */
static void watch_peer(struct afe_ipc_consumer *c, struct afe_ipc_peer *peer, int pidfd, pid_t pid)
{
	peer->watched = false;
	if (afe_ipc_pidfd_missing(pidfd))
		pidfd = -1;
	else if (pidfd < 0)
		return;
	/* The peer watch's. Relaxed: the pump holds c (see
	 * afe__ipc_consumer_unref). */
	atomic_fetch_add_explicit(&c->refs, 1, memory_order_relaxed);
	if (afe_ipc_peer_watch_start(c->rt, pidfd, pid, true, &peer->died, NULL, &c->kick,
				     afe__ipc_consumer_release, c, &peer->peer_watch) < 0)
		memset(&peer->peer_watch, 0, sizeof(peer->peer_watch));
	else
		peer->watched = true;
}

/* Starts serving the producer of entry i. From the pump. */
static void adopt_peer(struct afe_ipc_consumer *c, unsigned i, uint32_t gen)
{
	struct afe_ipc_entry *e = &c->hdr->entries[i];
	struct afe_ipc_peer *peer = &c->peers[i];
	/* The entry: seq_cst, see drop_peer. */
	pid_t pid = atomic_load_explicit(&e->pid, memory_order_seq_cst);
	int pidfd = afe_ipc_pidfd_open(pid);
	if (pidfd == -ESRCH) {
		/* It died before we saw it: free its entry. */
		uint32_t live = AFE_IPC_ENTRY_LIVE;
		if (atomic_load_explicit(&e->generation, memory_order_seq_cst) == gen)
			atomic_compare_exchange_strong_explicit(&e->state, &live,
								AFE_IPC_ENTRY_FREE,
								memory_order_seq_cst,
								memory_order_seq_cst);
		return;
	}
	pthread_mutex_lock(&peer->lock);
	peer->gen = gen;
	/* seq_cst, as the peer watch's store (report_death). */
	atomic_store_explicit(&peer->died, false, memory_order_seq_cst);
	afe_ipc_slots_attach(&peer->requests, afe_ipc_requests_of(c->hdr, i), AFE_IPC_RING_SLOTS);
	afe_ipc_slots_attach(&peer->replies, afe_ipc_replies_of(c->hdr, i), AFE_IPC_RING_SLOTS);
	peer->live = true;
	/* seq_cst: pairs with the acquire loads of the scans (take_request,
	 * any_request), which then lock the peer; not weakened. */
	atomic_fetch_or_explicit(&c->live_peers, 1u << i, memory_order_seq_cst);
	pthread_mutex_unlock(&peer->lock);
	watch_peer(c, peer, pidfd, pid);
}

/* A peer adopted without a peer watch: its pidfd again, or its death. */
static void watch_again(struct afe_ipc_consumer *c, unsigned i)
{
	/* The entry: seq_cst, see drop_peer. */
	pid_t pid = atomic_load_explicit(&c->hdr->entries[i].pid, memory_order_seq_cst);
	int pidfd = afe_ipc_pidfd_open(pid);
	if (pidfd == -ESRCH)
		/* seq_cst, as the peer watch's store (report_death). */
		atomic_store_explicit(&c->peers[i].died, true, memory_order_seq_cst);
	else
		watch_peer(c, &c->peers[i], pidfd, pid);
}

/* How often the pump looks whether the claimer of an entry still runs
 * (three syscalls), while the claim lasts: a claimer takes well under a
 * millisecond to publish its entry LIVE. */
#define AFE_IPC_CLAIM_CHECK_NS (100 * 1000000ull)

/* How long an entry may stay claimed by a process that runs: its pid may
 * name another process since its claimer died. A claimer stalled that long
 * finds its entry freed, and claims another (claim_entry). */
#define AFE_IPC_CLAIM_MAX_NS (2000 * 1000000ull)

/* Whether process pid runs: not gone, nor a zombie. One we cannot look at
 * (out of fds) is taken to run. */
static bool process_runs(pid_t pid)
{
	int fd = afe_ipc_pidfd_open(pid);
	if (afe_ipc_pidfd_missing(fd))
		return !afe_ipc_process_ended(pid, 0);
	if (fd < 0)
		return fd != -ESRCH && fd != -EINVAL;
	struct pollfd exited = {.fd = fd, .events = POLLIN};
	bool runs = poll(&exited, 1, 0) == 0;
	close(fd);
	return runs;
}

/*
 * Frees entry i, which holds state, none of FREE, LIVE and GONE, and no
 * live peer of ours: garbage a peer wrote (freed at once), or a claim
 * (afe_ipc_claimer), freed once its claimer is seen dead, or once this
 * pump saw the same claim for AFE_IPC_CLAIM_MAX_NS. A claim is timed on
 * this process's clock from the pump's first sight of it, its claimer
 * looked at then and every AFE_IPC_CLAIM_CHECK_NS after. From the pump.
 */
static void free_abandoned(struct afe_ipc_consumer *c, unsigned i, uint32_t state)
{
	struct afe_ipc_peer *peer = &c->peers[i];
	pid_t claimer = afe_ipc_claimer(state);
	uint64_t now = afe_now_ns();
	if (claimer) {
		if (state != peer->claim) { /* a claim seen the first time */
			peer->claim = state;
			peer->claim_seen_ns = now;
		} else if (now - peer->claim_checked_ns < AFE_IPC_CLAIM_CHECK_NS) {
			return;
		}
		peer->claim_checked_ns = now;
		if (now - peer->claim_seen_ns < AFE_IPC_CLAIM_MAX_NS && process_runs(claimer))
			return;
	}
	/* Unless the state changed since: a claimer that published LIVE
	 * meanwhile keeps its entry (its CAS from the claim, in claim_entry,
	 * and this one: one of them fails). */
	atomic_compare_exchange_strong_explicit(&c->hdr->entries[i].state, &state,
						AFE_IPC_ENTRY_FREE, memory_order_seq_cst,
						memory_order_seq_cst);
	peer->claim = 0;
}

/* Brings the peers in line with the entries. From the pump. */
void afe__ipc_consumer_sync_peers(struct afe_ipc_consumer *c)
{
	for (unsigned i = 0; i < AFE_IPC_MAX_PRODUCERS; i++) {
		struct afe_ipc_entry *e = &c->hdr->entries[i];
		struct afe_ipc_peer *peer = &c->peers[i];
		if (peer->live && !peer->watched)
			watch_again(c, i);
		/* state: acquire, pairs with the producer's release CAS to LIVE
		 * (claim_entry): its rings, pid and generation are in. The
		 * rest of the entry: seq_cst, see drop_peer. died: seq_cst, as
		 * the peer watch's store. */
		uint32_t state = atomic_load_explicit(&e->state, memory_order_acquire);
		uint32_t gen = atomic_load_explicit(&e->generation, memory_order_seq_cst);
		bool stale = peer->live &&
			     (state != AFE_IPC_ENTRY_LIVE || gen != peer->gen ||
			      atomic_load_explicit(&peer->died, memory_order_seq_cst));
		if (stale) {
			afe__ipc_consumer_drop_peer(c, i);
			/* Look again: what we read is stale now. A producer that
			 * died left its entry LIVE (drop_peer freed it since),
			 * and its pidfd still opens while it is a zombie: adopted
			 * again, it would take replies into its rings, from a
			 * cursor back at 0, until the next pass dropped it. */
			state = atomic_load_explicit(&e->state, memory_order_acquire);
			gen = atomic_load_explicit(&e->generation, memory_order_seq_cst);
		}
		if (!afe_ipc_claimer(state))
			peer->claim = 0; /* a claim seen again later is a new one */
		/* closed: seq_cst, pairs with afe_ipc_consumer_close's store. */
		if (state == AFE_IPC_ENTRY_LIVE && !peer->live &&
		    !atomic_load_explicit(&c->closed, memory_order_seq_cst))
			adopt_peer(c, i, gen);
		else if (state == AFE_IPC_ENTRY_GONE && !peer->live)
			/* A producer that left before we adopted it: it is
			 * done with the entry (it leaves only then). */
			atomic_compare_exchange_strong_explicit(&e->state, &state,
								AFE_IPC_ENTRY_FREE,
								memory_order_seq_cst,
								memory_order_seq_cst);
		else if (state != AFE_IPC_ENTRY_FREE && state != AFE_IPC_ENTRY_LIVE && !peer->live)
			free_abandoned(c, i, state);
	}
}

/* Whether an entry changed since sync_peers last looked: the pump checks
 * after publishing what it waits for, since a producer that connected
 * just before that rang a bell nobody wanted. */
bool afe__ipc_consumer_roster_changed(struct afe_ipc_consumer *c)
{
	for (unsigned i = 0; i < AFE_IPC_MAX_PRODUCERS; i++) {
		struct afe_ipc_entry *e = &c->hdr->entries[i];
		struct afe_ipc_peer *peer = &c->peers[i];
		/* seq_cst, all: part of the pump's look after publishing its
		 * wants, against a producer's publish of LIVE (or a peer
		 * watch's store of died), then its ring or kick. */
		uint32_t state = atomic_load_explicit(&e->state, memory_order_seq_cst);
		bool live = state == AFE_IPC_ENTRY_LIVE;
		if (live != peer->live ||
		    (live &&
		     atomic_load_explicit(&e->generation, memory_order_seq_cst) != peer->gen) ||
		    (peer->live && atomic_load_explicit(&peer->died, memory_order_seq_cst)) ||
		    (state == AFE_IPC_ENTRY_GONE && !peer->live)) /* to free */
			return true;
	}
	return false;
}
