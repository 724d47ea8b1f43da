/* SPDX-License-Identifier: MIT */
/*
 * sendfile: a task on a worker serves a `size_mb` MiB file `n` times over
 * one loopback TCP connection with afe_sendfile (file to pipe to socket,
 * with splice); a plain thread reads it all and counts the bytes. Timed
 * from the first connect to the client's end of stream; the file is made
 * before timing and read once, so its pages are cached. The accepted
 * socket is non-blocking, as an event loop's are (`--nonblocking=0`: a
 * blocking one, whose splices all go through the ring).
 * bench/baseline/sendfile_loop is the same with sendfile(2) in a plain C
 * loop.
 */
#include <afe.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "bench.h"

/* A file of size bytes (kept between runs when its size is right). */
static int open_file(const char *path, uint64_t size)
{
	int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
	struct stat st;
	if (fd < 0 || fstat(fd, &st) < 0)
		bench_fail("sendfile", "cannot open %s", path);
	if ((uint64_t)st.st_size == size)
		return fd;
	enum { CHUNK = 1 << 20 };
	char *chunk = malloc(CHUNK);
	if (!chunk || ftruncate(fd, 0) < 0)
		bench_fail("sendfile", "cannot make the file");
	for (size_t i = 0; i < CHUNK; i++)
		chunk[i] = (char)(i * 7 % 251);
	for (uint64_t at = 0; at < size; at += CHUNK)
		if (pwrite(fd, chunk, CHUNK, (off_t)at) != CHUNK)
			bench_fail("sendfile", "cannot write the file");
	free(chunk);
	return fd;
}

/* Reads the whole file once, so that both sides serve it from memory. */
static void warm(int fd)
{
	enum { CHUNK = 1 << 20 };
	char *chunk = malloc(CHUNK);
	off_t at = 0;
	ssize_t n;
	while (chunk && (n = pread(fd, chunk, CHUNK, at)) > 0)
		at += n;
	free(chunk);
}

struct client {
	pthread_t thread;
	int port;
	uint64_t got;
	bool failed;
};

static void *client_main(void *arg)
{
	struct client *c = arg;
	int fd = bench_connect_loopback(c->port);
	if (fd < 0) {
		c->failed = true;
		return NULL;
	}
	enum { BUF = 256 * 1024 };
	char *buf = malloc(BUF);
	ssize_t n;
	while (buf && (n = read(fd, buf, BUF)) > 0)
		c->got += (uint64_t)n;
	free(buf);
	close(fd);
	return NULL;
}

struct server {
	struct afe_future base;
	int listen_fd, file_fd, conn, accept_flags;
	uint64_t size;
	long rounds, i;
	struct afe_io io;
	struct afe_sendfile send;
};

static int server_poll(struct afe_future *f, struct afe_context *cx)
{
	struct server *self = afe_container_of(f, struct server, base);
	AFE_ASYNC_BEGIN(f, cx);
	afe_io_accept_init(&self->io, self->listen_fd, NULL, NULL, self->accept_flags);
	AFE_AWAIT(&self->io.base);
	if (self->io.base.result < 0)
		AFE_RETURN(self->io.base.result);
	self->conn = (int)self->io.base.result;
	for (self->i = 0; self->i < self->rounds; self->i++) {
		afe_sendfile_init(&self->send, self->conn, self->file_fd, 0, self->size);
		AFE_AWAIT(&self->send.base);
		if (self->send.base.result != (intptr_t)self->size)
			AFE_RETURN(self->send.base.result < 0 ? self->send.base.result : -EIO);
	}
	AFE_RETURN(0);
	AFE_CLEANUP;
	if (self->conn >= 0)
		close(self->conn);
	AFE_ASYNC_END;
}

int workload_sendfile(const struct bench_args *a)
{
	static const char *const names[] = {"n", "size_mb", "threads", "nonblocking", NULL};
	bench_args_check(a, names);
	long n = bench_arg(a, "n", 1), size_mb = bench_arg(a, "size_mb", 64);
	long threads = bench_arg(a, "threads", 2);
	bool nonblocking = bench_arg(a, "nonblocking", 1) != 0;
	if (n < 1 || size_mb < 1)
		bench_fail("sendfile", "n and size_mb must be positive");
	uint64_t size = (uint64_t)size_mb << 20;
	int file_fd = open_file("/tmp/afe_sendfile.dat", size);
	warm(file_fd);
	int listen_fd = afe_tcp_listen(NULL, 0, 0);
	if (listen_fd < 0)
		bench_fail("sendfile", "cannot listen: %s", strerror(-listen_fd));
	struct afe_runtime *rt = bench_runtime(threads);
	struct client client = {.port = afe_tcp_local_port(listen_fd)};
	struct server server = {.listen_fd = listen_fd, .file_fd = file_fd, .conn = -1,
				.accept_flags = SOCK_CLOEXEC | (nonblocking ? SOCK_NONBLOCK : 0),
				.size = size, .rounds = n};
	afe_future_init(&server.base, server_poll);
	intptr_t result = -1;
	uint64_t start = bench_now_ns();
	if (pthread_create(&client.thread, NULL, client_main, &client) != 0)
		bench_fail("sendfile", "cannot start the client");
	afe_block_on(rt, &server, &result); /* a task, on the workers */
	pthread_join(client.thread, NULL);
	double seconds = (double)(bench_now_ns() - start) / 1e9;
	if (result != 0 || client.failed || client.got != size * (uint64_t)n)
		bench_fail("sendfile", "served %ld, the client got %llu of %llu bytes", (long)result,
			   (unsigned long long)client.got, (unsigned long long)(size * (uint64_t)n));
	afe_runtime_destroy(rt);
	close(listen_fd);
	close(file_fd);
	char extra[96];
	snprintf(extra, sizeof(extra), "\"size_mb\":%ld,\"nonblocking\":%d,\"mib_per_s\":%.1f",
		 size_mb, nonblocking, (double)(size_mb * n) / seconds);
	bench_report_with("sendfile", threads, n, seconds, NULL, extra);
	return 0;
}
