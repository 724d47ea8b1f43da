/* SPDX-License-Identifier: MIT */
/*
 * A bell: the futex word one side of a cross-process link sleeps on, with
 * what it waits for. It lives in shared memory.
 *
 * The sleeper reads the word, publishes what it waits for (wants), then
 * re-checks its rings; it waits for the word to change from the value it
 * read (a futex wait, or a watch of a parked worker). A waker publishes its frame, then looks at wants; if the sleeper
 * wants what it did, it clears wants, bumps the word and wakes it. Either
 * the sleeper's re-check sees the frame or the waker sees wants (both sides
 * order their store before their load with a full fence), so no wake is
 * lost; and a side that is busy costs its peer no syscall.
 */
#ifndef AFE_IPC_BELL_H
#define AFE_IPC_BELL_H

#include <limits.h>
#include <linux/futex.h>
#include <stdatomic.h>
#include <stdint.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "../pool/held_signals.h"

#define AFE_IPC_WANT_FRAME 1u /* a frame pushed toward the sleeper */
#define AFE_IPC_WANT_ROOM 2u  /* a slot freed in a ring the sleeper writes */
#define AFE_IPC_WANT_ANY 4u   /* anything else: a peer came or went */

struct afe_ipc_bell {
	_Atomic uint32_t word;
	_Atomic uint32_t wants;
};

/* The sleeper: publishes wants and returns the word's value to wait on.
 * Re-check the rings after this, then wait or call afe_ipc_bell_unwant.
 * The word is read before wants is published: a waker that takes wants
 * after that bumps the word past the value returned, so the wait ends at
 * once, even when the sleeper found work in its re-check and sleeps
 * anyway (its wants are gone: nobody would wake it again). */
static inline uint32_t afe_ipc_bell_want(struct afe_ipc_bell *b, uint32_t wants)
{
	uint32_t word = atomic_load(&b->word);
	atomic_store(&b->wants, wants);
	atomic_thread_fence(memory_order_seq_cst);
	return word;
}

static inline void afe_ipc_bell_unwant(struct afe_ipc_bell *b)
{
	atomic_store_explicit(&b->wants, 0, memory_order_relaxed);
}

/* The waker, after publishing what it did: wakes the sleeper if it wants
 * it. Returns whether it rang. */
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
	} while (!atomic_compare_exchange_weak(&b->wants, &wants, 0));
	atomic_fetch_add(&b->word, 1);
	syscall(SYS_futex, &b->word, FUTEX_WAKE, 1, NULL, NULL, 0);
	return 1;
}

/* Wakes every sleeper on the bell, whatever it wants: for when the bell's
 * memory may have been wiped (see ipc_guard.h). Async-signal-safe. */
static inline void afe_ipc_bell_wake_all(struct afe_ipc_bell *b)
{
	atomic_fetch_add(&b->word, 1);
	syscall(SYS_futex, &b->word, FUTEX_WAKE, INT_MAX, NULL, NULL, 0);
}

/* Rings bell with what once this worker has run its burst of tasks (see
 * pool/held_signals.h: one wake of the peer for a burst of frames; more:
 * the caller's burst goes on); at once otherwise. owner's ref/unref keep
 * obj, and with it the bell's mapping, alive until then. */
void afe_ipc_bell_ring_later(struct afe_ipc_bell *bell, uint32_t what, bool more,
			     const struct afe_signal_owner *owner, void *obj);

#endif /* AFE_IPC_BELL_H */
