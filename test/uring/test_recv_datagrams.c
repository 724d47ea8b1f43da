/* SPDX-License-Identifier: MIT */
/* The receive stream on a datagram socket: one datagram per await with
 * its sender (the reply reaches it), empty and truncated datagrams, more
 * datagrams queued than the stream has buffers (the kernel runs out and
 * the stream re-arms), a stream that never runs dry letting other tasks
 * run, a refused destination's error reported by the send after a
 * datagram, and the errors of a bad fd, a pipe and bad sizes.
 * Run on io_uring (a multishot recvmsg where the kernel has it), on the
 * 5.15 and 5.19 paths and on epoll (one recvmsg per await). */
#include <afe/coro.h>
#include <afe/recv_stream.h>
#include <afe/socket.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "io_helpers.h"

enum { DATAGRAMS = 40, BUFFERS = 4, SIZE = 200, LONG_ONE = 17, LONG_LEN = 300 };

/* Datagram i's length: 0 for every seventh, LONG_LEN for LONG_ONE. */
static size_t length_of(unsigned i)
{
	return i == LONG_ONE ? LONG_LEN : (size_t)(i % 7) * 23;
}

static void fill(unsigned char *buf, unsigned i, size_t len)
{
	for (size_t k = 0; k < len; k++)
		buf[k] = (unsigned char)(i * 37 + k);
}

/* A UDP socket connected to the port fd is bound to on 127.0.0.1. */
static int udp_peer_of(int fd)
{
	struct sockaddr_storage to;
	socklen_t tolen;
	cr_assert_eq(afe_sockaddr_ip("127.0.0.1", (uint16_t)afe_tcp_local_port(fd), &to, &tolen), 0);
	int peer = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	cr_assert_geq(peer, 0);
	cr_assert_eq(connect(peer, (struct sockaddr *)&to, tolen), 0);
	return peer;
}

struct reading {
	int fd;
	uint16_t senders[2]; /* datagram i came from senders[i % 2] */
	unsigned got, wrong, truncated_at;
	intptr_t error;
};

/* Reads DATAGRAMS datagrams, checking each and echoing it to its sender,
 * sleeping a millisecond every eight so that the queue outgrows the
 * buffers. */
static intptr_t read_datagrams(void *arg)
{
	struct reading *r = arg;
	struct afe_recv_stream s;
	int err = afe_recv_stream_init_datagrams(&s, r->fd, BUFFERS, SIZE);
	if (err < 0)
		return err;
	unsigned char want[LONG_LEN];
	while (r->got < DATAGRAMS) {
		intptr_t n = afe_co_await(afe_recv_stream_next(&s));
		if (n < 0) {
			r->error = n;
			break;
		}
		unsigned i = r->got++;
		size_t len = length_of(i), given = len < SIZE ? len : SIZE;
		const struct sockaddr_in *from = (const struct sockaddr_in *)&s.from;
		fill(want, i, given);
		if ((size_t)n != given || memcmp(s.data, want, given) != 0 ||
		    s.from_len != sizeof(*from) || ntohs(from->sin_port) != r->senders[i % 2])
			r->wrong++;
		if (s.truncated)
			r->truncated_at = i;
		if (afe_co_sendto(r->fd, s.data, (size_t)n, 0, (struct sockaddr *)&s.from,
				  s.from_len) != n)
			r->wrong++;
		if (r->got % 8 == 0 && afe_co_sleep(1000000) < 0)
			return -1;
	}
	if (afe_co_await(afe_recv_stream_stop(&s)) != 0)
		return -1;
	afe_recv_stream_destroy(&s);
	return 0;
}

