/* SPDX-License-Identifier: MIT */
/* Task groups and scopes: first error, fail fast, next, spawning while
 * waiting, scopes ending by waiting or cancelling, misuse. */
#include "helpers.h"

struct group_run {
	struct afe_future base;
	int values[5];
	int count;
	struct afe_group g;
	int late_spawn;
	intptr_t results[5], result_before_wait;
};

static struct group_run *group_seen;

static int group_run_poll(struct afe_future *f, struct afe_context *cx)
{
	struct group_run *self = afe_container_of(f, struct group_run, base);
	AFE_ASYNC_BEGIN(f, cx);
	afe_group_init(&self->g, NULL);
	for (int i = 0; i < self->count; i++) {
		/* Later tasks finish sooner: errors come in reverse order. */
		struct yielder y = yielder_make((self->count - i) * 5, self->values[i]);
		if (afe_group_spawn(&self->g, &y) != i)
			AFE_RETURN(-1000);
	}
	self->result_before_wait = afe_group_result(&self->g, 0);
	AFE_AWAIT(afe_group_wait(&self->g));
	struct yielder y = yielder_make(0, 0);
	self->late_spawn = afe_group_spawn(&self->g, &y);
	for (int i = 0; i < self->count; i++)
		self->results[i] = afe_group_result(&self->g, (size_t)i);
	*group_seen = *self;
	AFE_RETURN(self->g.base.result);
	AFE_CLEANUP;
	afe_group_destroy(&self->g);
	AFE_ASYNC_END;
}

static intptr_t run_group(const int *values, int count, struct group_run *seen)
{
	struct afe_runtime *rt = test_runtime(2);
	struct group_run run = {.count = count};
	for (int i = 0; i < count; i++)
		run.values[i] = values[i];
	afe_future_init(&run.base, group_run_poll);
	group_seen = seen;
	intptr_t r = test_block_on(rt, &run);
	test_runtime_destroy(rt);
	return r;
}

Test(group, all_succeed_gives_zero_and_every_result)
{
	struct group_run seen;
	int values[] = {1, 2, 3, 4, 5};
	cr_assert_eq(run_group(values, 5, &seen), 0);
	for (int i = 0; i < 5; i++)
		cr_assert_eq(seen.results[i], values[i]);
	cr_assert_eq(seen.result_before_wait, -EBUSY);
	cr_assert_eq(seen.late_spawn, -EBUSY, "no spawns once the wait started");
	cr_assert_eq(afe_group_result(&seen.g, 9), -EINVAL);
	cr_assert_eq(afe_group_size(&seen.g), 5);
}

/* Task 0 fails with -EIO, but only after the group saw task 2 fail with
 * -ENOENT: the gate that releases task 0 opens once the group's wait has
 * observed task 2 finished. Task 2's error is the first. */
struct gated_failure {
	struct afe_future base;
	struct afe_oneshot *gate;
	struct afe_oneshot_recv recv;
};
static int gated_failure_poll(struct afe_future *f, struct afe_context *cx)
{
	struct gated_failure *self = afe_container_of(f, struct gated_failure, base);
	AFE_ASYNC_BEGIN(f, cx);
	afe_oneshot_recv_init(&self->recv, self->gate);
	AFE_AWAIT(&self->recv.base);
	AFE_RETURN(-EIO);
	AFE_ASYNC_END;
}

struct gated_group {
	struct afe_future base;
	struct afe_group g;
	struct afe_oneshot gate;
	bool opened;
	intptr_t *results; /* block_on runs a copy: results go out by pointer */
};
static int gated_group_poll(struct afe_future *f, struct afe_context *cx)
{
	struct gated_group *self = afe_container_of(f, struct gated_group, base);
	if (self->g.count == 0) {
		afe_group_init(&self->g, NULL);
		struct gated_failure first = {.gate = &self->gate};
		afe_future_init(&first.base, gated_failure_poll);
		struct yielder ok = yielder_make(0, 1), fails = yielder_make(0, -ENOENT);
		if (afe_group_spawn(&self->g, &first) != 0 || afe_group_spawn(&self->g, &ok) != 1 ||
		    afe_group_spawn(&self->g, &fails) != 2)
			return f->result = -1000, AFE_READY;
	}
	if (afe_future_poll(afe_group_wait(&self->g), cx) == AFE_PENDING) {
		if (!self->opened && afe_future_is_done(&self->g.slots[2].join.base)) {
			self->opened = true;
			afe_oneshot_send(&self->gate, 0);
		}
		return AFE_PENDING;
	}
	for (size_t i = 0; i < 3; i++)
		self->results[i] = afe_group_result(&self->g, i);
	f->result = self->g.base.result;
	afe_group_destroy(&self->g);
	return AFE_READY;
}

