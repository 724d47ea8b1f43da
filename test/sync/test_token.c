/* SPDX-License-Identifier: MIT */
/* Cancellation tokens: trees, waits, callbacks, threads. */
#include <pthread.h>
#include <string.h>
#include <time.h>

#include "helpers.h"

static void noop(void *arg)
{
	(void)arg;
}

Test(token, bad_input)
{
	struct afe_token *t = (struct afe_token *)1;
	cr_assert_eq(afe_token_new(NULL), -EINVAL);
	cr_assert_eq(afe_token_new_child(NULL, &t), -EINVAL);
	cr_assert_null(t);
	cr_assert_eq(afe_token_cancel(NULL), -EINVAL);
	cr_assert_not(afe_token_is_cancelled(NULL));
	cr_assert_null(afe_token_ref(NULL));
	afe_token_release(NULL);

	cr_assert_eq(afe_token_new(&t), 0);
	cr_assert_eq(afe_token_new_child(t, NULL), -EINVAL);
	struct afe_token_callback cb = {0};
	cr_assert_eq(afe_token_callback_register(NULL, t, noop, NULL),
		     -EINVAL);
	cr_assert_eq(afe_token_callback_register(&cb, NULL, noop, NULL),
		     -EINVAL);
	cr_assert_eq(afe_token_callback_register(&cb, t, NULL, NULL), -EINVAL);
	cr_assert_eq(afe_token_callback_unregister(&cb), -EINVAL, "never registered");
	cr_assert_eq(afe_token_callback_unregister(NULL), -EINVAL);

	struct counting_waker cw;
	counting_waker_init(&cw);
	struct afe_context cx = counting_context(&cw, false);
	struct afe_token_wait w;
	afe_token_wait_init(&w, NULL);
	cr_assert_eq(afe_future_poll(&w.base, &cx), AFE_READY);
	cr_assert_eq(w.base.result, -EINVAL);
	afe_token_release(t);
}

/*      root
 *     /    \
 *    a      b
 *   / \
 *  a1  a2
 */
Test(token, cancelling_a_subtree_leaves_parent_and_siblings)
{
	struct afe_token *root, *a, *b, *a1, *a2;
	cr_assert_eq(afe_token_new(&root), 0);
	cr_assert_eq(afe_token_new_child(root, &a), 0);
	cr_assert_eq(afe_token_new_child(root, &b), 0);
	cr_assert_eq(afe_token_new_child(a, &a1), 0);
	cr_assert_eq(afe_token_new_child(a, &a2), 0);

	cr_assert_eq(afe_token_cancel(a1), 0);
	cr_assert(afe_token_is_cancelled(a1));
	cr_assert_not(afe_token_is_cancelled(a2), "a leaf's sibling runs on");
	cr_assert_not(afe_token_is_cancelled(a), "a leaf's parent runs on");

	cr_assert_eq(afe_token_cancel(a), 0);
	cr_assert(afe_token_is_cancelled(a));
	cr_assert(afe_token_is_cancelled(a2));
	cr_assert_not(afe_token_is_cancelled(root));
	cr_assert_not(afe_token_is_cancelled(b), "the sibling subtree runs on");
	cr_assert_eq(afe_token_cancel(a), -EALREADY);
	cr_assert_eq(afe_token_cancel(a1), -EALREADY);

	cr_assert_eq(afe_token_cancel(root), 0);
	cr_assert(afe_token_is_cancelled(b));
	struct afe_token *toks[] = {root, a, b, a1, a2};
	for (int i = 0; i < 5; i++)
		afe_token_release(toks[i]);
}

Test(token, child_of_a_cancelled_token_is_born_cancelled)
{
	struct afe_token *root, *late, *later;
	cr_assert_eq(afe_token_new(&root), 0);
	cr_assert_eq(afe_token_cancel(root), 0);
	cr_assert_eq(afe_token_new_child(root, &late), 0);
	cr_assert(afe_token_is_cancelled(late));
	cr_assert_eq(afe_token_new_child(late, &later), 0);
	cr_assert(afe_token_is_cancelled(later));
	cr_assert_eq(afe_token_cancel(late), -EALREADY);

	struct counting_waker cw;
	counting_waker_init(&cw);
	struct afe_context cx = counting_context(&cw, false);
	struct afe_token_wait w;
	afe_token_wait_init(&w, later);
	cr_assert_eq(afe_future_poll(&w.base, &cx), AFE_READY);
	cr_assert_eq(w.base.result, 0);
	afe_token_release(later);
	afe_token_release(late);
	afe_token_release(root);
}

