/* SPDX-License-Identifier: MIT */
/* Thin wrappers over the futex system call for 32-bit words of this
 * process (private futexes). */
#ifndef AFE_POOL_FUTEX_H
#define AFE_POOL_FUTEX_H

#include <linux/futex.h>
#include <stdatomic.h>
#include <stdint.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

/* Sleeps while *word == expected, or until timeout (relative, may be
 * NULL). Returns 0 or -errno (-EAGAIN: the word differed, -ETIMEDOUT,
 * -EINTR). */
static inline int afe_futex_wait(_Atomic uint32_t *word, uint32_t expected,
				 const struct timespec *timeout)
{
	long r = syscall(SYS_futex, (uint32_t *)word, FUTEX_WAIT_PRIVATE, expected, timeout,
			 NULL, 0);
	return r < 0 ? -errno : 0;
}

/* Wakes up to n sleepers on word. Returns how many were woken. */
static inline int afe_futex_wake(_Atomic uint32_t *word, int n)
{
	long r = syscall(SYS_futex, (uint32_t *)word, FUTEX_WAKE_PRIVATE, n, NULL, NULL, 0);
	return r < 0 ? -errno : (int)r;
}

#endif /* AFE_POOL_FUTEX_H */
