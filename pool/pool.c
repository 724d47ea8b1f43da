/* SPDX-License-Identifier: MIT */
/* The pool's life, in the order pool.h lists it. */
#define _GNU_SOURCE
#include "pool.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "runnable.h"

int afe_pool_init(struct afe_pool *p, struct afe_runtime *owner, const struct afe_pool_config *c)
{
	memset(p, 0, sizeof(*p));
	p->owner = owner;
	p->num_workers = c->workers;
	p->spin_us = c->spin_us;
	if (afe_blocking_pool_init(&p->blocking, "afe-blocking", c->blocking_threads,
				   c->blocking_queue) < 0)
		return -ENOMEM;
	if (afe_watches_init(&p->watches, c->watch_with_waitv) < 0) {
		afe_blocking_pool_destroy(&p->blocking);
		return -ENOMEM;
	}
	afe_inject_init(&p->inject);
	p->workers = calloc(p->num_workers, sizeof(*p->workers));
	if (!p->workers || afe_idle_init(&p->idle, p->num_workers) < 0) {
		free(p->workers);
		afe_inject_destroy(&p->inject);
		afe_watches_destroy(&p->watches);
		afe_blocking_pool_destroy(&p->blocking);
		return -ENOMEM;
	}
	for (uint32_t i = 0; i < p->num_workers; i++) {
		struct afe_worker *w = aligned_alloc(AFE_CACHE_LINE, sizeof(*w));
		if (!w) {
			afe_pool_free(p);
			afe_pool_free_queue(p);
			return -ENOMEM;
		}
		memset(w, 0, sizeof(*w));
		afe_rq_init(&w->queue);
		w->pool = p;
		w->index = i;
		w->rng = 0x9e3779b97f4a7c15u * (i + 1);
		p->workers[i] = w;
	}
	return 0;
}

void afe_pool_close(struct afe_pool *p)
{
	/* Release pairs with the acquire in may_run_inline (worker.c). */
	atomic_store_explicit(&p->closed, true, memory_order_release);
}

/* Makes the first started workers exit, and joins them. */
static void stop_started(struct afe_pool *p, uint32_t started)
{
	afe_long_polls_stop(&p->long_polls);
	afe_pool_close(p);
	/* Release pairs with the workers' acquire in shutting_down. */
	atomic_store_explicit(&p->shutdown, true, memory_order_release);
	afe_workers_wake_all(p);
	for (uint32_t i = 0; i < started; i++)
		pthread_join(p->workers[i]->thread, NULL);
}

int afe_pool_start(struct afe_pool *p, unsigned long_poll_ms)
{
	for (uint32_t i = 0; i < p->num_workers; i++) {
		int err = pthread_create(&p->workers[i]->thread, NULL, afe_worker_main,
					 p->workers[i]);
		if (err) {
			stop_started(p, i);
			return -err;
		}
		/* For top -H, gdb and perf; named here, so before start returns. */
		char name[16]; /* the kernel's limit, with the NUL */
		snprintf(name, sizeof(name), "afe-worker-%u", /* 4 digits at most */
			 (unsigned)(i % 10000));
		pthread_setname_np(p->workers[i]->thread, name);
	}
	int err = afe_long_polls_start(&p->long_polls, p, long_poll_ms);
	if (err < 0) {
		stop_started(p, p->num_workers);
		return err;
	}
	return 0;
}

void afe_pool_wind_down(struct afe_pool *p)
{
	afe_watches_close(&p->watches);
	afe_blocking_pool_shutdown(&p->blocking);
}

void afe_pool_stop(struct afe_pool *p)
{
	stop_started(p, p->num_workers);
}

void afe_pool_drain(struct afe_pool *p)
{
	afe_inject_close(&p->inject);
	/* Release the queues' references. A task someone still holds (a
	 * handle, a waker) stays allocated; waking it later is refused by the
	 * closed queue. */
	struct afe_runnable *batch[64];
	uint32_t n;
	while ((n = afe_inject_pop_batch(&p->inject, batch, 64)))
		for (uint32_t i = 0; i < n; i++)
			afe__runnable_discard(batch[i]);
	for (uint32_t i = 0; i < p->num_workers; i++) {
		struct afe_worker *w = p->workers[i];
		struct afe_runnable *t;
		if (w->lifo)
			afe__runnable_discard(w->lifo);
		w->lifo = NULL;
		while ((t = afe_rq_pop(&w->queue)))
			afe__runnable_discard(t);
	}
}

uint64_t afe_pool_sum(const struct afe_pool *p, size_t counter)
{
	/* Acquire pairs with afe_counter_add's release store. */
	const char *c = (const char *)&p->inline_counters;
	uint64_t sum = atomic_load_explicit((const _Atomic uint64_t *)(c + counter),
					    memory_order_acquire);
	for (uint32_t i = 0; i < p->num_workers; i++) {
		c = (const char *)&p->workers[i]->counters;
		sum += atomic_load_explicit((const _Atomic uint64_t *)(c + counter),
					    memory_order_acquire);
	}
	return sum;
}

uint64_t afe_pool_queued(struct afe_pool *p)
{
	uint64_t n = afe_inject_len(&p->inject);
	for (uint32_t i = 0; i < p->num_workers; i++) {
		struct afe_worker *w = p->workers[i];
		/* Read from another thread, the queue's head may pass the tail
		 * read before it: a moment's negative length counts as 0. */
		int32_t len = (int32_t)afe_rq_len(&w->queue);
		n += len > 0 ? (uint64_t)len : 0u;
	}
	return n;
}

bool afe_pool_is_current(struct afe_pool *p)
{
	return afe_pool_current() == p || afe_blocking_pool_is_current(&p->blocking);
}

void afe_pool_free(struct afe_pool *p)
{
	afe_blocking_pool_destroy(&p->blocking);
	for (uint32_t i = 0; i < p->num_workers; i++)
		free(p->workers[i]);
	free(p->workers);
	p->workers = NULL;
	p->num_workers = 0;
	afe_idle_destroy(&p->idle);
	afe_watches_destroy(&p->watches);
}

void afe_pool_free_queue(struct afe_pool *p)
{
	afe_inject_destroy(&p->inject);
}
