/* SPDX-License-Identifier: MIT */
/* The long-poll detector (pool/long_polls.h): a poll that holds its
 * thread past the bound is reported while it runs and named when it
 * returns; short polls, and a runtime without the bound, say nothing. */
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "helpers.h"

/* Blocks its thread for 300 ms in its first poll (as a blocking call
 * would), then finishes. */
static int blocks_poll(struct afe_future *f, struct afe_context *cx)
{
	(void)cx;
	struct timespec ms300 = {.tv_sec = 0, .tv_nsec = 300 * 1000 * 1000};
	nanosleep(&ms300, NULL);
	f->result = 0;
	return AFE_READY;
}

/* Yields 2000 times: many short polls. */
struct yields {
	struct afe_future base;
	int i;
};

static int yields_poll(struct afe_future *f, struct afe_context *cx)
{
	AFE_ASYNC_BEGIN_SELF(struct yields, self, f, cx);
	for (self->i = 0; self->i < 2000; self->i++)
		AFE_YIELD();
	AFE_RETURN(0);
	AFE_ASYNC_END;
}

static unsigned bound_ms;

/* In a child: a runtime with bound_ms, a task named "sleepy" whose poll
 * blocks for 300 ms and one whose polls are short; exits 0. */
static void run_a_blocking_poll(void)
{
	struct afe_runtime_config config;
	afe_runtime_config_default(&config);
	config.workers = 2;
	config.long_poll_ms = bound_ms;
	struct afe_runtime *rt;
	if (afe_runtime_create(&rt, &config) != 0)
		_exit(3);
	struct {
		struct afe_future base;
	} sleepy;
	afe_future_init(&sleepy.base, blocks_poll);
	struct afe_spawn_options opts = {.name = "sleepy"};
	struct afe_join_handle h;
	if (afe_spawn_with(rt, &sleepy, &h, &opts) != 0)
		_exit(4);
	struct yields y = {0};
	afe_future_init(&y.base, yields_poll);
	intptr_t out;
	struct afe_join j;
	afe_join_init(&j, &h);
	if (afe_block_on(rt, &y, &out) != 0 || afe_block_on(rt, &j, &out) != 0)
		_exit(5);
	afe_runtime_destroy(rt);
	_exit(0);
}

Test(long_polls, a_poll_past_the_bound_is_reported_and_then_named)
{
	unsetenv("AFE_LONG_POLL_MS");
	bound_ms = 50;
	char said[2048];
	int status = test_child_stderr(run_a_blocking_poll, said, sizeof(said));
	cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0, "status %#x: %s", status, said);
	const char *while_running = strstr(said, "one poll has held worker");
	const char *named = strstr(said, "task \"sleepy\"");
	cr_assert_not_null(while_running, "said: %s", said);
	cr_assert_not_null(named, "said: %s", said);
	cr_assert(while_running < named, "reported while it ran, named after: %s", said);
	cr_assert_not_null(strstr(said, "held its thread for at least"), "said: %s", said);
	/* One report of each: the yielding task's polls are short. */
	cr_assert_null(strstr(named + 1, "task \""), "said: %s", said);
	cr_assert_null(strstr(while_running + 1, "one poll has held"), "said: %s", said);
}

Test(long_polls, without_a_bound_nothing_is_said)
{
	unsetenv("AFE_LONG_POLL_MS");
	bound_ms = 0;
	char said[2048];
	int status = test_child_stderr(run_a_blocking_poll, said, sizeof(said));
	cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0, "status %#x: %s", status, said);
	cr_assert_null(strstr(said, "poll"), "said: %s", said);
}

Test(long_polls, the_environment_sets_the_bound_and_a_bad_value_is_refused)
{
	struct afe_runtime_config config;
	setenv("AFE_LONG_POLL_MS", "75", 1);
	afe_runtime_config_default(&config);
	cr_assert_eq(config.long_poll_ms, 75u);
	setenv("AFE_LONG_POLL_MS", "soon", 1);
	afe_runtime_config_default(&config);
	cr_assert_eq(config.long_poll_ms, 0u);
	unsetenv("AFE_LONG_POLL_MS");
	afe_runtime_config_default(&config);
	cr_assert_eq(config.long_poll_ms, 0u);
}
