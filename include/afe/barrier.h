/* SPDX-License-Identifier: MIT */
/*
 * A barrier: n parties wait until all n have arrived, then all go on at
 * once. Waiting is a future; the barrier is reusable: once released, the
 * next n arrivals make the next generation.
 *
 *   afe_barrier_wait_init(&self->wait, &shared->barrier);
 *   AFE_AWAIT(&self->wait.base);      // 1: the leader, 0: the others
 *
 * Exactly one wait per generation completes with 1, the leader: the one
 * whose arrival filled the generation (it completes at once). The others
 * complete with 0. A wait arrives when it is first polled. Waiting
 * allocates nothing: the future links itself into the barrier.
 *
 * Cancelling: a waiting future that is cancelled leaves, and its arrival
 * no longer counts: the generation then waits for one more party. One
 * cancelled after its generation was released reports -ECANCELED; the
 * generation went on without it (the others were released already).
 *
 * In a select a wait counts as arrived while it waits; when its
 * generation fills, the barrier claims its select. A wait whose select
 * another branch won meanwhile is withdrawn and not counted: a losing
 * barrier branch never arrived. Should another branch of one of those
 * selects win while the barrier claims them (a race, but a common one
 * when selects churn), that wait is dropped as well and the others, their
 * selects already committed to the barrier, wait on for a replacing
 * arrival.
 *
 * All functions may be called from any thread, inside or outside tasks.
 */
#ifndef AFE_BARRIER_H
#define AFE_BARRIER_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include "common.h"
#include "future.h"
#include "waiter.h"

struct afe_barrier {
	/* Private. */
	atomic_flag lock; /* guards the fields below */
	size_t n;	  /* parties per generation */
	size_t arrived;	  /* waiting in the current generation */
	uintptr_t generation;
	struct afe_waitq waiters;
};

/* Makes a barrier for n parties. Returns 0, -EINVAL for a null barrier or
 * n == 0. */
AFE_EXPORT int afe_barrier_init(struct afe_barrier *b, size_t n);

/* Returns 0, -EINVAL for a null barrier, -EBUSY while a wait is linked
 * (nothing is changed). See waiter.h for when it may be destroyed. */
AFE_EXPORT int afe_barrier_destroy(struct afe_barrier *b);

/* Parties waiting in the current generation now. */
AFE_EXPORT size_t afe_barrier_waiting(struct afe_barrier *b);

/* The wait: result 1 for the generation's leader, 0 for the others,
 * -ECANCELED, -EINVAL for a null barrier. */
struct afe_barrier_wait {
	struct afe_future base;
	/* Private. */
	struct afe_barrier *barrier;
	struct afe_waiter wait;
};
AFE_EXPORT void afe_barrier_wait_init(struct afe_barrier_wait *w, struct afe_barrier *b);

#endif /* AFE_BARRIER_H */
