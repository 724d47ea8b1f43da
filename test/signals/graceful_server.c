/* SPDX-License-Identifier: MIT */
/*
 * The program test_graceful.c stops with signals: an echo server (the
 * example's connections) plus a detached "critical" task that writes a
 * file in chunks, slowly, and must never be cut short.
 *
 *   graceful_server FILE [CHUNKS]    (64 KiB chunks, 10 ms apart; 150)
 *
 * Prints "port N" once running. On shutdown it prints "shutting down",
 * stops accepting, closes the listening socket, prints "stopped
 * accepting" and returns 0; AFE_MAIN then waits (AFE_GRACE_MS) for the
 * open connections and the critical task. The critical task prints
 * "critical: done" on stderr once the file is complete and renamed.
 * With GRACEFUL_SELF_SIGNAL set in the environment, the root sends the
 * process SIGTERM at its first poll, before it awaits anything; with
 * GRACEFUL_SIGNAL_IN_INIT, app_init does, before the runtime starts; with
 * GRACEFUL_THREAD_IN_INIT, app_init starts a thread of its own that
 * sleeps for ever; with GRACEFUL_INIT_FAILS, app_init returns -ENOMEM.
 */
#include <afe.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "echo_conn.h"

enum { CHUNK = 64 * 1024 };

struct critical {
	struct afe_future base;
	const char *path;
	int chunks, i, fd;
	char tmp[4096];
	struct afe_io io;
	struct afe_sleep nap;
	char *buf;
};

static int critical_poll(struct afe_future *f, struct afe_context *cx)
{
	struct critical *self = afe_container_of(f, struct critical, base);
	AFE_ASYNC_BEGIN(f, cx);
	snprintf(self->tmp, sizeof(self->tmp), "%s.tmp", self->path);
	self->fd = open(self->tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (self->fd < 0)
		AFE_RETURN(-errno);
	for (self->i = 0; self->i < self->chunks; self->i++) {
		/* Chunk i is filled with the byte 'a' + i % 26. */
		memset(self->buf, 'a' + self->i % 26, CHUNK);
		afe_io_write_init(&self->io, self->fd, self->buf, CHUNK, (int64_t)self->i * CHUNK);
		AFE_AWAIT(&self->io.base);
		if (self->io.base.result != CHUNK)
			AFE_RETURN(1);
		afe_sleep_init(&self->nap, 10 * 1000000ull);
		AFE_AWAIT(&self->nap.base);
	}
	afe_io_fsync_init(&self->io, self->fd, false);
	AFE_AWAIT(&self->io.base);
	close(self->fd);
	self->fd = -1;
	if (rename(self->tmp, self->path) != 0)
		AFE_RETURN(-errno);
	fprintf(stderr, "critical: done\n");
	AFE_RETURN(0);
	AFE_CLEANUP;
	free(self->buf);
	AFE_ASYNC_END;
}

struct app {
	struct afe_future base;
	int listen_fd;
	bool self_signal;
	struct critical critical;
	struct afe_token *shutdown;
	struct afe_tcp_server server;
	struct afe_token_wait stop;
	struct afe_future *racers[2];
	struct afe_select race;
};

static int app_poll(struct afe_future *f, struct afe_context *cx)
{
	struct app *self = afe_container_of(f, struct app, base);
	AFE_ASYNC_BEGIN(f, cx);
	if (self->self_signal)
		kill(getpid(), SIGTERM);
	/* Only now: AFE_MAIN has blocked SIGINT and SIGTERM, so a signal
	 * sent once this is read goes to the shutdown token. */
	printf("port %d\n", afe_tcp_local_port(self->listen_fd));
	fflush(stdout);
	/* Detached: shutdown never cancels it; the exit waits for it. */
	if (afe_spawn(NULL, &self->critical, NULL) < 0)
		AFE_RETURN(3);
	afe_token_wait_init(&self->stop, self->shutdown);
	self->racers[0] = &self->server.base;
	self->racers[1] = &self->stop.base;
	afe_select_init(&self->race, self->racers, 2);
	AFE_AWAIT(&self->race.base);
	if (self->race.winner == 0)
		AFE_RETURN(4);
	printf("shutting down\n");
	close(self->listen_fd);
	printf("stopped accepting\n");
	fflush(stdout);
	AFE_RETURN(0);
	AFE_ASYNC_END;
}

/* A thread of the user's own, started in app_init: it inherits the
 * signal mask, so SIGTERM must be blocked in it already. */
static void *sleep_for_ever(void *arg)
{
	(void)arg;
	for (;;)
		pause();
	return NULL;
}

static int app_init(struct app *app, int argc, char **argv)
{
	if (argc < 2) {
		fprintf(stderr, "usage: %s FILE [CHUNKS]\n", argv[0]);
		return 2;
	}
	app->shutdown = afe_shutdown_token();
	app->self_signal = getenv("GRACEFUL_SELF_SIGNAL") != NULL;
	app->critical.path = argv[1];
	app->critical.chunks = argc > 2 ? atoi(argv[2]) : 150;
	app->critical.buf = malloc(CHUNK);
	if (!app->critical.buf)
		return 1;
	afe_future_init(&app->critical.base, critical_poll);
	app->listen_fd = afe_tcp_listen("127.0.0.1", 0, 0);
	if (app->listen_fd < 0)
		return 1;
	if (getenv("GRACEFUL_SIGNAL_IN_INIT"))
		kill(getpid(), SIGTERM); /* held: AFE_MAIN blocked it already */
	pthread_t sleeper;
	if (getenv("GRACEFUL_THREAD_IN_INIT") && pthread_create(&sleeper, NULL, sleep_for_ever, NULL))
		return 1;
	if (getenv("GRACEFUL_INIT_FAILS"))
		return -ENOMEM;
	struct afe_tcp_server_config config = {
		.listen_fd = app->listen_fd,
		.conn_size = sizeof(struct echo_conn),
		.conn_init = echo_conn_init,
	};
	afe_tcp_server_init(&app->server, &config);
	afe_future_init(&app->base, app_poll);
	return 0;
}

AFE_MAIN(struct app, app_init)
