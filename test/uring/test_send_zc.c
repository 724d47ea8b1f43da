/* SPDX-License-Identifier: MIT */
/* Zero-copy send (afe_io_send_zc_init): a MiB over TCP and over a Unix
 * socket pair, arriving whole and as it was even though the buffer is
 * overwritten as soon as the send completes (so the future must not
 * complete while the kernel still reads it); a closed peer, a bad fd, a
 * cancel while the peer reads nothing. Run on every backend and mask
 * (test/CMakeLists.txt): with AFE_URING_SEND_ZC, and the plain send. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/utsname.h>
#include <time.h>
#include <unistd.h>

#include "io_helpers.h"

enum { SIZE = 1 << 20 };

static unsigned char pattern_at(size_t i)
{
	return (unsigned char)(i * 31 + (i >> 12));
}

static unsigned char *pattern(void)
{
	unsigned char *p = malloc(SIZE);
	cr_assert(p);
	for (size_t i = 0; i < SIZE; i++)
		p[i] = pattern_at(i);
	return p;
}

/* A connected TCP pair over loopback: fds[0] sends, fds[1] receives. */
static void tcp_pair(int fds[2])
{
	int lfd = afe_tcp_listen("127.0.0.1", 0, 0);
	cr_assert_geq(lfd, 0);
	struct sockaddr_in a = {.sin_family = AF_INET,
				.sin_port = htons((uint16_t)afe_tcp_local_port(lfd)),
				.sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	fds[0] = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	cr_assert_geq(fds[0], 0);
	cr_assert_eq(connect(fds[0], (struct sockaddr *)&a, sizeof(a)), 0);
	fds[1] = accept(lfd, NULL, NULL);
	cr_assert_geq(fds[1], 0);
	close(lfd);
}

/* The receiving side, on its own thread: waits a while first (so a send
 * that completed too early has overwritten its buffer by then), then
 * reads until the end of the stream. */
struct reader {
	int fd;
	unsigned wait_ms;
	unsigned char *in;
	size_t got;
};

static void *reader_main(void *arg)
{
	struct reader *r = arg;
	struct timespec pause = {.tv_sec = 0, .tv_nsec = (long)r->wait_ms * 1000000L};
	nanosleep(&pause, NULL);
	ssize_t n;
	while (r->got < SIZE && (n = recv(r->fd, r->in + r->got, SIZE - r->got, 0)) > 0)
		r->got += (size_t)n;
	return NULL;
}

/* A limit_ns bit: the limit is the operation's own (afe_io_set_timeout),
 * not an afe_timeout around it. */
#define OWN_LIMIT (1ull << 63)

/* Sends out zero-copy (with a time limit when limit_ns), then at once
 * overwrites it and half-closes fd, as a caller reusing its buffer
 * would. */
struct zc_sender {
	struct afe_future base;
	int fd, flags;
	unsigned char *out;
	uint64_t limit_ns;
	struct afe_io io;
	struct afe_timeout limited;
};

static int zc_sender_poll(struct afe_future *f, struct afe_context *cx)
{
	struct zc_sender *self = afe_container_of(f, struct zc_sender, base);
	AFE_ASYNC_BEGIN(f, cx);
	afe_io_send_zc_init(&self->io, self->fd, self->out, SIZE, self->flags);
	if (self->limit_ns & OWN_LIMIT) {
		if (afe_io_set_timeout(&self->io, self->limit_ns & ~OWN_LIMIT) < 0)
			AFE_RETURN(-1000);
		AFE_AWAIT(&self->io.base);
	} else if (self->limit_ns) {
		afe_timeout_init(&self->limited, &self->io.base, self->limit_ns);
		AFE_AWAIT(&self->limited.base);
	} else {
		AFE_AWAIT(&self->io.base);
	}
	memset(self->out, 0xee, SIZE);
	shutdown(self->fd, SHUT_WR);
	AFE_RETURN(self->io.base.result);
	AFE_ASYNC_END;
}

/* Sends a MiB from fds[0] to fds[1]; returns the send's result, and
 * checks the reader got exactly what it moved, unchanged. */
static intptr_t send_and_check(struct afe_runtime *rt, int fds[2], int flags, uint64_t limit_ns,
			       unsigned reader_wait_ms)
{
	unsigned char *out = pattern(), *in = malloc(SIZE);
	cr_assert(in);
	struct reader reader = {.fd = fds[1], .wait_ms = reader_wait_ms, .in = in};
	pthread_t thread;
	cr_assert_eq(pthread_create(&thread, NULL, reader_main, &reader), 0);
	struct zc_sender s = {.fd = fds[0], .flags = flags, .out = out, .limit_ns = limit_ns};
	afe_future_init(&s.base, zc_sender_poll);
	intptr_t r = test_block_on(rt, &s);
	pthread_join(thread, NULL);
	size_t moved = r > 0 ? (size_t)r : 0;
	cr_assert_eq(reader.got, moved, "the send said %ld, the peer read %zu", (long)r,
		     reader.got);
	for (size_t i = 0; i < moved; i++)
		cr_assert_eq(in[i], pattern_at(i), "byte %zu changed: the send completed "
						   "while the kernel still read the buffer", i);
	free(out);
	free(in);
	return r;
}

Test(send_zc, a_mib_over_tcp_arrives_whole_and_unchanged)
{
	struct afe_runtime *rt = test_runtime(2);
	int fds[2];
	tcp_pair(fds);
	intptr_t r = send_and_check(rt, fds, MSG_WAITALL, 0, 50);
	cr_assert_eq(r, SIZE, "the send ended with %ld", (long)r);
	close(fds[0]);
	close(fds[1]);
	test_runtime_destroy(rt);
}

/* Unix sockets have no zero-copy send: the plain send, same result. */
Test(send_zc, a_mib_over_a_unix_socket_pair_arrives_whole_and_unchanged)
{
	struct afe_runtime *rt = test_runtime(2);
	int fds[2];
	cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds), 0);
	intptr_t r = send_and_check(rt, fds, MSG_WAITALL, 0, 50);
	cr_assert_eq(r, SIZE, "the send ended with %ld", (long)r);
	close(fds[0]);
	close(fds[1]);
	test_runtime_destroy(rt);
}

