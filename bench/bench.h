/* SPDX-License-Identifier: MIT */
/* What every afe_bench workload shares: flags, clocks, the JSON line. */
#ifndef AFE_BENCH_H
#define AFE_BENCH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct afe_runtime;

/* The --name=value flags of one run. */
struct bench_args {
	int argc;
	char **argv;
};

/* The value of --name=..., or fallback. Exits with a message on a bad
 * number or an unknown flag (checked by bench_args_check). */
long bench_arg(const struct bench_args *a, const char *name, long fallback);

/* Exits with status 2 if a flag is not among the names (NULL-terminated). */
void bench_args_check(const struct bench_args *a, const char *const *names);

uint64_t bench_now_ns(void);

/* A blocking TCP connection to 127.0.0.1:port, or -1. */
int bench_connect_loopback(int port);

/* Starts a runtime with `threads` workers or exits. */
struct afe_runtime *bench_runtime(long threads);

/* Latency figures of n samples in nanoseconds (sorts them). */
struct bench_latency {
	double p50_us, p99_us, max_us;
};
struct bench_latency bench_latency_of(uint64_t *samples_ns, size_t n);

/* Prints the workload's JSON line (lat may be NULL). */
void bench_report(const char *workload, long threads, long n, double seconds,
		  const struct bench_latency *lat);

/* The same, with extra JSON fields ("\"name\":value,...") before
 * peak_rss_kb. */
void bench_report_with(const char *workload, long threads, long n, double seconds,
		       const struct bench_latency *lat, const char *extra);

/* Exits with status 1 after printing why the run's work was wrong. */
void bench_fail(const char *workload, const char *fmt, ...)
	__attribute__((noreturn, format(printf, 2, 3)));

int workload_spawn_join(const struct bench_args *a);
int workload_yield(const struct bench_args *a);
int workload_ping_pong(const struct bench_args *a);
int workload_channel_mpmc(const struct bench_args *a);
int workload_timers(const struct bench_args *a);
int workload_echo(const struct bench_args *a);
int workload_udp_echo(const struct bench_args *a);
int workload_file_read(const struct bench_args *a);
int workload_sendfile(const struct bench_args *a);
int workload_recv_stream(const struct bench_args *a);
int workload_ipc_call(const struct bench_args *a);
int workload_coro_spawn_join(const struct bench_args *a);
int workload_coro_yield(const struct bench_args *a);
int workload_coro_sleepers(const struct bench_args *a);

#endif /* AFE_BENCH_H */
