/* SPDX-License-Identifier: MIT */
/*
 * The blocking pool: threads that run afe_blocking jobs (see
 * include/afe/blocking.h). Started on demand up to max_threads; a thread
 * idle for AFE_BLOCKING_KEEP_ALIVE_S seconds exits. Everything is under one
 * mutex: a blocking job costs a thread handoff anyway.
 */
#ifndef AFE_POOL_BLOCKING_H
#define AFE_POOL_BLOCKING_H

#include <pthread.h>
#include <stdbool.h>

#include "afe/blocking.h"

#define AFE_BLOCKING_KEEP_ALIVE_S 10

struct afe_blocking_pool {
	pthread_mutex_t lock;
	pthread_cond_t work;	/* idle threads wait here for jobs */
	pthread_cond_t exited;	/* shutdown waits here for threads to end */
	struct afe_blocking *head, **tail;
	unsigned queued, threads, idle;
	unsigned running; /* jobs a thread took and has not finished */
	unsigned max_threads, max_queue;
	bool shutdown;
	const char *thread_name; /* for top -H, gdb and perf */
};

/* thread_name: a literal of at most 15 characters. 0 or -errno. */
int afe_blocking_pool_init(struct afe_blocking_pool *p, const char *thread_name,
			   unsigned max_threads, unsigned max_queue);

/* Fails the jobs still queued with -ESHUTDOWN (waking their tasks), refuses
 * new ones, and waits for running jobs to return and the threads to end. */
void afe_blocking_pool_shutdown(struct afe_blocking_pool *p);

void afe_blocking_pool_destroy(struct afe_blocking_pool *p);

/* Queues job (set up with afe_blocking_init, never polled) on p for a
 * caller that is not a task: waker is woken from the blocking thread once
 * the job is done, its result then in job->output. Returns 0, or
 * -ESHUTDOWN (or a failed thread creation's -errno) with nothing queued. */
int afe_blocking_pool_queue(struct afe_blocking_pool *p, struct afe_blocking *job,
			    const struct afe_waker *waker);

/* A job that runs on pool rather than on its runtime's blocking pool (the
 * watches' futex threads). */
void afe__blocking_init_on(struct afe_blocking *job, struct afe_blocking_pool *pool,
			   afe_blocking_fn *fn, void *arg);

/* How many jobs run on p's threads and how many wait for one, as of the
 * call. */
void afe_blocking_pool_load(struct afe_blocking_pool *p, uint64_t *running, uint64_t *queued);

/* True on one of p's threads (which must not shut p down: it would wait
 * for itself). */
bool afe_blocking_pool_is_current(const struct afe_blocking_pool *p);

#endif /* AFE_POOL_BLOCKING_H */