Test(recv_datagrams, every_datagram_comes_with_its_sender_even_past_every_buffer)
{
	struct afe_runtime *rt = test_runtime(2);
	int server = afe_udp_bind("127.0.0.1", 0);
	cr_assert_geq(server, 0);
	int peer[2] = {udp_peer_of(server), udp_peer_of(server)};
	struct reading r = {.fd = server,
			    .senders = {(uint16_t)afe_tcp_local_port(peer[0]),
					(uint16_t)afe_tcp_local_port(peer[1])}};
	unsigned char buf[LONG_LEN];
	for (unsigned i = 0; i < DATAGRAMS; i++) { /* all queued before the first await */
		fill(buf, i, length_of(i));
		cr_assert_eq(send(peer[i % 2], buf, length_of(i), 0), (ssize_t)length_of(i));
	}
	cr_assert_eq(test_block_on_coro(rt, read_datagrams, &r), 0);
	cr_assert_eq(r.error, 0);
	cr_assert_eq(r.got, DATAGRAMS);
	cr_assert_eq(r.wrong, 0);
	cr_assert_eq(r.truncated_at, LONG_ONE, "only the long one is truncated");
	for (int p = 0; p < 2; p++) { /* each sender got its own datagrams back */
		unsigned echoes = 0;
		while (recv(peer[p], buf, sizeof(buf), MSG_DONTWAIT) >= 0)
			echoes++;
		cr_assert_eq(echoes, DATAGRAMS / 2, "peer %d", p);
		close(peer[p]);
	}
	close(server);
	test_runtime_destroy(rt);
}

Test(recv_datagrams, a_bad_fd_a_pipe_or_a_bad_size_gives_its_error)
{
	struct afe_runtime *rt = test_runtime(1);
	struct reading bad = {.fd = -1};
	cr_assert_eq(test_block_on_coro(rt, read_datagrams, &bad), 0);
	cr_assert_eq(bad.error, -EBADF);
	int p[2];
	cr_assert_eq(pipe(p), 0);
	struct reading piped = {.fd = p[0]};
	cr_assert_eq(test_block_on_coro(rt, read_datagrams, &piped), 0);
	cr_assert_eq(piped.error, -ENOTSOCK);
	close(p[0]);
	close(p[1]);
	struct afe_recv_stream s;
	cr_assert_eq(afe_recv_stream_init_datagrams(&s, 0, 3, 64), -EINVAL);
	cr_assert_eq(afe_recv_stream_init_datagrams(&s, 0, 4, (1u << 20) + 1), -EINVAL);
	afe_recv_stream_destroy(&s);
	test_runtime_destroy(rt);
}

enum { QUEUED = 200 }; /* more than TEST_POLL_BUDGET */

struct draining {
	int fd;
	atomic_bool other_ran;
	bool other_ran_first;
	unsigned got;
};

/* Takes the first datagram, waits for the rest to be queued in the
 * stream, spawns a task behind itself, then takes the rest: QUEUED - 1
 * datagrams that need no wait, more than one poll's budget. */
static intptr_t drain(void *arg)
{
	struct draining *d = arg;
	struct afe_recv_stream s;
	if (afe_recv_stream_init_datagrams(&s, d->fd, 256, 64) < 0)
		return -1;
	intptr_t n = afe_co_await(afe_recv_stream_next(&s));
	if (n >= 0 && afe_co_sleep(50000000) == 0) {
		struct mark_ran other = {.ran = &d->other_ran};
		afe_future_init(&other.base, mark_ran_poll);
		struct afe_join_handle h;
		if (afe_spawn(NULL, &other, &h) < 0)
			return -1;
		for (d->got = 1; d->got < QUEUED; d->got++)
			if ((n = afe_co_await(afe_recv_stream_next(&s))) < 0)
				break;
		d->other_ran_first = atomic_load(&d->other_ran);
		struct afe_join join;
		afe_join_init(&join, &h);
		afe_co_await(&join.base);
	}
	if (afe_co_await(afe_recv_stream_stop(&s)) != 0)
		return -1;
	afe_recv_stream_destroy(&s);
	return n < 0 ? n : 0;
}

