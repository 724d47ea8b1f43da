/* SPDX-License-Identifier: MIT */
/*
 * For a SIGSEGV or SIGBUS handler that owns only some faults (a fiber's
 * guard page, a guarded shared mapping): the others go on to the handler
 * that was installed before it, as if it were not there.
 */
#ifndef AFE_POOL_FAULT_PASS_ON_H
#define AFE_POOL_FAULT_PASS_ON_H

#include <signal.h>

/* Hands the fault (sig, info, context) to previous, the action the caller
 * replaced: calls its handler, or for SIG_DFL and SIG_IGN restores the
 * default action, so that the faulting access runs again and kills the
 * process as it would have without us (a signal sent by kill(), which
 * no access repeats, is raised again). Async-signal-safe. */
void afe_fault_pass_on(const struct sigaction *previous, int sig, siginfo_t *info,
		       void *context);

#endif /* AFE_POOL_FAULT_PASS_ON_H */
