/* SPDX-License-Identifier: MIT */
/*
 * ipc_call: this process calls add(a, b, c) in a consumer process it forks
 * (before any thread exists), through the cross-process call layer: n calls
 * one after the other (latency per call), then n calls with `inflight`
 * outstanding (one task per outstanding call). Every sum is checked.
 * Each process runs `threads` workers. `--spin_ns=S` lets an idle worker
 * of either process spin that long (watching its bell) before it sleeps;
 * the default 0 makes both sides sleep between calls. The lines report the
 * spin used (rounded up to microseconds).
 */
#include <afe.h>
#include <afe/ipc.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

#include "bench.h"

AFE_IPC_FN(bench_add, 1, int64_t, int64_t, a, int64_t, b, int64_t, c)

/* A runtime whose idle workers spin spin_ns (rounded up to microseconds). */
static struct afe_runtime *ipc_runtime(long threads, long spin_ns)
{
	struct afe_runtime_config config;
	afe_runtime_config_default(&config);
	config.workers = (unsigned)threads;
	config.spin_us = (unsigned)((spin_ns + 999) / 1000);
	struct afe_runtime *rt;
	int err = afe_runtime_create(&rt, &config);
	if (err < 0)
		bench_fail("ipc_call", "cannot start the runtime: %d", err);
	return rt;
}

/* ---- the consumer process -------------------------------------------------- */

struct server {
	struct afe_future base;
	struct afe_ipc_consumer *consumer;
	struct afe_ipc_request req;
	struct afe_ipc_reply rep;
	struct bench_add_args args;
};

static int server_poll(struct afe_future *f, struct afe_context *cx)
{
	struct server *self = afe_container_of(f, struct server, base);
	AFE_ASYNC_BEGIN(f, cx);
	for (;;) {
		afe_ipc_recv_init(&self->req, self->consumer);
		AFE_AWAIT(&self->req.base);
		if (self->req.base.result < 0)
			AFE_RETURN(0);
		if (bench_add_decode(&self->req, &self->args) == 0)
			bench_add_reply(&self->rep, &self->req,
					self->args.a + self->args.b + self->args.c);
		else
			afe_ipc_reply_error(&self->rep, &self->req, -EPROTO);
		AFE_AWAIT(&self->rep.base);
	}
	AFE_ASYNC_END;
}

/* Serves until the parent goes (its pipe's end closes). */
static void consume(const char *name, long threads, long spin_ns, int ready_fd, int parent_fd)
{
	struct afe_runtime *rt = ipc_runtime(threads, spin_ns);
	struct afe_ipc_consumer *c;
	int err = afe_ipc_consumer_serve(&c, rt, name, NULL);
	if (err < 0)
		bench_fail("ipc_call", "consumer: serve: %d", err);
	for (int i = 0; i < 4; i++) {
		struct server s = {.consumer = c};
		afe_future_init(&s.base, server_poll);
		if (afe_spawn(rt, &s, NULL) < 0)
			bench_fail("ipc_call", "consumer: spawn failed");
	}
	if (write(ready_fd, "r", 1) != 1)
		_exit(1);
	char byte;
	while (read(parent_fd, &byte, 1) > 0)
		;
	afe_ipc_consumer_close(c);
	afe_runtime_destroy(rt); /* the servers end with -EPIPE first */
	afe_ipc_consumer_destroy(c);
	_exit(0);
}

/* ---- the producer ----------------------------------------------------------- */

struct caller {
	struct afe_future base;
	struct afe_ipc_producer *producer;
	long from, count, i;
	uint64_t *samples; /* NULL: not timed one by one */
	uint64_t start;
	int64_t sum;
	struct afe_ipc_call call;
};

static int caller_poll(struct afe_future *f, struct afe_context *cx)
{
	struct caller *self = afe_container_of(f, struct caller, base);
	AFE_ASYNC_BEGIN(f, cx);
	afe_ipc_call_init(&self->call, self->producer);
	for (self->i = self->from; self->i < self->from + self->count; self->i++) {
		if (self->samples)
			self->start = bench_now_ns();
		bench_add_call(&self->call, self->i, 2 * self->i, 3);
		AFE_AWAIT(&self->call.base);
		if (self->call.base.result < 0)
			AFE_RETURN(self->call.base.result);
		if (bench_add_result(&self->call, &self->sum) < 0 || self->sum != 3 * self->i + 3)
			AFE_RETURN(-EBADMSG);
		if (self->samples)
			self->samples[self->i] = bench_now_ns() - self->start;
	}
	AFE_RETURN(0);
	AFE_ASYNC_END;
}

struct pipelined {
	struct afe_future base;
	struct afe_ipc_producer *producer;
	long n, inflight, i;
	struct afe_join_handle *handles;
	struct afe_join join;
};

