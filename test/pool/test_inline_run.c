/* SPDX-License-Identifier: MIT */
/*
 * The ring thread polls the tasks a reap woke when every worker is parked
 * (afe_defer_wakes_deliver, pool/worker.c): a few, once each, within a
 * time budget; what those polls wake goes to the workers.
 *
 * Whether a worker is parked when a timer fires is up to the scheduler,
 * so each test repeats its round and asks for the ring thread at least
 * once; what must never happen (a chain of wakes on the ring thread, a
 * long batch kept there) is asserted in every round.
 */
#define _GNU_SOURCE /* pthread_getname_np */
#include <pthread.h>
#include <string.h>

#include "helpers.h"

#define ROUNDS 20

/* Runs the future f (of size bytes, copied) as a task and returns its
 * result: afe_block_on would poll it on this thread. */
static intptr_t join_spawned(struct afe_runtime *rt, struct afe_future *f, size_t size)
{
	struct afe_join_handle h;
	cr_assert_eq(afe_spawn_raw(rt, f, size, f, &h), 0);
	struct afe_join j;
	afe_join_init(&j, &h);
	return test_block_on(rt, &j);
}

static bool on_ring_thread(void)
{
	char name[16] = "";
	pthread_getname_np(pthread_self(), name, sizeof(name));
	return strcmp(name, "afe-ring") == 0;
}

/* Sleeps 2 ms ROUNDS times; counts the wake-ups polled on the ring thread
 * and checks afe_runtime_current there. */
struct nap_counts {
	int on_ring, wrong_runtime;
};

struct napper {
	struct afe_future base;
	struct afe_sleep nap;
	struct afe_runtime *rt;
	struct nap_counts *counts;
	int round;
};

static int napper_poll(struct afe_future *f, struct afe_context *cx)
{
	struct napper *self = afe_container_of(f, struct napper, base);
	AFE_ASYNC_BEGIN(f, cx);
	for (self->round = 0; self->round < ROUNDS; self->round++) {
		afe_sleep_init(&self->nap, 2000000);
		AFE_AWAIT(&self->nap.base);
		self->counts->on_ring += on_ring_thread();
		self->counts->wrong_runtime += afe_runtime_current() != self->rt;
	}
	AFE_RETURN(0);
	AFE_ASYNC_END;
}

Test(inline_run, a_task_woken_while_every_worker_sleeps_runs_on_the_ring_thread)
{
	struct afe_runtime *rt = test_runtime_spinning(1, 0);
	struct nap_counts counts = {0};
	struct napper n = {.rt = rt, .counts = &counts};
	afe_future_init(&n.base, napper_poll);
	cr_assert_eq(join_spawned(rt, &n.base, sizeof(n)), 0);
	cr_assert_gt(counts.on_ring, 0, "no wake-up of %d polled on the ring thread", ROUNDS);
	cr_assert_eq(counts.wrong_runtime, 0, "afe_runtime_current is the runtime there");
	struct afe_metrics m;
	cr_assert_eq(afe_runtime_metrics(rt, &m), 0);
	cr_assert_geq(m.polled, (uint64_t)ROUNDS + 1, "the ring thread's polls are counted");
	/* And its completions: destroy finds no task left. */
	test_runtime_destroy(rt);
}

/* The waker sleeps, then notifies the waiter; the waiter counts where
 * it was polled after each notify. */
struct pair {
	struct afe_notify to_waiter, to_waker;
	int waker_on_ring, waiter_on_ring;
};

struct waker_task {
	struct afe_future base;
	struct afe_sleep nap;
	struct afe_notified back;
	struct pair *p;
	int round;
};

static int waker_task_poll(struct afe_future *f, struct afe_context *cx)
{
	struct waker_task *self = afe_container_of(f, struct waker_task, base);
	AFE_ASYNC_BEGIN(f, cx);
	for (self->round = 0; self->round < ROUNDS; self->round++) {
		afe_sleep_init(&self->nap, 2000000);
		AFE_AWAIT(&self->nap.base);
		self->p->waker_on_ring += on_ring_thread();
		afe_notify_one(&self->p->to_waiter);
		afe_notified_init(&self->back, &self->p->to_waker);
		AFE_AWAIT(&self->back.base);
	}
	AFE_RETURN(0);
	AFE_ASYNC_END;
}

