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

Test(group, first_error_is_the_earliest_to_finish)
{
	struct group_run seen;
	int values[] = {-EIO, 2, -ENOENT, 4, 5};
	/* Task 2 finishes before task 0 (fewer yields). */
	cr_assert_eq(run_group(values, 5, &seen), -ENOENT);
	cr_assert_eq(seen.results[0], -EIO);
	cr_assert_eq(seen.results[2], -ENOENT);
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