/* On one worker: a stream's datagrams that need no wait still let the
 * worker's other tasks run, as a loop of cached file reads does. Through
 * the ring one by one (5.15, epoll) each await waits, which lets them run
 * anyway. */
Test(recv_datagrams, a_stream_that_never_runs_dry_lets_other_tasks_run)
{
	struct afe_runtime *rt = test_runtime(1);
	int server = afe_udp_bind("127.0.0.1", 0);
	cr_assert_geq(server, 0);
	int peer = udp_peer_of(server);
	for (unsigned i = 0; i < QUEUED; i++) /* the socket holds 256 of these */
		cr_assert_eq(send(peer, "x", 1, 0), 1);
	struct draining d = {.fd = server};
	cr_assert_eq(test_block_on_coro(rt, drain, &d), 0);
	cr_assert_eq(d.got, QUEUED);
	cr_assert(d.other_ran_first, "the task behind ran before the %d-th datagram", QUEUED);
	close(peer);
	close(server);
	test_runtime_destroy(rt);
}

struct refused {
	int fd, connected; /* a datagram waits on fd; connected's peer is gone */
	ssize_t first, after_datagram, next, two_parts;
};

/* Sends to a closed port (the ICMP reply leaves ECONNREFUSED on the
 * socket), then takes a datagram from a stream and sends again at once:
 * that send reports the error, and the one after it goes out; then a
 * message of two buffers goes back to the datagram's sender. */
static intptr_t send_after_refusal(void *arg)
{
	struct refused *r = arg;
	struct afe_recv_stream s;
	if (afe_recv_stream_init_datagrams(&s, r->fd, 4, 64) < 0)
		return -1;
	r->first = afe_co_sendto(r->connected, "a", 1, 0, NULL, 0);
	if (afe_co_sleep(20000000) < 0) /* the ICMP reply comes back */
		return -1;
	intptr_t n = afe_co_await(afe_recv_stream_next(&s));
	r->after_datagram = afe_co_sendto(r->connected, "b", 1, 0, NULL, 0);
	r->next = afe_co_sendto(r->connected, "c", 1, 0, NULL, 0);
	/* And a message of two buffers back to the datagram's sender. */
	struct iovec parts[2] = {{.iov_base = "he", .iov_len = 2}, {.iov_base = "llo", .iov_len = 3}};
	struct msghdr msg = {.msg_name = &s.from, .msg_namelen = s.from_len, .msg_iov = parts,
			     .msg_iovlen = 2};
	r->two_parts = afe_co_sendmsg(r->fd, &msg, 0);
	if (afe_co_await(afe_recv_stream_stop(&s)) != 0)
		return -1;
	afe_recv_stream_destroy(&s);
	return n;
}

Test(recv_datagrams, sends_after_a_datagram_report_a_refused_destination_once_and_send_whole)
{
	struct afe_runtime *rt = test_runtime(1);
	int server = afe_udp_bind("127.0.0.1", 0);
	cr_assert_geq(server, 0);
	int gone = afe_udp_bind("127.0.0.1", 0);
	cr_assert_geq(gone, 0);
	int connected = udp_peer_of(gone);
	close(gone); /* nothing listens on its port now */
	int peer = udp_peer_of(server);
	cr_assert_eq(send(peer, "x", 1, 0), 1);
	struct refused r = {.fd = server, .connected = connected};
	cr_assert_eq(test_block_on_coro(rt, send_after_refusal, &r), 1);
	cr_assert_eq(r.first, 1);
	cr_assert_eq(r.after_datagram, -ECONNREFUSED);
	cr_assert_eq(r.next, 1, "the error was reported once");
	cr_assert_eq(r.two_parts, 5);
	char got[8] = {0};
	cr_assert_eq(recv(peer, got, sizeof(got), MSG_DONTWAIT), 5);
	cr_assert_eq(memcmp(got, "hello", 6), 0);
	close(peer);
	close(connected);
	close(server);
	test_runtime_destroy(rt);
}