Test(group, first_error_is_the_earliest_to_finish)
{
	struct afe_runtime *rt = test_runtime(2);
	intptr_t results[3] = {0};
	struct gated_group run = {.results = results};
	afe_oneshot_init(&run.gate);
	afe_future_init(&run.base, gated_group_poll);
	cr_assert_eq(test_block_on(rt, &run), -ENOENT);
	cr_assert_eq(results[0], -EIO);
	cr_assert_eq(results[1], 1);
	cr_assert_eq(results[2], -ENOENT);
	test_runtime_destroy(rt);
}

Test(group, empty_group_is_ready_and_bad_calls_are_refused)
{
	struct group_run seen;
	cr_assert_eq(run_group(NULL, 0, &seen), 0);
	struct afe_ready r;
	afe_ready_init(&r, 0);
	cr_assert_eq(afe_group_spawn_raw(NULL, &r, sizeof(r), &r.base), -EINVAL);
	struct afe_group g;
	afe_group_init(&g, NULL);
	cr_assert_eq(afe_group_spawn(&g, &r), -EINVAL, "no runtime on this thread");
	afe_group_destroy(&g);
	afe_group_destroy(NULL);
	cr_assert_eq(afe_scope_spawn_raw(NULL, &r, sizeof(r), &r.base), -EINVAL);
	afe_scope_cancel(NULL);
}

/* A spawn the runtime refuses (a future without a poll function) returns
 * its error and adds no task: the group stays as it was. */
Test(group, a_refused_spawn_adds_no_task)
{
	struct afe_runtime *rt = test_runtime(1);
	struct afe_group g;
	afe_group_init(&g, rt);
	struct afe_ready ok;
	afe_ready_init(&ok, 3);
	cr_assert_eq(afe_group_spawn(&g, &ok), 0);
	struct afe_ready bad = {0};
	cr_assert_eq(afe_group_spawn(&g, &bad), -EINVAL);
	cr_assert_eq(afe_group_spawn_raw(&g, NULL, sizeof(ok), &ok.base), -EINVAL);
	cr_assert_eq(afe_group_size(&g), 1);
	cr_assert_eq(afe_group_result(&g, 1), -EINVAL, "no task 1");
	afe_group_destroy(&g); /* detaches task 0 */
	cr_assert_eq(afe_runtime_wait_idle(rt, 10000), 0);
	test_runtime_destroy(rt);
}

/* Spawns into a group every poll until the runtime refuses: a spawn once
 * its destroy began is -ESHUTDOWN. */
struct spawn_until_refused {
	struct afe_future base;
	struct afe_group g;
	atomic_int *started;
	size_t spawned;
};
static atomic_intptr_t refused_with;

static int spawn_until_refused_poll(struct afe_future *f, struct afe_context *cx)
{
	struct spawn_until_refused *self = afe_container_of(f, struct spawn_until_refused, base);
	struct afe_ready r;
	afe_ready_init(&r, 0);
	int err = afe_group_spawn(&self->g, &r);
	if (err >= 0) {
		self->spawned++;
		atomic_store(self->started, 1);
		afe_waker_wake_by_ref(cx->waker);
		return AFE_PENDING;
	}
	cr_assert_eq(afe_group_size(&self->g), self->spawned, "the refused spawn added no task");
	atomic_store(&refused_with, err);
	afe_group_destroy(&self->g);
	f->result = 0;
	return AFE_READY;
}

Test(group, a_spawn_once_the_runtime_is_being_destroyed_is_eshutdown, .timeout = 30)
{
	struct afe_runtime *rt = test_runtime(1);
	atomic_int started = 0;
	atomic_store(&refused_with, 0);
	struct spawn_until_refused s = {.started = &started};
	afe_future_init(&s.base, spawn_until_refused_poll);
	afe_group_init(&s.g, NULL);
	cr_assert_eq(afe_spawn(rt, &s, NULL), 0);
	while (!atomic_load(&started))
		sched_yield();
	cr_assert_eq(afe_runtime_destroy(rt), 0, "the task finished in the grace period");
	cr_assert_eq(atomic_load(&refused_with), -ESHUTDOWN);
}