/* Without MSG_WAITALL: what moved, perhaps short, arrives unchanged. */
Test(send_zc, a_send_without_waitall_moves_what_it_says)
{
	struct afe_runtime *rt = test_runtime(2);
	int fds[2];
	tcp_pair(fds);
	intptr_t r = send_and_check(rt, fds, 0, 0, 50);
	cr_assert(r > 0 && r <= SIZE, "the send ended with %ld", (long)r);
	close(fds[0]);
	close(fds[1]);
	test_runtime_destroy(rt);
}

/* A send blocked on a peer that reads nothing, cancelled (by a timeout
 * around it): -ECANCELED or the bytes moved; it completes only once the
 * kernel is done with the buffer, which it overwrites then, while the
 * bytes it moved wait unread in the socket. */
Test(send_zc, a_cancelled_send_ends_with_what_it_moved_once_the_kernel_let_go)
{
	struct afe_runtime *rt = test_runtime(2);
	int fds[2];
	tcp_pair(fds);
	int small = 64 * 1024;
	setsockopt(fds[0], SOL_SOCKET, SO_SNDBUF, &small, sizeof(small));
	setsockopt(fds[1], SOL_SOCKET, SO_RCVBUF, &small, sizeof(small));
	intptr_t r = send_and_check(rt, fds, MSG_WAITALL, 50 * 1000000ull, 200);
	cr_assert(r == -ECANCELED || (r > 0 && r < SIZE), "the send ended with %ld", (long)r);
	close(fds[0]);
	close(fds[1]);
	test_runtime_destroy(rt);
}

/* The same with the operation's own time limit: -ETIMEDOUT or the bytes. */
Test(send_zc, a_timed_out_send_ends_with_what_it_moved_once_the_kernel_let_go)
{
	struct afe_runtime *rt = test_runtime(2);
	int fds[2];
	tcp_pair(fds);
	int small = 64 * 1024;
	setsockopt(fds[0], SOL_SOCKET, SO_SNDBUF, &small, sizeof(small));
	setsockopt(fds[1], SOL_SOCKET, SO_RCVBUF, &small, sizeof(small));
	intptr_t r = send_and_check(rt, fds, MSG_WAITALL, 50 * 1000000ull | OWN_LIMIT, 200);
	cr_assert(r == -ETIMEDOUT || (r > 0 && r < SIZE), "the send ended with %ld", (long)r);
	close(fds[0]);
	close(fds[1]);
	test_runtime_destroy(rt);
}

