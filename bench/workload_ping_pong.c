/* SPDX-License-Identifier: MIT */
/* ping_pong: two tasks hand a token back and forth through two
 * capacity-1 channels (one each way), n round trips; latency per round
 * trip. `--oneshot=1` uses a oneshot per hop instead (each reinitialised
 * once its value was received), as before the channels existed. */
#include <afe.h>
#include <stdlib.h>

#include "bench.h"

struct court {
	struct afe_chan to_pong, to_ping;
	struct afe_oneshot once_pong, once_ping;
	bool oneshots;
	long n;
	uint64_t *samples;
};

struct ping {
	struct afe_future base;
	struct court *court;
	long i, token, got;
	uint64_t start;
	struct afe_chan_send send;
	struct afe_chan_recv recv;
	struct afe_oneshot_recv once;
};

static int ping_poll(struct afe_future *f, struct afe_context *cx)
{
	struct ping *self = afe_container_of(f, struct ping, base);
	struct court *c = self->court;
	AFE_ASYNC_BEGIN(f, cx);
	for (self->i = 0; self->i < c->n; self->i++) {
		self->start = bench_now_ns();
		if (c->oneshots) {
			afe_oneshot_send(&c->once_pong, self->token);
			afe_oneshot_recv_init(&self->once, &c->once_ping);
			AFE_AWAIT(&self->once.base);
			afe_oneshot_init(&c->once_ping);
			self->got = self->once.base.result;
		} else {
			afe_chan_send_init(&self->send, &c->to_pong, &self->token);
			AFE_AWAIT(&self->send.base);
			afe_chan_recv_init(&self->recv, &c->to_ping, &self->got);
			AFE_AWAIT(&self->recv.base);
			if (self->recv.base.result)
				AFE_RETURN(-1);
		}
		c->samples[self->i] = bench_now_ns() - self->start;
		self->token = self->got + 1;
	}
	AFE_RETURN(self->token);
	AFE_ASYNC_END;
}

struct pong {
	struct afe_future base;
	struct court *court;
	long i, got;
	struct afe_chan_send send;
	struct afe_chan_recv recv;
	struct afe_oneshot_recv once;
};

static int pong_poll(struct afe_future *f, struct afe_context *cx)
{
	struct pong *self = afe_container_of(f, struct pong, base);
	struct court *c = self->court;
	AFE_ASYNC_BEGIN(f, cx);
	for (self->i = 0; self->i < c->n; self->i++) {
		if (c->oneshots) {
			afe_oneshot_recv_init(&self->once, &c->once_pong);
			AFE_AWAIT(&self->once.base);
			afe_oneshot_init(&c->once_pong);
			afe_oneshot_send(&c->once_ping, self->once.base.result + 1);
		} else {
			afe_chan_recv_init(&self->recv, &c->to_pong, &self->got);
			AFE_AWAIT(&self->recv.base);
			if (self->recv.base.result)
				AFE_RETURN(-1);
			self->got++;
			afe_chan_send_init(&self->send, &c->to_ping, &self->got);
			AFE_AWAIT(&self->send.base);
		}
	}
	AFE_RETURN(0);
	AFE_ASYNC_END;
}

struct pp_root {
	struct afe_future base;
	struct afe_join_handle ping, pong;
	struct afe_join join_ping, join_pong;
};

static int root_poll(struct afe_future *f, struct afe_context *cx)
{
	struct pp_root *self = afe_container_of(f, struct pp_root, base);
	AFE_ASYNC_BEGIN(f, cx);
	afe_join_init(&self->join_pong, &self->pong);
	AFE_AWAIT(&self->join_pong.base);
	afe_join_init(&self->join_ping, &self->ping);
	AFE_AWAIT(&self->join_ping.base);
	AFE_RETURN(self->join_ping.base.result);
	AFE_ASYNC_END;
}

int workload_ping_pong(const struct bench_args *a)
{
	static const char *const names[] = {"n", "threads", "oneshot", NULL};
	bench_args_check(a, names);
	long n = bench_arg(a, "n", 1000000), threads = bench_arg(a, "threads", 2);
	struct afe_runtime *rt = bench_runtime(threads);
	struct court court = {.n = n, .samples = calloc((size_t)n + 1, sizeof(uint64_t)),
			      .oneshots = bench_arg(a, "oneshot", 0) != 0};
	if (!court.samples)
		bench_fail("ping_pong", "out of memory");
	if (afe_chan_init(&court.to_pong, sizeof(long), 1) ||
	    afe_chan_init(&court.to_ping, sizeof(long), 1))
		bench_fail("ping_pong", "channel init failed");
	afe_oneshot_init(&court.once_pong);
	afe_oneshot_init(&court.once_ping);

	struct pp_root root;
	afe_future_init(&root.base, root_poll);
	struct ping ping = {.court = &court};
	struct pong pong = {.court = &court};
	afe_future_init(&ping.base, ping_poll);
	afe_future_init(&pong.base, pong_poll);

	uint64_t start = bench_now_ns();
	if (afe_spawn(rt, &pong, &root.pong) < 0 || afe_spawn(rt, &ping, &root.ping) < 0)
		bench_fail("ping_pong", "spawn failed");
	intptr_t token = 0;
	afe_block_on(rt, &root, &token);
	double seconds = (double)(bench_now_ns() - start) / 1e9;

	if (token != 2 * n)
		bench_fail("ping_pong", "token %ld, want %ld", (long)token, 2 * n);
	afe_runtime_destroy(rt);
	afe_chan_destroy(&court.to_pong);
	afe_chan_destroy(&court.to_ping);
	struct bench_latency lat = bench_latency_of(court.samples, (size_t)n);
	free(court.samples);
	bench_report_with("ping_pong", threads, n, seconds, &lat,
			  court.oneshots ? "\"via\":\"oneshot\"" : "\"via\":\"channel\"");
	return 0;
}
