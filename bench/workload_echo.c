/* SPDX-License-Identifier: MIT */
/* echo: a TCP echo server on 127.0.0.1:port for the common load client
 * (bench/echo_client.c), which measures and prints the JSON line. Serves
 * for --seconds=N, or until SIGINT/SIGTERM when N is 0. */
#include <afe.h>
#include <stdio.h>
#include <string.h>

#include "bench.h"
#include "echo_conn.h"

struct echo_run {
	struct afe_future base;
	long seconds;
	struct afe_tcp_server server;
	struct afe_sleep sleep;
	struct afe_future *either[2];
	struct afe_select select;
};

static int echo_run_poll(struct afe_future *f, struct afe_context *cx)
{
	struct echo_run *self = afe_container_of(f, struct echo_run, base);
	AFE_ASYNC_BEGIN(f, cx);
	if (self->seconds <= 0) {
		AFE_AWAIT(&self->server.base);
		AFE_RETURN(self->server.base.result);
	}
	afe_sleep_init(&self->sleep, (uint64_t)self->seconds * 1000000000u);
	self->either[0] = &self->server.base;
	self->either[1] = &self->sleep.base;
	afe_select_init(&self->select, self->either, 2);
	AFE_AWAIT(&self->select.base);
	/* The server only wins on an error. */
	AFE_RETURN(self->select.winner == 0 ? self->server.base.result : 0);
	AFE_ASYNC_END;
}

int workload_echo(const struct bench_args *a)
{
	static const char *const names[] = {"port", "threads", "seconds", "conns", NULL};
	bench_args_check(a, names);
	long port = bench_arg(a, "port", 7000), threads = bench_arg(a, "threads", 2);
	long conns = bench_arg(a, "conns", 1024);
	if (port < 0 || port > 65535 || conns < 1)
		bench_fail("echo", "bad port or conns");
	int fd = afe_tcp_listen("127.0.0.1", (uint16_t)port, 0);
	if (fd < 0)
		bench_fail("echo", "cannot listen on port %ld: %s", port, strerror(-fd));
	struct afe_runtime *rt = bench_runtime(threads);
	struct echo_run run = {.seconds = bench_arg(a, "seconds", 0)};
	struct afe_tcp_server_config config = {
		.listen_fd = fd,
		.max_conns = (unsigned)conns,
		.conn_size = sizeof(struct echo_conn),
		.conn_init = echo_conn_init,
	};
	afe_tcp_server_init(&run.server, &config);
	afe_future_init(&run.base, echo_run_poll);
	fprintf(stderr, "afe_bench echo: serving on 127.0.0.1:%ld with %ld workers\n", port, threads);
	intptr_t result = 0;
	afe_block_on(rt, &run, &result);
	if (result < 0)
		bench_fail("echo", "server stopped: %s", strerror((int)-result));
	afe_runtime_destroy(rt);
	return 0;
}