/* A reset peer: -ECONNRESET or -EPIPE, and no SIGPIPE (which would end
 * this process). */
Test(send_zc, a_send_to_a_reset_peer_fails_without_a_signal)
{
	struct afe_runtime *rt = test_runtime(2);
	int fds[2];
	tcp_pair(fds);
	struct linger hard = {.l_onoff = 1, .l_linger = 0};
	cr_assert_eq(setsockopt(fds[1], SOL_SOCKET, SO_LINGER, &hard, sizeof(hard)), 0);
	close(fds[1]); /* sends a reset */
	struct pollfd p = {.fd = fds[0], .events = POLLIN};
	cr_assert_eq(poll(&p, 1, 10000), 1, "the reset arrived");
	unsigned char *out = pattern();
	for (int i = 0; i < 2; i++) { /* the reset, then the closed socket */
		struct afe_io io;
		afe_io_send_zc_init(&io, fds[0], out, SIZE, 0);
		intptr_t r = run_io(rt, &io);
		cr_assert(r == -EPIPE || r == -ECONNRESET, "got %ld", (long)r);
	}
	free(out);
	close(fds[0]);
	test_runtime_destroy(rt);
}

Test(send_zc, a_closed_unix_peer_is_epipe_without_a_signal)
{
	struct afe_runtime *rt = test_runtime(2);
	int sv[2];
	cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
	close(sv[1]);
	static char buf[1 << 16];
	struct afe_io io;
	afe_io_send_zc_init(&io, sv[0], buf, sizeof(buf), 0);
	cr_assert_eq(run_io(rt, &io), -EPIPE);
	close(sv[0]);
	test_runtime_destroy(rt);
}

Test(send_zc, a_bad_fd_is_ebadf_and_a_pipe_enotsock)
{
	struct afe_runtime *rt = test_runtime(2);
	int pfd[2];
	cr_assert_eq(pipe(pfd), 0);
	int closed = dup(pfd[0]);
	cr_assert_geq(closed, 0);
	close(closed);
	char buf[64] = {0};
	struct afe_io io;
	afe_io_send_zc_init(&io, closed, buf, sizeof(buf), 0);
	cr_assert_eq(run_io(rt, &io), -EBADF);
	afe_io_send_zc_init(&io, pfd[1], buf, sizeof(buf), 0);
	cr_assert_eq(run_io(rt, &io), -ENOTSOCK);
	close(pfd[0]);
	close(pfd[1]);
	test_runtime_destroy(rt);
}

/* The facility is taken on io_uring from Linux 6.1, and masked below. */
Test(send_zc, the_facility_follows_the_kernel_and_the_mask)
{
	struct afe_runtime *rt = test_runtime(1);
	unsigned features = afe_runtime_uring_features(rt);
	const char *mask = getenv("AFE_URING_FEATURES");
	struct utsname u;
	unsigned major = 0, minor = 0;
	cr_assert_eq(uname(&u), 0);
	sscanf(u.release, "%u.%u", &major, &minor);
	bool kernel_has = major > 6 || (major == 6 && minor >= 1);
	if (afe_runtime_backend(rt) != AFE_BACKEND_URING || (mask && strcmp(mask, "5.15") == 0))
		cr_assert_eq(features & AFE_URING_SEND_ZC, 0u);
	else if (!mask && kernel_has)
		cr_assert_neq(features & AFE_URING_SEND_ZC, 0u, "Linux %s has IORING_OP_SEND_ZC",
			      u.release);
	test_runtime_destroy(rt);
}

