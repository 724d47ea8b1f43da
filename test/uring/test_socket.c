/* SPDX-License-Identifier: MIT */
/* UDP and Unix sockets (afe/socket.h), sendmsg/recvmsg and shutdown. */
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "helpers.h"

Test(socket, udp_datagrams_travel_with_their_addresses)
{
	struct afe_runtime *rt = test_runtime(1);
	int a = afe_udp_bind("127.0.0.1", 0), b = afe_udp_bind(NULL, 0);
	cr_assert_geq(a, 0);
	cr_assert_geq(b, 0);
	struct sockaddr_storage to;
	socklen_t tolen;
	cr_assert_eq(afe_sockaddr_ip("127.0.0.1", (uint16_t)afe_tcp_local_port(b), &to, &tolen), 0);
	struct afe_sendto tx;
	afe_sendto_init(&tx, a, "datagram", 8, 0, (struct sockaddr *)&to, tolen);
	cr_assert_eq(test_block_on(rt, &tx.io), 8);
	char buf[4];
	struct afe_recvfrom rx;
	afe_recvfrom_init(&rx, b, buf, sizeof(buf), 0);
	cr_assert_eq(test_block_on(rt, &rx.io), 4, "a short buffer takes what fits");
	cr_assert(rx.msg.msg_flags & MSG_TRUNC);
	cr_assert_eq(memcmp(buf, "data", 4), 0);
	cr_assert_eq(((struct sockaddr_in *)&rx.from)->sin_port,
		     htons((uint16_t)afe_tcp_local_port(a)), "the sender's address");
	close(a);
	close(b);
	test_runtime_destroy(rt);
}

/* Binds two UDP sockets on loopback: *a sends to *b at *to. */
static void udp_pair(int *a, int *b, struct sockaddr_storage *to, socklen_t *tolen)
{
	*a = afe_udp_bind("127.0.0.1", 0);
	*b = afe_udp_bind(NULL, 0);
	cr_assert_geq(*a, 0);
	cr_assert_geq(*b, 0);
	cr_assert_eq(afe_sockaddr_ip("127.0.0.1", (uint16_t)afe_tcp_local_port(*b), to, tolen), 0);
}

/* Polls a sendto or recvfrom: records whether its first poll ended it,
 * and at that first poll, when it did not, sends late (a datagram the
 * receive then waits for). */
struct message_once {
	struct afe_future base;
	struct afe_io *io;
	bool *ready_at_first_poll; /* the test's: the future runs as a copy */
	int polls;
	int late_from;		   /* -1: nothing */
	const struct sockaddr *late_to;
	socklen_t late_tolen;
};

static int message_once_poll(struct afe_future *f, struct afe_context *cx)
{
	struct message_once *self = afe_container_of(f, struct message_once, base);
	int ready = afe_future_poll(&self->io->base, cx);
	if (self->polls++ == 0) {
		*self->ready_at_first_poll = ready == AFE_READY;
		if (ready == AFE_PENDING && self->late_from >= 0)
			cr_assert_eq(sendto(self->late_from, "late", 4, 0, self->late_to,
					    self->late_tolen), 4);
	}
	if (ready == AFE_PENDING)
		return AFE_PENDING;
	f->result = self->io->base.result;
	return AFE_READY;
}

/* A datagram already queued is taken at the receive's first poll, on the
 * worker, with its sender and MSG_TRUNC as through the ring; a send ends
 * at its first poll too. A receive that finds nothing goes to the ring
 * and gets the datagram sent after it. */
