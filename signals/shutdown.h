/* SPDX-License-Identifier: MIT */
/* The shutdown token's side of the signal hub. */
#ifndef AFE_SIGNALS_SHUTDOWN_H
#define AFE_SIGNALS_SHUTDOWN_H

#include <stdbool.h>

/* A SIGINT or SIGTERM was read: fires the shutdown token, or ends the
 * process when it already fired. Returns false, doing nothing, for other
 * signals, before afe_shutdown_init, or while nobody asked for the token
 * (the caller then treats the signal as unlistened). */
bool afe__shutdown_take(int signo);

/* True when the shutdown reads signo (so the hub keeps reading it).
 * Lock-free: called under the hub's lock. */
bool afe__shutdown_reads(int signo);

#endif /* AFE_SIGNALS_SHUTDOWN_H */
