/* SPDX-License-Identifier: MIT */
/*
 * afe_bench WORKLOAD [--name=value ...]: the workloads of bench/README.md,
 * one JSON line each. `afe_bench all` runs every workload at its defaults,
 * except the servers (echo, udp_echo), whose load and figures come from a
 * client.
 */
#include <stdio.h>
#include <string.h>

#include "bench.h"

static const struct {
	const char *name;
	int (*run)(const struct bench_args *a);
	bool serves; /* a server for a separate client: not part of `all` */
} workloads[] = {
	{"spawn_join", workload_spawn_join, false},
	{"yield", workload_yield, false},
	{"ping_pong", workload_ping_pong, false},
	{"channel_mpmc", workload_channel_mpmc, false},
	{"timers", workload_timers, false},
	{"file_read", workload_file_read, false},
	{"sendfile", workload_sendfile, false},
	{"recv_stream", workload_recv_stream, false},
	{"ipc_call", workload_ipc_call, false},
	{"coro_spawn_join", workload_coro_spawn_join, false},
	{"coro_yield", workload_coro_yield, false},
	{"coro_sleepers", workload_coro_sleepers, false},
	{"echo", workload_echo, true},
	{"udp_echo", workload_udp_echo, true},
};

#define WORKLOAD_COUNT (sizeof(workloads) / sizeof(workloads[0]))

static int usage(void)
{
	fprintf(stderr, "usage: afe_bench WORKLOAD [--name=value ...]\nworkloads: all");
	for (size_t i = 0; i < WORKLOAD_COUNT; i++)
		fprintf(stderr, " %s", workloads[i].name);
	fputc('\n', stderr);
	return 2;
}

int main(int argc, char **argv)
{
	if (argc < 2)
		return usage();
	struct bench_args args = {.argc = argc - 2, .argv = argv + 2};
	if (!strcmp(argv[1], "all")) {
		struct bench_args none = {0};
		for (size_t i = 0; i < WORKLOAD_COUNT; i++)
			if (!workloads[i].serves && workloads[i].run(&none))
				return 1;
		return 0;
	}
	for (size_t i = 0; i < WORKLOAD_COUNT; i++)
		if (!strcmp(argv[1], workloads[i].name))
			return workloads[i].run(&args);
	return usage();
}