static atomic_int wound_down, owner_started;

struct group_owner {
	struct afe_future base;
	struct afe_group g;
};

static int group_owner_poll(struct afe_future *f, struct afe_context *cx)
{
	struct group_owner *self = afe_container_of(f, struct group_owner, base);
	AFE_ASYNC_BEGIN(f, cx);
	afe_group_init(&self->g, NULL);
	for (int i = 0; i < 3; i++) {
		struct slow_to_stop s = slow_to_stop_make(&wound_down);
		afe_group_spawn(&self->g, &s);
	}
	atomic_store(&owner_started, 1);
	AFE_AWAIT(afe_group_wait(&self->g));
	AFE_CLEANUP;
	/* Cancelled: the wait returned only after every task wound down. */
	if (atomic_load(&wound_down) != 3)
		AFE_RETURN(-1);
	afe_group_destroy(&self->g);
	AFE_ASYNC_END;
}

Test(group, cancelled_wait_waits_for_the_tasks_to_wind_down)
{
	struct afe_runtime *rt = test_runtime(2);
	struct group_owner owner;
	afe_future_init(&owner.base, group_owner_poll);
	intptr_t cancelled = test_spawn_then_cancel(rt, &owner, &owner_started);
	cr_assert_eq(cancelled, -ECANCELED);
	cr_assert_eq(atomic_load(&wound_down), 3);
	test_runtime_destroy(rt);
}

/* ---- fail fast --------------------------------------------------------- */

/* A group of one task failing with -EIO after a few yields and `slow`
 * tasks that yield until cancelled, then take 100 yields to wind down. */
struct fail_fast_run {
	struct afe_future base;
	struct afe_group g;
	int slow;
	atomic_int *wound_down;
	int wound_at_return;
	intptr_t results[4];
};
static struct fail_fast_run *fail_fast_seen;

static int fail_fast_poll(struct afe_future *f, struct afe_context *cx)
{
	struct fail_fast_run *self = afe_container_of(f, struct fail_fast_run, base);
	AFE_ASYNC_BEGIN(f, cx);
	afe_group_init_fail_fast(&self->g, NULL);
	for (int i = 0; i < self->slow; i++) {
		struct slow_to_stop s = slow_to_stop_make(self->wound_down);
		afe_group_spawn(&self->g, &s);
	}
	struct yielder fails = yielder_make(3, -EIO);
	afe_group_spawn(&self->g, &fails);
	AFE_AWAIT(afe_group_wait(&self->g));
	self->wound_at_return = atomic_load(self->wound_down);
	for (int i = 0; i <= self->slow; i++)
		self->results[i] = afe_group_result(&self->g, (size_t)i);
	struct yielder late = yielder_make(0, 0);
	self->results[3] = afe_group_spawn(&self->g, &late);
	*fail_fast_seen = *self;
	AFE_RETURN(self->g.base.result);
	AFE_CLEANUP;
	afe_group_destroy(&self->g);
	AFE_ASYNC_END;
}

/* Fail fast through next: once next reported a failure the other tasks
 * are cancelled and a spawn is refused (-ECANCELED), before the wait. */
struct fail_fast_next {
	struct afe_future base;
	struct afe_group g;
	struct afe_group_next next;
	atomic_int *wound_down;
	intptr_t reported, late_spawn, size_after, first;
};
static struct fail_fast_next *fail_fast_next_seen;

static int fail_fast_next_poll(struct afe_future *f, struct afe_context *cx)
{
	struct fail_fast_next *self = afe_container_of(f, struct fail_fast_next, base);
	AFE_ASYNC_BEGIN(f, cx);
	afe_group_init_fail_fast(&self->g, NULL);
	struct slow_to_stop s = slow_to_stop_make(self->wound_down);
	afe_group_spawn(&self->g, &s);
	struct yielder fails = yielder_make(2, -EIO);
	afe_group_spawn(&self->g, &fails);
	afe_group_next_init(&self->next, &self->g);
	AFE_AWAIT(&self->next.base);
	self->reported = self->next.base.result;
	struct yielder late = yielder_make(0, 0);
	self->late_spawn = afe_group_spawn(&self->g, &late);
	self->size_after = (intptr_t)afe_group_size(&self->g);
	AFE_AWAIT(afe_group_wait(&self->g));
	self->first = afe_group_result(&self->g, 0);
	*fail_fast_next_seen = *self;
	AFE_RETURN(self->g.base.result);
	AFE_CLEANUP;
	afe_group_destroy(&self->g);
	AFE_ASYNC_END;
}

