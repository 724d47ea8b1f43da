/* SPDX-License-Identifier: MIT */
/*
 * AFE_MAIN_CONFIG: the runtime takes its workers, exit mode and grace from
 * the program's config function. The root prints how many worker threads
 * run, leaves a detached task that never finishes, and returns 0: the
 * exit mode decides whether the process waits and reports it.
 *
 *   main_config WORKERS grace|immediate GRACE_MS
 */
#include <afe.h>
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct app {
	struct afe_future base;
	unsigned workers, grace_ms;
	enum afe_exit_mode mode;
};

/* Counts this process's threads named afe-worker-N. */
static int count_workers(void)
{
	DIR *dir = opendir("/proc/self/task");
	if (!dir)
		return -1;
	int n = 0;
	struct dirent *e;
	while ((e = readdir(dir))) {
		char path[300], comm[32] = "";
		snprintf(path, sizeof(path), "/proc/self/task/%s/comm", e->d_name);
		FILE *f = fopen(path, "r");
		if (!f)
			continue;
		if (fgets(comm, sizeof(comm), f) && strncmp(comm, "afe-worker", 10) == 0)
			n++;
		fclose(f);
	}
	closedir(dir);
	return n;
}

static int app_poll(struct afe_future *f, struct afe_context *cx)
{
	(void)cx;
	struct afe_sleep nap; /* a task still running at exit */
	afe_sleep_init(&nap, 20 * 1000000000ull);
	if (afe_spawn(NULL, &nap, NULL) != 0)
		return f->result = 2, AFE_READY;
	printf("workers %d\n", count_workers());
	fflush(stdout);
	f->result = 0;
	return AFE_READY;
}

static int app_init(struct app *app, int argc, char **argv)
{
	if (argc != 4)
		return 64;
	afe_future_init(&app->base, app_poll);
	app->workers = (unsigned)atoi(argv[1]);
	app->mode = strcmp(argv[2], "immediate") == 0 ? AFE_EXIT_IMMEDIATE : AFE_EXIT_GRACE;
	app->grace_ms = (unsigned)atoi(argv[3]);
	return 0;
}

static void app_config(struct afe_runtime_config *config, const struct app *app)
{
	config->workers = app->workers;
	config->exit_mode = app->mode;
	config->grace_ms = app->grace_ms;
}

AFE_MAIN_CONFIG(struct app, app_init, app_config)
