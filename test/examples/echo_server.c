/* SPDX-License-Identifier: MIT */
/*
 * A TCP echo server: every connection runs as its own task (echo_conn.c),
 * at most 1000 at once. Ctrl-C or SIGTERM stops it: it stops accepting,
 * lets the open connections finish for up to half a second, cancels those
 * still open, and exits 0.
 *
 *   echo_server [PORT]     (default 7000; 0 picks a free port)
 */
#include <afe.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "echo_conn.h"

struct app {
	struct afe_future base;
	int listen_fd;
	struct afe_tcp_server server;
};

static int app_poll(struct afe_future *f, struct afe_context *cx)
{
	struct app *self = afe_container_of(f, struct app, base);
	AFE_ASYNC_BEGIN(f, cx);
	/* Said once the runtime runs: a runtime that cannot start says so
	 * (afe_main_run) and nothing listens. */
	printf("echo_server: listening on 127.0.0.1:%d\n", afe_tcp_local_port(self->listen_fd));
	fflush(stdout);
	/* Serves until the shutdown token fires (then stops accepting and
	 * drains the connections) or the server fails. */
	AFE_AWAIT(&self->server.base);
	close(self->listen_fd);
	if (self->server.base.result < 0) {
		fprintf(stderr, "echo_server: %s\n", strerror((int)-self->server.base.result));
		AFE_RETURN(1);
	}
	fprintf(stderr, "echo_server: shut down, %ld connections cut off\n",
		(long)self->server.base.result);
	AFE_RETURN(0);
	AFE_ASYNC_END;
}

static int app_init(struct app *app, int argc, char **argv)
{
	long port = argc > 1 ? strtol(argv[1], NULL, 10) : 7000;
	if (port < 0 || port > 65535) {
		fprintf(stderr, "usage: %s [port]\n", argv[0]);
		return 2;
	}
	int fd = afe_tcp_listen("127.0.0.1", (uint16_t)port, 0);
	if (fd < 0) {
		fprintf(stderr, "echo_server: cannot listen on port %ld: %s\n", port, strerror(-fd));
		return 1;
	}
	struct afe_tcp_server_config config = {
		.listen_fd = fd,
		.max_conns = 1000,
		.conn_size = sizeof(struct echo_conn),
		.conn_init = echo_conn_init,
		/* Asked for before the runtime starts: from then on a SIGINT
		 * or SIGTERM fires the token instead of ending the process. */
		.stop = afe_shutdown_token(),
		.drain_ns = 500 * 1000000u, /* within AFE_MAIN's default grace */
	};
	app->listen_fd = fd;
	afe_tcp_server_init(&app->server, &config);
	afe_future_init(&app->base, app_poll);
	return 0;
}

AFE_MAIN(struct app, app_init)
