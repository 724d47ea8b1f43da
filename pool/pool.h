/* SPDX-License-Identifier: MIT */
/*
 * The worker pool: the threads that poll tasks, the queues they take them
 * from, the record of which are parked, the words parked workers watch
 * besides their own, and the blocking pool. A runtime (src/core) owns one
 * and drives its life in this order:
 *
 *   afe_pool_init     allocates; no thread yet
 *   afe_pool_start    starts the workers
 *   ...               tasks arrive through afe_pool_schedule (worker.h)
 *   afe_pool_close    destroy began: the ring thread polls no task itself
 *   afe_pool_wind_down  watches and blocking jobs end with -ESHUTDOWN,
 *                     waking their tasks while the workers still run
 *   afe_pool_stop     the workers exit and are joined
 *   afe_pool_drain    queued tasks are dropped, later wakes refused
 *   afe_pool_free     everything but the closed injection queue, which a
 *                     task outliving the runtime may still be woken into
 *   afe_pool_free_queue  that queue, once nothing can reach it
 *
 * Only pool/ reads or writes the fields below.
 */
#ifndef AFE_POOL_POOL_H
#define AFE_POOL_POOL_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "blocking.h"
#include "idle.h"
#include "inject_queue.h"
#include "long_polls.h"
#include "watch.h"
#include "worker.h"

struct afe_runtime;

struct afe_pool_config {
	uint32_t workers;	    /* at least 1 */
	uint32_t spin_us;	    /* how long a worker searches before it parks */
	unsigned blocking_threads;  /* the blocking pool's bounds */
	unsigned blocking_queue;
	bool watch_with_waitv;	    /* parked workers may sleep on watched words */
};

struct afe_pool {
	/* What afe_runtime_current() returns on this pool's threads: only
	 * handed back, never looked into here. */
	struct afe_runtime *owner;
	uint32_t num_workers;
	uint32_t spin_us;
	struct afe_worker **workers;
	struct afe_inject_queue inject;
	struct afe_idle idle;
	struct afe_watches watches; /* futex words parked workers sleep on */
	struct afe_blocking_pool blocking;
	_Atomic bool closed;   /* afe_pool_close: no task runs on the ring thread */
	_Atomic bool shutdown; /* afe_pool_stop: the workers exit */
	_Atomic uint64_t injected; /* tasks queued from outside the workers */
	struct afe_long_polls long_polls;
	/* The tasks the ring thread polls itself (afe_defer_wakes_deliver);
	 * written by the ring thread only. */
	_Alignas(AFE_CACHE_LINE) struct afe_worker_counters inline_counters;
};

/* Sets p up for owner, starting no thread. 0, or -ENOMEM with nothing
 * left to free. */
int afe_pool_init(struct afe_pool *p, struct afe_runtime *owner, const struct afe_pool_config *c);

/* Starts (and names) the worker threads, and the long-poll detector when
 * long_poll_ms (its bound) is not 0. 0, or -ENOMEM or the -errno of a
 * failed pthread_create, with the threads started before it stopped
 * again; the caller still frees p. */
int afe_pool_start(struct afe_pool *p, unsigned long_poll_ms);

/* Destroy began: the tasks the ring thread wakes go to the workers from
 * now on, which wind them down. */
void afe_pool_close(struct afe_pool *p);

/* Ends every watch and queued blocking job with -ESHUTDOWN (waking their
 * tasks), waits for the running jobs and futex threads to end, and
 * refuses new ones. */
void afe_pool_wind_down(struct afe_pool *p);

/* Makes the workers exit and joins them. */
void afe_pool_stop(struct afe_pool *p);

/* After afe_pool_stop: closes the injection queue (later wakes are
 * refused) and drops every task still queued. */
void afe_pool_drain(struct afe_pool *p);

/* No runnable task anywhere and every worker parked. Momentary: a wake
 * from outside can change it right after. */
bool afe_pool_is_quiet(struct afe_pool *p);

/* The sum of one counter (an offsetof in struct afe_worker_counters) over
 * the workers and the ring thread; each read is an acquire. */
uint64_t afe_pool_sum(const struct afe_pool *p, size_t counter);
#define AFE_POOL_SUM(p, field) afe_pool_sum((p), offsetof(struct afe_worker_counters, field))

/* How many tasks wait to be polled: in the workers' run queues and LIFO
 * slots, and the injection queue (a gauge: each queue read on its own). */
uint64_t afe_pool_queued(struct afe_pool *p);

/* How many tasks were queued from outside the workers (a hint). */
static inline uint64_t afe_pool_injected(const struct afe_pool *p)
{
	return atomic_load_explicit(&p->injected, memory_order_relaxed);
}

/* The counters of the calling thread when it is one of p's workers, else
 * NULL. */
struct afe_worker_counters *afe_pool_my_counters(struct afe_pool *p);

/* The blocking pool's threads run jobs for the ring too. */
static inline struct afe_blocking_pool *afe_pool_blocking(struct afe_pool *p)
{
	return &p->blocking;
}

/* True on one of p's threads, which must not destroy its runtime: a
 * worker or a blocking thread. */
bool afe_pool_is_current(struct afe_pool *p);

/* The pool of the task being polled on this thread (by a worker, or by
 * the ring thread running woken tasks itself), or NULL. */
struct afe_pool *afe_pool_current(void);

/* Frees all but the injection queue (see above). */
void afe_pool_free(struct afe_pool *p);

/* Frees the injection queue. */
void afe_pool_free_queue(struct afe_pool *p);

#endif /* AFE_POOL_POOL_H */