Test(token, releasing_parents_and_children_in_any_order)
{
	struct afe_token *root, *c1, *c2, *g;
	cr_assert_eq(afe_token_new(&root), 0);
	cr_assert_eq(afe_token_new_child(root, &c1), 0);
	cr_assert_eq(afe_token_new_child(root, &c2), 0);
	cr_assert_eq(afe_token_new_child(c1, &g), 0);
	afe_token_release(c2); /* a child leaves while the parent lives */
	afe_token_release(c1); /* g is detached: a root of its own now */
	cr_assert_eq(afe_token_cancel(root), 0);
	cr_assert_not(afe_token_is_cancelled(g), "detached from the released parent");
	cr_assert_eq(afe_token_cancel(g), 0);
	afe_token_release(g);

	/* A reference keeps a token, and its place in the tree, alive. */
	struct afe_token *p, *c;
	cr_assert_eq(afe_token_new(&p), 0);
	cr_assert_eq(afe_token_new_child(p, &c), 0);
	cr_assert_eq(afe_token_ref(c), c);
	afe_token_release(c);
	cr_assert_eq(afe_token_cancel(p), 0);
	cr_assert(afe_token_is_cancelled(c));
	afe_token_release(c);
	afe_token_release(p);
	afe_token_release(root);
}

Test(token, wait_future_by_hand)
{
	struct counting_waker cw;
	counting_waker_init(&cw);
	struct afe_context cx = counting_context(&cw, false);
	struct afe_token *t;
	cr_assert_eq(afe_token_new(&t), 0);

	struct afe_token_wait w;
	afe_token_wait_init(&w, t);
	cr_assert_eq(afe_future_poll(&w.base, &cx), AFE_PENDING);
	cr_assert_eq(afe_future_poll(&w.base, &cx), AFE_PENDING);
	cr_assert_eq(atomic_load(&cw.refs), 1, "one waker kept across polls");
	afe_token_release(t); /* the future's own reference keeps it */
	cr_assert_eq(afe_token_cancel(t), 0);
	cr_assert_eq(atomic_load(&cw.wakes), 1);
	cr_assert_eq(atomic_load(&cw.refs), 0, "the waker was consumed");
	cr_assert_eq(afe_future_poll(&w.base, &cx), AFE_READY);
	cr_assert_eq(w.base.result, 0);
	/* The future released the last reference: ASan sees the free. */
}

Test(token, cancelled_wait_unlinks_itself)
{
	struct counting_waker cw;
	counting_waker_init(&cw);
	struct afe_context cx = counting_context(&cw, false);
	struct afe_token *t;
	cr_assert_eq(afe_token_new(&t), 0);

	struct afe_token_wait w1, w2;
	afe_token_wait_init(&w1, t);
	afe_token_wait_init(&w2, t);
	cr_assert_eq(afe_future_poll(&w1.base, &cx), AFE_PENDING);
	cr_assert_eq(afe_future_poll(&w2.base, &cx), AFE_PENDING);
	cx.cancel = true;
	cr_assert_eq(afe_future_poll(&w1.base, &cx), AFE_READY);
	cr_assert_eq(w1.base.result, -ECANCELED);
	cr_assert_eq(atomic_load(&cw.refs), 1, "w1 dropped its waker");
	memset(&w1, 0xa5, sizeof(w1)); /* gone: the token must not touch it */
	cr_assert_eq(afe_token_cancel(t), 0);
	cr_assert_eq(atomic_load(&cw.wakes), 1, "only w2 was woken");
	cx.cancel = false;
	cr_assert_eq(afe_future_poll(&w2.base, &cx), AFE_READY);
	cr_assert_eq(w2.base.result, 0);

	/* Cancelled before its first poll: no reference, no link. */
	struct afe_token_wait w3;
	struct afe_token *u;
	cr_assert_eq(afe_token_new(&u), 0);
	afe_token_wait_init(&w3, u);
	cx.cancel = true;
	cr_assert_eq(afe_future_poll(&w3.base, &cx), AFE_READY);
	cr_assert_eq(w3.base.result, -ECANCELED);
	afe_token_release(u);
	afe_token_release(t);
}

