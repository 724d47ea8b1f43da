/* SPDX-License-Identifier: MIT */
#define _GNU_SOURCE
#include <afe.h>
#include <arpa/inet.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "bench.h"
#include "tool.h"

long bench_arg(const struct bench_args *a, const char *name, long fallback)
{
	size_t len = strlen(name);
	for (int i = 0; i < a->argc; i++) {
		const char *arg = a->argv[i];
		if (strncmp(arg, "--", 2) || strncmp(arg + 2, name, len) || arg[2 + len] != '=')
			continue;
		const char *value = arg + 3 + len;
		char *end;
		errno = 0;
		long v = strtol(value, &end, 10);
		if (!*value || *end || errno || v < 0) {
			fprintf(stderr, "afe_bench: --%s wants a non-negative number, not '%s'\n",
				name, value);
			exit(2);
		}
		return v;
	}
	return fallback;
}

void bench_args_check(const struct bench_args *a, const char *const *names)
{
	for (int i = 0; i < a->argc; i++) {
		const char *arg = a->argv[i];
		bool known = false;
		for (const char *const *n = names; *n && !known; n++) {
			size_t len = strlen(*n);
			known = !strncmp(arg, "--", 2) && !strncmp(arg + 2, *n, len) &&
				arg[2 + len] == '=';
		}
		if (!known) {
			fprintf(stderr, "afe_bench: unknown flag '%s'\n", arg);
			exit(2);
		}
	}
}

uint64_t bench_now_ns(void)
{
	return tool_now_ns();
}

struct afe_runtime *bench_runtime(long threads)
{
	struct afe_runtime_config config;
	afe_runtime_config_default(&config);
	config.workers = (unsigned)threads;
	struct afe_runtime *rt;
	int err = afe_runtime_create(&rt, &config);
	if (err < 0) {
		fprintf(stderr, "afe_bench: cannot start the runtime: %s\n", strerror(-err));
		exit(1);
	}
	return rt;
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
	return (x > y) - (x < y);
}

struct bench_latency bench_latency_of(uint64_t *samples_ns, size_t n)
{
	struct bench_latency lat = {0};
	if (!n)
		return lat;
	qsort(samples_ns, n, sizeof(*samples_ns), cmp_u64);
	lat.p50_us = (double)samples_ns[n / 2] / 1000.0;
	lat.p99_us = (double)samples_ns[(size_t)((double)n * 0.99)] / 1000.0;
	lat.max_us = (double)samples_ns[n - 1] / 1000.0;
	return lat;
}

void bench_report(const char *workload, long threads, long n, double seconds,
		  const struct bench_latency *lat)
{
	bench_report_with(workload, threads, n, seconds, lat, NULL);
}

void bench_report_with(const char *workload, long threads, long n, double seconds,
		       const struct bench_latency *lat, const char *extra)
{
	struct rusage ru;
	getrusage(RUSAGE_SELF, &ru);
	printf("{\"workload\":\"%s\",\"impl\":\"afe\",\"threads\":%ld,\"n\":%ld,"
	       "\"seconds\":%.6f,\"ops_per_s\":%.0f",
	       workload, threads, n, seconds, seconds > 0 ? (double)n / seconds : 0.0);
	if (lat)
		printf(",\"p50_us\":%.3f,\"p99_us\":%.3f,\"max_us\":%.3f", lat->p50_us,
		       lat->p99_us, lat->max_us);
	if (extra)
		printf(",%s", extra);
	printf(",\"peak_rss_kb\":%ld}\n", ru.ru_maxrss);
	fflush(stdout);
}

void bench_fail(const char *workload, const char *fmt, ...)
{
	char prog[96];
	snprintf(prog, sizeof(prog), "afe_bench %s: check failed", workload);
	va_list ap;
	va_start(ap, fmt);
	tool_vdie(prog, fmt, ap);
}

int bench_connect_loopback(int port)
{
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	struct sockaddr_in addr = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
	addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (fd >= 0 && connect(fd, (struct sockaddr *)&addr, sizeof(addr)) < 0) {
		close(fd);
		fd = -1;
	}
	return fd;
}
