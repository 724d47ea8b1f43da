/* SPDX-License-Identifier: MIT */
/* The signal mask of a runtime's threads: see thread_mask.h. */
#define _GNU_SOURCE
#include "thread_mask.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>

/* The signals some call newly blocked in its thread, one flag each, so
 * the fork handler reads them without a lock. Relaxed: a thread that
 * forks with the mask inherited it from a thread created after the flags
 * were set, and pthread_create orders them before it. */
static _Atomic bool blocked_here[_NSIG];

/* The child has one thread and a copy of its mask. */
static void at_fork_child(void)
{
	sigset_t ours;
	sigemptyset(&ours);
	for (int s = 1; s < _NSIG; s++)
		if (atomic_load_explicit(&blocked_here[s], memory_order_relaxed))
			sigaddset(&ours, s);
	pthread_sigmask(SIG_UNBLOCK, &ours, NULL);
}

static pthread_once_t fork_handler_once = PTHREAD_ONCE_INIT;

static void install_fork_handler(void)
{
	pthread_atfork(NULL, NULL, at_fork_child);
}

void afe__thread_mask_for_runtime(sigset_t *old)
{
	pthread_once(&fork_handler_once, install_fork_handler);
	/* Everything but the faults, which must reach the faulting thread,
	 * SIGABRT, which abort() unblocks anyway, and SIGPROF, which
	 * profilers sample threads with. */
	sigset_t all;
	sigfillset(&all);
	int keep[] = {SIGSEGV, SIGBUS, SIGFPE, SIGILL, SIGTRAP, SIGSYS, SIGABRT, SIGPROF};
	for (size_t i = 0; i < sizeof(keep) / sizeof(keep[0]); i++)
		sigdelset(&all, keep[i]);
	pthread_sigmask(SIG_BLOCK, &all, old);
	for (int s = 1; s < _NSIG; s++)
		if (sigismember(&all, s) == 1 && sigismember(old, s) == 0)
			atomic_store_explicit(&blocked_here[s], true, memory_order_relaxed);
}
