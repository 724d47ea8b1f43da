/* SPDX-License-Identifier: MIT */
/* Runtime start and stop, the blocking entry point, and figures. */
#define _GNU_SOURCE
#include <pthread.h>
#include <stdio.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sched.h>
#include <time.h>
#include <unistd.h>

#include "afe/coro.h" /* AFE_CORO_STACK_MIN */
#include "afe/io.h"
#include "afe/task.h"
#include "../../uring/features.h"
#include "live_runtimes.h"
#include "runtime_internal.h"
#include "task_internal.h"
#include "thread_mask.h"
#include "thread_parker.h"

#define AFE_MAX_WORKERS 1024

void afe_runtime_config_default(struct afe_runtime_config *config)
{
	long cpus = sysconf(_SC_NPROCESSORS_ONLN);
	unsigned workers = cpus > 0 ? (unsigned)cpus : 1;
	const char *env = getenv("AFE_WORKERS");
	if (env) {
		char *end;
		unsigned long v = strtoul(env, &end, 10);
		if (*env && !*end && v >= 1 && v <= AFE_MAX_WORKERS)
			workers = (unsigned)v;
		else
			fprintf(stderr, "afe: ignoring AFE_WORKERS=%s (want 1..%d)\n", env,
				AFE_MAX_WORKERS);
	}
	config->workers = workers;
	config->spin_us = AFE_SPIN_AUTO;
	config->grace_ms = 1000;
	env = getenv("AFE_GRACE_MS");
	if (env) {
		char *end;
		unsigned long v = strtoul(env, &end, 10);
		if (*env && !*end && v <= 24u * 3600 * 1000)
			config->grace_ms = (unsigned)v;
		else
			fprintf(stderr, "afe: ignoring AFE_GRACE_MS=%s\n", env);
	}
	config->exit_mode = AFE_EXIT_GRACE;
	config->ring_entries = AFE_DEFAULT_RING_ENTRIES;
	config->cq_entries = 0;
	config->blocking_threads = AFE_DEFAULT_BLOCKING_THREADS;
	config->blocking_queue = AFE_DEFAULT_BLOCKING_QUEUE;
	config->backend = AFE_BACKEND_AUTO;
	config->quiet_fallback = false;
	config->coro_stack_size = 0;
	config->task_dump = false;
	config->task_dump_signal = 0;
	env = getenv("AFE_TASK_DUMP");
	if (env) {
		char *end;
		long v = strtol(env, &end, 10);
		if (*env && !*end && v >= 0 && v < SIGRTMAX) {
			config->task_dump = v > 0;
			config->task_dump_signal = v > 1 ? (int)v : 0;
		} else {
			fprintf(stderr, "afe: ignoring AFE_TASK_DUMP=%s (want 0, 1 or a signal number)\n",
				env);
		}
	}
	config->long_poll_ms = 0;
	env = getenv("AFE_LONG_POLL_MS");
	if (env) {
		char *end;
		unsigned long v = strtoul(env, &end, 10);
		if (*env && !*end && v >= 1 && v <= 3600u * 1000)
			config->long_poll_ms = (unsigned)v;
		else
			fprintf(stderr, "afe: ignoring AFE_LONG_POLL_MS=%s (want 1..3600000)\n", env);
	}
}

/* Frees everything but the struct itself and its injection queue, which
 * tasks that outlive the runtime may still touch (see destroy). */
static void free_runtime_parts(struct afe_runtime *rt)
{
	afe_ring_free(rt->ring);
	afe_pool_free(&rt->pool);
	pthread_cond_destroy(&rt->block_on_left);
	pthread_mutex_destroy(&rt->block_on_lock);
}

static void free_runtime(struct afe_runtime *rt)
{
	free_runtime_parts(rt);
	afe_pool_free_queue(&rt->pool);
	free(rt);
}

/* Runtimes destroyed while tasks still existed: a late handle drop or wake
 * of such a task touches the runtime's counters and closed queue, so its
 * core stays allocated (a few hundred bytes), reachable from here. */
static pthread_mutex_t orphans_lock = PTHREAD_MUTEX_INITIALIZER;
static struct afe_runtime **orphans;
static size_t orphan_count;

static void keep_orphan(struct afe_runtime *rt)
{
	free_runtime_parts(rt);
	pthread_mutex_lock(&orphans_lock);
	struct afe_runtime **grown = realloc(orphans, (orphan_count + 1) * sizeof(*grown));
	if (grown) {
		orphans = grown;
		orphans[orphan_count++] = rt;
	} /* else: unreachable, still never freed; nothing else to do */
	pthread_mutex_unlock(&orphans_lock);
}

