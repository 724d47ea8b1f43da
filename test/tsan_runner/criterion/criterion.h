/* SPDX-License-Identifier: MIT */
/*
 * The slice of Criterion's API our tests use, for ThreadSanitizer builds.
 *
 * Criterion cannot start under TSan: its BoxFort arena is mapped at random
 * fixed addresses that TSan's shadow memory already covers, so every test
 * program aborts with "Could not initialize inheritable arena"
 * (Snaipe/Criterion#274). TSan builds compile the same test sources against
 * this header instead; runner.c forks one child per test like Criterion
 * does, so tests stay isolated and a crash or timeout is reported, not fatal.
 */
#ifndef AFE_TSAN_RUNNER_CRITERION_H
#define AFE_TSAN_RUNNER_CRITERION_H
#pragma GCC system_header /* like Criterion's: empty variadic macro tails */

#include <stdbool.h>

struct crl_test {
	const char *suite, *name;
	void (*run)(void);
	unsigned timeout; /* seconds; 0: the runner's default */
	struct crl_test *next;
};

void crl_register(struct crl_test *test);
void crl_check(bool ok, const char *file, int line, const char *expr, const char *fmt, ...)
	__attribute__((format(printf, 5, 6)));

#define Test(S, N, ...)                                                        \
	static void crl_##S##_##N(void);                                       \
	static struct crl_test crl_##S##_##N##_desc = {                        \
		.suite = #S, .name = #N, .run = crl_##S##_##N, __VA_ARGS__}; \
	__attribute__((constructor)) static void crl_##S##_##N##_register(void) \
	{                                                                             \
		crl_register(&crl_##S##_##N##_desc);                           \
	}                                                                             \
	static void crl_##S##_##N(void)

#define crl_assert(cond, expr, ...) crl_check((cond), __FILE__, __LINE__, (expr), "" __VA_ARGS__)
#define cr_assert(cond, ...) crl_assert(!!(cond), #cond, __VA_ARGS__)
#define cr_assert_not(cond, ...) crl_assert(!(cond), "!(" #cond ")", __VA_ARGS__)
#define cr_assert_null(p, ...) crl_assert((p) == NULL, #p " == NULL", __VA_ARGS__)
#define cr_assert_not_null(p, ...) crl_assert((p) != NULL, #p " != NULL", __VA_ARGS__)
#define crl_compare(a, op, b, ...) crl_assert((a) op (b), "(" #a ") " #op " (" #b ")", __VA_ARGS__)
#define cr_assert_eq(a, b, ...) crl_compare(a, ==, b, __VA_ARGS__)
#define cr_assert_neq(a, b, ...) crl_compare(a, !=, b, __VA_ARGS__)
#define cr_assert_lt(a, b, ...) crl_compare(a, <, b, __VA_ARGS__)
#define cr_assert_leq(a, b, ...) crl_compare(a, <=, b, __VA_ARGS__)
#define cr_assert_gt(a, b, ...) crl_compare(a, >, b, __VA_ARGS__)
#define cr_assert_geq(a, b, ...) crl_compare(a, >=, b, __VA_ARGS__)

/* Ends the test as passed, saying why it did not run. */
void crl_skip(const char *fmt, ...) __attribute__((noreturn, format(printf, 1, 2)));
#define cr_skip_test(...) crl_skip("" __VA_ARGS__)

#endif /* AFE_TSAN_RUNNER_CRITERION_H */
