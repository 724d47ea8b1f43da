/* SPDX-License-Identifier: MIT */
/*
 * A bell: the futex word one side of a cross-process link sleeps on, with
 * what it waits for. It lives in shared memory.
 *
 * The sleeper reads the word, publishes what it waits for (wants), then
 * re-checks its rings; it waits for the word to change from the value it
 * read (a futex wait, or a watch of a parked worker). A waker publishes
 * its frame, then looks at wants; if the sleeper wants what it did, it
 * takes wants and bumps the word. Either the sleeper's re-check sees the
 * frame or the waker sees wants (both sides order their store before
 * their load with a full fence), so no wake is lost; and a side that is
 * busy costs its peer no syscall.
 *
 * The wake syscall is needed only by a thread asleep in the kernel on the
 * word: a thread that goes to sleep there first sets AFE_IPC_ASLEEP in
 * wants (afe_watch_flag_sleep). A watch that a searching (spinning) or
 * busy worker looks at sees the word change by itself, so ringing it
 * costs a store and an exchange, no syscall. A sleeper may set the bit
 * just after a waker took wants: the waker looks at wants again after its
 * bump (see afe_ipc_bell_ring).
 *
 * A sleeping peer also takes long to wake (tens of microseconds on a VM),
 * so afe_ipc_bell_ring_later holds a ring back only a few polls when the
 * peer sleeps, letting its wake overlap the rest of the burst, and a whole
 * burst when it only watches (figures: src/ipc/BELL.md).
 */
#ifndef AFE_IPC_BELL_H
#define AFE_IPC_BELL_H

#include <limits.h>
#include <stdatomic.h>
#include <stdint.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "../../pool/futex.h"
#include "../../pool/burst_wakes.h"
#include "../../pool/watch.h"

#define AFE_IPC_WANT_FRAME 1u /* a frame pushed toward the sleeper */
#define AFE_IPC_WANT_ROOM 2u  /* a slot freed in a ring the sleeper writes */
#define AFE_IPC_WANT_ANY 4u   /* anything else: a peer came or went */
#define AFE_IPC_ASLEEP 8u     /* a thread sleeps in the kernel on the word */

struct afe_ipc_bell {
	_Atomic uint32_t word;
	_Atomic uint32_t wants;
};

/* The bits of wants above these name the sleeper that published them. */
#define AFE_IPC_SLEEPER_SHIFT 8

/* The sleeper: publishes wants, with its name (any 24 bits that tell it
 * from an earlier sleeper on the same bell), and returns the word's value
 * to wait on. Re-check the rings after this, then wait or call
 * afe_ipc_bell_unwant. The word is read before wants is published: a
 * waker that takes wants after that bumps the word past the value
 * returned, so the wait ends at once, even when the sleeper found work in
 * its re-check and sleeps anyway (its wants are gone: nobody would wake it
 * again). */
static inline uint32_t afe_ipc_bell_want(struct afe_ipc_bell *b, uint32_t wants, uint32_t sleeper)
{
	/* seq_cst, both: the load of the word comes before the store of
	 * wants (pairs with the waker's take of wants, then its bump of the
	 * word, in afe_ipc_bell_ring), and the store, the fence and the
	 * caller's re-check against the waker's publish, fence and look at
	 * wants are a Dekker handshake: one of the two sees the other. */
	uint32_t word = atomic_load_explicit(&b->word, memory_order_seq_cst);
	atomic_store_explicit(&b->wants, wants | sleeper << AFE_IPC_SLEEPER_SHIFT,
			      memory_order_seq_cst);
	atomic_thread_fence(memory_order_seq_cst);
	return word;
}

/* Withdraws what sleeper published, unless a waker took it, or another
 * sleeper published since: an entry's last producer, still waking from
 * its close, must not clear the wants of the producer that took the entry
 * next (that one would sleep through its replies). */
static inline void afe_ipc_bell_unwant(struct afe_ipc_bell *b, uint32_t sleeper)
{
	uint32_t wants = atomic_load_explicit(&b->wants, memory_order_relaxed);
	uint32_t ours = sleeper << AFE_IPC_SLEEPER_SHIFT >> AFE_IPC_SLEEPER_SHIFT;
	while (wants >> AFE_IPC_SLEEPER_SHIFT == ours &&
	       !atomic_compare_exchange_weak_explicit(&b->wants, &wants, 0, memory_order_relaxed,
						      memory_order_relaxed))
		;
}

/* The waker, after publishing what it did: wakes the sleeper if it wants
 * it, with a syscall only if it sleeps in the kernel. Returns whether it
 * rang. */
