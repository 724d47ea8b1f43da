/* SPDX-License-Identifier: MIT */
/*
 * Shared definitions for every AFE header: the export macro, container_of,
 * and the error convention.
 *
 * Errors: functions return 0 (or a count) on success and a negative errno
 * value on failure, as liburing does. errno itself is never used to report,
 * because it does not travel with a completion.
 */
#ifndef AFE_COMMON_H
#define AFE_COMMON_H

#include <stddef.h>
#include <stdint.h>

#if defined(AFE_BUILDING_LIBRARY) && defined(__GNUC__)
#define AFE_EXPORT __attribute__((visibility("default")))
#else
#define AFE_EXPORT
#endif

/* The enclosing struct of a member: futures embed `struct afe_future base`
 * and recover their own state with this. */
#define afe_container_of(ptr, type, member) \
	((type *)(void *)((char *)(ptr) - offsetof(type, member)))

#define AFE_LIKELY(x) __builtin_expect(!!(x), 1)
#define AFE_UNLIKELY(x) __builtin_expect(!!(x), 0)

/* Marks generated static inline functions a program may not use: clang
 * warns about unused ones a .c file defines. */
#define AFE__UNUSED __attribute__((unused))

#endif /* AFE_COMMON_H */
