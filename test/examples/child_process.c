/* SPDX-License-Identifier: MIT */
/*
 * A child process under AFE_MAIN: spawns a program with its stdout on a
 * pipe, copies what it writes to our stdout through the ring, awaits its
 * exit through its pidfd and says how it ended. Exits 0 once it did.
 *
 *   child_process                       (runs: sh -c 'echo hi; exit 3')
 *   child_process PROGRAM [ARG...]
 */
#include <afe.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>

static char *default_argv[] = {"sh", "-c", "echo hi; exit 3", NULL};

struct app {
	struct afe_future base;
	char **argv;
	struct afe_process child;
	char buf[4096];
	struct afe_io read;
	struct afe_process_wait wait;
};

static int app_poll(struct afe_future *f, struct afe_context *cx)
{
	AFE_ASYNC_BEGIN_SELF(struct app, self, f, cx);
	struct afe_process_opts opts = {.stdout_mode = AFE_STDIO_PIPE};
	int err = afe_process_spawn(&self->child, self->argv[0], self->argv, NULL, &opts);
	if (err < 0) {
		fprintf(stderr, "child_process: %s: error %d\n", self->argv[0], err);
		AFE_RETURN(1);
	}
	for (;;) {
		afe_io_read_init(&self->read, self->child.stdout_fd, self->buf, sizeof(self->buf), -1);
		AFE_AWAIT(&self->read.base);
		if (self->read.base.result <= 0) /* end of file, or an error */
			break;
		printf("child said: %.*s", (int)self->read.base.result, self->buf);
	}
	afe_process_wait_init(&self->wait, &self->child);
	AFE_AWAIT(&self->wait.base);
	if (self->wait.base.result < 0)
		AFE_RETURN(1);
	if (self->child.status.signaled)
		printf("child ended by signal %d (%s)\n", self->child.status.signo,
		       strsignal(self->child.status.signo));
	else
		printf("child exited with status %d\n", self->child.status.code);
	AFE_RETURN(0);
	AFE_CLEANUP;
	afe_process_close(&self->child); /* after a failed spawn too */
	AFE_ASYNC_END;
}

static int app_init(struct app *app, int argc, char **argv)
{
	app->argv = argc > 1 ? argv + 1 : default_argv;
	afe_future_init(&app->base, app_poll);
	return 0;
}

AFE_MAIN(struct app, app_init)
