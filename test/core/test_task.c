/* SPDX-License-Identifier: MIT */
/* Spawning, joining, detaching and cancelling tasks. */
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "helpers.h"
#include "huge_malloc_fails.h"
#include "src/core/runtime_internal.h"

Test(task, spawn_and_join_returns_the_result)
{
	struct afe_runtime *rt = test_runtime(2);
	struct yielder y = yielder_make(3, 42);
	cr_assert_eq(test_block_on(rt, &y), 42);
	test_runtime_destroy(rt);
}

/* Spawns a child from inside a task and joins it twice through the same
 * handle: the second join gets -EINVAL because the first took the handle. */
struct join_twice {
	struct afe_future base;
	struct afe_join_handle h;
	struct afe_join first, second;
	int spawn_err, second_init_err;
};

static int join_twice_poll(struct afe_future *f, struct afe_context *cx)
{
	struct join_twice *self = afe_container_of(f, struct join_twice, base);
	AFE_ASYNC_BEGIN(f, cx);
	struct yielder y = yielder_make(2, 7);
	self->spawn_err = afe_spawn(NULL, &y, &self->h);
	afe_join_init(&self->first, &self->h);
	AFE_AWAIT(&self->first.base);
	self->second_init_err = afe_join_init(&self->second, &self->h);
	AFE_AWAIT(&self->second.base);
	AFE_RETURN(self->first.base.result);
	AFE_ASYNC_END;
}

/* Keeps its own results where the test can see them. */
static struct join_twice *observed;
static int observe_poll(struct afe_future *f, struct afe_context *cx)
{
	int r = join_twice_poll(f, cx);
	if (r == AFE_READY)
		*observed = *afe_container_of(f, struct join_twice, base);
	return r;
}

Test(task, spawn_inside_a_task_and_join_twice)
{
	struct afe_runtime *rt = test_runtime(1);
	struct join_twice seen = {0}, jt = {0};
	observed = &seen;
	afe_future_init(&jt.base, observe_poll);
	cr_assert_eq(test_block_on(rt, &jt), 7);
	cr_assert_eq(seen.spawn_err, 0);
	cr_assert_eq(seen.second_init_err, -EINVAL);
	cr_assert_eq(seen.second.base.result, -EINVAL);
	test_runtime_destroy(rt);
}

Test(task, bad_spawn_arguments_are_refused)
{
	struct afe_runtime *rt = test_runtime(1);
	struct yielder y = yielder_make(0, 1);
	struct afe_join_handle h = {.task = (void *)1};
	/* No runtime given and none current: this thread is no worker. */
	cr_assert_eq(afe_spawn(NULL, &y, &h), -EINVAL);
	cr_assert_null(h.task, "a failed spawn leaves the handle empty");
	cr_assert_eq(afe_spawn_raw(rt, NULL, sizeof(y), &y.base, &h), -EINVAL);
	cr_assert_eq(afe_spawn_raw(rt, &y, sizeof(y), NULL, &h), -EINVAL);
	struct yielder other = yielder_make(0, 1);
	cr_assert_eq(afe_spawn_raw(rt, &y, sizeof(y), &other.base, &h), -EINVAL,
		     "base outside the object");
	cr_assert_eq(afe_spawn_raw(rt, &y, 4, &y.base, &h), -EINVAL, "size too small");
	struct yielder no_poll = {0};
	cr_assert_eq(afe_spawn(rt, &no_poll, &h), -EINVAL, "a future without poll");
	cr_assert_eq(afe_spawn_child_raw(rt, &y, sizeof(y), &y.base, NULL), -EINVAL);
	struct afe_join j;
	cr_assert_eq(afe_join_init(&j, NULL), -EINVAL);
	struct afe_cancel c;
	cr_assert_eq(afe_cancel_init(&c, &h), -EINVAL);
	afe_join_handle_drop(&h); /* empty: no-op */
	afe_join_handle_drop(NULL);
	cr_assert_not(afe_join_handle_is_finished(&h));
	test_runtime_destroy(rt);
}


