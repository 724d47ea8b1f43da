/* SPDX-License-Identifier: MIT */
/*
 * Worker threads: each polls tasks from its LIFO slot, its local run queue,
 * the runtime's injection queue, and other workers' queues (stealing), and
 * parks on a futex when there is nothing to do.
 */
#ifndef AFE_POOL_WORKER_H
#define AFE_POOL_WORKER_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "run_queue.h"

struct afe_pool;
struct afe_runnable;

/* Written only by the owning worker (plain store of load + n, release),
 * read by anyone (acquire). */
struct afe_worker_counters {
	_Atomic uint64_t spawned, completed, polled, stolen, parks, unparks;
	/* Like completed, but counted after COMPLETE is published: what
	 * wait_idle and destroy count, so "no task left" means every joiner
	 * can see its task finished. completed comes before, so whoever sees
	 * a task finished sees it in the metrics. */
	_Atomic uint64_t finished;
	/* The long-poll detector's (long_polls.h): the polls that returned
	 * (polled counts those started), and the one it marked long
	 * (flagged: its polled count; 0 none) since when. */
	_Atomic uint64_t returned, flagged, flagged_since_ns;
};

static inline void afe_counter_add(_Atomic uint64_t *c, uint64_t n)
{
	/* Release pairs with the acquire loads of the metrics reader. */
	atomic_store_explicit(c, atomic_load_explicit(c, memory_order_relaxed) + n,
			      memory_order_release);
}

struct afe_worker {
	struct afe_run_queue queue;
	struct afe_pool *pool;
	uint32_t index;
	struct afe_runnable *lifo; /* woken by the running task: polled next */
	bool searching;
	uint32_t tick;
	uint64_t rng;
	_Alignas(AFE_CACHE_LINE) _Atomic uint32_t park_word; /* 1: wake up */
	_Alignas(AFE_CACHE_LINE) struct afe_worker_counters counters;
	pthread_t thread;
};

/* The worker running on this thread, or NULL. */
struct afe_worker *afe_worker_current(void);

/* Whether the calling thread is a worker with no other task waiting for
 * it: its LIFO slot and run queue empty, and the injection queue too. A
 * poll that would otherwise leave this worker idle may then wait in a
 * system call here (uring/io.c, a file write the kernel cannot start
 * without waiting). False on any other thread, the ring thread running
 * woken tasks itself included. */
bool afe_worker_has_nothing_queued(void);

/* Thread body of a worker. */
void *afe_worker_main(void *arg);

/* Wakes every worker of p so it sees p's shutdown flag. */
void afe_workers_wake_all(struct afe_pool *p);

/* How a task came to be queued. */
enum afe_schedule_kind {
	AFE_SCHED_WAKE,	 /* woken: the current worker's LIFO slot if any */
	AFE_SCHED_YIELD, /* woken while running: behind the others */
	AFE_SCHED_SPAWN, /* new: behind the others */
};

/* Queues t (which holds a reference for the queue) on p. Any thread. */
void afe_pool_schedule(struct afe_pool *p, struct afe_runnable *t, enum afe_schedule_kind kind);

/*
 * For a thread outside the pool that wakes tasks in bursts (the ring
 * thread reaping completions): from afe_defer_wakes_begin on, the tasks it
 * schedules are held back and handed to the injection queue together, with
 * one lock and one worker notified, at each afe_defer_wakes_flush. The
 * thread must flush before it blocks, or the tasks wait with it.
 */
void afe_defer_wakes_begin(void);
void afe_defer_wakes_flush(void);

/* Like afe_defer_wakes_flush, but when the held-back tasks are few and
 * every worker is parked, polls them here instead, once each (see
 * worker.c). Returns true when it polled any: the I/O they submitted then
 * waits in the ring's requests, so the caller takes those before it
 * sleeps. */
bool afe_defer_wakes_deliver(void);

#endif /* AFE_POOL_WORKER_H */
