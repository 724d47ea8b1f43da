/* SPDX-License-Identifier: MIT */
/* A waker that wakes a plain thread blocked on a futex: how threads outside
 * the runtime wait for a future. */
#ifndef AFE_THREAD_PARKER_H
#define AFE_THREAD_PARKER_H

#include "afe/future.h"

struct afe_thread_parker;

/* Returns a parker with one reference held by the caller, or NULL. */
struct afe_thread_parker *afe_thread_parker_new(void);

/* A waker for p (borrowing the caller's reference; clone it to keep it). */
struct afe_waker afe_thread_parker_waker(struct afe_thread_parker *p);

/* Blocks until woken since the last call. */
void afe_thread_parker_wait(struct afe_thread_parker *p);

/* Drops the caller's reference. */
void afe_thread_parker_release(struct afe_thread_parker *p);

#endif /* AFE_THREAD_PARKER_H */
