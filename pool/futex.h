/* SPDX-License-Identifier: MIT */
/* Thin wrappers over the futex system call, the one place AFE makes it:
 * afe_futex_wait/wake for 32-bit words of this process (private futexes),
 * the _on forms for words that may lie in memory shared with other
 * processes (shared true). */
#ifndef AFE_POOL_FUTEX_H
#define AFE_POOL_FUTEX_H

#include <linux/futex.h>
#include <errno.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

/* Sleeps while *word == expected, or until timeout (relative, may be
 * NULL). Returns 0 or -errno (-EAGAIN: the word differed, -ETIMEDOUT,
 * -EINTR; -EFAULT: no memory behind the word). */
static inline int afe_futex_wait_on(const _Atomic uint32_t *word, uint32_t expected,
				    const struct timespec *timeout, bool shared)
{
	long r = syscall(SYS_futex, (const uint32_t *)word, shared ? FUTEX_WAIT : FUTEX_WAIT_PRIVATE,
			 expected, timeout, NULL, 0);
	return r < 0 ? -errno : 0;
}

/* Wakes up to n sleepers on word. Returns how many were woken, or -errno
 * (-EFAULT: no memory behind the word). Async-signal-safe. */
static inline int afe_futex_wake_on(const _Atomic uint32_t *word, int n, bool shared)
{
	long r = syscall(SYS_futex, (const uint32_t *)word, shared ? FUTEX_WAKE : FUTEX_WAKE_PRIVATE,
			 n, NULL, NULL, 0);
	return r < 0 ? -errno : (int)r;
}

static inline int afe_futex_wait(_Atomic uint32_t *word, uint32_t expected,
				 const struct timespec *timeout)
{
	return afe_futex_wait_on(word, expected, timeout, false);
}

static inline int afe_futex_wake(_Atomic uint32_t *word, int n)
{
	return afe_futex_wake_on(word, n, false);
}

#endif /* AFE_POOL_FUTEX_H */
