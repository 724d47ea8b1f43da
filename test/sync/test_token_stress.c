/* SPDX-License-Identifier: MIT */
/* Tokens under contention: waits linking and unlinking while another
 * thread cancels, and callbacks unregistered while they fire. Labelled
 * stress; run under TSan by run-all.sh. */
#include <pthread.h>
#include <time.h>

#include "helpers.h"

/* Races a wait on the shared token against a yield, over and over, so the
 * wait links and unlinks itself while a plain thread cancels. */
struct churner {
	struct afe_future base;
	struct afe_token *token;
	bool owns_token; /* releases it when done */
	long rounds;
	struct afe_token_wait wait;
	struct afe_yield_now nap;
	struct afe_future *racers[2];
	struct afe_select sel;
};

static int churner_poll(struct afe_future *f, struct afe_context *cx)
{
	struct churner *self = afe_container_of(f, struct churner, base);
	AFE_ASYNC_BEGIN(f, cx);
	for (;;) {
		afe_token_wait_init(&self->wait, self->token);
		afe_yield_now_init(&self->nap);
		self->racers[0] = &self->wait.base;
		self->racers[1] = &self->nap.base;
		afe_select_init(&self->sel, self->racers, 2);
		AFE_AWAIT(&self->sel.base);
		self->rounds++;
		if (self->sel.winner == 0)
			AFE_RETURN(self->rounds);
	}
	AFE_CLEANUP;
	if (self->owns_token)
		afe_token_release(self->token);
	AFE_ASYNC_END;
}

static void *cancel_after(void *arg)
{
	struct timespec t = {0, 30 * 1000000};
	nanosleep(&t, NULL);
	afe_token_cancel(arg);
	return NULL;
}

Test(token_stress, waits_link_and_unlink_while_a_thread_cancels)
{
	struct afe_runtime *rt = test_runtime(2);
	enum { TASKS = 8 };
	long total = 0;
	for (int round = 0; round < 20; round++) {
		struct afe_token *t;
		cr_assert_eq(afe_token_new(&t), 0);
		struct afe_join_handle h[TASKS];
		for (int i = 0; i < TASKS; i++) {
			struct churner c = {.token = t};
			afe_future_init(&c.base, churner_poll);
			cr_assert_eq(afe_spawn(rt, &c, &h[i]), 0);
		}
		pthread_t th;
		pthread_create(&th, NULL, cancel_after, t);
		for (int i = 0; i < TASKS; i++) {
			struct afe_join j;
			afe_join_init(&j, &h[i]);
			intptr_t r = test_block_on(rt, &j);
			cr_assert_gt(r, 0);
			total += r;
		}
		pthread_join(th, NULL);
		afe_token_release(t);
	}
	cr_assert_gt(total, 20 * TASKS);
	test_runtime_destroy(rt);
}

/* Many tasks wait on children of one parent; a plain thread cancels it. */
Test(token_stress, many_waiters_woken_by_one_cancel)
{
	struct afe_runtime *rt = test_runtime(2);
	enum { TASKS = 256, ROUNDS = 40 };
	static struct afe_join_handle h[TASKS];
	for (int round = 0; round < ROUNDS; round++) {
		struct afe_token *parent;
		cr_assert_eq(afe_token_new(&parent), 0);
		for (int i = 0; i < TASKS; i++) {
			struct afe_token *kid;
			cr_assert_eq(afe_token_new_child(parent, &kid), 0);
			/* The task owns the reference: each new wait needs
			 * the token alive at its first poll. */
			struct churner c = {.token = kid, .owns_token = true};
			afe_future_init(&c.base, churner_poll);
			cr_assert_eq(afe_spawn(rt, &c, &h[i]), 0);
		}
		pthread_t th;
		pthread_create(&th, NULL, cancel_after, parent);
		for (int i = 0; i < TASKS; i++) {
			struct afe_join j;
			afe_join_init(&j, &h[i]);
			intptr_t r = test_block_on(rt, &j);
			cr_assert_gt(r, 0);
		}
		pthread_join(th, NULL);
		afe_token_release(parent);
	}
	test_runtime_destroy(rt);
}

struct cb_race {
	struct afe_token *token;
	atomic_int calls;
	atomic_bool go;
};

static void slow_call(void *arg)
{
	struct cb_race *r = arg;
	for (volatile int i = 0; i < 200; i++)
		;
	atomic_fetch_add(&r->calls, 1);
}

static void *canceller(void *arg)
{
	struct cb_race *r = arg;
	while (!atomic_load(&r->go))
		;
	afe_token_cancel(r->token);
	return NULL;
}

/* unregister returning 0 means never ran; -EALREADY means finished. */
Test(token_stress, unregister_races_a_firing_callback)
{
	int saw_zero = 0, saw_already = 0;
	for (int i = 0; i < 4000; i++) {
		struct cb_race r = {0};
		cr_assert_eq(afe_token_new(&r.token), 0);
		struct afe_token_callback cb = {0};
		cr_assert_eq(afe_token_callback_register(&cb, r.token, slow_call, &r), 0);
		pthread_t th;
		pthread_create(&th, NULL, canceller, &r);
		atomic_store(&r.go, true);
		int ret = afe_token_callback_unregister(&cb);
		int calls = atomic_load(&r.calls);
		if (ret == 0) {
			cr_assert_eq(calls, 0);
			saw_zero++;
		} else {
			cr_assert_eq(ret, -EALREADY);
			cr_assert_eq(calls, 1, "unregister waited for the running callback");
			saw_already++;
		}
		pthread_join(th, NULL);
		cr_assert_eq(atomic_load(&r.calls), ret == 0 ? 0 : 1);
		afe_token_release(r.token);
	}
	cr_assert_eq(saw_zero + saw_already, 4000);
}
