/* SPDX-License-Identifier: MIT */
/*
 * Cancellation tokens.
 *
 * Invariants:
 * - The tree (parent, children, sibling links), every reference count and
 *   the cancel list are guarded by tree_lock, one mutex for the process.
 *   A count drops to zero and its token leaves the tree in one critical
 *   section, so a canceller walking the tree under the lock only meets
 *   live tokens, and takes a reference on each before unlocking.
 * - cancelled goes false -> true once, under tree_lock, by the one
 *   canceller that then fires the token's list. A cancelled token's whole
 *   subtree is cancelled (children of a cancelled token are born
 *   cancelled), so a walk stops at the first cancelled child.
 * - A token's list of waiters and callbacks, and `firing`, are guarded by
 *   its spinlock. A node registers only while it sees cancelled false
 *   under that lock; the canceller sets cancelled before taking the lock
 *   to drain the list, so every node is either drained or never linked.
 * - No lock is held while a waker is woken or a callback runs: both may
 *   cancel, create or release tokens.
 */
#define _GNU_SOURCE
#include <pthread.h>
#include <stdlib.h>

#include "../../pool/list.h"
#include "../../pool/spinlock.h"
#include "token_internal.h"
#include "waitq.h"

static pthread_mutex_t tree_lock = PTHREAD_MUTEX_INITIALIZER;

/* A token's waits and callbacks, in the order they came. With t->lock. */
AFE_LIST_FUNCTIONS(waiters, struct afe_token_waiters, struct afe_token_node)

static void list_push(struct afe_token *t, struct afe_token_node *n)
{
	waiters_push_back(&t->waiters, n);
	n->linked = true;
}

static void list_unlink(struct afe_token *t, struct afe_token_node *n)
{
	waiters_remove(&t->waiters, n);
	n->linked = false;
}

static struct afe_token *token_alloc(void)
{
	struct afe_token *t = calloc(1, sizeof(*t));
	if (!t)
		return NULL;
	atomic_init(&t->cancelled, false);
	atomic_flag_clear(&t->lock);
	t->refs = 1;
	return t;
}

int afe_token_new(struct afe_token **out)
{
	if (!out)
		return -EINVAL;
	*out = token_alloc();
	return *out ? 0 : -ENOMEM;
}

int afe_token_new_child(struct afe_token *parent, struct afe_token **out)
{
	if (!out)
		return -EINVAL;
	*out = NULL;
	if (!parent)
		return -EINVAL;
	struct afe_token *t = token_alloc();
	if (!t)
		return -ENOMEM;
	pthread_mutex_lock(&tree_lock);
	if (atomic_load_explicit(&parent->cancelled, memory_order_relaxed)) {
		/* Born cancelled, outside the tree: nothing will cancel it
		 * again. Relaxed: the lock orders it with the cancel. */
		atomic_store_explicit(&t->cancelled, true, memory_order_relaxed);
	} else {
		t->parent = parent;
		t->next_sibling = parent->first_child;
		if (parent->first_child)
			parent->first_child->prev_sibling = t;
		parent->first_child = t;
	}
	pthread_mutex_unlock(&tree_lock);
	*out = t;
	return 0;
}

struct afe_token *afe_token_ref(struct afe_token *t)
{
	if (t && !t->is_static) {
		pthread_mutex_lock(&tree_lock);
		t->refs++;
		pthread_mutex_unlock(&tree_lock);
	}
	return t;
}

/* Takes t out of the tree: its parent forgets it, its children become
 * roots. With tree_lock held. */
static void leave_tree_locked(struct afe_token *t)
{
	if (t->parent) {
		if (t->prev_sibling)
			t->prev_sibling->next_sibling = t->next_sibling;
		else
			t->parent->first_child = t->next_sibling;
		if (t->next_sibling)
			t->next_sibling->prev_sibling = t->prev_sibling;
		t->parent = NULL;
	}
	for (struct afe_token *c = t->first_child, *next; c; c = next) {
		next = c->next_sibling;
		c->parent = c->prev_sibling = c->next_sibling = NULL;
	}
	t->first_child = NULL;
}

void afe_token_release(struct afe_token *t)
{
	if (!t || t->is_static)
		return;
	pthread_mutex_lock(&tree_lock);
	bool last = --t->refs == 0;
	if (last)
		leave_tree_locked(t);
	pthread_mutex_unlock(&tree_lock);
	if (last)
		free(t); /* its list is empty: every node held a reference */
}

/* Wakes t's waiters and runs its callbacks, one at a time, each taken off
 * the list under the spinlock and run outside it. */
static void fire(struct afe_token *t)
{
	for (;;) {
		afe_spin_lock(&t->lock);
		struct afe_token_node *n = t->waiters.head;
		if (!n) {
			afe_spin_unlock(&t->lock);
			return;
		}
		if (!n->fn && n->race) {
			/* A wait in a select decides it now, before anything
			 * else can take effect there (a lock, a channel item).
			 * Under our lock: the select outlives its linked wait. */
			afe_race_claim(n->race, n->race_index);
		}
		list_unlink(t, n);
		if (!n->fn) {
			/* A wait: once unlocked, its future may complete and
			 * go away; the waker is ours. */
			struct afe_waker w = afe_waker_take(&n->waker);
			afe_spin_unlock(&t->lock);
			afe_waker_wake(&w);
			continue;
		}
		afe_token_callback_fn *fn = n->fn;
		void *arg = n->arg;
		t->firing = n; /* unregister waits while this runs */
		t->firing_thread = pthread_self();
		afe_spin_unlock(&t->lock);
		fn(arg);
		afe_spin_lock(&t->lock);
		t->firing = NULL;
		afe_spin_unlock(&t->lock);
	}
}

