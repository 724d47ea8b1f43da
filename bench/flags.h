/* SPDX-License-Identifier: MIT */
/* The --name=value flags of the benchmark programs that run without AFE
 * (baseline/, echo_client.c, udp_client.c); afe_bench has its own
 * (bench_util.c). */
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

/* Exits with 2, prog listing names on stderr, unless every argument is
 * --name=value for one of names (NULL-terminated). */
static inline void flags_check(const char *prog, const char *const *names, int argc,
			       char **argv)
{
	for (int i = 1; i < argc; i++) {
		int known = 0;
		for (const char *const *name = names; *name && !known; name++)
			known = flag_value(argv[i], *name) != NULL;
		if (!known) {
			fprintf(stderr, "%s: unknown flag '%s' (flags are --name=value:", prog,
				argv[i]);
			for (const char *const *name = names; *name; name++)
				fprintf(stderr, " %s", *name);
			fputs(")\n", stderr);
			exit(2);
		}
	}
}

/* The last --name=value given, or NULL. */
static inline const char *flags_string(int argc, char **argv, const char *name)
{
	const char *found = NULL;
	for (int i = 1; i < argc; i++) {
		const char *v = flag_value(argv[i], name);
		if (v)
			found = v;
	}
	return found;
}

/* The last --name=value given as a non-negative number, or fallback. */
static inline long flags_number(const char *prog, int argc, char **argv, const char *name,
				long fallback)
{
	const char *v = flags_string(argc, argv, name);
	return v ? flag_number(prog, name, v, LONG_MAX) : fallback;
}

#endif /* AFE_BENCH_FLAGS_H */