Test(task, allocation_failure_is_reported)
{
	struct afe_runtime *rt = test_runtime(1);
	struct yielder y = yielder_make(0, 1);
	struct afe_join_handle h;
	/* A size no allocator can satisfy; spawn must fail before copying. */
	cr_assert_eq(afe_spawn_raw(rt, &y, (size_t)1 << 62, &y.base, &h), -ENOMEM);
	cr_assert_eq(afe_spawn_raw(rt, &y, SIZE_MAX, &y.base, &h), -ENOMEM);
	test_runtime_destroy(rt);
}

/* A detached task runs to completion: it bumps a counter after yielding. */
static atomic_int detached_done;
struct bump {
	struct afe_future base;
	int i;
};
static int bump_poll(struct afe_future *f, struct afe_context *cx)
{
	struct bump *b = afe_container_of(f, struct bump, base);
	AFE_ASYNC_BEGIN(f, cx);
	for (b->i = 0; b->i < 100; b->i++)
		AFE_YIELD();
	atomic_fetch_add(&detached_done, 1);
	AFE_ASYNC_END;
}

Test(task, dropping_a_handle_detaches_and_the_task_finishes)
{
	struct afe_runtime *rt = test_runtime(2);
	atomic_store(&detached_done, 0);
	for (int i = 0; i < 100; i++) {
		struct bump b = {0};
		afe_future_init(&b.base, bump_poll);
		struct afe_join_handle h;
		cr_assert_eq(afe_spawn(rt, &b, &h), 0);
		afe_join_handle_drop(&h); /* while it runs */
		cr_assert_null(h.task);
	}
	struct bump b = {0};
	afe_future_init(&b.base, bump_poll);
	cr_assert_eq(afe_spawn(rt, &b, NULL), 0, "spawn without a handle detaches");
	cr_assert_eq(afe_runtime_wait_idle(rt, -1), 0);
	cr_assert_eq(atomic_load(&detached_done), 101);
	test_runtime_destroy(rt);
}

/* Cancels a pending task and a finished one through cancel futures. */
struct canceller {
	struct afe_future base;
	struct afe_join_handle pending, finished, child;
	struct afe_cancel c1, c2;
	struct afe_yield_now y;
	intptr_t r1, r2;
};

static struct canceller *cancel_seen;

static int canceller_poll(struct afe_future *f, struct afe_context *cx)
{
	struct canceller *self = afe_container_of(f, struct canceller, base);
	AFE_ASYNC_BEGIN(f, cx);
	struct afe_pending p;
	afe_pending_init(&p);
	afe_spawn(NULL, &p, &self->pending);
	struct afe_ready r;
	afe_ready_init(&r, 99);
	afe_spawn(NULL, &r, &self->finished);
	while (!afe_join_handle_is_finished(&self->finished)) {
		afe_yield_now_init(&self->y);
		AFE_AWAIT(&self->y.base);
	}
	afe_cancel_init(&self->c1, &self->pending);
	AFE_AWAIT_INTO(self->r1, &self->c1.base);
	afe_cancel_init(&self->c2, &self->finished);
	AFE_AWAIT_INTO(self->r2, &self->c2.base);
	*cancel_seen = *self;
	AFE_ASYNC_END;
}

Test(task, cancel_yields_output_if_finished_else_ecanceled)
{
	struct afe_runtime *rt = test_runtime(2);
	struct canceller seen = {0}, c = {0};
	cancel_seen = &seen;
	afe_future_init(&c.base, canceller_poll);
	test_block_on(rt, &c);
	cr_assert_eq(seen.r1, -ECANCELED);
	cr_assert_eq(seen.r2, 99);
	test_runtime_destroy(rt);
}

/* A task that awaits a never-ready future and counts its cleanups. */
static atomic_int cleanups;
struct guarded {
	struct afe_future base;
	struct afe_pending forever;
};
static int guarded_poll(struct afe_future *f, struct afe_context *cx)
{
	struct guarded *g = afe_container_of(f, struct guarded, base);
	AFE_ASYNC_BEGIN(f, cx);
	afe_pending_init(&g->forever);
	AFE_AWAIT(&g->forever.base);
	AFE_CLEANUP;
	atomic_fetch_add(&cleanups, 1);
	AFE_ASYNC_END;
}

