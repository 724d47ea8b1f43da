/* SPDX-License-Identifier: MIT */
/*
 * A cancellation token: a flag set once, and a future that waits for it.
 * Put the wait in a select beside the real work to make that work
 * cancellable from anywhere:
 *
 *   struct afe_future *branches[] = {&self->recv.base, &self->stop.base};
 *   afe_cancel_token_wait_init(&self->stop, &shared->token);
 *   afe_select_init(&self->sel, branches, 2);
 *   AFE_AWAIT(&self->sel.base);           // 1: the token was cancelled
 *
 * Cancelling the token wakes every waiting future; waits that start later
 * complete at once. Cancelling a wait future unlinks it (-ECANCELED).
 */
#ifndef AFE_CANCEL_TOKEN_H
#define AFE_CANCEL_TOKEN_H

#include <stdatomic.h>
#include <stdbool.h>

#include "common.h"
#include "future.h"
#include "waiter.h"

struct afe_cancel_token {
	atomic_flag lock; /* guards waiters */
	_Atomic bool cancelled;
	struct afe_waitq waiters;
};

AFE_EXPORT void afe_cancel_token_init(struct afe_cancel_token *t);

/* Returns 0, -EINVAL for a null token, -EBUSY while a future waits on it
 * (nothing is changed: cancel it, let the waiters finish, then destroy).
 * A wait ended by the cancel does not touch the token again, nor does the
 * cancel after its last wake; see waiter.h for the rule. */
AFE_EXPORT int afe_cancel_token_destroy(struct afe_cancel_token *t);

/* Sets the token and wakes every waiter. Returns 0, -EALREADY if it was
 * set, -EINVAL for a null token. */
AFE_EXPORT int afe_cancel_token_cancel(struct afe_cancel_token *t);

/* True once cancelled (false for a null token). */
AFE_EXPORT bool afe_cancel_token_is_cancelled(struct afe_cancel_token *t);

/* The wait: result 0 once the token is cancelled, -ECANCELED when the
 * wait itself is cancelled, -EINVAL for a null token. */
struct afe_cancel_token_wait {
	struct afe_future base;
	struct afe_cancel_token *token;
	struct afe_waiter wait;
};
AFE_EXPORT void afe_cancel_token_wait_init(struct afe_cancel_token_wait *w,
					   struct afe_cancel_token *t);

#endif /* AFE_CANCEL_TOKEN_H */
