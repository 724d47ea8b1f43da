/* SPDX-License-Identifier: MIT */
/*
 * Futures built from other futures, and the trivial ones.
 * The caller owns the child futures and the array that points at them;
 * both must outlive the combinator.
 */
#ifndef AFE_COMBINATORS_H
#define AFE_COMBINATORS_H

#include <stddef.h>

#include "common.h"
#include "future.h"

/* Ready at once with value. */
struct afe_ready {
	struct afe_future base;
	intptr_t value;
};
AFE_EXPORT void afe_ready_init(struct afe_ready *f, intptr_t value);

/* Never ready; cancelling it completes it with -ECANCELED. */
struct afe_pending {
	struct afe_future base;
};
AFE_EXPORT void afe_pending_init(struct afe_pending *f);

/* Pending once (queued behind the other runnable tasks), then ready with 0. */
struct afe_yield_now {
	struct afe_future base;
	/* Private. */
	bool yielded;
};
AFE_EXPORT void afe_yield_now_init(struct afe_yield_now *f);

/*
 * Polls all n futures until every one is ready; its result is then 0 and
 * each child's result is in futures[i]->result. Cancelling it cancels the
 * children still running and waits for them; the result is then -ECANCELED.
 * Returns 0, or -EINVAL for a null array with n > 0 (the future then
 * completes at once with -EINVAL).
 */
struct afe_join_all {
	struct afe_future base;
	struct afe_future **futures;
	size_t n;
};
AFE_EXPORT int afe_join_all_init(struct afe_join_all *f, struct afe_future **futures, size_t n);

/*
 * The first of n futures to be ready wins; among futures ready in the same
 * poll the earliest in the array wins. The others are cancelled and awaited
 * (dropped cleanly) before select completes. Its result is the winner's
 * index; the winner's own result is in futures[index]->result.
 *
 * Futures that complete from elsewhere (channel sends and receives, mutex
 * locks, semaphore acquires, notifications, cancel-token waits, oneshot
 * receives) take part through the race in the select (struct afe_race):
 * at most one of them happens, so a losing send delivered nothing, a
 * losing receive took nothing and a losing lock was never held. Other
 * futures (sleeps, joins, I/O) are withdrawn by cancellation: a loser that
 * finished in the same instant as the winner has its effect, ignored.
 *
 * With a default branch (afe_select_init_default), a select that finds no
 * future ready at its first poll withdraws them all and completes with
 * -EAGAIN (winner stays -1).
 *
 * Cancelled before any winner: every child is cancelled, result
 * -ECANCELED. Cancelled after a branch won but before select saw it
 * finish: the winner is polled with cancel too; select then reports its
 * index, unless the winner itself ended with -ECANCELED (a lock or permit
 * is then handed on), in which case the result is -ECANCELED.
 *
 * Returns 0, or -EINVAL for n == 0 or a null array (the future then
 * completes at once with -EINVAL). A default branch allows n == 0.
 */
struct afe_select {
	struct afe_future base;
	struct afe_future **futures;
	size_t n;
	intptr_t winner; /* -1 until one is ready */
	/* Private. */
	bool has_default;
	struct afe_race race;
};
AFE_EXPORT int afe_select_init(struct afe_select *f, struct afe_future **futures, size_t n);

/* A select with a default branch: -EAGAIN at once if nothing is ready. */
AFE_EXPORT int afe_select_init_default(struct afe_select *f, struct afe_future **futures,
				       size_t n);

#endif /* AFE_COMBINATORS_H */
