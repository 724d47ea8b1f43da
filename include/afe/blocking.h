/* SPDX-License-Identifier: MIT */
/*
 * Blocking work: run a plain C function that blocks (a DNS lookup, a
 * library call with no async form) on a separate, bounded pool of threads,
 * and await its result from a task without holding a worker.
 *
 *   struct afe_blocking job;                      // in your future's state
 *   afe_blocking_init(&job, lookup, &request);
 *   AFE_AWAIT(&job.base);                         // job.base.result: lookup's
 *
 * The pool starts threads as work arrives, up to the runtime's
 * blocking_threads, and lets idle ones go after a while. Jobs wait in a
 * queue when every thread is busy. afe_try_blocking_init makes a job that
 * refuses (-EAGAIN) instead when blocking_queue jobs are already waiting,
 * so callers can shed load.
 *
 * Cancelling a job that has not started removes it (-ECANCELED); a job
 * that is running cannot be interrupted, so cancelling waits for it to
 * return (its result is then discarded: -ECANCELED). Blocking threads are
 * not workers: the function must not poll futures or spawn with a NULL
 * runtime. Polled outside a runtime's task the job gives -EINVAL; after
 * the runtime began shutting down, -ESHUTDOWN (at the second poll: the
 * first gives way, see afe_runtime_destroy).
 */
#ifndef AFE_BLOCKING_H
#define AFE_BLOCKING_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "common.h"
#include "future.h"

typedef intptr_t afe_blocking_fn(void *arg);

struct afe_blocking {
	struct afe_future base;
	afe_blocking_fn *fn;
	void *arg;
	bool try_only; /* refuse when the queue is full */
	/* Private: the job's life in the pool. */
	struct afe_blocking *next;
	struct afe_blocking_pool *pool;
	int state;
	intptr_t output;
	struct afe_waker waker;
};

/* A job running fn(arg); a NULL fn makes the job's result -EINVAL. */
AFE_EXPORT void afe_blocking_init(struct afe_blocking *job, afe_blocking_fn *fn, void *arg);
AFE_EXPORT void afe_try_blocking_init(struct afe_blocking *job, afe_blocking_fn *fn, void *arg);

#endif /* AFE_BLOCKING_H */