Test(group, fail_fast_refuses_spawns_once_next_reported_a_failure, .timeout = 30)
{
	struct afe_runtime *rt = test_runtime(2);
	atomic_int wound = 0;
	struct fail_fast_next seen, run = {.wound_down = &wound};
	fail_fast_next_seen = &seen;
	afe_future_init(&run.base, fail_fast_next_poll);
	cr_assert_eq(test_block_on(rt, &run), -EIO);
	cr_assert_eq(seen.reported, 1, "next reported the failed task");
	cr_assert_eq(seen.late_spawn, -ECANCELED);
	cr_assert_eq(seen.size_after, 2, "the refused spawn added no task");
	cr_assert_eq(seen.first, -ECANCELED, "the other task was cancelled");
	cr_assert_eq(atomic_load(&wound), 1);
	test_runtime_destroy(rt);
}

Test(group, fail_fast_returns_the_first_error_after_the_others_wound_down, .timeout = 30)
{
	struct afe_runtime *rt = test_runtime(2);
	atomic_int wound = 0;
	struct fail_fast_run seen, run = {.slow = 3, .wound_down = &wound};
	fail_fast_seen = &seen;
	afe_future_init(&run.base, fail_fast_poll);
	cr_assert_eq(test_block_on(rt, &run), -EIO);
	cr_assert_eq(seen.wound_at_return, 3, "the wait awaited the cancelled tasks");
	for (int i = 0; i < 3; i++)
		cr_assert_eq(seen.results[i], -ECANCELED);
	cr_assert_eq(seen.results[3], -EBUSY, "no spawns once the wait completed");
	test_runtime_destroy(rt);
}

/* Every task fails: the group reports one of their errors, every task
 * finished, and fail fast refuses a spawn once it has cancelled. */
struct all_fail_run {
	struct afe_future base;
	struct afe_group g;
	bool fail_fast;
	intptr_t results[8];
	int late_spawn;
};
static struct all_fail_run *all_fail_seen;

static int all_fail_poll(struct afe_future *f, struct afe_context *cx)
{
	struct all_fail_run *self = afe_container_of(f, struct all_fail_run, base);
	AFE_ASYNC_BEGIN(f, cx);
	if (self->fail_fast)
		afe_group_init_fail_fast(&self->g, NULL);
	else
		afe_group_init(&self->g, NULL);
	for (int i = 0; i < 8; i++) {
		struct yielder y = yielder_make(i % 3, -(intptr_t)(100 + i));
		afe_group_spawn(&self->g, &y);
	}
	AFE_AWAIT(afe_group_wait(&self->g));
	for (size_t i = 0; i < 8; i++)
		self->results[i] = afe_group_result(&self->g, i);
	*all_fail_seen = *self;
	AFE_RETURN(self->g.base.result);
	AFE_CLEANUP;
	afe_group_destroy(&self->g);
	AFE_ASYNC_END;
}

static void check_all_fail(bool fail_fast)
{
	struct afe_runtime *rt = test_runtime(2);
	struct all_fail_run seen, run = {.fail_fast = fail_fast};
	all_fail_seen = &seen;
	afe_future_init(&run.base, all_fail_poll);
	intptr_t r = test_block_on(rt, &run);
	cr_assert(r <= -100 && r >= -107, "an error of a task: %ld", (long)r);
	bool found = false;
	for (int i = 0; i < 8; i++) {
		cr_assert(seen.results[i] == -(100 + i) || seen.results[i] == -ECANCELED,
			  "task %d: %ld", i, (long)seen.results[i]);
		found |= seen.results[i] == r;
	}
	cr_assert(found, "the reported error is a task's result");
	test_runtime_destroy(rt);
}

Test(group, every_task_fails_plain)
{
	check_all_fail(false);
}

Test(group, every_task_fails_fail_fast)
{
	check_all_fail(true);
}

/* ---- next, and spawning while waiting ---------------------------------- */

/* Reports tasks as they finish; after the first report spawns one more,
 * which must be reported too; ends at -ENOENT. */
struct next_run {
	struct afe_future base;
	struct afe_group g;
	struct afe_group_next next;
	int reported[8], count, spawned_late;
	intptr_t results[8], end;
};
static struct next_run *next_seen;

