/* SPDX-License-Identifier: MIT */
/* main() for TSan test programs: see criterion/criterion.h. Runs each test in
 * a child process, with a timeout, and prints a Criterion-like synthesis.
 * Arguments are accepted and ignored (ctest passes --jobs=1). */
#include "criterion/criterion.h"

#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

enum { DEFAULT_TIMEOUT_S = 600 };

static struct crl_test *first, **tail = &first;

void crl_register(struct crl_test *test)
{
	*tail = test;
	tail = &test->next;
}

void crl_check(bool ok, const char *file, int line, const char *expr, const char *fmt, ...)
{
	if (ok)
		return;
	fprintf(stderr, "[----] %s:%d: Assertion Failed: %s\n", file, line, expr);
	if (*fmt) {
		va_list ap;
		va_start(ap, fmt);
		fputs("[----]   ", stderr);
		vfprintf(stderr, fmt, ap);
		fputc('\n', stderr);
		va_end(ap);
	}
	exit(1);
}

void crl_skip(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	fputs("[SKIP] ", stderr);
	vfprintf(stderr, fmt, ap);
	fputc('\n', stderr);
	va_end(ap);
	exit(0);
}

/* 0 passed, 1 failed, 2 crashed or timed out. */
static int run_one(const struct crl_test *test)
{
	fflush(NULL);
	pid_t pid = fork();
	if (pid < 0) {
		perror("fork");
		return 2;
	}
	if (pid == 0) {
		alarm(test->timeout ? test->timeout : DEFAULT_TIMEOUT_S);
		test->run();
		exit(0);
	}
	int status;
	if (waitpid(pid, &status, 0) < 0) {
		perror("waitpid");
		return 2;
	}
	if (WIFEXITED(status))
		return WEXITSTATUS(status) == 0 ? 0 : 1;
	fprintf(stderr, "[----] %s::%s: killed by signal %d%s\n", test->suite, test->name,
		WTERMSIG(status), WTERMSIG(status) == SIGALRM ? " (timed out)" : "");
	return 2;
}

int main(int argc, char **argv)
{
	(void)argc;
	(void)argv;
	int tested = 0, counts[3] = {0};
	for (const struct crl_test *t = first; t; t = t->next) {
		int outcome = run_one(t);
		tested++;
		counts[outcome]++;
		fprintf(stderr, "[%s] %s::%s\n", outcome ? "FAIL" : "PASS", t->suite, t->name);
	}
	fprintf(stderr, "[====] Synthesis: Tested: %d | Passing: %d | Failing: %d | Crashing: %d\n",
		tested, counts[0], counts[1], counts[2]);
	return counts[1] || counts[2] ? 1 : 0;
}
