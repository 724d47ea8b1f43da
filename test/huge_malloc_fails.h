/* SPDX-License-Identifier: MIT */
/* For a test program that asks for an impossible allocation: under the
 * sanitizers a huge malloc must fail (NULL), not abort the program.
 * Include it in one file of the program: it defines the sanitizers'
 * default-options hooks. */
#ifndef AFE_TEST_HUGE_MALLOC_FAILS_H
#define AFE_TEST_HUGE_MALLOC_FAILS_H

const char *__asan_default_options(void);
const char *__asan_default_options(void)
{
	return "allocator_may_return_null=1";
}

const char *__tsan_default_options(void);
const char *__tsan_default_options(void)
{
	return "allocator_may_return_null=1";
}

#endif /* AFE_TEST_HUGE_MALLOC_FAILS_H */