static int next_run_poll(struct afe_future *f, struct afe_context *cx)
{
	struct next_run *self = afe_container_of(f, struct next_run, base);
	AFE_ASYNC_BEGIN(f, cx);
	afe_group_init(&self->g, NULL);
	for (int i = 0; i < 4; i++) {
		struct yielder y = yielder_make((4 - i) * 3, i == 2 ? -EIO : 10 + i);
		afe_group_spawn(&self->g, &y);
	}
	for (;;) {
		afe_group_next_init(&self->next, &self->g);
		AFE_AWAIT(&self->next.base);
		if (self->next.base.result < 0)
			break;
		self->reported[self->count] = (int)self->next.base.result;
		self->results[self->count++] = afe_group_result(&self->g, (size_t)self->next.base.result);
		if (self->count == 1) {
			struct yielder y = yielder_make(2, 14);
			self->spawned_late = afe_group_spawn(&self->g, &y);
		}
	}
	self->end = self->next.base.result;
	*next_seen = *self;
	AFE_CLEANUP;
	afe_group_destroy(&self->g);
	AFE_ASYNC_END;
}

Test(group, next_reports_each_task_once_as_it_finishes)
{
	struct afe_runtime *rt = test_runtime(2);
	struct next_run seen = {0}, run = {0};
	next_seen = &seen;
	afe_future_init(&run.base, next_run_poll);
	test_block_on(rt, &run);
	cr_assert_eq(seen.end, -ENOENT);
	cr_assert_eq(seen.count, 5);
	cr_assert_eq(seen.spawned_late, 4, "spawned between nexts");
	int times[5] = {0};
	for (int k = 0; k < 5; k++) {
		int i = seen.reported[k];
		cr_assert(i >= 0 && i < 5);
		times[i]++;
		cr_assert_eq(seen.results[k], i == 2 ? -EIO : 10 + i);
	}
	for (int i = 0; i < 5; i++)
		cr_assert_eq(times[i], 1, "task %d reported %d times", i, times[i]);
	test_runtime_destroy(rt);
}

Test(group, next_on_an_empty_group_and_cancelled_next)
{
	struct afe_group g;
	afe_group_init(&g, NULL);
	struct afe_group_next n;
	struct counting_waker cw;
	counting_waker_init(&cw);
	struct afe_context cx = counting_context(&cw, false);
	afe_group_next_init(&n, &g);
	cr_assert_eq(afe_future_poll(&n.base, &cx), AFE_READY);
	cr_assert_eq(n.base.result, -ENOENT);
	cx.cancel = true;
	afe_group_next_init(&n, &g);
	cr_assert_eq(afe_future_poll(&n.base, &cx), AFE_READY);
	cr_assert_eq(n.base.result, -ECANCELED);
	afe_group_destroy(&g);
}

/* A child that yields until *open, then returns 1. */
struct gated {
	struct afe_future base;
	atomic_bool *open;
};
static int gated_poll(struct afe_future *f, struct afe_context *cx)
{
	struct gated *self = afe_container_of(f, struct gated, base);
	if (!atomic_load(self->open)) {
		afe_context_yield(cx);
		return AFE_PENDING;
	}
	f->result = 1;
	return AFE_READY;
}

/* The wait is pending when a second task, which fails, is spawned: the
 * wait awaits it too and reports its error. The first child waits for the
 * second's spawn: finished before the wait's first poll (a preempted
 * worker), it left no pending wait to join. */
struct late_spawn_run {
	struct afe_future base;
	struct afe_group g;
	atomic_bool *open;
	int second;
};
static int late_spawn_poll(struct afe_future *f, struct afe_context *cx)
{
	struct late_spawn_run *self = afe_container_of(f, struct late_spawn_run, base);
	if (self->g.count == 0) {
		afe_group_init(&self->g, NULL);
		struct gated first = {.open = self->open};
		afe_future_init(&first.base, gated_poll);
		afe_group_spawn(&self->g, &first);
	}
	if (afe_future_poll(afe_group_wait(&self->g), cx) == AFE_PENDING) {
		if (self->g.count == 1) {
			struct yielder y = yielder_make(0, -EPIPE);
			self->second = afe_group_spawn(&self->g, &y);
			atomic_store(self->open, true);
		}
		return AFE_PENDING;
	}
	f->result = self->second == 1 ? self->g.base.result : -1000;
	afe_group_destroy(&self->g);
	return AFE_READY;
}