struct cb_state {
	atomic_int calls;
	pthread_t thread;
	struct afe_token *to_cancel;
	struct afe_token_callback *self_cb;
	int unregister_result;
};

static void count_call(void *arg)
{
	struct cb_state *s = arg;
	s->thread = pthread_self();
	atomic_fetch_add(&s->calls, 1);
	if (s->to_cancel)
		afe_token_cancel(s->to_cancel);
	if (s->self_cb)
		s->unregister_result = afe_token_callback_unregister(s->self_cb);
}

Test(token, callbacks_run_once_on_the_cancelling_thread)
{
	struct afe_token *t;
	cr_assert_eq(afe_token_new(&t), 0);
	struct cb_state s = {0};
	struct afe_token_callback cb = {0}, never = {0};
	struct cb_state ns = {0};
	cr_assert_eq(afe_token_callback_register(&cb, t, count_call, &s), 0);
	cr_assert_eq(afe_token_callback_register(&cb, t, count_call, &s), -EINVAL,
		     "registered twice");
	cr_assert_eq(afe_token_callback_register(&never, t, count_call, &ns), 0);
	cr_assert_eq(afe_token_callback_unregister(&never), 0, "unregistered before it ran");
	afe_token_release(t); /* the registration keeps it */
	cr_assert_eq(afe_token_cancel(t), 0);
	cr_assert_eq(atomic_load(&s.calls), 1);
	cr_assert(pthread_equal(s.thread, pthread_self()));
	cr_assert_eq(afe_token_cancel(t), -EALREADY);
	cr_assert_eq(atomic_load(&s.calls), 1, "once");
	cr_assert_eq(atomic_load(&ns.calls), 0);
	cr_assert_eq(afe_token_callback_unregister(&cb), -EALREADY);
	cr_assert_eq(afe_token_callback_unregister(&cb), -EINVAL);
}

Test(token, callback_on_a_cancelled_token_runs_at_once)
{
	struct afe_token *t;
	cr_assert_eq(afe_token_new(&t), 0);
	afe_token_cancel(t);
	struct cb_state s = {0};
	struct afe_token_callback cb = {0};
	cr_assert_eq(afe_token_callback_register(&cb, t, count_call, &s), 1);
	cr_assert_eq(atomic_load(&s.calls), 1);
	cr_assert_eq(afe_token_callback_unregister(&cb), -EALREADY);
	afe_token_release(t);
}

Test(token, callbacks_may_cancel_other_tokens_and_unregister_themselves)
{
	struct afe_token *a, *b;
	cr_assert_eq(afe_token_new(&a), 0);
	cr_assert_eq(afe_token_new(&b), 0);
	struct afe_token_callback on_a = {0}, on_b = {0};
	struct cb_state sa = {.to_cancel = b, .self_cb = &on_a}, sb = {0};
	cr_assert_eq(afe_token_callback_register(&on_a, a, count_call, &sa), 0);
	cr_assert_eq(afe_token_callback_register(&on_b, b, count_call, &sb), 0);
	cr_assert_eq(afe_token_cancel(a), 0);
	cr_assert_eq(atomic_load(&sa.calls), 1);
	cr_assert_eq(atomic_load(&sb.calls), 1, "a's callback cancelled b");
	cr_assert_eq(sa.unregister_result, -EALREADY, "unregistering from inside returns");
	cr_assert_eq(afe_token_callback_unregister(&on_b), -EALREADY);
	afe_token_release(a);
	afe_token_release(b);
}

/* ---- with a runtime ----------------------------------------------------- */

struct waiter_task {
	struct afe_future base;
	struct afe_token *token;
	struct afe_token_wait wait;
	atomic_int *woken;
};

static int waiter_poll(struct afe_future *f, struct afe_context *cx)
{
	struct waiter_task *self = afe_container_of(f, struct waiter_task, base);
	AFE_ASYNC_BEGIN(f, cx);
	afe_token_wait_init(&self->wait, self->token);
	AFE_AWAIT(&self->wait.base);
	if (self->woken)
		atomic_fetch_add(self->woken, 1);
	AFE_RETURN(self->wait.base.result == 0 ? 42 : self->wait.base.result);
	AFE_ASYNC_END;
}

