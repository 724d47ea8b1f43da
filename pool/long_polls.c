/* SPDX-License-Identifier: MIT */
/* The long-poll detector: see long_polls.h. */
#define _GNU_SOURCE /* pthread_setname_np */
#include "long_polls.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "afe/sleep.h" /* afe_now_ns */
#include "pool.h"

/* What the detector last saw of one thread. */
struct afe_long_poll_seen {
	uint64_t polled;   /* its polled count then */
	uint64_t since_ns; /* when it was first seen inside that poll */
	bool said;	   /* that poll was reported */
};

/* Watched thread i: the workers, then the ring thread. */
static struct afe_worker_counters *counters_of(struct afe_pool *p, uint32_t i)
{
	return i < p->num_workers ? &p->workers[i]->counters : &p->inline_counters;
}

static void look(struct afe_long_polls *lp, uint64_t now)
{
	struct afe_pool *p = lp->pool;
	for (uint32_t i = 0; i <= p->num_workers; i++) {
		struct afe_worker_counters *c = counters_of(p, i);
		struct afe_long_poll_seen *s = &lp->seen[i];
		/* Acquire: pairs with afe_counter_add's release stores; polled
		 * first, so a poll seen returned was seen started. */
		uint64_t polled = atomic_load_explicit(&c->polled, memory_order_acquire);
		uint64_t returned = atomic_load_explicit(&c->returned, memory_order_acquire);
		if (polled == returned || polled != s->polled) { /* idle, or moved on */
			*s = (struct afe_long_poll_seen){.polled = polled, .since_ns = now};
			continue;
		}
		if (s->said || now - s->since_ns < lp->bound_ns)
			continue;
		s->said = true;
		atomic_store_explicit(&c->flagged_since_ns, s->since_ns, memory_order_relaxed);
		/* Release: the since above is seen with the mark (the thread's
		 * acquire in afe__runnable_run's check). */
		atomic_store_explicit(&c->flagged, polled, memory_order_release);
		char who[32];
		if (i < p->num_workers)
			snprintf(who, sizeof(who), "worker %u", (unsigned)i);
		else
			snprintf(who, sizeof(who), "the ring thread");
		fprintf(stderr,
			"afe: one poll has held %s for over %llu ms: no other task runs there "
			"meanwhile (the task is named when its poll returns)\n",
			who, (unsigned long long)(lp->bound_ns / 1000000u));
	}
}

static void *detector_main(void *arg)
{
	struct afe_long_polls *lp = arg;
	uint64_t period = lp->bound_ns / 2;
	pthread_mutex_lock(&lp->lock);
	while (!lp->stopping) {
		struct timespec until;
		clock_gettime(CLOCK_MONOTONIC, &until);
		uint64_t ns = (uint64_t)until.tv_nsec + period;
		until.tv_sec += (time_t)(ns / 1000000000u);
		until.tv_nsec = (long)(ns % 1000000000u);
		pthread_cond_timedwait(&lp->stop_asked, &lp->lock, &until);
		if (!lp->stopping)
			look(lp, afe_now_ns());
	}
	pthread_mutex_unlock(&lp->lock);
	return NULL;
}

int afe_long_polls_start(struct afe_long_polls *lp, struct afe_pool *p, unsigned ms)
{
	*lp = (struct afe_long_polls){.pool = p};
	if (ms == 0)
		return 0;
	lp->seen = calloc(p->num_workers + 1u, sizeof(*lp->seen));
	if (!lp->seen)
		return -ENOMEM;
	lp->bound_ns = (uint64_t)ms * 1000000u;
	pthread_mutex_init(&lp->lock, NULL);
	pthread_condattr_t attr;
	pthread_condattr_init(&attr);
	pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
	pthread_cond_init(&lp->stop_asked, &attr);
	pthread_condattr_destroy(&attr);
	int err = pthread_create(&lp->thread, NULL, detector_main, lp);
	if (err) {
		pthread_cond_destroy(&lp->stop_asked);
		pthread_mutex_destroy(&lp->lock);
		free(lp->seen);
		*lp = (struct afe_long_polls){.pool = p};
		return -err;
	}
	pthread_setname_np(lp->thread, "afe-long-polls");
	return 0;
}

void afe_long_polls_stop(struct afe_long_polls *lp)
{
	if (lp->bound_ns == 0)
		return;
	pthread_mutex_lock(&lp->lock);
	lp->stopping = true;
	pthread_cond_signal(&lp->stop_asked);
	pthread_mutex_unlock(&lp->lock);
	pthread_join(lp->thread, NULL);
	pthread_cond_destroy(&lp->stop_asked);
	pthread_mutex_destroy(&lp->lock);
	free(lp->seen);
	lp->bound_ns = 0;
}
