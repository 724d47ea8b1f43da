/* SPDX-License-Identifier: MIT */
/*
 * recv_stream: a plain thread writes `size_mb` MiB over one loopback TCP
 * connection (64 KiB writes, then a close); a task receives them all and
 * counts the bytes. It receives through an afe_recv_stream of `count`
 * buffers of `size` bytes (one multishot receive for the whole stream
 * where the kernel has it: compare with AFE_URING_FEATURES=5.19, where it
 * makes one receive per await); with `--plain=1` it awaits one
 * afe_io_recv of `size` bytes after another instead. Timed from the connect to the
 * receiver's end of stream; n is size_mb, so ops_per_s is MiB/s.
 */
#include <afe.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "bench.h"

struct sender {
	pthread_t thread;
	int port;
	uint64_t size;
	bool failed;
};

static void *sender_main(void *arg)
{
	struct sender *s = arg;
	int fd = bench_connect_loopback(s->port);
	enum { CHUNK = 64 * 1024 };
	char *chunk = calloc(1, CHUNK);
	if (fd < 0 || !chunk) {
		s->failed = true;
	} else {
		for (uint64_t sent = 0; sent < s->size;) {
			size_t want = s->size - sent < CHUNK ? (size_t)(s->size - sent) : CHUNK;
			ssize_t n = send(fd, chunk, want, MSG_NOSIGNAL); /* a receiver that failed */
			if (n <= 0) {
				s->failed = true;
				break;
			}
			sent += (uint64_t)n;
		}
	}
	free(chunk);
	if (fd >= 0)
		close(fd);
	return NULL;
}

struct receiver {
	struct afe_future base;
	int listen_fd, conn;
	bool stream;
	unsigned count, size;
	uint64_t *got; /* the caller's: block_on runs a copy of this future */
	char *buf; /* --plain=1 */
	struct afe_io io;
	struct afe_recv_stream in;
};

static int receiver_poll(struct afe_future *f, struct afe_context *cx)
{
	struct receiver *self = afe_container_of(f, struct receiver, base);
	AFE_ASYNC_BEGIN(f, cx);
	afe_io_accept_init(&self->io, self->listen_fd, NULL, NULL, SOCK_CLOEXEC);
	AFE_AWAIT(&self->io.base);
	if (self->io.base.result < 0)
		AFE_RETURN(self->io.base.result);
	self->conn = (int)self->io.base.result;
	if (!self->stream) {
		for (;;) {
			afe_io_recv_init(&self->io, self->conn, self->buf, self->size, 0);
			AFE_AWAIT(&self->io.base);
			if (self->io.base.result <= 0)
				AFE_RETURN(self->io.base.result);
			*self->got += (uint64_t)self->io.base.result;
		}
	}
	int err = afe_recv_stream_init(&self->in, self->conn, self->count, self->size);
	if (err < 0)
		AFE_RETURN(err);
	for (;;) {
		AFE_AWAIT(afe_recv_stream_next(&self->in));
		if (self->in.base.result <= 0)
			break;
		*self->got += (uint64_t)self->in.base.result;
	}
	f->result = self->in.base.result;
	AFE_AWAIT(afe_recv_stream_stop(&self->in));
	afe_recv_stream_destroy(&self->in);
	AFE_RETURN(f->result);
	AFE_CLEANUP;
	if (self->conn >= 0)
		close(self->conn);
	AFE_ASYNC_END;
}

int workload_recv_stream(const struct bench_args *a)
{
	static const char *const names[] = {"size_mb", "count", "size", "plain", "threads", NULL};
	bench_args_check(a, names);
	long size_mb = bench_arg(a, "size_mb", 1024), threads = bench_arg(a, "threads", 2);
	long count = bench_arg(a, "count", 16), size = bench_arg(a, "size", 65536);
	bool stream = bench_arg(a, "plain", 0) == 0;
	if (size_mb < 1 || count < 1 || count > 32768 || (count & (count - 1)) || size < 1 ||
	    size > (1 << 20))
		bench_fail("recv_stream", "size_mb, count (a power of two to 32768) or size (to 1 MiB) "
					  "out of range");
	int listen_fd = afe_tcp_listen(NULL, 0, 0);
	if (listen_fd < 0)
		bench_fail("recv_stream", "cannot listen: %s", strerror(-listen_fd));
	struct afe_runtime *rt = bench_runtime(threads);
	struct sender sender = {.port = afe_tcp_local_port(listen_fd),
				.size = (uint64_t)size_mb << 20};
	uint64_t got = 0;
	struct receiver receiver = {.listen_fd = listen_fd, .conn = -1, .stream = stream, .got = &got,
				    .count = (unsigned)count, .size = (unsigned)size,
				    .buf = stream ? NULL : malloc((size_t)size)};
	if (!stream && !receiver.buf)
		bench_fail("recv_stream", "out of memory");
	afe_future_init(&receiver.base, receiver_poll);
	intptr_t result = -1;
	uint64_t start = bench_now_ns();
	if (pthread_create(&sender.thread, NULL, sender_main, &sender) != 0)
		bench_fail("recv_stream", "cannot start the sender");
	afe_block_on(rt, &receiver, &result);
	pthread_join(sender.thread, NULL);
	double seconds = (double)(bench_now_ns() - start) / 1e9;
	if (result != 0 || sender.failed || got != sender.size)
		bench_fail("recv_stream", "ended with %ld, received %llu of %llu bytes", (long)result,
			   (unsigned long long)got, (unsigned long long)sender.size);
	afe_runtime_destroy(rt);
	close(listen_fd);
	free(receiver.buf);
	char extra[160];
	snprintf(extra, sizeof(extra),
		 "\"plain\":%d,\"count\":%ld,\"size\":%ld",
		 !stream, stream ? count : 1, size);
	bench_report_with("recv_stream", threads, size_mb, seconds, NULL, extra);
	return 0;
}