Test(group, spawn_while_the_wait_is_pending_joins_the_wait)
{
	struct afe_runtime *rt = test_runtime(2);
	atomic_bool open = false;
	struct late_spawn_run run = {.open = &open};
	afe_future_init(&run.base, late_spawn_poll);
	cr_assert_eq(test_block_on(rt, &run), -EPIPE);
	test_runtime_destroy(rt);
}

/* ---- scopes -------------------------------------------------------------- */

/* A child reading one byte from a pipe nobody writes to: it waits on I/O
 * until cancelled, then counts its cleanup. */
struct pipe_reader {
	struct afe_future base;
	struct afe_io io;
	int fd;
	char byte;
	atomic_int *cleaned;
};
static int pipe_reader_poll(struct afe_future *f, struct afe_context *cx)
{
	struct pipe_reader *self = afe_container_of(f, struct pipe_reader, base);
	AFE_ASYNC_BEGIN(f, cx);
	afe_io_read_init(&self->io, self->fd, &self->byte, 1, -1);
	AFE_AWAIT(&self->io.base);
	AFE_RETURN(self->io.base.result);
	AFE_CLEANUP;
	atomic_fetch_add(self->cleaned, 1);
	AFE_ASYNC_END;
}

/* Owns a scope of `readers` pipe readers and `quick` quick children, and
 * awaits its end, also from its cleanup section. */
struct scope_owner {
	struct afe_future base;
	struct afe_scope scope;
	enum afe_scope_mode mode;
	int readers, quick, fd;
	bool cancel_first;
	atomic_int *cleaned, *started;
	intptr_t end, cleanup_end, results[8];
	int late_spawn;
};
static struct scope_owner *scope_seen;

static int scope_owner_poll(struct afe_future *f, struct afe_context *cx)
{
	struct scope_owner *self = afe_container_of(f, struct scope_owner, base);
	AFE_ASYNC_BEGIN(f, cx);
	afe_scope_init(&self->scope, NULL, self->mode);
	for (int i = 0; i < self->readers; i++) {
		struct pipe_reader r = {.fd = self->fd, .cleaned = self->cleaned};
		afe_future_init(&r.base, pipe_reader_poll);
		afe_scope_spawn(&self->scope, &r);
	}
	for (int i = 0; i < self->quick; i++) {
		struct yielder y = yielder_make(i, i);
		afe_scope_spawn(&self->scope, &y);
	}
	if (self->cancel_first)
		afe_scope_cancel(&self->scope);
	atomic_store(self->started, 1);
	AFE_AWAIT_INTO(self->end, afe_scope_end(&self->scope));
	AFE_CLEANUP;
	AFE_AWAIT_INTO(self->cleanup_end, afe_scope_end(&self->scope));
	for (size_t i = 0; i < afe_group_size(&self->scope.group) && i < 8; i++)
		self->results[i] = afe_group_result(&self->scope.group, i);
	struct yielder late = yielder_make(0, 0);
	self->late_spawn = afe_scope_spawn(&self->scope, &late);
	if (scope_seen)
		*scope_seen = *self;
	afe_scope_destroy(&self->scope);
	AFE_ASYNC_END;
}

static struct scope_owner scope_owner_make(enum afe_scope_mode mode, int readers, int quick,
					   int fd, atomic_int *cleaned, atomic_int *started)
{
	struct scope_owner o = {.mode = mode, .readers = readers, .quick = quick, .fd = fd,
				.cleaned = cleaned, .started = started};
	afe_future_init(&o.base, scope_owner_poll);
	return o;
}

Test(scope, wait_mode_end_waits_for_every_child, .timeout = 30)
{
	struct afe_runtime *rt = test_runtime(2);
	atomic_int cleaned = 0, started = 0;
	struct scope_owner seen, o = scope_owner_make(AFE_SCOPE_WAIT, 0, 6, -1, &cleaned, &started);
	scope_seen = &seen;
	cr_assert_eq(test_block_on(rt, &o), 0);
	cr_assert_eq(seen.end, 0);
	cr_assert_eq(seen.late_spawn, -EBUSY, "no spawn once the end completed");
	for (size_t i = 0; i < 6; i++)
		cr_assert_eq(seen.results[i], (intptr_t)i);
	test_runtime_destroy(rt);
}

