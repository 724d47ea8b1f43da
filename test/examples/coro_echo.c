/* SPDX-License-Identifier: MIT */
/* The TCP echo server written with coroutines: each connection is a plain
 * loop with locals. Ctrl-C or SIGTERM stops it with status 0.
 *   coro_echo [PORT]     (default 7000; 0 picks a free port) */
#include <afe.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

static intptr_t echo(void *arg)
{
	int fd = (int)(intptr_t)arg;
	char buf[4096];
	ssize_t n = afe_co_recv(fd, buf, sizeof(buf), 0);
	while (n > 0) /* the reply and the next request: one trip through the ring */
		n = afe_co_send_recv(fd, buf, (size_t)n, buf, sizeof(buf));
	afe_co_close(fd);
	return 0;
}

static intptr_t serve(void *arg)
{
	int listen_fd = (int)(intptr_t)arg, fd;
	for (;;) {
		struct afe_io accept;
		afe_io_accept_init(&accept, listen_fd, NULL, NULL, SOCK_CLOEXEC);
		if ((fd = (int)afe_co_await_until(&accept.base, afe_shutdown_token())) < 0)
			break; /* shutdown asked for (-ECANCELED), or accept failed */
		if (afe_coro_spawn(NULL, echo, (void *)(intptr_t)fd, NULL, NULL) < 0)
			close(fd);
	}
	close(listen_fd);
	return fd == -ECANCELED ? 0 : (fprintf(stderr, "coro_echo: %s\n", strerror(-fd)), 1);
}

static int app_init(struct afe_coro *app, int argc, char **argv)
{
	int fd = afe_tcp_listen("127.0.0.1", (uint16_t)(argc > 1 ? atoi(argv[1]) : 7000), 0);
	if (fd < 0)
		return fprintf(stderr, "coro_echo: cannot listen: %s\n", strerror(-fd)), 1;
	printf("coro_echo: listening on 127.0.0.1:%d\n", afe_tcp_local_port(fd));
	fflush(stdout);
	afe_shutdown_token(); /* from here on SIGINT and SIGTERM fire it */
	return afe_coro_init(app, serve, (void *)(intptr_t)fd, NULL);
}

AFE_MAIN(struct afe_coro, app_init)
