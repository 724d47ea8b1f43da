/* SPDX-License-Identifier: MIT */
/* The blocking pool and the afe_blocking future. */
#define _GNU_SOURCE /* pthread_setname_np */
#include "blocking.h"

#include <errno.h>
#include <stdlib.h>
#include <time.h>

#include "give_way.h"
#include "pool.h"
#include "wake_batch.h"

enum job_state {
	JOB_NEW = 0,
	JOB_QUEUED,
	JOB_RUNNING,
	JOB_DONE,
};

int afe_blocking_pool_init(struct afe_blocking_pool *p, const char *thread_name,
			   unsigned max_threads, unsigned max_queue)
{
	pthread_condattr_t attr;
	if (pthread_condattr_init(&attr) != 0)
		return -ENOMEM;
	pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
	int err = pthread_cond_init(&p->work, &attr);
	pthread_condattr_destroy(&attr);
	if (err)
		return -err;
	pthread_cond_init(&p->exited, NULL);
	pthread_mutex_init(&p->lock, NULL);
	p->head = NULL;
	p->tail = &p->head;
	p->queued = p->threads = p->idle = p->running = 0;
	p->max_threads = max_threads;
	p->max_queue = max_queue;
	p->shutdown = false;
	p->thread_name = thread_name;
	return 0;
}

/* Marks job done with output and wakes its task. Called with the lock held;
 * the poller frees job only after seeing JOB_DONE under the lock, so the
 * waker is taken out before the unlock that lets it. */
static struct afe_waker finish_locked(struct afe_blocking *job, intptr_t output)
{
	job->output = output;
	job->state = JOB_DONE;
	return afe_waker_take(&job->waker);
}

/* Takes the oldest queued job, or NULL. Called with the lock held. */
static struct afe_blocking *pop_locked(struct afe_blocking_pool *p)
{
	struct afe_blocking *job = p->head;
	if (!job)
		return NULL;
	p->head = job->next;
	if (!p->head)
		p->tail = &p->head;
	p->queued--;
	return job;
}

/* Waits for a job; NULL when the thread should end (idle too long, or
 * shutdown). Called and returns with the lock held. */
static struct afe_blocking *next_job(struct afe_blocking_pool *p)
{
	struct timespec deadline;
	clock_gettime(CLOCK_MONOTONIC, &deadline);
	deadline.tv_sec += AFE_BLOCKING_KEEP_ALIVE_S;
	while (!p->head && !p->shutdown) {
		p->idle++;
		int err = pthread_cond_timedwait(&p->work, &p->lock, &deadline);
		p->idle--;
		if (err == ETIMEDOUT && !p->head)
			return NULL;
	}
	struct afe_blocking *job = pop_locked(p);
	if (job) {
		job->state = JOB_RUNNING;
		p->running++;
	}
	return job;
}

/* The pool this thread serves, if it is a blocking thread. */
static _Thread_local struct afe_blocking_pool *current_pool;

bool afe_blocking_pool_is_current(const struct afe_blocking_pool *p)
{
	return current_pool == p;
}

static void *blocking_thread(void *arg)
{
	struct afe_blocking_pool *p = arg;
	pthread_setname_np(pthread_self(), p->thread_name);
	current_pool = p;
	pthread_mutex_lock(&p->lock);
	struct afe_blocking *job;
	while ((job = next_job(p))) {
		pthread_mutex_unlock(&p->lock);
		intptr_t output = job->fn(job->arg);
		pthread_mutex_lock(&p->lock);
		p->running--;
		struct afe_waker waker = finish_locked(job, output);
		bool abandoned = job->abandoned; /* then nobody else holds it */
		pthread_mutex_unlock(&p->lock);
		afe_waker_wake_if_set(&waker);
		if (abandoned)
			free(job);
		pthread_mutex_lock(&p->lock);
	}
	p->threads--;
	pthread_cond_broadcast(&p->exited);
	pthread_mutex_unlock(&p->lock);
	return NULL;
}

/* Queues job. Returns 0 or a negative errno. Called with the lock held. */
static int enqueue_locked(struct afe_blocking_pool *p, struct afe_blocking *job)
{
	if (p->shutdown)
		return -ESHUTDOWN;
	if (job->try_only && p->queued >= p->max_queue)
		return -EAGAIN;
	if (p->queued >= p->idle && p->threads < p->max_threads) {
		pthread_t thread;
		pthread_attr_t attr;
		pthread_attr_init(&attr);
		pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
		int err = pthread_create(&thread, &attr, blocking_thread, p);
		pthread_attr_destroy(&attr);
		if (err == 0)
			p->threads++;
		else if (p->threads == 0)
			return -err; /* no thread would ever run it */
	}
	job->next = NULL;
	*p->tail = job;
	p->tail = &job->next;
	p->queued++;
	job->state = JOB_QUEUED;
	pthread_cond_signal(&p->work);
	return 0;
}

/* Takes a queued job out of the queue. Called with the lock held. */
static void unlink_locked(struct afe_blocking_pool *p, struct afe_blocking *job)
{
	struct afe_blocking **link = &p->head;
	while (*link != job)
		link = &(*link)->next;
	*link = job->next;
	if (p->tail == &job->next)
		p->tail = link;
	p->queued--;
}

int afe_blocking_pool_queue(struct afe_blocking_pool *p, struct afe_blocking *job,
			    const struct afe_waker *waker)
{
	pthread_mutex_lock(&p->lock);
	job->pool = p;
	job->waker = *waker;
	int err = enqueue_locked(p, job);
	pthread_mutex_unlock(&p->lock);
	return err;
}

/* What the pool runs for job: a heap copy for an abandonable job (so an
 * abandoned call has memory of its own), else job itself. Sets job->copy.
 * Returns NULL when the copy cannot be allocated. */
