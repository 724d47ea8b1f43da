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
 * return (its result is then discarded: -ECANCELED). A job made with
 * afe_blocking_init_abandonable does not wait: see there. Blocking threads are
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
	bool try_only;	  /* refuse when the queue is full */
	bool abandonable; /* cancelling a running job does not wait for it */
	/* Private: the job's life in the pool. */
	bool abandoned; /* of a heap copy: the future left; its thread frees it */
	struct afe_blocking *copy; /* abandonable: what the pool runs, on the heap */
	struct afe_blocking *next;
	struct afe_blocking_pool *pool;
	struct afe_blocking_pool *target; /* the pool to queue on; NULL: the runtime's */
	int state;
	intptr_t output;
	struct afe_waker waker;
};

/* A job running fn(arg); a NULL fn makes the job's result -EINVAL. */
AFE_EXPORT void afe_blocking_init(struct afe_blocking *job, afe_blocking_fn *fn, void *arg);
AFE_EXPORT void afe_try_blocking_init(struct afe_blocking *job, afe_blocking_fn *fn, void *arg);

/*
 * A job whose cancel never waits: cancelled while it runs (for instance by
 * afe_timeout at its deadline), the future completes at once with
 * -ECANCELED and the function is abandoned: it runs on to its end on its
 * blocking thread and its result is dropped (a pointer it returns leaks).
 * So arg, and anything fn touches, must stay valid until fn returns, not
 * only until the future completes: static memory, or memory fn frees
 * itself. The abandoned call still holds its blocking thread, and
 * afe_runtime_destroy waits for it to return. The pool runs a heap copy
 * of the job: if that allocation fails the result is -ENOMEM.
 */
AFE_EXPORT void afe_blocking_init_abandonable(struct afe_blocking *job, afe_blocking_fn *fn,
					      void *arg);

#endif /* AFE_BLOCKING_H */
