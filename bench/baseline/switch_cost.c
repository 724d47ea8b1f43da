/* SPDX-License-Identifier: MIT */
/*
 * What one stack switch costs, by the ways a coroutine library can switch:
 * Boost.Context's fcontext (what src/coro/fiber.c uses) and ucontext's
 * swapcontext. A round trip is a switch into a fiber and one back out; n
 * round trips, one JSON line each. No AFE.
 *
 *   switch_cost [--n=N]     (default 10000000)
 */
#define _GNU_SOURCE
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <ucontext.h>

#include "../tool.h"

struct fcontext_transfer {
	void *fctx;
	void *data;
};
extern struct fcontext_transfer jump_fcontext(void *to, void *vp);
extern void *make_fcontext(void *sp, size_t size, void (*fn)(struct fcontext_transfer));

enum { STACK = 64 * 1024 };

static void report(const char *impl, long n, uint64_t ns)
{
	double s = (double)ns / 1e9;
	printf("{\"workload\":\"switch\",\"impl\":\"%s\",\"threads\":1,\"n\":%ld,\"seconds\":%.6f,"
	       "\"ops_per_s\":%.0f,\"ns_per_round_trip\":%.2f}\n",
	       impl, n, s, (double)n / s, (double)ns / (double)n);
}

static void fcontext_fiber(struct fcontext_transfer t)
{
	for (;;)
		t = jump_fcontext(t.fctx, NULL);
}

static void measure_fcontext(long n, char *stack)
{
	void *fiber = make_fcontext(stack + STACK, STACK, fcontext_fiber);
	uint64_t start = tool_now_ns();
	for (long i = 0; i < n; i++)
		fiber = jump_fcontext(fiber, NULL).fctx;
	report("fcontext", n, tool_now_ns() - start);
}

static ucontext_t main_uc, fiber_uc;

static void ucontext_fiber(void)
{
	for (;;)
		swapcontext(&fiber_uc, &main_uc);
}

static void measure_ucontext(long n, char *stack)
{
	getcontext(&fiber_uc);
	fiber_uc.uc_stack.ss_sp = stack;
	fiber_uc.uc_stack.ss_size = STACK;
	fiber_uc.uc_link = NULL;
	makecontext(&fiber_uc, ucontext_fiber, 0);
	uint64_t start = tool_now_ns();
	for (long i = 0; i < n; i++)
		swapcontext(&main_uc, &fiber_uc);
	report("ucontext", n, tool_now_ns() - start);
}

int main(int argc, char **argv)
{
	long n = 10000000;
	if (argc > 1 && !strncmp(argv[1], "--n=", 4))
		n = atol(argv[1] + 4);
	static char stack_a[STACK] __attribute__((aligned(16)));
	static char stack_b[STACK] __attribute__((aligned(16)));
	measure_fcontext(n, stack_a);
	measure_ucontext(n / 10, stack_b); /* a syscall each way: ten times fewer */
	return 0;
}
