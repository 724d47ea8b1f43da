/* SPDX-License-Identifier: MIT */
/* timers: n tasks each sleep ms milliseconds, then finish; the root joins
 * all. seconds is the whole run; the ideal is ms. */
#include <afe.h>
#include <stdlib.h>

#include "bench.h"

struct timers_root {
	struct afe_future base;
	long n, ms, i, failed;
	struct afe_join_handle *handles;
	struct afe_join join;
};

static int root_poll(struct afe_future *f, struct afe_context *cx)
{
	struct timers_root *self = afe_container_of(f, struct timers_root, base);
	AFE_ASYNC_BEGIN(f, cx);
	for (self->i = 0; self->i < self->n; self->i++) {
		struct afe_sleep nap; /* the task's whole future */
		afe_sleep_init(&nap, (uint64_t)self->ms * 1000000u);
		if (afe_spawn(NULL, &nap, &self->handles[self->i]) < 0)
			AFE_RETURN(-1);
	}
	for (self->i = 0; self->i < self->n; self->i++) {
		afe_join_init(&self->join, &self->handles[self->i]);
		AFE_AWAIT(&self->join.base);
		self->failed += self->join.base.result != 0;
	}
	AFE_RETURN(self->failed);
	AFE_ASYNC_END;
}

int workload_timers(const struct bench_args *a)
{
	static const char *const names[] = {"n", "ms", "threads", NULL};
	bench_args_check(a, names);
	long n = bench_arg(a, "n", 100000), ms = bench_arg(a, "ms", 10);
	long threads = bench_arg(a, "threads", 2);
	struct afe_runtime *rt = bench_runtime(threads);
	struct timers_root root = {.n = n, .ms = ms,
				   .handles = calloc((size_t)n + 1, sizeof(*root.handles))};
	if (!root.handles)
		bench_fail("timers", "out of memory");
	afe_future_init(&root.base, root_poll);

	intptr_t failed = -1;
	uint64_t start = bench_now_ns();
	afe_block_on(rt, &root, &failed);
	double seconds = (double)(bench_now_ns() - start) / 1e9;

	if (failed != 0)
		bench_fail("timers", "%ld sleeps failed", (long)failed);
	if (seconds * 1000 < (double)ms)
		bench_fail("timers", "finished in %.3f s, before the %ld ms sleep", seconds, ms);
	afe_runtime_destroy(rt);
	free(root.handles);
	bench_report("timers", threads, n, seconds, NULL);
	return 0;
}
