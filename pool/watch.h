/* SPDX-License-Identifier: MIT */
/*
 * Watches: a task waiting for a futex word to change, watched by a parked
 * worker when there is one, else through the ring.
 *
 * A futex wait through the ring costs two thread wakes when it fires: the
 * ring thread's, then the worker's that polls the task. A worker with
 * nothing to do can instead sleep on the word itself (futex_waitv on its
 * park word and the watched words together), and run the task the moment
 * the word is woken: one wake, as for a thread blocked in FUTEX_WAIT. The
 * cross-process calls' bells use it; a waiter on another process's word
 * can not be woken any other way.
 *
 * A watch is PENDING (armed, nobody sleeps on it yet), HELD (a parked
 * worker sleeps on it), RING (a futex wait was submitted to the ring), or
 * ended. A worker that parks holds the PENDING watches. A busy worker
 * looks at them between two task polls: it ends those whose word changed
 * (their tasks run next, with no wake at all: a stream of calls on a busy
 * worker costs no syscall) and hands to the ring those armed more than
 * AFE_WATCH_BUSY_NS ago, so a watch waits on a busy worker no longer than
 * that plus one poll. A watched word that changed before anybody slept on
 * it is seen by the value check of whoever sleeps next, so no wake is
 * lost in the hand-offs.
 *
 * The ring's FUTEX_WAIT needs Linux 6.7, and the epoll backend has none
 * (futex_waitv, for parked workers, needs 5.16). Without it, a watch
 * that goes to the kernel goes to a futex thread instead: one of a pool
 * the watches own, which sleeps in FUTEX_WAIT on the word and wakes the
 * task when it returns. Its cost: one thread (started on demand, kept 10 s
 * idle) for each watch asleep there at the same time, so one per IPC
 * endpoint asleep on a busy runtime, never one per pending call; and the
 * same two thread wakes per fire as the ring's. A cancel gets the thread
 * out of its sleep with a wake of the word, which other sleepers on it
 * may see as a spurious wake.
 */
#ifndef AFE_POOL_WATCH_H
#define AFE_POOL_WATCH_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "afe/future.h"
#include "afe/io.h"
#include "blocking.h"

struct afe_pool;
struct futex_waitv;

/* The most watches one parked worker sleeps on. */
#define AFE_WATCH_MAX_HELD 15

/* How long a busy worker keeps a watch before handing it to the ring. */
#define AFE_WATCH_BUSY_NS 50000u

struct afe_watch {
	struct afe_future base;
	struct afe_pool *pool; /* whose watches list it */
	const _Atomic uint32_t *word;
	uint32_t value;
	unsigned flags; /* AFE_FUTEX_SHARED or AFE_FUTEX_PRIVATE */
	uint8_t state;	/* under the runtime's watches lock while listed */
	int32_t result;
	uint32_t holder; /* the worker holding it */
	uint64_t armed_ns;
	_Atomic uint32_t *sleep_flags; /* afe_watch_flag_sleep */
	uint32_t sleep_bit;
	struct afe_waker waker;
	struct afe_watch *prev, *next; /* listed while PENDING, HELD or on a thread */
	bool on_thread;		       /* RING: the sleep is a futex thread's */
	_Atomic uint8_t sleeper;       /* where that thread stands: THREAD_* in watch.c */
	_Atomic bool interrupted;      /* that thread must leave its sleep */
	union {
		struct afe_io io;		  /* RING, through the ring */
		struct afe_blocking thread_sleep; /* RING, on a futex thread */
	};
};

/* A list of watches (pool/list.h), newest first. */
struct afe_watch_list {
	struct afe_watch *head, *tail;
};

/* The runtime's watches. */
struct afe_watches {
	pthread_mutex_t lock;
	struct afe_watch_list listed; /* PENDING and HELD ones */
	_Atomic uint32_t pending;     /* how many are PENDING */
	bool usable;		      /* the kernel has futex_waitv */
	bool closed;
	struct afe_watch_list on_threads; /* watches asleep on futex threads */
	struct afe_blocking_pool threads; /* the futex threads */
};

