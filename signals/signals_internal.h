/* SPDX-License-Identifier: MIT */
/* What the runtime tells the signal hub (signals/signal.c). */
#ifndef AFE_SIGNALS_INTERNAL_H
#define AFE_SIGNALS_INTERNAL_H

#include <signal.h>

struct afe_runtime;

/* Blocks every asynchronous signal in the calling thread, so that the
 * threads it creates next (a runtime's) never take one; *old receives the
 * mask to restore afterwards. */
void afe__signals_mask_threads(sigset_t *old);

/* A runtime that started / is about to stop. The hub keeps one task that
 * reads its signalfd on one of the attached runtimes, and moves it to
 * another when that runtime detaches. */
void afe__signals_attach(struct afe_runtime *rt);
void afe__signals_detach(struct afe_runtime *rt);

/* Adds the signals of add to what the signalfd reads (creating it the
 * first time) and dispatches those of them already pending. Returns 0 or
 * the -errno of signalfd(2). */
int afe__signals_route(const sigset_t *add);

#endif /* AFE_SIGNALS_INTERNAL_H */
