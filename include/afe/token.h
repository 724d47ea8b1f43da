/* SPDX-License-Identifier: MIT */
/*
 * Cancellation tokens: a flag that goes from "running" to "cancelled" once,
 * arranged in trees.
 *
 * A token may have child tokens. Cancelling a token cancels it and its
 * whole subtree, and nothing above it or beside it: a sub-system (or a
 * test) takes a child of the token it was given, hands grandchildren to
 * its parts, and can stop all of them without touching its siblings.
 * A child created from a token already cancelled is born cancelled.
 *
 *   struct afe_token *mine;
 *   afe_token_new_child(afe_shutdown_token(), &mine);  // scoped sub-tree
 *   ...
 *   afe_token_wait_init(&self->stop, mine);
 *   AFE_AWAIT(&self->stop.base);                       // until cancelled
 *
 * Three ways to observe one: afe_token_is_cancelled (an atomic load),
 * awaiting an afe_token_wait future, or a callback registered with
 * afe_token_callback_register.
 *
 * Lifetime: tokens are reference counted. afe_token_new and
 * afe_token_new_child return a reference; afe_token_ref takes another,
 * afe_token_release drops one. A wait future holds a reference from its
 * first poll until it completes, and a registered callback from register
 * to unregister, so the token outlives them however the holders release.
 * A parent holds no reference to its children and a child none to its
 * parent: a child may be released while the parent lives (it leaves the
 * tree), and releasing a parent's last reference detaches its children,
 * which then can no longer be cancelled through it.
 *
 * Threads: every function may be called from any thread, including plain
 * threads outside any runtime. Callbacks run on the thread that cancels
 * (or, registered on a token already cancelled, at once on the
 * registering thread), with no lock of the token held.
 * Tree operations (new child, cancel, release) share one process-wide
 * mutex: they are meant for set-up and shutdown paths, not per-message.
 */
#ifndef AFE_TOKEN_H
#define AFE_TOKEN_H

#include <stdbool.h>

#include "combinators.h"
#include "common.h"
#include "future.h"

struct afe_token;

typedef void afe_token_callback_fn(void *arg);

/* A waiter on a token: the link in its list. */
struct afe_token_node {
	/* Private. */
	struct afe_token_node *prev, *next;
	struct afe_token *token;     /* held reference; NULL: not registered */
	struct afe_waker waker;	     /* a wait future's task */
	afe_token_callback_fn *fn;   /* a callback; NULL for a wait */
	void *arg;
	struct afe_race *race;	     /* a wait in a select: claimed when fired */
	intptr_t race_index;
	bool linked;		     /* in the token's list */
};

/* A new root token, not cancelled. Returns 0 and stores a reference in
 * *out, -EINVAL for a null out, or -ENOMEM. */
AFE_EXPORT int afe_token_new(struct afe_token **out);

/*
 * A new child of parent: cancelled when parent (or any ancestor) is.
 * Born cancelled if parent already is. Returns 0 and stores a reference
 * in *out, -EINVAL for a null argument, or -ENOMEM.
 */
AFE_EXPORT int afe_token_new_child(struct afe_token *parent, struct afe_token **out);

/* Takes another reference to t and returns t (NULL gives NULL). */
AFE_EXPORT struct afe_token *afe_token_ref(struct afe_token *t);

/* Drops a reference; the last one frees t. NULL is ignored, and so is the
 * process's shutdown token, which is never freed. */
AFE_EXPORT void afe_token_release(struct afe_token *t);

/*
 * Cancels t and every token below it that is not cancelled yet: each
 * wakes its wait futures and runs its callbacks, on the calling thread,
 * before this returns. Returns 0, -EALREADY when t was already cancelled,
 * or -EINVAL for a null token.
 */
AFE_EXPORT int afe_token_cancel(struct afe_token *t);

/* True once t is cancelled (an acquire load: what the canceller wrote
 * before cancelling is visible). False for a null token. */
AFE_EXPORT bool afe_token_is_cancelled(const struct afe_token *t);

/*
 * The wait future: ready with 0 once the token is cancelled (at once if
 * it already is). Waiting allocates nothing: the future links itself into
 * the token's list. Cancelling the future unlinks it (result -ECANCELED),
 * which is how select drops it. In a select, the token firing decides the
 * select for this branch at once, so no other branch (a lock, a channel
 * item) takes effect after it. A null token gives -EINVAL.
 * The token must be alive at the first poll; from then on the future
 * holds its own reference until it completes.
 */
struct afe_token_wait {
	struct afe_future base;
	/* Private. */
	struct afe_token *token;
	struct afe_token_node node;
};
AFE_EXPORT void afe_token_wait_init(struct afe_token_wait *w, struct afe_token *t);

/*
 * Runs inner until t fires: the token-wait-and-select idiom in one future.
 *
 *   afe_token_until_init(&self->guarded, afe_shutdown_token(), &self->work.base);
 *   AFE_AWAIT(&self->guarded.base);   // work's result, or -ECANCELED
 *
 * The result is inner's when inner finishes first, or -ECANCELED when t
 * fires first; inner is then cancelled and awaited before this completes,
 * so nothing it started is left running (as afe_timeout does with time).
 * A token already fired at the first poll gives -ECANCELED without
 * polling inner. A null inner or t gives -EINVAL. inner must stay put
 * while awaited; t must be alive at the first poll.
 */
struct afe_token_until {
	struct afe_future base;
	struct afe_future *inner;
	/* Private. */
	struct afe_token *token;
	struct afe_token_wait wait;
	struct afe_future *racers[2];
	struct afe_select race;
};
AFE_EXPORT void afe_token_until_init(struct afe_token_until *u, struct afe_token *t,
				     struct afe_future *inner);

/*
 * A callback: fn(arg) runs once when t is cancelled. cb is caller-owned
 * and must stay put until afe_token_callback_unregister returns.
 * Returns 0 (registered), 1 when t was already cancelled (fn has run on
 * this thread before the return), or -EINVAL (null cb, t or fn, or cb
 * already registered). Either way, 0 or 1, unregister it afterwards: the
 * registration holds a reference to t.
 */
struct afe_token_callback {
	/* Private. */
	struct afe_token_node node;
};
AFE_EXPORT int afe_token_callback_register(struct afe_token_callback *cb, struct afe_token *t,
					   afe_token_callback_fn *fn, void *arg);

/*
 * Unregisters cb and drops its reference to the token. Returns 0 when fn
 * had not run and now never will, -EALREADY when it has run (if it is
 * running on another thread right now, this waits for it to return;
 * called from inside fn itself, it returns at once), or -EINVAL when cb
 * is not registered.
 */
AFE_EXPORT int afe_token_callback_unregister(struct afe_token_callback *cb);

#endif /* AFE_TOKEN_H */