static int pipelined_poll(struct afe_future *f, struct afe_context *cx)
{
	struct pipelined *self = afe_container_of(f, struct pipelined, base);
	AFE_ASYNC_BEGIN(f, cx);
	for (self->i = 0; self->i < self->inflight; self->i++) {
		long share = self->n / self->inflight, extra = self->i < self->n % self->inflight;
		struct caller c = {.producer = self->producer,
				   .from = self->i * share + (self->i < self->n % self->inflight
								       ? self->i
								       : self->n % self->inflight),
				   .count = share + extra};
		afe_future_init(&c.base, caller_poll);
		if (afe_spawn(NULL, &c, &self->handles[self->i]) < 0)
			AFE_RETURN(-ENOMEM);
	}
	for (self->i = 0; self->i < self->inflight; self->i++) {
		afe_join_init(&self->join, &self->handles[self->i]);
		AFE_AWAIT(&self->join.base);
		if (self->join.base.result < 0)
			AFE_RETURN(self->join.base.result);
	}
	AFE_RETURN(0);
	AFE_ASYNC_END;
}

static struct afe_ipc_producer *connect_to(struct afe_runtime *rt, const char *name)
{
	struct afe_ipc_producer_config config;
	afe_ipc_producer_config_default(&config);
	config.timeout_ms = 10000;
	struct afe_ipc_producer *p;
	int err = afe_ipc_producer_connect(&p, rt, name, &config);
	if (err < 0)
		bench_fail("ipc_call", "connect: %d", err);
	return p;
}

int workload_ipc_call(const struct bench_args *a)
{
	static const char *const names[] = {"n", "inflight", "threads", "spin_ns", NULL};
	bench_args_check(a, names);
	long n = bench_arg(a, "n", 100000), inflight = bench_arg(a, "inflight", 64);
	long threads = bench_arg(a, "threads", 1), spin_ns = bench_arg(a, "spin_ns", 0);
	if (n < 1 || inflight < 1 || inflight > 1024 || spin_ns < 0 || spin_ns > 1000000)
		bench_fail("ipc_call", "bad n, inflight or spin_ns");
	char name[64];
	snprintf(name, sizeof(name), "afe-bench-%d", (int)getpid());
	int ready[2], alive[2];
	if (pipe(ready) < 0 || pipe(alive) < 0)
		bench_fail("ipc_call", "pipe failed");
	pid_t child = fork();
	if (child < 0)
		bench_fail("ipc_call", "fork failed");
	if (child == 0) {
		close(ready[0]);
		close(alive[1]);
		consume(name, threads, spin_ns, ready[1], alive[0]);
	}
	close(ready[1]);
	close(alive[0]);
	char byte;
	if (read(ready[0], &byte, 1) != 1)
		bench_fail("ipc_call", "the consumer did not start");

	struct afe_runtime *rt = ipc_runtime(threads, spin_ns);
	spin_ns = (long)afe_runtime_spin_us(rt) * 1000; /* the spin used */
	struct afe_ipc_producer *p = connect_to(rt, name);
	uint64_t *samples = calloc((size_t)n, sizeof(uint64_t));
	struct afe_join_handle *handles = calloc((size_t)inflight, sizeof(*handles));
	if (!samples || !handles)
		bench_fail("ipc_call", "out of memory");

	struct caller seq = {.producer = p, .from = 0, .count = n, .samples = samples};
	afe_future_init(&seq.base, caller_poll);
	intptr_t result = -1;
	uint64_t start = bench_now_ns();
	afe_block_on(rt, &seq, &result);
	double seconds = (double)(bench_now_ns() - start) / 1e9;
	if (result != 0)
		bench_fail("ipc_call", "a call failed: %ld", (long)result);
	struct bench_latency lat = bench_latency_of(samples, (size_t)n);
	char extra[64];
	snprintf(extra, sizeof(extra), "\"spin_ns\":%ld", spin_ns);
	bench_report_with("ipc_call", threads, n, seconds, &lat, extra);

	struct pipelined pipe_root = {.producer = p, .n = n, .inflight = inflight,
				      .handles = handles};
	afe_future_init(&pipe_root.base, pipelined_poll);
	start = bench_now_ns();
	afe_block_on(rt, &pipe_root, &result);
	seconds = (double)(bench_now_ns() - start) / 1e9;
	if (result != 0)
		bench_fail("ipc_call_pipelined", "a call failed: %ld", (long)result);
	snprintf(extra, sizeof(extra), "\"inflight\":%ld,\"spin_ns\":%ld", inflight, spin_ns);
	bench_report_with("ipc_call_pipelined", threads, n, seconds, NULL, extra);

	afe_ipc_producer_close(p);
	afe_runtime_destroy(rt);
	close(alive[1]); /* the consumer stops */
	waitpid(child, NULL, 0);
	free(samples);
	free(handles);
	return 0;
}
