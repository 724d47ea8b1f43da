/* SPDX-License-Identifier: MIT */
/* A UDP echo server as a coroutine: each datagram goes back to its sender.
 * Ctrl-C or SIGTERM stops it with status 0.
 *   udp_echo [PORT]     (default 7001; 0 picks a free port) */
#include <afe.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static intptr_t serve(void *arg)
{
	int fd = (int)(intptr_t)arg;
	/* 32 buffers that each hold any datagram: the kernel queues them
	 * (a multishot recvmsg where it has one) while this replies. */
	struct afe_recv_stream in;
	intptr_t n = afe_recv_stream_init_datagrams(&in, fd, 32, 65536);
	while (n >= 0) {
		n = afe_co_await_until(afe_recv_stream_next(&in), afe_shutdown_token());
		if (n >= 0) /* a failed send loses that datagram, as UDP may */
			afe_co_sendto(fd, in.data, (size_t)n, 0, (struct sockaddr *)&in.from,
				      in.from_len);
	}
	afe_co_await(afe_recv_stream_stop(&in)); /* nothing of it left in the ring */
	afe_recv_stream_destroy(&in);
	close(fd);
	if (n != -ECANCELED) /* -ECANCELED: shutdown asked for */
		fprintf(stderr, "udp_echo: %s\n", strerror((int)-n));
	return n == -ECANCELED ? 0 : 1;
}

static int app_init(struct afe_coro *app, int argc, char **argv)
{
	int fd = afe_udp_bind("127.0.0.1", (uint16_t)(argc > 1 ? atoi(argv[1]) : 7001));
	if (fd < 0)
		return fprintf(stderr, "udp_echo: cannot bind: %s\n", strerror(-fd)), 1;
	printf("udp_echo: listening on 127.0.0.1:%d\n", afe_tcp_local_port(fd));
	fflush(stdout);
	afe_shutdown_token(); /* from here on SIGINT and SIGTERM fire it */
	return afe_coro_init(app, serve, (void *)(intptr_t)fd, NULL);
}

AFE_MAIN(struct afe_coro, app_init)
