/* SPDX-License-Identifier: MIT */
/* The signal mask of the threads a runtime creates. */
#ifndef AFE_CORE_THREAD_MASK_H
#define AFE_CORE_THREAD_MASK_H

#include <signal.h>

/* Blocks every asynchronous signal in the calling thread, so that the
 * threads it creates next (a runtime's) never take one; *old receives the
 * mask to restore afterwards. A child forked from such a thread gets back
 * what this blocked, so fork+exec does not pass blocked signals on. */
void afe__thread_mask_for_runtime(sigset_t *old);

#endif /* AFE_CORE_THREAD_MASK_H */
