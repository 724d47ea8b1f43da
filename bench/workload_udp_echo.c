/* SPDX-License-Identifier: MIT */
/* udp_echo: a UDP echo server on 127.0.0.1:port for the load client
 * bench/udp_client.c, which measures and prints the JSON line. Every
 * datagram goes back to its sender. Serves for --seconds=N, or until
 * killed when N is 0.
 *
 * `tasks` receive loops (default: one per worker) share one socket, each
 * awaiting recvfrom then sendto: what a user writes to put every worker on
 * one address, and what Tokio's documentation shows (an Arc<UdpSocket>
 * shared by tasks). One SO_REUSEPORT socket per loop would spread peers
 * by the kernel's hash of their address, which does nothing for one peer
 * and needs a setsockopt that neither AFE nor Tokio offers a user.
 *
 * --stream=N: each loop receives through an afe_recv_stream of N buffers
 * (a multishot recvmsg where the kernel has it) instead of one
 * afe_recvfrom per datagram. */
#include <afe.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "bench.h"

/* One receive loop: a datagram in, the same bytes back to its sender. */
struct udp_echo_loop {
	struct afe_future base;
	int fd;
	unsigned stream_buffers; /* 0: one afe_recvfrom per datagram */
	struct afe_recvfrom rx;
	struct afe_sendto tx;
	struct afe_recv_stream in;
	intptr_t ended; /* the stream loop's error, or 0 while it runs */
	unsigned char buf[65536]; /* any datagram */
};

/* The loop through a receive stream; it ends only on an error, or on
 * cancel, either way through its cleanup, which stops the stream. */
static int udp_echo_stream_poll(struct afe_future *f, struct afe_context *cx)
{
	AFE_ASYNC_BEGIN_SELF(struct udp_echo_loop, self, f, cx);
	self->ended = afe_recv_stream_init_datagrams(&self->in, self->fd, self->stream_buffers,
						     sizeof(self->buf));
	while (self->ended == 0) {
		AFE_AWAIT(afe_recv_stream_next(&self->in));
		if (self->in.base.result < 0) {
			self->ended = self->in.base.result;
			break;
		}
		afe_sendto_init(&self->tx, self->fd, self->in.data, (unsigned)self->in.base.result,
				0, (struct sockaddr *)&self->in.from, self->in.from_len);
		AFE_AWAIT(&self->tx.io.base);
		if (self->tx.io.base.result < 0)
			self->ended = self->tx.io.base.result;
	}
	AFE_RETURN(self->ended);
	AFE_CLEANUP; /* stop and destroy are harmless on a stream init refused */
	AFE_AWAIT(afe_recv_stream_stop(&self->in));
	afe_recv_stream_destroy(&self->in);
	AFE_ASYNC_END;
}

static int udp_echo_loop_poll(struct afe_future *f, struct afe_context *cx)
{
	AFE_ASYNC_BEGIN_SELF(struct udp_echo_loop, self, f, cx);
	for (;;) {
		afe_recvfrom_init(&self->rx, self->fd, self->buf, sizeof(self->buf), 0);
		AFE_AWAIT(&self->rx.io.base);
		if (self->rx.io.base.result < 0)
			AFE_RETURN(self->rx.io.base.result);
		afe_sendto_init(&self->tx, self->fd, self->buf, (unsigned)self->rx.io.base.result, 0,
				(struct sockaddr *)&self->rx.from, self->rx.msg.msg_namelen);
		AFE_AWAIT(&self->tx.io.base);
		if (self->tx.io.base.result < 0)
			AFE_RETURN(self->tx.io.base.result);
	}
	AFE_ASYNC_END;
}

/* The root: spawns the loops into a fail-fast group (one loop's error
 * stops them all) and awaits it, or the group against a sleep. */
struct udp_echo_run {
	struct afe_future base;
	long seconds, tasks, spawned;
	struct afe_group loops;
	struct udp_echo_loop proto; /* what each spawn copies */
	struct afe_sleep sleep;
	struct afe_future *either[2];
	struct afe_select select;
};

static int udp_echo_run_poll(struct afe_future *f, struct afe_context *cx)
{
	AFE_ASYNC_BEGIN_SELF(struct udp_echo_run, self, f, cx);
	afe_group_init_fail_fast(&self->loops, NULL);
	afe_future_init(&self->proto.base,
			self->proto.stream_buffers ? udp_echo_stream_poll : udp_echo_loop_poll);
	for (self->spawned = 0; self->spawned < self->tasks; self->spawned++) {
		int err = afe_group_spawn(&self->loops, &self->proto);
		if (err < 0) { /* the run fails; the loops spawned are detached */
			afe_group_destroy(&self->loops);
			AFE_RETURN(err);
		}
	}
	if (self->seconds <= 0) {
		AFE_AWAIT(afe_group_wait(&self->loops));
	} else {
		afe_sleep_init(&self->sleep, (uint64_t)self->seconds * 1000000000u);
		self->either[0] = afe_group_wait(&self->loops);
		self->either[1] = &self->sleep.base;
		afe_select_init(&self->select, self->either, 2);
		AFE_AWAIT(&self->select.base);
	}
	/* The group only finishes on a loop's error; a cancelled group (the
	 * sleep won) reports -ECANCELED, which is the clean end. */
	intptr_t result = self->loops.base.result == -ECANCELED ? 0 : self->loops.base.result;
	afe_group_destroy(&self->loops);
	AFE_RETURN(result);
	AFE_ASYNC_END;
}

int workload_udp_echo(const struct bench_args *a)
{
	static const char *const names[] = {"port", "threads", "seconds", "tasks", "stream", NULL};
	bench_args_check(a, names);
	long port = bench_arg(a, "port", 7000), threads = bench_arg(a, "threads", 2);
	long tasks = bench_arg(a, "tasks", threads), stream = bench_arg(a, "stream", 0);
	if (port > 65535 || tasks < 1 || stream < 0 || stream > 32768 || (stream & (stream - 1)))
		bench_fail("udp_echo", "bad port, tasks or stream (a power of two to 32768)");
	int fd = afe_udp_bind("127.0.0.1", (uint16_t)port);
	if (fd < 0)
		bench_fail("udp_echo", "cannot bind port %ld: %s", port, strerror(-fd));
	struct afe_runtime *rt = bench_runtime(threads);
	struct udp_echo_run run = {
		.seconds = bench_arg(a, "seconds", 0), .tasks = tasks, .proto.fd = fd,
		.proto.stream_buffers = (unsigned)stream};
	afe_future_init(&run.base, udp_echo_run_poll);
	fprintf(stderr,
		"afe_bench udp_echo: serving on 127.0.0.1:%d with %ld workers, %ld receive tasks\n",
		afe_tcp_local_port(fd), threads, tasks);
	intptr_t result = 0;
	afe_block_on(rt, &run, &result);
	if (result < 0)
		bench_fail("udp_echo", "server stopped: %s", strerror((int)-result));
	afe_runtime_destroy(rt);
	close(fd);
	return 0;
}
