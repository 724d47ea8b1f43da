/* SPDX-License-Identifier: MIT */
/* What the benchmark programs share: the clock, and giving up with a
 * message (afe_bench's bench_fail too); the programs without AFE
 * (baseline/, echo_client.c, udp_client.c) also share flags.h. */
#ifndef AFE_BENCH_TOOL_H
#define AFE_BENCH_TOOL_H

#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

/* CLOCK_MONOTONIC, in nanoseconds. */
static inline uint64_t tool_now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* "prog: message" on stderr, then exit(1). */
static inline void tool_vdie(const char *prog, const char *fmt, va_list ap)
	__attribute__((noreturn, format(printf, 2, 0)));
static inline void tool_vdie(const char *prog, const char *fmt, va_list ap)
{
	fprintf(stderr, "%s: ", prog);
	vfprintf(stderr, fmt, ap);
	fputc('\n', stderr);
	exit(1);
}

static inline void tool_die(const char *prog, const char *fmt, ...)
	__attribute__((noreturn, format(printf, 2, 3)));
static inline void tool_die(const char *prog, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	tool_vdie(prog, fmt, ap);
}

#endif /* AFE_BENCH_TOOL_H */
