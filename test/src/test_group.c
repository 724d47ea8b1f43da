/* SPDX-License-Identifier: MIT */
/* Task groups: first error, every result, misuse. */
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
		if (!self->opened && afe_future_is_done(&self->g.joins[2].base)) {
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