static struct waiter_task waiter_make(struct afe_token *t, atomic_int *woken)
{
	struct waiter_task w = {.token = t, .woken = woken};
	afe_future_init(&w.base, waiter_poll);
	return w;
}

static void *cancel_from_plain_thread(void *arg)
{
	struct timespec ms = {0, 2000000};
	nanosleep(&ms, NULL);
	afe_token_cancel(arg);
	return NULL;
}

Test(token, cancel_from_a_plain_thread_wakes_tasks)
{
	struct afe_runtime *rt = test_runtime(2);
	struct afe_token *root;
	cr_assert_eq(afe_token_new(&root), 0);
	enum { N = 64 };
	struct afe_token *kids[N];
	struct afe_join_handle h[N];
	for (int i = 0; i < N; i++) {
		cr_assert_eq(afe_token_new_child(root, &kids[i]), 0);
		struct waiter_task w = waiter_make(kids[i], NULL);
		cr_assert_eq(afe_spawn(rt, &w, &h[i]), 0);
	}
	pthread_t th;
	pthread_create(&th, NULL, cancel_from_plain_thread, root);
	for (int i = 0; i < N; i++) {
		struct afe_join j;
		afe_join_init(&j, &h[i]);
		intptr_t r = test_block_on(rt, &j);
		cr_assert_eq(r, 42);
	}
	pthread_join(th, NULL);
	for (int i = 0; i < N; i++)
		afe_token_release(kids[i]);
	afe_token_release(root);
	test_runtime_destroy(rt);
}

Test(token, subtree_cancel_leaves_sibling_tasks_running)
{
	struct afe_runtime *rt = test_runtime(2);
	struct afe_token *root, *left, *right;
	cr_assert_eq(afe_token_new(&root), 0);
	cr_assert_eq(afe_token_new_child(root, &left), 0);
	cr_assert_eq(afe_token_new_child(root, &right), 0);
	atomic_int woken = 0;
	struct waiter_task wl = waiter_make(left, &woken), wr = waiter_make(right, &woken);
	struct afe_join_handle hl, hr;
	cr_assert_eq(afe_spawn(rt, &wl, &hl), 0);
	cr_assert_eq(afe_spawn(rt, &wr, &hr), 0);

	afe_token_cancel(left);
	struct afe_join jl;
	afe_join_init(&jl, &hl);
	intptr_t r = test_block_on(rt, &jl);
	cr_assert_eq(r, 42);
	struct timespec ms = {0, 20000000};
	nanosleep(&ms, NULL);
	cr_assert_eq(atomic_load(&woken), 1);
	cr_assert_not(afe_join_handle_is_finished(&hr), "the sibling's task still waits");
	cr_assert_not(afe_token_is_cancelled(root));

	afe_token_cancel(root);
	struct afe_join jr;
	afe_join_init(&jr, &hr);
	r = test_block_on(rt, &jr);
	cr_assert_eq(r, 42);
	afe_token_release(left);
	afe_token_release(right);
	afe_token_release(root);
	test_runtime_destroy(rt);
}

/* select(token wait, yield): the yield wins, the wait is cancelled and
 * unlinked; the token is then cancelled and freed with nobody touching
 * the dropped wait (ASan would see it). */
struct select_drop {
	struct afe_future base;
	struct afe_token *token;
	struct afe_token_wait wait;
	struct afe_yield_now nap;
	struct afe_future *racers[2];
	struct afe_select sel;
};

static int select_drop_poll(struct afe_future *f, struct afe_context *cx)
{
	struct select_drop *self = afe_container_of(f, struct select_drop, base);
	AFE_ASYNC_BEGIN(f, cx);
	afe_token_wait_init(&self->wait, self->token);
	afe_yield_now_init(&self->nap);
	self->racers[0] = &self->wait.base;
	self->racers[1] = &self->nap.base;
	afe_select_init(&self->sel, self->racers, 2);
	AFE_AWAIT(&self->sel.base);
	AFE_RETURN(self->sel.winner * 10 + (self->wait.base.result == -ECANCELED));
	AFE_ASYNC_END;
}

