/* SPDX-License-Identifier: MIT */
/* Stress: a million spawns and joins, a million handoffs between two
 * tasks, and many threads and tasks waking one task at once. A lost wakeup
 * shows as a hang (the test times out); a double wake as two concurrent
 * polls of one task. */
#include <pthread.h>
#include <sched.h>
#include <stdlib.h>

#include "helpers.h"

#define MILLION 1000000

struct index_task {
	struct afe_future base;
	intptr_t index;
};
static int index_poll(struct afe_future *f, struct afe_context *cx)
{
	(void)cx;
	f->result = afe_container_of(f, struct index_task, base)->index;
	return AFE_READY;
}

struct spawner {
	struct afe_future base;
	intptr_t i, sum;
	struct afe_join_handle *handles;
	struct afe_join join;
};
static int spawner_poll(struct afe_future *f, struct afe_context *cx)
{
	struct spawner *s = afe_container_of(f, struct spawner, base);
	AFE_ASYNC_BEGIN(f, cx);
	for (s->i = 0; s->i < MILLION; s->i++) {
		struct index_task t = {.index = s->i};
		afe_future_init(&t.base, index_poll);
		if (afe_spawn(NULL, &t, &s->handles[s->i]) < 0)
			AFE_RETURN(-1);
	}
	for (s->i = 0; s->i < MILLION; s->i++) {
		afe_join_init(&s->join, &s->handles[s->i]);
		AFE_AWAIT(&s->join.base);
		s->sum += s->join.base.result;
	}
	AFE_RETURN(s->sum);
	AFE_ASYNC_END;
}

Test(stress, a_million_tasks_spawned_and_joined, .timeout = 600)
{
	struct afe_runtime *rt = test_runtime(2);
	struct spawner s = {.handles = calloc(MILLION, sizeof(struct afe_join_handle))};
	afe_future_init(&s.base, spawner_poll);
	cr_assert_eq(test_block_on(rt, &s), (intptr_t)MILLION * (MILLION - 1) / 2);
	struct afe_metrics m;
	afe_runtime_metrics(rt, &m);
	cr_assert_eq(m.spawned, MILLION + 1);
	cr_assert_eq(m.completed, MILLION + 1);
	free(s.handles);
	test_runtime_destroy(rt);
}

/* Two tasks hand a counter back and forth through oneshots. */
struct court {
	struct afe_oneshot to_b, to_a;
};
struct player {
	struct afe_future base;
	struct court *court;
	bool starts;
	intptr_t i, last;
	struct afe_oneshot_recv recv;
};
static int player_poll(struct afe_future *f, struct afe_context *cx)
{
	struct player *p = afe_container_of(f, struct player, base);
	struct afe_oneshot *in = p->starts ? &p->court->to_a : &p->court->to_b;
	struct afe_oneshot *out = p->starts ? &p->court->to_b : &p->court->to_a;
	AFE_ASYNC_BEGIN(f, cx);
	if (p->starts)
		afe_oneshot_send(out, 0);
	for (p->i = 0; p->i < MILLION; p->i++) {
		afe_oneshot_recv_init(&p->recv, in);
		AFE_AWAIT(&p->recv.base);
		afe_oneshot_init(in);
		/* b receives the even numbers, a (which starts) the odd ones. */
		if (p->recv.base.result != 2 * p->i + p->starts)
			AFE_RETURN(-EPROTO);
		p->last = p->recv.base.result;
		if (!p->starts || p->i + 1 < MILLION)
			afe_oneshot_send(out, p->last + 1);
	}
	AFE_RETURN(p->last);
	AFE_ASYNC_END;
}

