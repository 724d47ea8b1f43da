/* SPDX-License-Identifier: MIT */
/* Passing a fault on to the previous handler: see fault_pass_on.h. */
#define _GNU_SOURCE
#include "fault_pass_on.h"

#include <string.h>

void afe_fault_pass_on(const struct sigaction *previous, int sig, siginfo_t *info,
		       void *context)
{
	if (previous->sa_flags & SA_SIGINFO) {
		previous->sa_sigaction(sig, info, context);
		return;
	}
	if (previous->sa_handler != SIG_DFL && previous->sa_handler != SIG_IGN) {
		previous->sa_handler(sig);
		return;
	}
	struct sigaction dfl;
	memset(&dfl, 0, sizeof(dfl));
	dfl.sa_handler = SIG_DFL;
	sigaction(sig, &dfl, NULL);
	if (info->si_code <= 0)
		raise(sig);
}