Test(socket, a_queued_datagram_is_taken_at_the_first_poll_and_a_later_one_through_the_ring)
{
	struct afe_runtime *rt = test_runtime(1);
	int a, b;
	struct sockaddr_storage to;
	socklen_t tolen;
	udp_pair(&a, &b, &to, &tolen);
	bool first;
	struct afe_sendto tx;
	afe_sendto_init(&tx, a, "queued", 6, 0, (struct sockaddr *)&to, tolen);
	struct message_once m = {.io = &tx.io, .ready_at_first_poll = &first, .late_from = -1};
	afe_future_init(&m.base, message_once_poll);
	cr_assert_eq(test_block_on(rt, &m), 6);
	cr_assert(first, "a send with room ends at its first poll");

	/* Loopback may hand the datagram over in a softirq after the send
	 * returned (under load, on ksoftirqd): wait until it is queued. */
	struct pollfd readable = {.fd = b, .events = POLLIN};
	cr_assert_eq(poll(&readable, 1, 10000), 1);
	char buf[4];
	struct afe_recvfrom rx;
	afe_recvfrom_init(&rx, b, buf, sizeof(buf), 0);
	m = (struct message_once){.io = &rx.io, .ready_at_first_poll = &first, .late_from = -1};
	afe_future_init(&m.base, message_once_poll);
	cr_assert_eq(test_block_on(rt, &m), 4);
	cr_assert(first, "a queued datagram is taken at the first poll");
	cr_assert(rx.msg.msg_flags & MSG_TRUNC);
	cr_assert_eq(memcmp(buf, "queu", 4), 0);
	cr_assert_eq(((struct sockaddr_in *)&rx.from)->sin_port,
		     htons((uint16_t)afe_tcp_local_port(a)), "the sender's address");

	afe_recvfrom_init(&rx, b, buf, sizeof(buf), 0);
	m = (struct message_once){.io = &rx.io, .ready_at_first_poll = &first, .late_from = a,
				  .late_to = (struct sockaddr *)&to, .late_tolen = tolen};
	afe_future_init(&m.base, message_once_poll);
	cr_assert_eq(test_block_on(rt, &m), 4);
	cr_assert_not(first, "nothing was queued: the receive went to the ring");
	cr_assert_eq(memcmp(buf, "late", 4), 0);
	close(a);
	close(b);
	test_runtime_destroy(rt);
}

enum { QUEUED_DATAGRAMS = 150 };

/* Notes that it ran. */
struct mark_ran {
	struct afe_future base;
	atomic_bool *ran;
};

static int mark_ran_poll(struct afe_future *f, struct afe_context *cx)
{
	(void)cx;
	atomic_store(afe_container_of(f, struct mark_ran, base)->ran, true);
	f->result = 0;
	return AFE_READY;
}

/* Spawns a mark_ran behind itself on its worker, then receives
 * QUEUED_DATAGRAMS datagrams; returns how many times it was polled when
 * the other task had run before the last datagram came, else 0. */
struct receive_all {
	struct afe_future base;
	int fd, got, polls;
	atomic_bool other_ran;
	bool other_ran_first;
	struct mark_ran other;
	struct afe_join_handle other_handle;
	struct afe_join join;
	char buf[8];
	struct afe_recvfrom rx;
};

static int receive_all_poll(struct afe_future *f, struct afe_context *cx)
{
	struct receive_all *self = afe_container_of(f, struct receive_all, base);
	self->polls++;
	AFE_ASYNC_BEGIN(f, cx);
	self->other = (struct mark_ran){.ran = &self->other_ran};
	afe_future_init(&self->other.base, mark_ran_poll);
	if (afe_spawn(NULL, &self->other, &self->other_handle) < 0)
		AFE_RETURN(-ENOMEM);
	for (self->got = 0; self->got < QUEUED_DATAGRAMS; self->got++) {
		afe_recvfrom_init(&self->rx, self->fd, self->buf, sizeof(self->buf), 0);
		AFE_AWAIT(&self->rx.io.base);
		if (self->rx.io.base.result != 1)
			AFE_RETURN(self->rx.io.base.result < 0 ? self->rx.io.base.result : -EIO);
	}
	self->other_ran_first = atomic_load(&self->other_ran);
	afe_join_init(&self->join, &self->other_handle);
	AFE_AWAIT(&self->join.base);
	AFE_RETURN(self->other_ran_first ? self->polls : 0);
	AFE_ASYNC_END;
}

/* Receives that all end on the worker (every datagram already queued)
 * still let the worker's other tasks run: every so many, the receiving
 * task goes to the back of the queue. */