static int create(struct afe_runtime **out, const struct afe_runtime_config *config);

int afe_runtime_create(struct afe_runtime **out, const struct afe_runtime_config *config)
{
	/* The threads started here inherit a mask blocking every
	 * asynchronous signal: none ever runs a handler, and signals AFE
	 * reads stay pending for its signalfd. The caller's mask is kept. */
	sigset_t old;
	afe__thread_mask_for_runtime(&old);
	int err = create(out, config);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (err == 0)
		afe__runtime_went_live(*out); /* the signal hub may start its reader here */
	return err;
}

static int create(struct afe_runtime **out, const struct afe_runtime_config *config)
{
	struct afe_runtime_config defaults;
	if (!out)
		return -EINVAL;
	*out = NULL;
	if (!config) {
		afe_runtime_config_default(&defaults);
		config = &defaults;
	}
	unsigned entries = config->ring_entries ? config->ring_entries : AFE_DEFAULT_RING_ENTRIES;
	if (config->workers > AFE_MAX_WORKERS || entries > AFE_MAX_RING_ENTRIES ||
	    entries == 1 || /* an op with a timeout takes 2 entries */
	    (unsigned)config->backend > AFE_BACKEND_EPOLL ||
	    (config->cq_entries && (config->cq_entries < entries ||
				    config->cq_entries > AFE_MAX_CQ_ENTRIES)) ||
	    (config->coro_stack_size && config->coro_stack_size < AFE_CORO_STACK_MIN))
		return -EINVAL;

	struct afe_runtime *rt = calloc(1, sizeof(*rt));
	if (!rt)
		return -ENOMEM;
	rt->config = *config;
	rt->list_tasks = config->task_dump || config->task_dump_signal;
	pthread_mutex_init(&rt->block_on_lock, NULL);
	pthread_cond_init(&rt->block_on_left, NULL);
	if (rt->config.workers == 0) {
		afe_runtime_config_default(&defaults);
		rt->config.workers = defaults.workers;
	}
	if (rt->config.cq_entries && rt->config.cq_entries < AFE_MIN_CQ_ENTRIES)
		rt->config.cq_entries = AFE_MIN_CQ_ENTRIES; /* see runtime.h */
	if (rt->config.spin_us == AFE_SPIN_AUTO) {
		long cpus = sysconf(_SC_NPROCESSORS_ONLN);
		rt->config.spin_us = cpus > (long)rt->config.workers ? 50 : 0;
	}
	struct afe_pool_config pool = {
		.workers = rt->config.workers,
		.spin_us = rt->config.spin_us,
		.blocking_threads = rt->config.blocking_threads ? rt->config.blocking_threads
								: AFE_DEFAULT_BLOCKING_THREADS,
		.blocking_queue = rt->config.blocking_queue ? rt->config.blocking_queue
							    : AFE_DEFAULT_BLOCKING_QUEUE,
		/* futex_waitv came with 5.16: a mask below it keeps workers off it. */
		.watch_with_waitv = afe__features_cap() >= AFE_LINUX(5, 16),
	};
	if (afe_pool_init(&rt->pool, rt, &pool) < 0) {
		pthread_cond_destroy(&rt->block_on_left);
		pthread_mutex_destroy(&rt->block_on_lock);
		free(rt);
		return -ENOMEM;
	}
	int err = afe_pool_start(&rt->pool, rt->config.long_poll_ms);
	if (err < 0) {
		free_runtime(rt);
		return err;
	}
	/* After the workers: see ring.c on private futex waits. */
	struct afe_ring_options ring = {.entries = entries,
					.cq_entries = rt->config.cq_entries,
					.backend = (int)rt->config.backend,
					.quiet_fallback = rt->config.quiet_fallback,
					.pool = afe_pool_blocking(&rt->pool)};
	err = afe_ring_start(&rt->ring, &ring);
	if (err < 0) {
		afe_pool_stop(&rt->pool);
		free_runtime(rt);
		return err;
	}
	*out = rt;
	return 0;
}

uint64_t afe__runtime_live_tasks(const struct afe_runtime *rt)
{
	/* Finished counts first, then spawned: every task counted finished was
	 * spawned before (acquire chains through the queues), so the
	 * difference never undercounts. */
	uint64_t finished = atomic_load_explicit(&rt->dropped, memory_order_acquire) +
			    AFE_POOL_SUM(&rt->pool, finished);
	uint64_t spawned = atomic_load_explicit(&rt->external_spawned, memory_order_acquire) +
			   AFE_POOL_SUM(&rt->pool, spawned);
	/* Last: a system task is counted here only after its spawn was
	 * counted above, and uncounted before it finishes, so leaving them
	 * out never undercounts the others. */
	int64_t system = atomic_load(&rt->system_tasks);
	finished += system > 0 ? (uint64_t)system : 0;
	return spawned > finished ? spawned - finished : 0;
}