static inline int afe_ipc_bell_ring(struct afe_ipc_bell *b, uint32_t what)
{
	atomic_thread_fence(memory_order_seq_cst);
	uint32_t wants = atomic_load_explicit(&b->wants, memory_order_relaxed);
	/* Clear wants only while it holds what: a waker that cleared what
	 * the sleeper re-published for something else (it woke and looked
	 * again in between) would leave it asleep with nobody to wake it. */
	do {
		if (!(wants & what))
			return 0; /* not wanted, or another waker took it */
	} while (!atomic_compare_exchange_weak_explicit(&b->wants, &wants, 0, memory_order_seq_cst,
							memory_order_relaxed));
	/* The bump comes after the take, so a sleeper whose wants we took
	 * read the word before it. A sleeper that flags itself asleep after
	 * the take: either we see its flag below, or its futex sees the
	 * bump (both sides a seq_cst RMW, then a read of the other word):
	 * the take above and this bump pair with afe_watch_flag_sleep's RMW
	 * of wants and its futex's read of the word, and with the sleeper's
	 * load of the word before its store of wants (afe_ipc_bell_want). */
	atomic_fetch_add_explicit(&b->word, 1, memory_order_seq_cst);
	/* All: a bell has one sleeper, but a thread of a watch that was
	 * cancelled may sit on the word a moment longer, and must not take
	 * the only wake. */
	/* seq_cst: the read of the other word after our RMW (see above). */
	if ((wants & AFE_IPC_ASLEEP) ||
	    (atomic_load_explicit(&b->wants, memory_order_seq_cst) & AFE_IPC_ASLEEP))
		afe_futex_wake_on(&b->word, INT_MAX, true);
	return 1;
}

/* Sets up watch to wait, as a bell's sleeper, for b's word to leave the
 * value afe_ipc_bell_want returned. */
static inline void afe_ipc_bell_watch(struct afe_watch *watch, struct afe_ipc_bell *b,
				      uint32_t word)
{
	afe_watch_init(watch, &b->word, word, AFE_FUTEX_SHARED);
	afe_watch_flag_sleep(watch, &b->wants, AFE_IPC_ASLEEP);
}

/* A word for bells whose memory was wiped (see ipc_guard.h), one no
 * sleeper holds: a sleeper waits for its word to change from what it read,
 * so the zeroed word bumped once would equal what a sleeper read after one
 * ring, and that sleeper would wait on. Words count up from 0 and would
 * need 2^31 rings to set the top bit, so this one has it; past an earlier
 * wipe, its random rest collides with a sleeper's word once in 2^31. */
static inline uint32_t afe_ipc_bell_wiped_word(void)
{
	uint32_t r;
	if (syscall(SYS_getrandom, &r, sizeof(r), 0x1L /* GRND_NONBLOCK */) != sizeof(r))
		r = (uint32_t)getpid() * 2654435761u; /* not seeded yet: early boot */
	return r | 0x80000000u;
}

/* Wakes every sleeper on bell b, whatever it wants, once its memory was
 * wiped: sets its word to word (see afe_ipc_bell_wiped_word) through fd,
 * the object b lies in at offset. For the SIGBUS handler that grew the
 * object back: async-signal-safe, and b's memory is touched by the kernel
 * only, never by an access of ours. Under ThreadSanitizer that matters:
 * the access the signal interrupted may be one of the sanitizer's atomics
 * on that very word, holding its lock, which an atomic of ours would take
 * again, forever. */
static inline void afe_ipc_bell_wake_wiped(struct afe_ipc_bell *b, int fd, long offset,
					    uint32_t word)
{
	syscall(SYS_pwrite64, (long)fd, &word, sizeof(word), offset);
	afe_futex_wake_on(&b->word, INT_MAX, true);
}

/* How many task polls a ring is held back when the peer sleeps. */
#define AFE_IPC_HOLD_ASLEEP_POLLS 4u

/* Rings bell with what once this worker has run its burst of tasks (see
 * pool/burst_wakes.h: one wake of the peer for a burst of frames; more:
 * the caller's burst goes on), or AFE_IPC_HOLD_ASLEEP_POLLS task polls
 * into it when the peer sleeps in the kernel; at once otherwise. owner's
 * ref/unref keep obj, and with it the bell's mapping, alive until then. */
void afe_ipc_bell_ring_later(struct afe_ipc_bell *bell, uint32_t what, bool more,
			     const struct afe_burst_wake_owner *owner, void *obj);

#endif /* AFE_IPC_BELL_H */