Test(token, select_drops_a_waiting_future_cleanly)
{
	struct afe_runtime *rt = test_runtime(2);
	for (int i = 0; i < 100; i++) {
		struct afe_token *t;
		cr_assert_eq(afe_token_new(&t), 0);
		struct select_drop s = {.token = t};
		afe_future_init(&s.base, select_drop_poll);
		intptr_t r = test_block_on(rt, &s);
		cr_assert_eq(r, 11, "the yield won and the wait was cancelled");
		cr_assert_eq(afe_token_cancel(t), 0);
		afe_token_release(t);
	}
	test_runtime_destroy(rt);
}

/* Pending until cancelled (then -ECANCELED); counts its polls. It keeps no
 * waker: the token's wait beside it is what wakes the task. */
struct counted_pending {
	struct afe_future base;
	int polls;
	bool saw_cancel;
	atomic_bool polled; /* for the canceller: the first poll happened */
	struct afe_token *token;
};

static int counted_pending_poll(struct afe_future *f, struct afe_context *cx)
{
	struct counted_pending *self = afe_container_of(f, struct counted_pending, base);
	self->polls++;
	atomic_store(&self->polled, true);
	if (!cx->cancel)
		return AFE_PENDING;
	self->saw_cancel = true;
	f->result = -ECANCELED;
	return AFE_READY;
}

Test(token, until_gives_the_inner_result_when_it_finishes_first)
{
	struct afe_runtime *rt = test_runtime(1);
	struct afe_token *t;
	cr_assert_eq(afe_token_new(&t), 0);
	struct afe_ready seven;
	afe_ready_init(&seven, 7);
	struct afe_token_until u;
	afe_token_until_init(&u, t, &seven.base);
	cr_assert_eq(test_block_on(rt, &u), 7);
	afe_token_release(t);
	test_runtime_destroy(rt);
}

/* Fires the inner future's token once that future was polled: a token
 * fired before (a slow first poll, under a sanitizer) would never let it
 * be polled at all, which another test checks. */
static void *cancel_once_polled(void *arg)
{
	struct counted_pending *inner = arg;
	while (!atomic_load(&inner->polled))
		sched_yield();
	afe_token_cancel(inner->token);
	return NULL;
}

Test(token, until_cancels_and_awaits_the_inner_future_when_the_token_fires)
{
	struct afe_runtime *rt = test_runtime(2);
	struct afe_token *t;
	cr_assert_eq(afe_token_new(&t), 0);
	struct counted_pending inner = {.token = t};
	afe_future_init(&inner.base, counted_pending_poll);
	struct afe_token_until u;
	afe_token_until_init(&u, t, &inner.base);
	pthread_t th;
	pthread_create(&th, NULL, cancel_once_polled, &inner);
	cr_assert_eq(test_block_on(rt, &u), -ECANCELED);
	pthread_join(th, NULL);
	cr_assert(inner.saw_cancel, "the inner future was cancelled before the end");
	cr_assert_geq(inner.polls, 2);
	afe_token_release(t);
	test_runtime_destroy(rt);
}

Test(token, until_on_a_fired_token_never_polls_the_inner_future)
{
	struct afe_runtime *rt = test_runtime(1);
	struct afe_token *t;
	cr_assert_eq(afe_token_new(&t), 0);
	cr_assert_eq(afe_token_cancel(t), 0);
	struct counted_pending inner = {0};
	afe_future_init(&inner.base, counted_pending_poll);
	struct afe_token_until u;
	afe_token_until_init(&u, t, &inner.base);
	cr_assert_eq(test_block_on(rt, &u), -ECANCELED);
	cr_assert_eq(inner.polls, 0);
	afe_token_release(t);
	test_runtime_destroy(rt);
}

Test(token, until_without_a_token_or_an_inner_future_is_einval)
{
	struct afe_runtime *rt = test_runtime(1);
	struct afe_token *t;
	cr_assert_eq(afe_token_new(&t), 0);
	struct afe_ready one;
	afe_ready_init(&one, 1);
	struct afe_token_until u;
	afe_token_until_init(&u, NULL, &one.base);
	cr_assert_eq(test_block_on(rt, &u), -EINVAL);
	afe_token_until_init(&u, t, NULL);
	cr_assert_eq(test_block_on(rt, &u), -EINVAL);
	afe_token_release(t);
	test_runtime_destroy(rt);
}
