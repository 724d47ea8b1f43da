/* SPDX-License-Identifier: MIT */
/*
 * The coroutine twins of spawn_join, yield and timers (afe/coro.h):
 * - coro_spawn_join: a root coroutine spawns n coroutines, each returns its
 *   index, and joins them all, checking the sum; in waves of `wave`, since
 *   each live coroutine holds a guarded stack (two memory mappings: the
 *   kernel's vm.max_map_count, 65530 by default, caps them near 30,000);
 *   --shared=1 puts them on shared stacks, --stack=BYTES sets their size
 *   (0: the default);
 * - coro_yield: `tasks` coroutines each yield n/tasks times;
 * - coro_sleepers: n coroutines each sleep ms milliseconds; seconds is the
 *   whole (ideal: ms), peak_rss_kb what their stacks cost; --shared=1 puts
 *   them on shared stacks (private stacks stop near 30,000, as above).
 */
#include <afe.h>
#include <stdio.h>
#include <stdlib.h>

#include "bench.h"

static intptr_t return_index(void *arg)
{
	return (intptr_t)arg;
}

struct waves {
	long n, wave;
	struct afe_join_handle *handles;
	struct afe_coro_opts opts;
};

static intptr_t spawn_join_root(void *arg)
{
	struct waves *w = arg;
	intptr_t sum = 0;
	for (long at = 0; at < w->n; at += w->wave) {
		long end = at + w->wave < w->n ? at + w->wave : w->n;
		for (long i = at; i < end; i++)
			if (afe_coro_spawn(NULL, return_index, (void *)(intptr_t)i, &w->handles[i - at],
					   &w->opts) < 0)
				return -1;
		for (long i = at; i < end; i++) {
			struct afe_join join;
			afe_join_init(&join, &w->handles[i - at]);
			sum += afe_co_await(&join.base);
		}
	}
	return sum;
}

/* Runs fn(arg) as the root coroutine of a runtime of `threads` workers;
 * returns its result and the wall time in *seconds. */
static intptr_t run_root(long threads, afe_coro_fn *fn, void *arg, double *seconds)
{
	struct afe_runtime *rt = bench_runtime(threads);
	struct afe_coro root;
	afe_coro_init(&root, fn, arg, NULL);
	intptr_t result = -1;
	uint64_t start = bench_now_ns();
	afe_block_on(rt, &root, &result);
	*seconds = (double)(bench_now_ns() - start) / 1e9;
	afe_runtime_destroy(rt);
	return result;
}

int workload_coro_spawn_join(const struct bench_args *a)
{
	static const char *const names[] = {"n", "wave", "threads", "shared", "stack", NULL};
	bench_args_check(a, names);
	long n = bench_arg(a, "n", 1000000), threads = bench_arg(a, "threads", 2);
	bool shared = bench_arg(a, "shared", 0) != 0;
	long stack = bench_arg(a, "stack", 0);
	struct waves w = {.n = n, .wave = bench_arg(a, "wave", 10000),
			  .opts = {.shared_stack = shared, .stack_size = (size_t)stack}};
	if (w.wave < 1)
		bench_fail("coro_spawn_join", "--wave must be at least 1");
	w.handles = calloc((size_t)w.wave, sizeof(*w.handles));
	if (!w.handles)
		bench_fail("coro_spawn_join", "out of memory");
	double seconds;
	intptr_t sum = run_root(threads, spawn_join_root, &w, &seconds);
	if (sum != n * (n - 1) / 2)
		bench_fail("coro_spawn_join", "sum %ld, want %ld", (long)sum, n * (n - 1) / 2);
	free(w.handles);
	char extra[80];
	snprintf(extra, sizeof(extra), "\"wave\":%ld,\"stack\":\"%s\",\"stack_size\":%ld", w.wave,
		 shared ? "shared" : "private", stack);
	bench_report_with("coro_spawn_join", threads, n, seconds, NULL, extra);
	return 0;
}

static intptr_t yielder(void *arg)
{
	long rounds = (long)(intptr_t)arg, done = 0;
	while (done < rounds && afe_co_yield() == 0)
		done++;
	return done;
}

struct fan_out {
	long tasks;
	afe_coro_fn *fn;
	void *arg;
	struct afe_coro_opts opts;
};

/* Spawns `tasks` coroutines fn(arg) and returns the sum of their results. */
static intptr_t fan_out_root(void *arg)
{
	struct fan_out *f = arg;
	struct afe_join_handle *h = calloc((size_t)f->tasks, sizeof(*h));
	if (!h)
		return -1;
	intptr_t sum = 0;
	for (long i = 0; i < f->tasks; i++)
		if (afe_coro_spawn(NULL, f->fn, f->arg, &h[i], &f->opts) < 0)
			sum = INTPTR_MIN / 2; /* counted wrong, checked by the caller */
	for (long i = 0; i < f->tasks; i++) {
		struct afe_join join;
		if (afe_join_init(&join, &h[i]) == 0)
			sum += afe_co_await(&join.base);
	}
	free(h);
	return sum;
}

int workload_coro_yield(const struct bench_args *a)
{
	static const char *const names[] = {"n", "tasks", "threads", NULL};
	bench_args_check(a, names);
	long n = bench_arg(a, "n", 10000000), tasks = bench_arg(a, "tasks", 100);
	long threads = bench_arg(a, "threads", 2);
	if (tasks < 1)
		bench_fail("coro_yield", "--tasks must be at least 1");
	struct fan_out f = {.tasks = tasks, .fn = yielder, .arg = (void *)(intptr_t)(n / tasks)};
	double seconds;
	intptr_t total = run_root(threads, fan_out_root, &f, &seconds);
	if (total != tasks * (n / tasks))
		bench_fail("coro_yield", "%ld yields, want %ld", (long)total, tasks * (n / tasks));
	bench_report("coro_yield", threads, total, seconds, NULL);
	return 0;
}

static intptr_t sleeper(void *arg)
{
	return afe_co_sleep((uint64_t)(intptr_t)arg * 1000000u) == 0;
}

int workload_coro_sleepers(const struct bench_args *a)
{
	static const char *const names[] = {"n", "ms", "threads", "shared", NULL};
	bench_args_check(a, names);
	long n = bench_arg(a, "n", 20000), ms = bench_arg(a, "ms", 10);
	long threads = bench_arg(a, "threads", 2);
	bool shared = bench_arg(a, "shared", 0) != 0;
	struct fan_out f = {.tasks = n, .fn = sleeper, .arg = (void *)(intptr_t)ms,
			    .opts = {.shared_stack = shared}};
	double seconds;
	intptr_t slept = run_root(threads, fan_out_root, &f, &seconds);
	if (slept != n)
		bench_fail("coro_sleepers", "%ld slept, want %ld", (long)slept, n);
	char extra[48];
	snprintf(extra, sizeof(extra), "\"ms\":%ld,\"stack\":\"%s\"", ms,
		 shared ? "shared" : "private");
	bench_report_with("coro_sleepers", threads, n, seconds, NULL, extra);
	return 0;
}
