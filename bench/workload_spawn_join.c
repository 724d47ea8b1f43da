/* SPDX-License-Identifier: MIT */
/* spawn_join: a root task spawns n tasks, each returns its index; the root
 * joins all of them and checks the sum. */
#include <afe.h>
#include <stdlib.h>

#include "bench.h"

struct index_task {
	struct afe_future base;
	long index;
};

static int index_poll(struct afe_future *f, struct afe_context *cx)
{
	(void)cx;
	f->result = afe_container_of(f, struct index_task, base)->index;
	return AFE_READY;
}

struct spawn_root {
	struct afe_future base;
	long n, i, sum;
	struct afe_join_handle *handles;
	struct afe_join join;
};

static int root_poll(struct afe_future *f, struct afe_context *cx)
{
	struct spawn_root *self = afe_container_of(f, struct spawn_root, base);
	AFE_ASYNC_BEGIN(f, cx);
	for (self->i = 0; self->i < self->n; self->i++) {
		struct index_task t = {.index = self->i};
		afe_future_init(&t.base, index_poll);
		if (afe_spawn(NULL, &t, &self->handles[self->i]) < 0)
			AFE_RETURN(-1);
	}
	for (self->i = 0; self->i < self->n; self->i++) {
		afe_join_init(&self->join, &self->handles[self->i]);
		AFE_AWAIT(&self->join.base);
		self->sum += self->join.base.result;
	}
	AFE_RETURN(self->sum);
	AFE_ASYNC_END;
}

int workload_spawn_join(const struct bench_args *a)
{
	static const char *const names[] = {"n", "threads", NULL};
	bench_args_check(a, names);
	long n = bench_arg(a, "n", 1000000), threads = bench_arg(a, "threads", 2);
	struct afe_runtime *rt = bench_runtime(threads);
	struct spawn_root root = {.n = n, .handles = calloc((size_t)n + 1, sizeof(*root.handles))};
	if (!root.handles)
		bench_fail("spawn_join", "out of memory");
	afe_future_init(&root.base, root_poll);

	intptr_t sum = 0;
	uint64_t start = bench_now_ns();
	afe_block_on(rt, &root, &sum);
	double seconds = (double)(bench_now_ns() - start) / 1e9;

	if (sum != n * (n - 1) / 2)
		bench_fail("spawn_join", "sum %ld, want %ld", (long)sum, n * (n - 1) / 2);
	afe_runtime_destroy(rt);
	free(root.handles);
	bench_report("spawn_join", threads, n, seconds, NULL);
	return 0;
}