Test(scope, cancel_mode_end_cancels_children_waiting_on_io, .timeout = 30)
{
	struct afe_runtime *rt = test_runtime(2);
	int p[2];
	cr_assert_eq(pipe(p), 0);
	atomic_int cleaned = 0, started = 0;
	struct scope_owner seen,
		o = scope_owner_make(AFE_SCOPE_CANCEL, 3, 2, p[0], &cleaned, &started);
	scope_seen = &seen;
	uint64_t t0 = afe_now_ns();
	cr_assert_eq(test_block_on(rt, &o), 0, "cancelled children are no error");
	cr_assert_lt(afe_now_ns() - t0, 5000000000ull);
	cr_assert_eq(atomic_load(&cleaned), 3, "every reader wound down before the end");
	cr_assert_eq(seen.results[0], -ECANCELED);
	cr_assert(seen.results[4] == 1 || seen.results[4] == -ECANCELED);
	close(p[0]);
	close(p[1]);
	test_runtime_destroy(rt);
}

/* The owner of a waiting scope is cancelled while its children wait on
 * I/O: the end cancels them and returns once they wound down. */
Test(scope, owner_cancelled_while_children_wait_on_io, .timeout = 30)
{
	struct afe_runtime *rt = test_runtime(2);
	int p[2];
	cr_assert_eq(pipe(p), 0);
	atomic_int cleaned = 0, started = 0;
	struct scope_owner o = scope_owner_make(AFE_SCOPE_WAIT, 4, 1, p[0], &cleaned, &started);
	scope_seen = NULL;
	intptr_t r = test_spawn_then_cancel(rt, &o, &started);
	cr_assert_eq(r, -ECANCELED);
	cr_assert_eq(atomic_load(&cleaned), 4, "no child outlived the scope");
	cr_assert_eq(afe_runtime_wait_idle(rt, 0), 0);
	close(p[0]);
	close(p[1]);
	test_runtime_destroy(rt);
}

Test(scope, cancel_then_end_and_refused_spawn, .timeout = 30)
{
	struct afe_runtime *rt = test_runtime(2);
	int p[2];
	cr_assert_eq(pipe(p), 0);
	atomic_int cleaned = 0, started = 0;
	struct scope_owner seen,
		o = scope_owner_make(AFE_SCOPE_WAIT, 2, 0, p[0], &cleaned, &started);
	o.cancel_first = true;
	scope_seen = &seen;
	cr_assert_eq(test_block_on(rt, &o), 0);
	cr_assert_eq(atomic_load(&cleaned), 2);
	cr_assert_eq(seen.results[0], -ECANCELED);
	close(p[0]);
	close(p[1]);
	test_runtime_destroy(rt);
}

/* Destroying a scope before its end cancels what still runs and says how
 * many children that was. */
Test(scope, destroy_before_the_end_cancels_and_counts, .timeout = 30)
{
	struct afe_runtime *rt = test_runtime(2);
	int p[2];
	cr_assert_eq(pipe(p), 0);
	atomic_int cleaned = 0;
	struct afe_scope s;
	afe_scope_init(&s, rt, AFE_SCOPE_WAIT);
	for (int i = 0; i < 3; i++) {
		struct pipe_reader r = {.fd = p[0], .cleaned = &cleaned};
		afe_future_init(&r.base, pipe_reader_poll);
		cr_assert_eq(afe_scope_spawn(&s, &r), i);
	}
	afe_scope_cancel(&s);
	struct yielder y = yielder_make(0, 0);
	cr_assert_eq(afe_scope_spawn(&s, &y), -ECANCELED, "no spawn once cancelled");
	cr_assert_leq(afe_scope_destroy(&s), 3);
	afe_scope_init(&s, rt, AFE_SCOPE_WAIT);
	for (int i = 0; i < 3; i++) {
		struct pipe_reader r = {.fd = p[0], .cleaned = &cleaned};
		afe_future_init(&r.base, pipe_reader_poll);
		cr_assert_eq(afe_scope_spawn(&s, &r), i);
	}
	cr_assert_eq(afe_scope_destroy(&s), 3);
	cr_assert_eq(afe_scope_destroy(NULL), 0);
	cr_assert_eq(afe_runtime_wait_idle(rt, 10000), 0);
	cr_assert_eq(atomic_load(&cleaned), 6);
	close(p[0]);
	close(p[1]);
	test_runtime_destroy(rt);
}
