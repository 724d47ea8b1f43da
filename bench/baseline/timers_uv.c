/* SPDX-License-Identifier: MIT */
/*
 * timers_uv: the `timers` workload (bench/README.md) on libuv, for
 * comparison with `afe_bench timers`: `n` timers, each its own uv_timer_t
 * started at once with a timeout of `ms` milliseconds (as n tasks each
 * sleeping), on one loop on one thread, which runs until every one has
 * fired. `seconds` is the whole run, from before the first start to the
 * return of uv_run; the ideal is `ms`.
 *
 *   timers_uv [--n=100000] [--ms=10]
 *
 * It exits 1 when a timer did not fire, fired twice, or fired before its
 * `ms` had passed on the loop's clock, or when the whole run took less than
 * `ms`.
 */
#define _GNU_SOURCE /* uv.h wants the POSIX thread types under -std=c11 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <uv.h>

#include "../flags.h"

static uint64_t started_ms; /* the loop's clock when the timers started */
static long ms, fired, early;

static void fail(const char *what, int err)
{
	fprintf(stderr, "timers_uv: %s: %s\n", what, uv_strerror(err));
	exit(1);
}

/* A timer's data counts its firings: each must fire exactly once. Early is
 * judged on the loop's clock, the one libuv's timers count (whole
 * milliseconds, cached per turn): against uv_hrtime a timer may
 * legitimately fire up to a millisecond short of ms. */
static void on_fired(uv_timer_t *timer)
{
	fired++;
	timer->data = (char *)timer->data + 1;
	early += uv_now(timer->loop) - started_ms < (uint64_t)ms;
}

int main(int argc, char **argv)
{
	long n = 100000;
	ms = 10;
	for (int i = 1; i < argc; i++) {
		const char *v;
		if ((v = flag_value(argv[i], "n")))
			n = flag_number("timers_uv", "n", v, 100000000L);
		else if ((v = flag_value(argv[i], "ms")))
			ms = flag_number("timers_uv", "ms", v, 86400000L);
		else {
			fprintf(stderr, "timers_uv: unknown flag '%s' (flags: --n=N --ms=N)\n", argv[i]);
			return 2;
		}
	}

	uv_loop_t loop;
	int err = uv_loop_init(&loop);
	if (err < 0)
		fail("uv_loop_init", err);
	uv_timer_t *timers = calloc((size_t)n + 1, sizeof(*timers));
	if (!timers) {
		fprintf(stderr, "timers_uv: out of memory\n");
		return 1;
	}

	uint64_t start = uv_hrtime();
	/* The timers count from the loop's clock, which is otherwise only
	 * brought up to date when the loop turns. */
	uv_update_time(&loop);
	started_ms = uv_now(&loop);
	for (long i = 0; i < n; i++) {
		if ((err = uv_timer_init(&loop, &timers[i])) < 0 ||
		    (err = uv_timer_start(&timers[i], on_fired, (uint64_t)ms, 0)) < 0)
			fail("starting a timer", err);
	}
	uv_run(&loop, UV_RUN_DEFAULT); /* returns once no timer is pending */
	double seconds = (double)(uv_hrtime() - start) / 1e9;

	long wrong = 0;
	for (long i = 0; i < n; i++) {
		wrong += timers[i].data != (void *)1;
		uv_close((uv_handle_t *)&timers[i], NULL);
	}
	uv_run(&loop, UV_RUN_DEFAULT); /* the closes */
	if ((err = uv_loop_close(&loop)) < 0)
		fail("uv_loop_close", err);
	free(timers);
	if (fired != n || wrong) {
		fprintf(stderr, "timers_uv: check failed: %ld firings, %ld timers not fired once, "
				"want %ld firings\n",
			fired, wrong, n);
		return 1;
	}
	if (early) {
		fprintf(stderr, "timers_uv: check failed: %ld timers fired before %ld ms\n", early,
			ms);
		return 1;
	}
	if (seconds * 1000 < (double)ms) {
		fprintf(stderr, "timers_uv: check failed: finished in %.3f s, before the %ld ms "
				"sleep\n",
			seconds, ms);
		return 1;
	}

	struct rusage ru;
	getrusage(RUSAGE_SELF, &ru);
	printf("{\"workload\":\"timers\",\"impl\":\"libuv\",\"threads\":1,\"n\":%ld,"
	       "\"seconds\":%.6f,\"ops_per_s\":%.0f,\"ms\":%ld,\"peak_rss_kb\":%ld}\n",
	       n, seconds, seconds > 0 ? (double)n / seconds : 0.0, ms, ru.ru_maxrss);
	return 0;
}