struct waiter_task {
	struct afe_future base;
	struct afe_notified wait;
	struct pair *p;
	int round;
};

static int waiter_task_poll(struct afe_future *f, struct afe_context *cx)
{
	struct waiter_task *self = afe_container_of(f, struct waiter_task, base);
	AFE_ASYNC_BEGIN(f, cx);
	for (self->round = 0; self->round < ROUNDS; self->round++) {
		afe_notified_init(&self->wait, &self->p->to_waiter);
		AFE_AWAIT(&self->wait.base);
		self->p->waiter_on_ring += on_ring_thread();
		afe_notify_one(&self->p->to_waker);
	}
	AFE_RETURN(0);
	AFE_ASYNC_END;
}

Test(inline_run, what_a_task_polled_on_the_ring_thread_wakes_runs_on_a_worker)
{
	struct afe_runtime *rt = test_runtime_spinning(2, 0);
	struct pair p = {0};
	afe_notify_init(&p.to_waiter);
	afe_notify_init(&p.to_waker);
	struct waiter_task waiter = {.p = &p};
	afe_future_init(&waiter.base, waiter_task_poll);
	struct waker_task waker = {.p = &p};
	afe_future_init(&waker.base, waker_task_poll);
	struct afe_join_handle h;
	cr_assert_eq(afe_spawn(rt, &waiter, &h), 0);
	cr_assert_eq(join_spawned(rt, &waker.base, sizeof(waker)), 0);
	struct afe_join j;
	afe_join_init(&j, &h);
	cr_assert_eq(test_block_on(rt, &j), 0);
	cr_assert_gt(p.waker_on_ring, 0, "no wake-up of %d polled on the ring thread", ROUNDS);
	cr_assert_eq(p.waiter_on_ring, 0, "a wake from the ring thread's poll stayed there");
	afe_notify_destroy(&p.to_waiter);
	afe_notify_destroy(&p.to_waker);
	test_runtime_destroy(rt);
}

/* BATCH tasks sleep to one deadline, so one expiry wakes them all; each
 * then busies its thread for longer than the ring thread's budget. */
#define BATCH 4
#define BUSY_NS 300000u

struct busy_after {
	struct afe_future base;
	struct afe_sleep nap;
	uint64_t deadline;
	_Atomic int *on_ring;
};

static int busy_after_poll(struct afe_future *f, struct afe_context *cx)
{
	struct busy_after *self = afe_container_of(f, struct busy_after, base);
	AFE_ASYNC_BEGIN(f, cx);
	afe_sleep_until_init(&self->nap, self->deadline);
	AFE_AWAIT(&self->nap.base);
	atomic_fetch_add(self->on_ring, on_ring_thread());
	for (uint64_t until = afe_now_ns() + BUSY_NS; afe_now_ns() < until;)
		;
	AFE_RETURN(0);
	AFE_ASYNC_END;
}

Test(inline_run, a_batch_past_the_budget_goes_on_to_the_workers)
{
	struct afe_runtime *rt = test_runtime_spinning(2, 0);
	int rounds_with_ring = 0;
	for (int round = 0; round < ROUNDS; round++) {
		_Atomic int on_ring = 0;
		struct busy_after tasks[BATCH];
		struct afe_join_handle h[BATCH];
		uint64_t deadline = afe_now_ns() + 5000000;
		for (int i = 0; i < BATCH; i++) {
			tasks[i] = (struct busy_after){.deadline = deadline, .on_ring = &on_ring};
			afe_future_init(&tasks[i].base, busy_after_poll);
			cr_assert_eq(afe_spawn(rt, &tasks[i], &h[i]), 0);
		}
		for (int i = 0; i < BATCH; i++) {
			struct afe_join j;
			afe_join_init(&j, &h[i]);
			cr_assert_eq(test_block_on(rt, &j), 0);
		}
		cr_assert_lt(atomic_load(&on_ring), BATCH, "the whole batch ran on the ring thread");
		rounds_with_ring += atomic_load(&on_ring) > 0;
	}
	cr_assert_gt(rounds_with_ring, 0, "no round polled a task on the ring thread");
	test_runtime_destroy(rt);
}
