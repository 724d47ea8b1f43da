/* SPDX-License-Identifier: MIT */
/* The --name=value flags of the benchmark programs that run without AFE
 * (baseline/, echo_client.c); afe_bench has its own (bench_util.c). */
#ifndef AFE_BENCH_FLAGS_H
#define AFE_BENCH_FLAGS_H

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The value of arg when it reads --name=value, else NULL. */
static inline const char *flag_value(const char *arg, const char *name)
{
	size_t len = strlen(name);
	if (strncmp(arg, "--", 2) != 0 || strncmp(arg + 2, name, len) != 0 || arg[2 + len] != '=')
		return NULL;
	return arg + 3 + len;
}

/* text, the value of --name, as a number from 0 to max (LONG_MAX: any);
 * else prog says so on stderr and exits with 2. */
static inline long flag_number(const char *prog, const char *name, const char *text, long max)
{
	char *end;
	errno = 0;
	long v = strtol(text, &end, 10);
	if (!*text || *end || errno || v < 0 || v > max) {
		if (max == LONG_MAX)
			fprintf(stderr, "%s: --%s wants a non-negative number, not '%s'\n", prog,
				name, text);
		else
			fprintf(stderr, "%s: --%s wants a number from 0 to %ld, not '%s'\n", prog,
				name, max, text);
		exit(2);
	}
	return v;
}

#endif /* AFE_BENCH_FLAGS_H */
