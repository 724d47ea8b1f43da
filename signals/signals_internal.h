/* SPDX-License-Identifier: MIT */
/* What the shutdown token asks of the signal hub (signals/signal.c). */
#ifndef AFE_SIGNALS_INTERNAL_H
#define AFE_SIGNALS_INTERNAL_H

#include <signal.h>

/* Adds the signals of add to what the signalfd reads (creating it the
 * first time) and dispatches those of them already pending. Returns 0 or
 * the -errno of signalfd(2). */
int afe__signals_route(const sigset_t *add);

#endif /* AFE_SIGNALS_INTERNAL_H */