static struct afe_blocking *pool_side(struct afe_blocking *job)
{
	if (!job->abandonable)
		return job;
	struct afe_blocking *copy = malloc(sizeof(*copy));
	if (!copy)
		return NULL;
	afe_blocking_init(copy, job->fn, job->arg);
	copy->try_only = job->try_only;
	job->copy = copy;
	return copy;
}

/* Frees the heap copy once its future is done with it, and nobody else
 * holds it (the job finished, or was never queued). */
static void free_copy(struct afe_blocking *job)
{
	free(job->copy);
	job->copy = NULL;
}

/* The first poll: queues the job on the current runtime's pool. */
static int start(struct afe_blocking *job, struct afe_context *cx)
{
	struct afe_pool *owner = afe_pool_current();
	struct afe_blocking_pool *pool = job->target	? job->target
					 : owner	? afe_pool_blocking(owner)
							: NULL;
	if (cx->cancel || !pool) {
		job->base.result = cx->cancel ? -ECANCELED : -EINVAL;
		return AFE_READY;
	}
	struct afe_blocking *run = pool_side(job);
	if (!run) {
		job->base.result = -ENOMEM;
		return AFE_READY;
	}
	job->pool = pool;
	pthread_mutex_lock(&job->pool->lock);
	afe_waker_clone(&run->waker, cx->waker);
	int err = enqueue_locked(job->pool, run);
	pthread_mutex_unlock(&job->pool->lock);
	if (err == 0)
		return AFE_PENDING;
	afe_waker_drop(&run->waker);
	free_copy(job);
	job->state = JOB_DONE;
	job->output = err;
	job->base.result = err;
	return err == -ESHUTDOWN ? afe__give_way(cx) : AFE_READY;
}

static int blocking_poll(struct afe_future *f, struct afe_context *cx)
{
	struct afe_blocking *job = afe_container_of(f, struct afe_blocking, base);
	if (!job->fn) {
		f->result = -EINVAL;
		return AFE_READY;
	}
	/* Only the poller sets pool and copy, so these reads need no lock
	 * (state is written by blocking threads once the job is queued). */
	if (!job->pool)
		return start(job, cx);
	struct afe_blocking_pool *p = job->pool;
	struct afe_blocking *run = job->copy ? job->copy : job;
	pthread_mutex_lock(&p->lock);
	if (run->state == JOB_QUEUED && cx->cancel) {
		unlink_locked(p, run);
		struct afe_waker stale = finish_locked(run, -ECANCELED);
		pthread_mutex_unlock(&p->lock);
		afe_waker_drop(&stale);
		free_copy(job);
		f->result = -ECANCELED;
		return AFE_READY;
	}
	if (run->state == JOB_DONE) {
		pthread_mutex_unlock(&p->lock);
		f->result = cx->cancel ? -ECANCELED : run->output;
		free_copy(job);
		return AFE_READY;
	}
	if (cx->cancel && job->copy) {
		/* Running: leave it to its thread, which frees the copy. */
		run->abandoned = true;
		struct afe_waker stale = afe_waker_take(&run->waker);
		pthread_mutex_unlock(&p->lock);
		afe_waker_drop(&stale);
		job->copy = NULL;
		f->result = -ECANCELED;
		return AFE_READY;
	}
	afe_waker_register(&run->waker, cx);
	pthread_mutex_unlock(&p->lock);
	return AFE_PENDING;
}

void afe_blocking_init(struct afe_blocking *job, afe_blocking_fn *fn, void *arg)
{
	afe_future_init(&job->base, blocking_poll);
	job->fn = fn;
	job->arg = arg;
	job->try_only = false;
	job->abandonable = false;
	job->abandoned = false;
	job->copy = NULL;
	job->next = NULL;
	job->pool = NULL;
	job->target = NULL;
	job->state = JOB_NEW;
	job->output = 0;
	job->waker.vtable = NULL;
	job->waker.data = NULL;
}

void afe_try_blocking_init(struct afe_blocking *job, afe_blocking_fn *fn, void *arg)
{
	afe_blocking_init(job, fn, arg);
	job->try_only = true;
}

void afe_blocking_init_abandonable(struct afe_blocking *job, afe_blocking_fn *fn, void *arg)
{
	afe_blocking_init(job, fn, arg);
	job->abandonable = true;
}

void afe__blocking_init_on(struct afe_blocking *job, struct afe_blocking_pool *pool,
			   afe_blocking_fn *fn, void *arg)
{
	afe_blocking_init(job, fn, arg);
	job->target = pool;
}

void afe_blocking_pool_shutdown(struct afe_blocking_pool *p)
{
	pthread_mutex_lock(&p->lock);
	p->shutdown = true;
	struct afe_blocking *job;
	while ((job = pop_locked(p))) {
		struct afe_waker waker = finish_locked(job, -ESHUTDOWN);
		pthread_mutex_unlock(&p->lock);
		afe_waker_wake_if_set(&waker);
		pthread_mutex_lock(&p->lock);
	}
	pthread_cond_broadcast(&p->work);
	while (p->threads > 0)
		pthread_cond_wait(&p->exited, &p->lock);
	pthread_mutex_unlock(&p->lock);
}

void afe_blocking_pool_destroy(struct afe_blocking_pool *p)
{
	pthread_cond_destroy(&p->work);
	pthread_cond_destroy(&p->exited);
	pthread_mutex_destroy(&p->lock);
}

void afe_blocking_pool_load(struct afe_blocking_pool *p, uint64_t *running, uint64_t *queued)
{
	pthread_mutex_lock(&p->lock);
	*running = p->running;
	*queued = p->queued;
	pthread_mutex_unlock(&p->lock);
}
