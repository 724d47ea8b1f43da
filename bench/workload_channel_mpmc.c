/* SPDX-License-Identifier: MIT */
/* channel_mpmc: `producers` tasks send the numbers 1..n (each its own
 * share) through one channel of capacity `cap` to `consumers` tasks, which
 * receive until the channel closes (when the last producer drops its
 * sender handle). Every item received exactly once: checked by count and
 * sum. */
#include <afe.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench.h"

struct mpmc {
	struct afe_chan chan;
	long n, producers, consumers;
};

struct producer {
	struct afe_future base;
	struct mpmc *m;
	uint64_t next, last; /* sends next..last */
	intptr_t result;
	struct afe_chan_send send;
};

static int producer_poll(struct afe_future *f, struct afe_context *cx)
{
	struct producer *self = afe_container_of(f, struct producer, base);
	AFE_ASYNC_BEGIN(f, cx);
	for (; self->next <= self->last; self->next++) {
		afe_chan_send_init(&self->send, &self->m->chan, &self->next);
		AFE_AWAIT(&self->send.base);
		self->result = self->send.base.result;
		if (self->result)
			break;
	}
	/* Also after a failed send: the last handle dropped closes the
	 * channel, so the consumers finish (and the check reports it). */
	afe_chan_drop_sender(&self->m->chan);
	AFE_RETURN(self->result);
	AFE_ASYNC_END;
}

struct consumer {
	struct afe_future base;
	struct mpmc *m;
	uint64_t item, sum, count;
	struct afe_chan_recv recv;
	uint64_t *out_sum, *out_count;
};

static int consumer_poll(struct afe_future *f, struct afe_context *cx)
{
	struct consumer *self = afe_container_of(f, struct consumer, base);
	AFE_ASYNC_BEGIN(f, cx);
	for (;;) {
		afe_chan_recv_init(&self->recv, &self->m->chan, &self->item);
		AFE_AWAIT(&self->recv.base);
		if (self->recv.base.result)
			break;
		self->sum += self->item;
		self->count++;
	}
	*self->out_sum = self->sum;
	*self->out_count = self->count;
	AFE_RETURN(self->recv.base.result == -EPIPE ? 0 : self->recv.base.result);
	AFE_ASYNC_END;
}

struct mpmc_root {
	struct afe_future base;
	struct afe_join_handle *handles;
	long tasks, i;
	intptr_t failed;
	struct afe_join join;
};

static int root_poll(struct afe_future *f, struct afe_context *cx)
{
	struct mpmc_root *self = afe_container_of(f, struct mpmc_root, base);
	AFE_ASYNC_BEGIN(f, cx);
	for (self->i = 0; self->i < self->tasks; self->i++) {
		afe_join_init(&self->join, &self->handles[self->i]);
		AFE_AWAIT(&self->join.base);
		if (self->join.base.result)
			self->failed = self->join.base.result;
	}
	AFE_RETURN(self->failed);
	AFE_ASYNC_END;
}

int workload_channel_mpmc(const struct bench_args *a)
{
	static const char *const names[] = {"n", "threads", "producers", "consumers", "cap", NULL};
	bench_args_check(a, names);
	long n = bench_arg(a, "n", 10000000), threads = bench_arg(a, "threads", 2);
	long producers = bench_arg(a, "producers", 4), consumers = bench_arg(a, "consumers", 4);
	long cap = bench_arg(a, "cap", 1024);
	if (producers < 1 || consumers < 1)
		bench_fail("channel_mpmc", "needs a producer and a consumer");
	struct mpmc m = {.n = n, .producers = producers, .consumers = consumers};
	/* bench_arg refuses negative values: there is no way to ask for an
	 * unbounded channel (AFE_CHAN_UNBOUNDED) by accident. */
	int err = afe_chan_init(&m.chan, sizeof(uint64_t), (size_t)cap);
	if (err) {
		fprintf(stderr, "afe_bench: channel_mpmc: --cap=%ld: %s\n", cap, strerror(-err));
		exit(2);
	}
	for (long p = 1; p < producers; p++)
		afe_chan_add_sender(&m.chan);
	uint64_t *sums = calloc((size_t)consumers, sizeof(uint64_t));
	uint64_t *counts = calloc((size_t)consumers, sizeof(uint64_t));
	struct mpmc_root root = {.tasks = producers + consumers,
				 .handles = calloc((size_t)(producers + consumers),
						   sizeof(struct afe_join_handle))};
	if (!sums || !counts || !root.handles)
		bench_fail("channel_mpmc", "out of memory");
	afe_future_init(&root.base, root_poll);

	struct afe_runtime *rt = bench_runtime(threads);
	uint64_t start = bench_now_ns();
	for (long c = 0; c < consumers; c++) {
		struct consumer t = {.m = &m, .out_sum = &sums[c], .out_count = &counts[c]};
		afe_future_init(&t.base, consumer_poll);
		if (afe_spawn(rt, &t, &root.handles[c]) < 0)
			bench_fail("channel_mpmc", "spawn failed");
	}
	uint64_t share = (uint64_t)n / (uint64_t)producers, first = 1;
	for (long p = 0; p < producers; p++) {
		uint64_t last = p == producers - 1 ? (uint64_t)n : first + share - 1;
		struct producer t = {.m = &m, .next = first, .last = last};
		afe_future_init(&t.base, producer_poll);
		if (afe_spawn(rt, &t, &root.handles[consumers + p]) < 0)
			bench_fail("channel_mpmc", "spawn failed");
		first = last + 1;
	}
	intptr_t failed = -1;
	afe_block_on(rt, &root, &failed);
	double seconds = (double)(bench_now_ns() - start) / 1e9;
	afe_runtime_destroy(rt);

	uint64_t sum = 0, count = 0;
	for (long c = 0; c < consumers; c++) {
		sum += sums[c];
		count += counts[c];
	}
	uint64_t want = (uint64_t)n * ((uint64_t)n + 1) / 2;
	if (failed || count != (uint64_t)n || sum != want)
		bench_fail("channel_mpmc", "status %ld, %lu items with sum %lu, want %ld with sum %lu",
			   (long)failed, (unsigned long)count, (unsigned long)sum, n,
			   (unsigned long)want);
	if (afe_chan_destroy(&m.chan))
		bench_fail("channel_mpmc", "a waiter was left on the channel");
	free(sums);
	free(counts);
	free(root.handles);
	char extra[96];
	snprintf(extra, sizeof(extra), "\"producers\":%ld,\"consumers\":%ld,\"cap\":%ld", producers,
		 consumers, cap);
	bench_report_with("channel_mpmc", threads, n, seconds, NULL, extra);
	return 0;
}