Test(task, dropping_a_child_handle_cancels_and_runs_cleanup)
{
	struct afe_runtime *rt = test_runtime(2);
	atomic_store(&cleanups, 0);
	for (int i = 0; i < 50; i++) {
		struct guarded g;
		afe_future_init(&g.base, guarded_poll);
		struct afe_join_handle h;
		cr_assert_eq(afe_spawn_child(rt, &g, &h), 0);
		afe_join_handle_drop(&h);
	}
	cr_assert_eq(afe_runtime_wait_idle(rt, -1), 0);
	cr_assert_eq(atomic_load(&cleanups), 50);
	test_runtime_destroy(rt);
}

Test(task, cancel_from_a_plain_thread_with_block_on)
{
	struct afe_runtime *rt = test_runtime(2);
	atomic_store(&cleanups, 0);
	struct guarded g;
	afe_future_init(&g.base, guarded_poll);
	struct afe_join_handle h;
	cr_assert_eq(afe_spawn(rt, &g, &h), 0);
	struct afe_cancel c;
	cr_assert_eq(afe_cancel_init(&c, &h), 0);
	cr_assert_null(h.task, "the cancel future took the handle");
	cr_assert_eq(test_block_on(rt, &c), -ECANCELED);
	cr_assert_eq(atomic_load(&cleanups), 1);
	test_runtime_destroy(rt);
}

Test(task, is_finished_follows_the_task)
{
	struct afe_runtime *rt = test_runtime(1);
	struct afe_ready r;
	afe_ready_init(&r, 3);
	struct afe_join_handle h;
	cr_assert_eq(afe_spawn(rt, &r, &h), 0);
	cr_assert_eq(afe_runtime_wait_idle(rt, -1), 0);
	cr_assert(afe_join_handle_is_finished(&h));
	struct afe_join j;
	cr_assert_eq(afe_join_init(&j, &h), 0);
	cr_assert_eq(test_block_on(rt, &j), 3);
	test_runtime_destroy(rt);
}

/* Spawning once destroy has begun fails with -ESHUTDOWN. The task blocks
 * its worker until the test sees the shutdown flag, then spawns. */
static atomic_int spawn_after_shutdown = 1;
static struct afe_runtime *shutdown_rt;
struct late_spawner {
	struct afe_future base;
};
static int late_spawner_poll(struct afe_future *f, struct afe_context *cx)
{
	(void)cx;
	while (!atomic_load(&shutdown_rt->pool.shutdown))
		usleep(100);
	struct afe_ready r;
	afe_ready_init(&r, 0);
	atomic_store(&spawn_after_shutdown, afe_spawn(NULL, &r, NULL));
	f->result = 0;
	return AFE_READY;
}

static void *destroy_thread(void *rt)
{
	afe_runtime_destroy(rt);
	return NULL;
}

Test(task, spawn_after_shutdown_began_is_eshutdown)
{
	shutdown_rt = test_runtime(1);
	struct late_spawner ls;
	afe_future_init(&ls.base, late_spawner_poll);
	cr_assert_eq(afe_spawn(shutdown_rt, &ls, NULL), 0);
	pthread_t t;
	pthread_create(&t, NULL, destroy_thread, shutdown_rt);
	pthread_join(t, NULL);
	cr_assert_eq(atomic_load(&spawn_after_shutdown), -ESHUTDOWN);
}

/* Cancelling a task that awaits its child's join cancels the child and
 * waits for it to wind down before the parent's cleanup runs. */
static atomic_int child_wound_down, child_spawned;

struct parent_of_child {
	struct afe_future base;
	struct afe_join_handle child;
	struct afe_join join;
};

static int parent_of_child_poll(struct afe_future *f, struct afe_context *cx)
{
	struct parent_of_child *self = afe_container_of(f, struct parent_of_child, base);
	AFE_ASYNC_BEGIN(f, cx);
	struct slow_to_stop c = slow_to_stop_make(&child_wound_down);
	if (afe_spawn_child(NULL, &c, &self->child) < 0)
		AFE_RETURN(-1);
	atomic_store(&child_spawned, 1);
	afe_join_init(&self->join, &self->child);
	AFE_AWAIT(&self->join.base);
	AFE_CLEANUP;
	if (!atomic_load(&child_wound_down))
		AFE_RETURN(-2); /* the child outlived the join */
	AFE_ASYNC_END;
}

