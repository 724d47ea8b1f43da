/* SPDX-License-Identifier: MIT */
/* yield: `tasks` tasks each yield back to the scheduler n/tasks times. */
#include <afe.h>
#include <stdlib.h>

#include "bench.h"

struct yielder {
	struct afe_future base;
	long rounds, done;
};

static int yielder_poll(struct afe_future *f, struct afe_context *cx)
{
	struct yielder *self = afe_container_of(f, struct yielder, base);
	AFE_ASYNC_BEGIN(f, cx);
	for (self->done = 0; self->done < self->rounds; self->done++)
		AFE_YIELD();
	AFE_RETURN(self->done);
	AFE_ASYNC_END;
}

struct yield_root {
	struct afe_future base;
	long tasks, rounds, i, total;
	struct afe_join_handle *handles;
	struct afe_join join;
};

static int root_poll(struct afe_future *f, struct afe_context *cx)
{
	struct yield_root *self = afe_container_of(f, struct yield_root, base);
	AFE_ASYNC_BEGIN(f, cx);
	for (self->i = 0; self->i < self->tasks; self->i++) {
		struct yielder y = {.rounds = self->rounds};
		afe_future_init(&y.base, yielder_poll);
		if (afe_spawn(NULL, &y, &self->handles[self->i]) < 0)
			AFE_RETURN(-1);
	}
	for (self->i = 0; self->i < self->tasks; self->i++) {
		afe_join_init(&self->join, &self->handles[self->i]);
		AFE_AWAIT(&self->join.base);
		self->total += self->join.base.result;
	}
	AFE_RETURN(self->total);
	AFE_ASYNC_END;
}

int workload_yield(const struct bench_args *a)
{
	static const char *const names[] = {"n", "tasks", "threads", NULL};
	bench_args_check(a, names);
	long n = bench_arg(a, "n", 10000000), tasks = bench_arg(a, "tasks", 100);
	long threads = bench_arg(a, "threads", 2);
	if (tasks < 1)
		bench_fail("yield", "--tasks must be at least 1");
	struct afe_runtime *rt = bench_runtime(threads);
	struct yield_root root = {.tasks = tasks, .rounds = n / tasks,
				  .handles = calloc((size_t)tasks, sizeof(*root.handles))};
	if (!root.handles)
		bench_fail("yield", "out of memory");
	afe_future_init(&root.base, root_poll);

	intptr_t total = 0;
	uint64_t start = bench_now_ns();
	afe_block_on(rt, &root, &total);
	double seconds = (double)(bench_now_ns() - start) / 1e9;

	if (total != tasks * (n / tasks))
		bench_fail("yield", "%ld yields, want %ld", (long)total, tasks * (n / tasks));
	afe_runtime_destroy(rt);
	free(root.handles);
	bench_report("yield", threads, total, seconds, NULL);
	return 0;
}