int afe__spawn_system_raw(struct afe_runtime *rt, const void *obj, size_t size,
			  const struct afe_future *base, struct afe_join_handle *handle, bool child)
{
	int err = child ? afe_spawn_child_raw(rt, obj, size, base, handle)
			: afe_spawn_raw(rt, obj, size, base, handle);
	if (err == 0) /* relaxed: a count, read by polls that tolerate a lag */
		atomic_fetch_add_explicit(&rt->system_tasks, 1, memory_order_relaxed);
	return err;
}

void afe__system_task_done(struct afe_runtime *rt)
{
	/* Release: pairs with destroy's acquire in let_system_tasks_finish,
	 * which may free what the task used once it sees the count at 0. */
	atomic_fetch_sub_explicit(&rt->system_tasks, 1, memory_order_release);
}

#define SYSTEM_TASKS_WAIT_MS 2000u


/* Gives the tasks woken by the ring's stop time to finish: waits while
 * tasks are alive and the runtime is not quiet (seen twice, a millisecond
 * apart), at most grace_ms. Tasks waiting for something else that will not
 * come are left to the caller's count. */
static void let_woken_tasks_finish(struct afe_runtime *rt)
{
	uint64_t deadline = afe_now_ns() + (uint64_t)rt->config.grace_ms * 1000000u;
	int quiet_checks = 0;
	while (afe__runtime_live_tasks(rt) > 0 && afe_now_ns() < deadline) {
		quiet_checks = afe_pool_is_quiet(&rt->pool) ? quiet_checks + 1 : 0;
		if (quiet_checks >= 2)
			return;
		struct timespec ms = {.tv_sec = 0, .tv_nsec = 1000000};
		nanosleep(&ms, NULL);
	}
}

/* The signal reader (a system task) was woken by the ring's stop: lets it
 * dispatch what it read and end, whatever the grace period, so no signal
 * it took from the kernel is lost and it is never discarded unfinished.
 * Bounded, in case a worker is stuck in a user's poll. */
static void let_system_tasks_finish(struct afe_runtime *rt)
{
	uint64_t deadline = afe_now_ns() + SYSTEM_TASKS_WAIT_MS * 1000000u;
	while (atomic_load_explicit(&rt->system_tasks, memory_order_acquire) > 0 &&
	       afe_now_ns() < deadline) {
		struct timespec ms = {.tv_sec = 0, .tv_nsec = 1000000};
		nanosleep(&ms, NULL);
	}
}

/* Wakes the threads in afe_block_on and waits for them to leave. */
static void release_block_ons(struct afe_runtime *rt)
{
	pthread_mutex_lock(&rt->block_on_lock);
	for (struct afe_block_on_waiter *b = rt->block_ons; b; b = b->next) {
		atomic_store(&b->runtime_gone, true);
		struct afe_waker w = afe_thread_parker_waker(b->parker);
		afe_waker_wake_by_ref(&w);
	}
	while (rt->block_ons)
		pthread_cond_wait(&rt->block_on_left, &rt->block_on_lock);
	pthread_mutex_unlock(&rt->block_on_lock);
}

int afe_runtime_destroy(struct afe_runtime *rt)
{
	if (!rt || afe_pool_is_current(&rt->pool))
		return -EINVAL;
	afe__runtime_leaving(rt); /* the signal reader moves to another runtime */
	atomic_store(&rt->closed, true);
	afe_pool_close(&rt->pool);
	/* Operations in flight are cancelled, and blocking jobs not started
	 * refused, and their tasks woken while the workers still run, so
	 * those tasks wind down. */
	afe_ring_stop(rt->ring);
	afe_pool_wind_down(&rt->pool);
	let_system_tasks_finish(rt);
	let_woken_tasks_finish(rt);
	afe_pool_stop(&rt->pool);
	/* Spawns from other threads that began before closed was set. */
	while (atomic_load(&rt->external_spawns_in_flight))
		sched_yield();
	uint64_t left = afe__runtime_live_tasks(rt);
	afe_pool_drain(&rt->pool);
	release_block_ons(rt);
	/* A system task that did not finish is alive, though not counted. */
	if (afe__runtime_live_tasks(rt) > 0 || atomic_load(&rt->system_tasks) > 0)
		keep_orphan(rt);
	else
		free_runtime(rt);
	return left > INT32_MAX ? INT32_MAX : (int)left;
}

struct afe_ring *afe__runtime_ring(const struct afe_runtime *rt)
{
	return rt->ring;
}