Test(task, cancelled_join_of_a_child_waits_for_the_child)
{
	struct afe_runtime *rt = test_runtime(2);
	struct parent_of_child p;
	afe_future_init(&p.base, parent_of_child_poll);
	intptr_t cancelled = test_spawn_then_cancel(rt, &p, &child_spawned);
	cr_assert_eq(cancelled, -ECANCELED, "cancel gave %ld", (long)cancelled);
	cr_assert_eq(atomic_load(&child_wound_down), 1);
	test_runtime_destroy(rt);
}

/* Abort asks for the cancel and returns at once; the handle still joins. */
Test(task, abort_requests_a_cancel_and_the_handle_still_joins)
{
	struct afe_runtime *rt = test_runtime(2);
	atomic_store(&cleanups, 0);
	struct guarded g;
	afe_future_init(&g.base, guarded_poll);
	struct afe_join_handle h;
	cr_assert_eq(afe_spawn(rt, &g, &h), 0);
	cr_assert_eq(afe_join_handle_abort(&h), 0);
	cr_assert_not_null(h.task, "abort keeps the handle");
	cr_assert_eq(afe_join_handle_abort(&h), 0, "asking twice is harmless");
	struct afe_join j;
	cr_assert_eq(afe_join_init(&j, &h), 0);
	cr_assert_eq(test_block_on(rt, &j), -ECANCELED);
	cr_assert_eq(atomic_load(&cleanups), 1, "the cleanup ran once");
	test_runtime_destroy(rt);
}

Test(task, abort_of_a_finished_task_keeps_its_output)
{
	struct afe_runtime *rt = test_runtime(1);
	struct afe_ready r;
	afe_ready_init(&r, 5);
	struct afe_join_handle h;
	cr_assert_eq(afe_spawn(rt, &r, &h), 0);
	cr_assert_eq(afe_runtime_wait_idle(rt, -1), 0);
	cr_assert_eq(afe_join_handle_abort(&h), 0);
	struct afe_join j;
	cr_assert_eq(afe_join_init(&j, &h), 0);
	cr_assert_eq(test_block_on(rt, &j), 5);
	struct afe_join_handle empty = {0};
	cr_assert_eq(afe_join_handle_abort(&empty), -EINVAL);
	cr_assert_eq(afe_join_handle_abort(NULL), -EINVAL);
	test_runtime_destroy(rt);
}

/* An aborted task whose handle is then dropped still winds down: abort
 * works on a handle about to be detached too. */
Test(task, abort_then_drop_still_cancels)
{
	struct afe_runtime *rt = test_runtime(2);
	atomic_store(&cleanups, 0);
	for (int i = 0; i < 50; i++) {
		struct guarded g;
		afe_future_init(&g.base, guarded_poll);
		struct afe_join_handle h;
		cr_assert_eq(afe_spawn(rt, &g, &h), 0);
		cr_assert_eq(afe_join_handle_abort(&h), 0);
		afe_join_handle_drop(&h);
	}
	cr_assert_eq(afe_runtime_wait_idle(rt, 10000), 0);
	cr_assert_eq(atomic_load(&cleanups), 50);
	test_runtime_destroy(rt);
}

/* ---- names and task-local storage ------------------------------------ */

/* Reads its own name, sets and reads its local slot across a yield. */
struct named {
	struct afe_future base;
	char seen_name[AFE_TASK_NAME_MAX];
	int local_value, set_err;
	void *local_after_yield;
	bool had_name;
};
static struct named *named_seen;

static int named_poll(struct afe_future *f, struct afe_context *cx)
{
	struct named *self = afe_container_of(f, struct named, base);
	AFE_ASYNC_BEGIN(f, cx);
	const char *name = afe_task_current_name(cx);
	self->had_name = name != NULL;
	if (name)
		strcpy(self->seen_name, name);
	self->set_err = afe_task_local_set(cx, &self->local_value);
	AFE_YIELD();
	self->local_after_yield = afe_task_local_get(cx);
	if (named_seen)
		*named_seen = *self;
	AFE_RETURN(self->local_after_yield == &self->local_value ? 1 : 0);
	AFE_ASYNC_END;
}