/* A datagram over a connected UDP socket on loopback. */
Test(send_zc, a_datagram_over_udp_arrives_whole)
{
	struct afe_runtime *rt = test_runtime(2);
	int rx = afe_udp_bind("127.0.0.1", 0);
	cr_assert_geq(rx, 0);
	struct sockaddr_in a = {.sin_family = AF_INET,
				.sin_port = htons((uint16_t)afe_tcp_local_port(rx)),
				.sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	int tx = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	cr_assert_geq(tx, 0);
	cr_assert_eq(connect(tx, (struct sockaddr *)&a, sizeof(a)), 0);
	unsigned char *out = pattern(), in[9000];
	struct afe_io io;
	afe_io_send_zc_init(&io, tx, out, 8000, 0);
	cr_assert_eq(run_io(rt, &io), 8000);
	cr_assert_eq(recv(rx, in, sizeof(in), 0), 8000);
	cr_assert_eq(memcmp(in, out, 8000), 0);
	free(out);
	close(tx);
	close(rx);
	test_runtime_destroy(rt);
}

/* Linked both ways (afe_io_link): a zero-copy send, then a plain one; a
 * plain one, then a zero-copy one. Each result is its own, in order. */
struct zc_pair {
	struct afe_future base;
	int fd;
	bool zc_first;
	const unsigned char *big;
	intptr_t *first, *second; /* the task runs a copy of the pair */
	struct afe_io a, b;
};

static int zc_pair_poll(struct afe_future *f, struct afe_context *cx)
{
	struct zc_pair *self = afe_container_of(f, struct zc_pair, base);
	AFE_ASYNC_BEGIN(f, cx);
	if (self->zc_first) {
		afe_io_send_zc_init(&self->a, self->fd, self->big, SIZE, MSG_WAITALL);
		afe_io_send_init(&self->b, self->fd, "END", 3, MSG_NOSIGNAL);
	} else {
		afe_io_send_init(&self->a, self->fd, "BEGIN", 5, MSG_WAITALL | MSG_NOSIGNAL);
		afe_io_send_zc_init(&self->b, self->fd, self->big, SIZE, MSG_WAITALL);
	}
	if (afe_io_link(&self->a, &self->b) < 0)
		AFE_RETURN(-1000);
	AFE_AWAIT(&self->a.base);
	*self->first = self->a.base.result;
	*self->second = self->b.base.result;
	AFE_RETURN(0);
	AFE_ASYNC_END;
}

static void *drain_main(void *arg)
{
	struct reader *r = arg;
	ssize_t n;
	while ((n = recv(r->fd, r->in + r->got, SIZE + 16 - r->got, 0)) > 0)
		r->got += (size_t)n;
	return NULL;
}

Test(send_zc, linked_with_a_plain_send_either_way)
{
	struct afe_runtime *rt = test_runtime(2);
	unsigned char *big = pattern();
	for (int zc_first = 1; zc_first >= 0; zc_first--) {
		int fds[2];
		tcp_pair(fds);
		struct reader reader = {.fd = fds[1], .in = malloc(SIZE + 16)};
		cr_assert(reader.in);
		pthread_t thread;
		cr_assert_eq(pthread_create(&thread, NULL, drain_main, &reader), 0);
		intptr_t first = 0, second = 0;
		struct zc_pair pair = {
			.fd = fds[0], .zc_first = zc_first, .big = big, .first = &first, .second = &second};
		afe_future_init(&pair.base, zc_pair_poll);
		cr_assert_eq(test_block_on(rt, &pair), 0);
		shutdown(fds[0], SHUT_WR);
		pthread_join(thread, NULL);
		cr_assert_eq(first, zc_first ? SIZE : 5, "got %ld", (long)first);
		cr_assert_eq(second, zc_first ? 3 : SIZE, "got %ld", (long)second);
		cr_assert_eq(reader.got, (size_t)SIZE + (zc_first ? 3 : 5));
		const unsigned char *data = reader.in + (zc_first ? 0 : 5);
		cr_assert_eq(memcmp(data, big, SIZE), 0);
		cr_assert_eq(memcmp(zc_first ? reader.in + SIZE : reader.in, zc_first ? "END" : "BEGIN",
				    zc_first ? 3 : 5),
			     0);
		free(reader.in);
		close(fds[0]);
		close(fds[1]);
	}
	free(big);
	test_runtime_destroy(rt);
}