Test(socket, a_loop_of_receives_that_end_at_once_lets_other_tasks_run)
{
	struct afe_runtime *rt = test_runtime(1);
	int a, b;
	struct sockaddr_storage to;
	socklen_t tolen;
	udp_pair(&a, &b, &to, &tolen);
	for (int i = 0; i < QUEUED_DATAGRAMS; i++)
		cr_assert_eq(sendto(a, "d", 1, 0, (struct sockaddr *)&to, tolen), 1);
	struct receive_all r = {.fd = b};
	afe_future_init(&r.base, receive_all_poll);
	intptr_t polls = test_block_on(rt, &r);
	cr_assert_neq(polls, 0, "the other task ran while datagrams were still queued");
	cr_assert_geq(polls, 1 + QUEUED_DATAGRAMS / 64, "the receiving task gave way each 64");
	close(a);
	close(b);
	test_runtime_destroy(rt);
}

Test(socket, bad_addresses_get_clear_errors)
{
	struct sockaddr_storage ss;
	socklen_t len;
	cr_assert_eq(afe_sockaddr_ip("not-an-address", 1, &ss, &len), -EINVAL);
	cr_assert_eq(afe_udp_bind("localhost", 0), -EINVAL);
	char longest[200];
	memset(longest, 'x', sizeof(longest) - 1);
	longest[sizeof(longest) - 1] = 0;
	struct sockaddr_un un;
	cr_assert_eq(afe_sockaddr_unix(longest, &un, &len), -ENAMETOOLONG);
	cr_assert_eq(afe_sockaddr_unix("", &un, &len), -EINVAL);
	cr_assert_eq(afe_unix_listen(longest, SOCK_STREAM, 0), -ENAMETOOLONG);
	cr_assert_eq(afe_unix_listen("/tmp/x", SOCK_RAW, 0), -EINVAL);
	/* An address longer than any: the kernel refuses it. */
	struct afe_runtime *rt = test_runtime(1);
	int fd = afe_udp_bind(NULL, 0);
	struct afe_sendto tx;
	afe_sendto_init(&tx, fd, "x", 1, 0, (struct sockaddr *)&ss, sizeof(ss) + 1);
	cr_assert_eq(test_block_on(rt, &tx.io), -EINVAL);
	close(fd);
	struct afe_io sh;
	afe_io_shutdown_init(&sh, -1, SHUT_WR);
	cr_assert_eq(test_block_on(rt, &sh), -EBADF);
	test_runtime_destroy(rt);
}

/* Listens on path, connects through the ring, accepts through the ring,
 * and passes a few bytes each way. */
static void unix_stream_round_trip(struct afe_runtime *rt, const char *path)
{
	int l = afe_unix_listen(path, SOCK_STREAM, 0);
	cr_assert_geq(l, 0, "listen %s: %d", path, l);
	struct sockaddr_un addr;
	socklen_t len;
	cr_assert_eq(afe_sockaddr_unix(path, &addr, &len), 0);
	int c = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	struct afe_io io;
	afe_io_connect_init(&io, c, (struct sockaddr *)&addr, len);
	cr_assert_eq(test_block_on(rt, &io), 0);
	afe_io_accept_init(&io, l, NULL, NULL, SOCK_CLOEXEC);
	int s = (int)test_block_on(rt, &io);
	cr_assert_geq(s, 0);
	afe_io_send_init(&io, c, "ping", 4, 0);
	cr_assert_eq(test_block_on(rt, &io), 4);
	char buf[8];
	afe_io_recv_init(&io, s, buf, sizeof(buf), 0);
	cr_assert_eq(test_block_on(rt, &io), 4);
	cr_assert_eq(memcmp(buf, "ping", 4), 0);
	close(s);
	close(c);
	close(l);
}

Test(socket, unix_stream_sockets_by_path_and_by_abstract_name)
{
	struct afe_runtime *rt = test_runtime(1);
	char path[64];
	snprintf(path, sizeof(path), "/tmp/afe-test-%d.sock", (int)getpid());
	unlink(path);
	unix_stream_round_trip(rt, path);
	cr_assert_eq(afe_unix_listen(path, SOCK_STREAM, 0), -EADDRINUSE, "a file left behind");
	unlink(path);
	snprintf(path, sizeof(path), "@afe-test-%d", (int)getpid());
	unix_stream_round_trip(rt, path);
	test_runtime_destroy(rt);
}