Test(task, a_name_given_at_spawn_is_read_by_handle_and_by_the_task)
{
	struct afe_runtime *rt = test_runtime(2);
	struct named seen = {0}, n = {0};
	afe_future_init(&n.base, named_poll);
	named_seen = &seen;
	char name[16];
	strcpy(name, "conn-7");
	struct afe_spawn_options opts = {.name = name};
	struct afe_join_handle h;
	cr_assert_eq(afe_spawn_with(rt, &n, &h, &opts), 0);
	memset(name, 'x', sizeof(name) - 1); /* the name was copied */
	cr_assert(afe_task_name(&h) && strcmp(afe_task_name(&h), "conn-7") == 0);
	struct afe_join j;
	cr_assert_eq(afe_join_init(&j, &h), 0);
	cr_assert_eq(test_block_on(rt, &j), 1, "the local slot kept its value across a yield");
	cr_assert(seen.had_name && strcmp(seen.seen_name, "conn-7") == 0);
	cr_assert_eq(seen.set_err, 0);
	test_runtime_destroy(rt);
}

Test(task, a_long_name_is_cut_and_options_can_make_a_child)
{
	struct afe_runtime *rt = test_runtime(2);
	atomic_store(&cleanups, 0);
	char longname[100];
	memset(longname, 'n', sizeof(longname) - 1);
	longname[sizeof(longname) - 1] = 0;
	struct guarded g;
	afe_future_init(&g.base, guarded_poll);
	struct afe_spawn_options opts = {.name = longname, .child = true};
	struct afe_join_handle h;
	cr_assert_eq(afe_spawn_with(rt, &g, &h, &opts), 0);
	cr_assert_eq(strlen(afe_task_name(&h)), AFE_TASK_NAME_MAX - 1);
	cr_assert(h.cancel_on_drop);
	afe_join_handle_drop(&h); /* a child: dropping cancels it */
	cr_assert_eq(afe_runtime_wait_idle(rt, 10000), 0);
	cr_assert_eq(atomic_load(&cleanups), 1);
	cr_assert_eq(afe_spawn_with(rt, &g, NULL, &opts), -EINVAL, "a child needs a handle");
	cr_assert_eq(afe_spawn_with(rt, &g, &h, NULL), -EINVAL);
	cr_assert_null(h.task);
	test_runtime_destroy(rt);
}

/* A plain task, and a task spawned with options but no name: no name;
 * only the latter has a local slot. Outside a task: nothing. */
Test(task, plain_tasks_have_no_name_and_no_local_slot)
{
	struct afe_runtime *rt = test_runtime(2);
	struct named seen = {0}, n = {0};
	afe_future_init(&n.base, named_poll);
	named_seen = &seen;
	cr_assert_eq(test_block_on(rt, &n), 0);
	cr_assert_not(seen.had_name);
	cr_assert_eq(seen.set_err, -EINVAL);
	cr_assert_null(seen.local_after_yield);

	struct afe_spawn_options unnamed = {0};
	struct afe_join_handle h;
	struct named m = {0};
	afe_future_init(&m.base, named_poll);
	cr_assert_eq(afe_spawn_with(rt, &m, &h, &unnamed), 0);
	cr_assert_null(afe_task_name(&h));
	struct afe_join j;
	cr_assert_eq(afe_join_init(&j, &h), 0);
	cr_assert_eq(test_block_on(rt, &j), 1);
	cr_assert_not(seen.had_name);

	struct afe_join_handle empty = {0};
	cr_assert_null(afe_task_name(&empty));
	cr_assert_null(afe_task_name(NULL));
	struct counting_waker cw;
	counting_waker_init(&cw);
	struct afe_context cx = counting_context(&cw, false);
	cr_assert_null(afe_task_current_name(&cx));
	cr_assert_null(afe_task_current_name(NULL));
	cr_assert_eq(afe_task_local_set(&cx, &cw), -EINVAL);
	cr_assert_null(afe_task_local_get(&cx));
	test_runtime_destroy(rt);
}

/* A poll that ends with a plain `return 0;` (pending) and keeps no waker,
 * in a task spawned without a handle: nothing can ever poll it again. */