/*
 * A future that completes once word may no longer hold value: result 0
 * (a wake, or the word differed: look again), -ECANCELED, or -ESHUTDOWN
 * when the runtime is destroyed. Like every futex wait it can end
 * spuriously. Polled off a worker, it goes through the ring at once.
 */
void afe_watch_init(struct afe_watch *w, const _Atomic uint32_t *word, uint32_t value,
		    unsigned flags);

/*
 * Makes every thread that goes to sleep in the kernel for w (a parked
 * worker's futex_waitv, or the ring's FUTEX_WAIT) first OR bit into *flags
 * (seq_cst), before the kernel checks the word. A waker that changes the
 * word, then takes the flags (an exchange or CAS), needs the wake syscall
 * only when it finds bit: a watcher that only looks at the word (a
 * searching worker, a busy one between tasks) sees the change itself.
 * Whoever arms the watch clears the bit first; a bit left from a sleep
 * that ended costs a needless wake, never a lost one. After init.
 */
void afe_watch_flag_sleep(struct afe_watch *w, _Atomic uint32_t *flags, uint32_t bit);

/* ---- what a watch needs of the ring: declared here, implemented by the
 * I/O layer (uring/ring_watch.c), as pool/runnable.h is by the core ------ */

/* Whether p's ring waits on a futex word itself (io_uring's FUTEX_WAIT,
 * Linux 6.7); without it a watch's kernel sleep is a futex thread's. */
bool afe__watch_ring_waits(const struct afe_pool *p);

/* Makes io the ring's wait on word while it holds value (flags:
 * AFE_FUTEX_SHARED or AFE_FUTEX_PRIVATE): a future like any operation's. */
void afe__watch_ring_wait_init(struct afe_io *io, const _Atomic uint32_t *word, uint32_t value,
			       unsigned flags);

/* ---- for the runtime and its workers ---------------------------------------- */

/* With_waitv false keeps parked workers off futex_waitv (a kernel before
 * 5.16, or one masked as such). 0 or -errno. */
int afe_watches_init(struct afe_watches *ws, bool with_waitv);
void afe_watches_destroy(struct afe_watches *ws);

/* Ends every listed watch with -ESHUTDOWN, gets the futex threads out of
 * their sleeps and waits for them to end; later watches go to the ring,
 * or end with -ESHUTDOWN where they would go to a futex thread. */
void afe_watches_close(struct afe_watches *ws);

/* Whether some watch waits for a worker to hold it or hand it on. */
static inline bool afe_watches_pending(struct afe_watches *ws)
{
	return atomic_load_explicit(&ws->pending, memory_order_relaxed) != 0;
}

/* A worker about to run a task: PENDING watches whose word changed end
 * (their tasks are woken into its LIFO slot); it submits the futex waits
 * of those armed AFE_WATCH_BUSY_NS ago to the ring for their tasks. */
void afe_watches_between_tasks(struct afe_watches *ws);

/* A worker about to park: holds up to max PENDING watches and fills vec
 * with their words; hands the PENDING ones past max to the ring (no
 * other worker may be awake to look at them). Returns how many it holds. */
unsigned afe_watches_hold(struct afe_watches *ws, uint32_t worker, struct futex_waitv *vec,
			  unsigned max);

/* The worker woke: its held watches whose word changed end (their tasks
 * are woken), the others are PENDING again. Returns how many ended. */
unsigned afe_watches_release(struct afe_watches *ws, uint32_t worker);

/* A searching worker: ends PENDING watches whose word changed. Returns
 * how many ended. */
unsigned afe_watches_fire_changed(struct afe_watches *ws);

/* Sleeps on park_word (private, while it holds 0) and the n words of vec
 * from vec[1] on (vec[0] is filled here). 0, or -errno. */
int afe_watches_sleep(_Atomic uint32_t *park_word, struct futex_waitv *vec, unsigned n);

#endif /* AFE_POOL_WATCH_H */
