/* SPDX-License-Identifier: MIT */
/*
 * A TCP echo server: every connection runs as its own task (echo_conn.c),
 * at most 1000 at once.
 *
 *   echo_server [PORT]     (default 7000; stop with Ctrl-C)
 */
#include <afe.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "echo_conn.h"

struct app {
	struct afe_future base;
	struct afe_tcp_server server;
};

static int app_poll(struct afe_future *f, struct afe_context *cx)
{
	struct app *self = afe_container_of(f, struct app, base);
	AFE_ASYNC_BEGIN(f, cx);
	AFE_AWAIT(&self->server.base);
	fprintf(stderr, "echo_server: %s\n", strerror((int)-self->server.base.result));
	AFE_RETURN(1);
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
	printf("echo_server: listening on 127.0.0.1:%d\n", afe_tcp_local_port(fd));
	fflush(stdout);
	struct afe_tcp_server_config config = {
		.listen_fd = fd,
		.max_conns = 1000,
		.conn_size = sizeof(struct echo_conn),
		.conn_init = echo_conn_init,
	};
	afe_tcp_server_init(&app->server, &config);
	afe_future_init(&app->base, app_poll);
	return 0;
}

AFE_MAIN(struct app, app_init)
