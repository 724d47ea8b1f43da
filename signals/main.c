/* SPDX-License-Identifier: MIT */
/* AFE_MAIN's program (afe_main_run, afe/runtime.h): the shutdown token
 * installed, one runtime, the root future, and the exit. Here, above the
 * core, because it ties the runtime to the signal hub. */
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "afe/runtime.h"
#include "afe/signal.h"
#include "afe/task.h"

/* The exit status for a result of what ("root future", "init"). */
static int exit_status(intptr_t result, const char *what)
{
	if (result >= 0 && result <= 255)
		return (int)result;
	if (result < 0 && result > -4096)
		fprintf(stderr, "afe: %s failed: %s\n", what, strerror((int)-result));
	else
		fprintf(stderr, "afe: %s returned %jd, not an exit status\n", what,
			(intmax_t)result);
	return 1;
}

void afe__main_prepare(void)
{
	(void)afe_shutdown_init(); /* idempotent: afe_main_run reports a failure */
}

int afe__main_init_failed(int status)
{
	return exit_status(status, "init");
}

int afe_main_run(const void *obj, size_t size, const struct afe_future *base,
		 const struct afe_runtime_config *config)
{
	struct afe_runtime_config cfg;
	if (config)
		cfg = *config;
	else
		afe_runtime_config_default(&cfg);
	/* SIGINT and SIGTERM go to the shutdown token from here on. */
	int err = afe_shutdown_init();
	if (err < 0)
		fprintf(stderr, "afe: SIGINT and SIGTERM not handled: %s\n", strerror(-err));
	/* Blocked here too, before the runtime's threads (which block it
	 * anyway), so that it never takes its default action in this one. */
	if (cfg.task_dump_signal && (err = afe_signal_block(cfg.task_dump_signal)) < 0)
		fprintf(stderr, "afe: no task dump on signal %d: %s\n", cfg.task_dump_signal,
			strerror(-err));
	struct afe_runtime *rt;
	err = afe_runtime_create(&rt, &cfg);
	if (err < 0) {
		fprintf(stderr, "afe: cannot start the runtime: %s\n", strerror(-err));
		return 1;
	}
	struct afe_join_handle dump = {0}; /* the task dump's watch, if asked for */
	if (cfg.task_dump_signal) {
		struct afe_task_dump_watch watch;
		afe_task_dump_watch_init(&watch, cfg.task_dump_signal);
		if (afe_spawn_child(rt, &watch, &dump) < 0)
			fprintf(stderr, "afe: no task dump on signal %d\n", cfg.task_dump_signal);
	}
	intptr_t result = 0;
	err = afe_block_on_raw(rt, obj, size, base, &result);
	if (dump.task)
		afe_join_handle_drop(&dump); /* a child: cancelled */
	if (err < 0) {
		fprintf(stderr, "afe: cannot run the root future: %s\n", strerror(-err));
		afe_runtime_destroy(rt);
		return 1;
	}
	int status = exit_status(result, "root future");
	int timeout = cfg.exit_mode == AFE_EXIT_WAIT_ALL ? -1
		      : cfg.exit_mode == AFE_EXIT_IMMEDIATE ? 0
							    : (int)cfg.grace_ms;
	int left = afe_runtime_wait_idle(rt, timeout);
	if (left > 0) {
		/* Running tasks cannot be stopped mid-poll: end the process. */
		if (cfg.exit_mode != AFE_EXIT_IMMEDIATE)
			fprintf(stderr, "afe: %d task(s) still running at exit\n", left);
		fflush(NULL);
		_exit(status);
	}
	afe_runtime_destroy(rt);
	return status;
}