int afe_token_cancel(struct afe_token *t)
{
	if (!t)
		return -EINVAL;
	pthread_mutex_lock(&tree_lock);
	if (atomic_load_explicit(&t->cancelled, memory_order_relaxed)) {
		pthread_mutex_unlock(&tree_lock);
		return -EALREADY;
	}
	/* Breadth first, using cancel_next as the queue: every token taken
	 * is marked, so none is queued twice, and referenced, so it stays
	 * alive while fired outside the lock. */
	struct afe_token *head = t, **tail = &t->cancel_next;
	t->cancel_next = NULL;
	for (struct afe_token *q = head; q; q = q->cancel_next) {
		/* Release: pairs with the acquire in afe_token_is_cancelled and
		 * wait_poll, publishing what the canceller wrote before. */
		atomic_store_explicit(&q->cancelled, true, memory_order_release);
		if (!q->is_static)
			q->refs++;
		for (struct afe_token *c = q->first_child; c; c = c->next_sibling) {
			if (atomic_load_explicit(&c->cancelled, memory_order_relaxed))
				continue; /* its subtree is cancelled already */
			c->cancel_next = NULL;
			*tail = c;
			tail = &c->cancel_next;
		}
	}
	pthread_mutex_unlock(&tree_lock);
	for (struct afe_token *q = head, *next; q; q = next) {
		/* Read before releasing: q may be freed by the release, and
		 * cancel_next is ours (each token is cancelled once). */
		next = q->cancel_next;
		fire(q);
		afe_token_release(q);
	}
	return 0;
}

bool afe_token_is_cancelled(const struct afe_token *t)
{
	/* Acquire: pairs with the release store in afe_token_cancel. */
	return t && atomic_load_explicit(&t->cancelled, memory_order_acquire);
}

/* ---- the wait future -------------------------------------------------- */

/* Not afe_wait_poll (waitq.h): nothing is handed to a wait, so nothing is
 * completed, detached or given back; the outcome is the token's own
 * cancelled flag, read under its lock, which the wait may always take
 * since it holds a reference; and the list it links into is shared with
 * callbacks. */
static int wait_poll(struct afe_future *f, struct afe_context *cx)
{
	struct afe_token_wait *w = afe_container_of(f, struct afe_token_wait, base);
	struct afe_token_node *n = &w->node;
	if (!n->token) { /* first poll */
		if (!w->token) {
			f->result = -EINVAL;
			return AFE_READY;
		}
		if (afe_token_is_cancelled(w->token)) {
			f->result = 0;
			return AFE_READY;
		}
		if (cx->cancel) {
			f->result = -ECANCELED;
			return AFE_READY;
		}
		n->token = afe_token_ref(w->token);
	}
	struct afe_token *t = n->token;
	struct afe_waker stale = {0};
	int ready = AFE_READY;
	afe_spin_lock(&t->lock);
	/* Acquire: pairs with the release store in afe_token_cancel. */
	if (atomic_load_explicit(&t->cancelled, memory_order_acquire)) {
		f->result = 0;
	} else if (cx->cancel) {
		f->result = -ECANCELED;
	} else {
		ready = AFE_PENDING;
		if (!n->linked) {
			afe_waker_clone(&n->waker, cx->waker);
			struct afe_race *race = afe_race_of(cx, f);
			n->race = race;
			n->race_index = race ? race->index : 0;
			list_push(t, n);
		} else if (!afe_waker_will_wake(&n->waker, cx->waker)) {
			stale = n->waker;
			afe_waker_clone(&n->waker, cx->waker);
		}
	}
	if (ready == AFE_READY) {
		/* Cancelled but not yet drained by the canceller, or the
		 * future itself cancelled: leave the list ourselves. */
		if (n->linked)
			list_unlink(t, n);
		stale = afe_waker_take(&n->waker);
	}
	afe_spin_unlock(&t->lock);
	afe_waker_drop(&stale); /* may free a task: never under the lock */
	if (ready == AFE_READY) {
		n->token = NULL;
		afe_token_release(t);
	}
	return ready;
}

void afe_token_wait_init(struct afe_token_wait *w, struct afe_token *t)
{
	afe_future_init(&w->base, wait_poll);
	w->token = t;
	w->node = (struct afe_token_node){0};
}

/* ---- callbacks -------------------------------------------------------- */

int afe_token_callback_register(struct afe_token_callback *cb, struct afe_token *t,
				afe_token_callback_fn *fn, void *arg)
{
	if (!cb || !t || !fn || cb->node.token)
		return -EINVAL;
	struct afe_token_node *n = &cb->node;
	*n = (struct afe_token_node){.token = afe_token_ref(t), .fn = fn, .arg = arg};
	afe_spin_lock(&t->lock);
	/* Acquire: pairs with the release store in afe_token_cancel. */
	bool cancelled = atomic_load_explicit(&t->cancelled, memory_order_acquire);
	if (!cancelled)
		list_push(t, n);
	afe_spin_unlock(&t->lock);
	if (!cancelled)
		return 0;
	fn(arg);
	return 1;
}

int afe_token_callback_unregister(struct afe_token_callback *cb)
{
	if (!cb || !cb->node.token)
		return -EINVAL;
	struct afe_token_node *n = &cb->node;
	struct afe_token *t = n->token;
	int ret = -EALREADY;
	afe_spin_lock(&t->lock);
	if (n->linked) {
		list_unlink(t, n);
		ret = 0;
	} else {
		while (t->firing == n && !pthread_equal(t->firing_thread, pthread_self())) {
			afe_spin_unlock(&t->lock);
			sched_yield();
			afe_spin_lock(&t->lock);
		}
	}
	afe_spin_unlock(&t->lock);
	n->token = NULL;
	afe_token_release(t);
	return ret;
}
