/* SPDX-License-Identifier: MIT */
/*
 * A one-byte spinlock for critical sections of a few instructions (a waker
 * slot, a value). Held only for that long, so spinning beats a syscall; it
 * yields the CPU if the holder was preempted.
 */
#ifndef AFE_POOL_SPINLOCK_H
#define AFE_POOL_SPINLOCK_H

#include <sched.h>
#include <stdatomic.h>

static inline void afe_cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
	__builtin_ia32_pause();
#elif defined(__aarch64__)
	__asm__ __volatile__("yield");
#endif
}

static inline void afe_spin_lock(atomic_flag *lock)
{
	/* Acquire pairs with the release in afe_spin_unlock. */
	for (unsigned spins = 0;
	     atomic_flag_test_and_set_explicit(lock, memory_order_acquire); spins++) {
		if (spins < 64)
			afe_cpu_relax();
		else
			sched_yield();
	}
}

static inline void afe_spin_unlock(atomic_flag *lock)
{
	atomic_flag_clear_explicit(lock, memory_order_release);
}

#endif /* AFE_POOL_SPINLOCK_H */