Test(stress, two_tasks_wake_each_other_a_million_times, .timeout = 600)
{
	struct afe_runtime *rt = test_runtime(2);
	static struct court court;
	afe_oneshot_init(&court.to_a);
	afe_oneshot_init(&court.to_b);
	struct player a = {.court = &court, .starts = true}, b = {.court = &court};
	afe_future_init(&a.base, player_poll);
	afe_future_init(&b.base, player_poll);
	struct afe_join_handle hb;
	cr_assert_eq(afe_spawn(rt, &b, &hb), 0);
	cr_assert_eq(test_block_on(rt, &a), 2 * MILLION - 1);
	struct afe_join jb;
	afe_join_init(&jb, &hb);
	cr_assert_eq(test_block_on(rt, &jb), 2 * MILLION - 2);
	test_runtime_destroy(rt);
}

/* Many wakers, one target. */
#define WAKER_THREADS 4
#define WAKER_TASKS 4
#define WAKES_EACH 200000
#define TOTAL_WAKES ((WAKER_THREADS + WAKER_TASKS) * WAKES_EACH)

static atomic_int sent, in_poll, concurrent_polls, target_polls;
static struct afe_waker target_waker;
static atomic_bool target_waker_ready;

struct target {
	struct afe_future base;
};
static int target_poll(struct afe_future *f, struct afe_context *cx)
{
	if (atomic_exchange(&in_poll, 1))
		atomic_fetch_add(&concurrent_polls, 1);
	atomic_fetch_add(&target_polls, 1);
	if (!atomic_load(&target_waker_ready)) {
		afe_waker_clone(&target_waker, cx->waker);
		atomic_store(&target_waker_ready, true);
	}
	int done = atomic_load(&sent) == TOTAL_WAKES;
	atomic_store(&in_poll, 0);
	if (!done)
		return AFE_PENDING;
	f->result = 0;
	return AFE_READY;
}

static void wake_target(void)
{
	atomic_fetch_add(&sent, 1);
	afe_waker_wake_by_ref(&target_waker);
}

static void *waker_thread(void *arg)
{
	(void)arg;
	while (!atomic_load(&target_waker_ready))
		sched_yield(); /* two cores: leave them to the workers */
	for (int i = 0; i < WAKES_EACH; i++)
		wake_target();
	return NULL;
}

struct waker_task {
	struct afe_future base;
	int i;
};
static int waker_task_poll(struct afe_future *f, struct afe_context *cx)
{
	struct waker_task *w = afe_container_of(f, struct waker_task, base);
	AFE_ASYNC_BEGIN(f, cx);
	while (!atomic_load(&target_waker_ready))
		AFE_YIELD();
	for (w->i = 0; w->i < WAKES_EACH; w->i++) {
		wake_target();
		if (w->i % 64 == 0)
			AFE_YIELD();
	}
	AFE_ASYNC_END;
}

Test(stress, many_wakers_one_task_no_lost_or_double_wake, .timeout = 600)
{
	struct afe_runtime *rt = test_runtime(2);
	struct target t;
	afe_future_init(&t.base, target_poll);
	struct afe_join_handle ht;
	cr_assert_eq(afe_spawn(rt, &t, &ht), 0);
	pthread_t threads[WAKER_THREADS];
	for (int i = 0; i < WAKER_THREADS; i++)
		pthread_create(&threads[i], NULL, waker_thread, NULL);
	for (int i = 0; i < WAKER_TASKS; i++) {
		struct waker_task w;
		afe_future_init(&w.base, waker_task_poll);
		cr_assert_eq(afe_spawn(rt, &w, NULL), 0);
	}
	struct afe_join jt;
	afe_join_init(&jt, &ht);
	cr_assert_eq(test_block_on(rt, &jt), 0);
	for (int i = 0; i < WAKER_THREADS; i++)
		pthread_join(threads[i], NULL);
	cr_assert_eq(afe_runtime_wait_idle(rt, -1), 0);
	cr_assert_eq(atomic_load(&concurrent_polls), 0, "a task was polled twice at once");
	cr_assert_leq(atomic_load(&target_polls), TOTAL_WAKES + 1);
	afe_waker_drop(&target_waker);
	test_runtime_destroy(rt);
}