static int forgets_its_waker_poll(struct afe_future *f, struct afe_context *cx)
{
	(void)f;
	(void)cx;
	return 0;
}

/* In a child (so an abort is survivable): spawns that task with a name,
 * gives it time to be polled, and exits 0. */
static void spawn_a_lost_task(void)
{
	struct afe_runtime *rt = test_runtime(1);
	struct {
		struct afe_future base;
	} lost;
	afe_future_init(&lost.base, forgets_its_waker_poll);
	struct afe_spawn_options opts = {.name = "forgetful"};
	if (afe_spawn_with(rt, &lost, NULL, &opts) != 0)
		_exit(3);
	struct timespec ms50 = {.tv_sec = 0, .tv_nsec = 50 * 1000 * 1000};
	nanosleep(&ms50, NULL);
	afe_runtime_destroy(rt);
	_exit(0);
}

Test(task, a_task_lost_with_no_waker_and_no_handle_is_reported_by_name)
{
	char said[1024];
	int status = test_child_stderr(spawn_a_lost_task, said, sizeof(said));
	cr_assert(strstr(said, "task \"forgetful\"") && strstr(said, "no waker kept"),
		  "stderr was: %s", said);
#ifndef NDEBUG
	cr_assert(WIFSIGNALED(status) && WTERMSIG(status) == SIGABRT, "status %d", status);
#else
	cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0, "status %d", status);
#endif
}

/* A copy of a handle used after the original was joined (the task freed
 * meanwhile) or while the original's join holds the task: debug builds
 * refuse it with -EINVAL and say so, instead of touching freed memory or
 * releasing the task twice. Run in a child: the old code could crash. */
static void join_a_copy_after_the_original(void)
{
	struct afe_runtime *rt = test_runtime(1);
	struct afe_ready r;
	afe_ready_init(&r, 3);
	struct afe_join_handle h, copy;
	if (afe_spawn(rt, &r, &h) != 0)
		_exit(3);
	copy = h;
	struct afe_join j, late;
	afe_join_init(&j, &h);
	intptr_t out = 0;
	if (afe_block_on(rt, &j, &out) != 0 || out != 3)
		_exit(4);
	if (afe_join_init(&late, &copy) != -EINVAL)
		_exit(5);
	if (afe_block_on(rt, &late, &out) != 0 || out != -EINVAL)
		_exit(6);
	afe_join_handle_drop(&copy); /* refused too: no second release */
	afe_runtime_destroy(rt);
	_exit(0);
}

static void join_a_copy_while_the_original_is_joined(void)
{
	struct afe_runtime *rt = test_runtime(1);
	struct afe_ready r;
	afe_ready_init(&r, 3);
	struct afe_join_handle h, copy;
	if (afe_spawn(rt, &r, &h) != 0)
		_exit(3);
	copy = h;
	struct afe_join j, second;
	afe_join_init(&j, &h);
	if (afe_join_init(&second, &copy) != -EINVAL)
		_exit(5);
	if (afe_join_handle_abort(&copy) != -EINVAL || afe_join_handle_is_finished(&copy))
		_exit(6);
	intptr_t out = 0;
	if (afe_block_on(rt, &j, &out) != 0 || out != 3)
		_exit(4);
	afe_runtime_destroy(rt);
	_exit(0);
}

static void expect_a_stale_copy_refused(void (*scenario)(void))
{
#ifdef NDEBUG
	(void)scenario;
	cr_skip_test("copies of handles are checked in debug builds only");
#else
	char said[1024];
	int status = test_child_stderr(scenario, said, sizeof(said));
	cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0, "status %#x, said: %s", status,
		  said);
	cr_assert_not_null(strstr(said, "afe_join_init"), "said: %s", said);
	cr_assert_not_null(strstr(said, "copy of a join handle"), "said: %s", said);
#endif
}

Test(task, a_copied_handle_joined_after_the_original_is_refused)
{
	expect_a_stale_copy_refused(join_a_copy_after_the_original);
}

Test(task, a_copied_handle_joined_while_the_original_is_joined_is_refused)
{
	expect_a_stale_copy_refused(join_a_copy_while_the_original_is_joined);
}