unsigned afe_runtime_workers(const struct afe_runtime *rt)
{
	return rt ? rt->config.workers : 0;
}

unsigned afe_runtime_spin_us(const struct afe_runtime *rt)
{
	return rt ? rt->config.spin_us : 0;
}

struct afe_runtime *afe_runtime_current(void)
{
	struct afe_pool *p = afe_pool_current();
	return p ? p->owner : NULL;
}

int afe_runtime_metrics(const struct afe_runtime *rt, struct afe_metrics *m)
{
	if (!rt || !m)
		return -EINVAL;
	memset(m, 0, sizeof(*m));
	m->spawned = atomic_load_explicit(&rt->external_spawned, memory_order_acquire) +
		     AFE_POOL_SUM(&rt->pool, spawned);
	m->completed = atomic_load_explicit(&rt->dropped, memory_order_acquire) +
		       AFE_POOL_SUM(&rt->pool, completed);
	m->injected = afe_pool_injected(&rt->pool);
	m->polled = AFE_POOL_SUM(&rt->pool, polled);
	m->stolen = AFE_POOL_SUM(&rt->pool, stolen);
	m->parks = AFE_POOL_SUM(&rt->pool, parks);
	m->unparks = AFE_POOL_SUM(&rt->pool, unparks);
	struct afe_runtime *mutable_rt = (struct afe_runtime *)rt; /* locks are taken */
	m->queued = afe_pool_queued(&mutable_rt->pool);
	afe_blocking_pool_load(afe_pool_blocking(&mutable_rt->pool), &m->blocking_running,
			       &m->blocking_queued);
	afe_ring_io_load(rt->ring, &m->io_in_flight, &m->io_backlog);
	return 0;
}

static void block_on_enter(struct afe_runtime *rt, struct afe_block_on_waiter *me)
{
	pthread_mutex_lock(&rt->block_on_lock);
	me->next = rt->block_ons;
	rt->block_ons = me;
	pthread_mutex_unlock(&rt->block_on_lock);
}

static void block_on_leave(struct afe_runtime *rt, struct afe_block_on_waiter *me)
{
	pthread_mutex_lock(&rt->block_on_lock);
	struct afe_block_on_waiter **link = &rt->block_ons;
	while (*link != me)
		link = &(*link)->next;
	*link = me->next;
	if (!rt->block_ons)
		pthread_cond_broadcast(&rt->block_on_left);
	pthread_mutex_unlock(&rt->block_on_lock);
}

int afe_block_on_raw(struct afe_runtime *rt, const void *obj, size_t size,
		     const struct afe_future *base, intptr_t *result)
{
	if (!rt)
		return -EINVAL;
	if (afe_runtime_current())
		return -EDEADLK;
	struct afe_thread_parker *parker = afe_thread_parker_new();
	if (!parker)
		return -ENOMEM;
	struct afe_block_on_waiter me = {.parker = parker};
	atomic_init(&me.runtime_gone, false);
	block_on_enter(rt, &me);
	struct afe_join_handle handle;
	int err = afe_spawn_raw(rt, obj, size, base, &handle);
	if (err == 0) {
		struct afe_join join;
		afe_join_init(&join, &handle);
		struct afe_waker waker = afe_thread_parker_waker(parker);
		struct afe_context cx = {.waker = &waker, .task = NULL, .cancel = false};
		while (afe_future_poll(&join.base, &cx) == AFE_PENDING) {
			if (atomic_load(&me.runtime_gone)) {
				/* Destroyed under us: the task will never finish. */
				afe_join_handle_drop(&join.handle);
				err = -ESHUTDOWN;
				break;
			}
			afe_thread_parker_wait(parker);
		}
		if (err == 0 && result)
			*result = join.base.result;
	}
	block_on_leave(rt, &me);
	afe_thread_parker_release(parker);
	return err;
}

int afe_runtime_wait_idle(struct afe_runtime *rt, int timeout_ms)
{
	if (!rt)
		return -EINVAL;
	uint64_t start = afe_now_ns();
	/* Polled every millisecond: exit paths only, so a futex per
	 * completion on the hot path is not worth it. */
	for (;;) {
		uint64_t left = afe__runtime_live_tasks(rt);
		if (left == 0)
			return 0;
		uint64_t elapsed_ms = (afe_now_ns() - start) / 1000000u;
		if (timeout_ms >= 0 && elapsed_ms >= (uint64_t)timeout_ms)
			return left > INT32_MAX ? INT32_MAX : (int)left;
		struct timespec ms = {.tv_sec = 0, .tv_nsec = 1000000};
		nanosleep(&ms, NULL);
	}
}