Test(socket, unix_datagrams_by_path)
{
	struct afe_runtime *rt = test_runtime(1);
	char path[64];
	snprintf(path, sizeof(path), "@afe-test-dgram-%d", (int)getpid());
	int server = afe_unix_listen(path, SOCK_DGRAM, 0);
	cr_assert_geq(server, 0);
	int client = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	struct sockaddr_un to;
	socklen_t tolen;
	cr_assert_eq(afe_sockaddr_unix(path, &to, &tolen), 0);
	struct afe_sendto tx;
	afe_sendto_init(&tx, client, "hello", 5, 0, (struct sockaddr *)&to, tolen);
	cr_assert_eq(test_block_on(rt, &tx.io), 5);
	char buf[16];
	struct afe_recvfrom rx;
	afe_recvfrom_init(&rx, server, buf, sizeof(buf), 0);
	cr_assert_eq(test_block_on(rt, &rx.io), 5);
	cr_assert_eq(memcmp(buf, "hello", 5), 0);
	close(client);
	close(server);
	test_runtime_destroy(rt);
}

Test(socket, an_fd_passes_over_a_unix_socket_with_scm_rights)
{
	struct afe_runtime *rt = test_runtime(1);
	int sv[2], p[2];
	cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
	cr_assert_eq(pipe(p), 0);
	union {
		char buf[CMSG_SPACE(sizeof(int))];
		struct cmsghdr align;
	} control;
	memset(&control, 0, sizeof(control));
	char byte = 'f';
	struct iovec iov = {.iov_base = &byte, .iov_len = 1};
	struct msghdr msg = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = control.buf,
			     .msg_controllen = sizeof(control.buf)};
	struct cmsghdr *c = CMSG_FIRSTHDR(&msg);
	c->cmsg_level = SOL_SOCKET;
	c->cmsg_type = SCM_RIGHTS;
	c->cmsg_len = CMSG_LEN(sizeof(int));
	memcpy(CMSG_DATA(c), &p[1], sizeof(int));
	struct afe_io io;
	afe_io_sendmsg_init(&io, sv[0], &msg, 0);
	cr_assert_eq(test_block_on(rt, &io), 1);

	memset(&control, 0, sizeof(control));
	struct msghdr in = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = control.buf,
			    .msg_controllen = sizeof(control.buf)};
	afe_io_recvmsg_init(&io, sv[1], &in, MSG_CMSG_CLOEXEC);
	cr_assert_eq(test_block_on(rt, &io), 1);
	c = CMSG_FIRSTHDR(&in);
	cr_assert_not_null(c);
	cr_assert_eq(c->cmsg_type, SCM_RIGHTS);
	int passed;
	memcpy(&passed, CMSG_DATA(c), sizeof(int));
	cr_assert_neq(passed, p[1], "a new descriptor for the same pipe");
	cr_assert_eq(write(passed, "!", 1), 1);
	char got;
	cr_assert_eq(read(p[0], &got, 1), 1);
	cr_assert_eq(got, '!');
	close(passed);
	close(p[0]);
	close(p[1]);
	close(sv[0]);
	close(sv[1]);
	test_runtime_destroy(rt);
}

Test(socket, shutdown_half_closes_a_stream)
{
	struct afe_runtime *rt = test_runtime(1);
	int sv[2];
	cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
	struct afe_io io;
	afe_io_shutdown_init(&io, sv[0], SHUT_WR);
	cr_assert_eq(test_block_on(rt, &io), 0);
	char buf[4];
	afe_io_recv_init(&io, sv[1], buf, sizeof(buf), 0);
	cr_assert_eq(test_block_on(rt, &io), 0, "end of file for the peer");
	afe_io_send_init(&io, sv[1], "back", 4, MSG_NOSIGNAL);
	cr_assert_eq(test_block_on(rt, &io), 4, "the peer can still send");
	afe_io_recv_init(&io, sv[0], buf, sizeof(buf), 0);
	cr_assert_eq(test_block_on(rt, &io), 4);
	close(sv[0]);
	close(sv[1]);
	test_runtime_destroy(rt);
}
