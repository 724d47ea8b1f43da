/* SPDX-License-Identifier: MIT */
/*
 * Wakers taken under a lock and woken after it is released: a wake may run
 * the woken task's code at once (on this thread, or on the ring thread
 * when every worker sleeps), which may take the same lock again or free
 * the object that holds it. Whoever fills a batch under its lock releases
 * the lock before afe_wake_batch_run; a full batch is run with the lock
 * released and the work goes on after taking it again.
 */
#ifndef AFE_POOL_WAKE_BATCH_H
#define AFE_POOL_WAKE_BATCH_H

#include <stdbool.h>

#include "afe/future.h"

#define AFE_WAKE_BATCH 16

struct afe_wake_batch {
	unsigned n;
	struct afe_waker w[AFE_WAKE_BATCH];
};

/* Empties b. Only the count: zeroing the wakers too would write the
 * whole array on every lock hold (a quarter KiB), which ping_pong felt. */
static inline void afe_wake_batch_init(struct afe_wake_batch *b)
{
	b->n = 0;
}

static inline bool afe_wake_batch_full(const struct afe_wake_batch *b)
{
	return b->n == AFE_WAKE_BATCH;
}

/* Takes w into b, which must not be full. */
static inline void afe_wake_batch_add(struct afe_wake_batch *b, struct afe_waker w)
{
	b->w[b->n++] = w;
}

/* Empties slot w and returns the waker it held, if any: under the lock
 * that guards w, or by w's owner once nobody else can reach it. */
static inline struct afe_waker afe_waker_take(struct afe_waker *w)
{
	struct afe_waker taken = *w;
	w->vtable = NULL;
	return taken;
}

/* Wakes a waker taken out of its slot (under a lock), if there was one. */
static inline void afe_waker_wake_if_set(struct afe_waker *w)
{
	if (afe_waker_is_set(w))
		afe_waker_wake(w);
}

/* Wakes every waker of b (empty ones are skipped) and empties it. */
static inline void afe_wake_batch_run(struct afe_wake_batch *b)
{
	for (unsigned i = 0; i < b->n; i++)
		afe_waker_wake_if_set(&b->w[i]);
	b->n = 0;
}

#endif /* AFE_POOL_WAKE_BATCH_H */
