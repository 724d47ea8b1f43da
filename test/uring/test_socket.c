/* SPDX-License-Identifier: MIT */
/* UDP and Unix sockets (afe/socket.h), sendmsg/recvmsg and shutdown. */
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
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
	cr_assert_eq(afe_unix_listen(NULL, SOCK_STREAM, 0), -EINVAL);
	cr_assert_eq(afe_unix_listen("", SOCK_DGRAM, 0), -EINVAL);
	/* Nowhere to write the address: refused, not a crash. */
	cr_assert_eq(afe_sockaddr_ip(NULL, 1, NULL, &len), -EINVAL);
	cr_assert_eq(afe_sockaddr_ip(NULL, 1, &ss, NULL), -EINVAL);
	cr_assert_eq(afe_sockaddr_unix(NULL, &un, &len), -EINVAL);
	cr_assert_eq(afe_sockaddr_unix("/tmp/x", NULL, &len), -EINVAL);
	cr_assert_eq(afe_sockaddr_unix("/tmp/x", &un, NULL), -EINVAL);
	/* An address longer than any is refused, however much longer (the
	 * kernel's sendmsg cuts a length up to INT_MAX to sockaddr_storage's,
	 * and sent the datagram), and nothing is sent. */
	struct afe_runtime *rt = test_runtime(1);
	int fd = afe_udp_bind(NULL, 0), sink = afe_udp_bind(NULL, 0);
	cr_assert_eq(afe_sockaddr_ip(NULL, (uint16_t)afe_tcp_local_port(sink), &ss, &len), 0);
	socklen_t too_long[] = {sizeof(ss) + 1, 100000, (socklen_t)INT32_MAX, (socklen_t)-1};
	for (size_t i = 0; i < sizeof(too_long) / sizeof(too_long[0]); i++) {
		struct afe_sendto tx;
		afe_sendto_init(&tx, fd, "x", 1, 0, (struct sockaddr *)&ss, too_long[i]);
		cr_assert_eq(test_block_on(rt, &tx.io), -EINVAL, "tolen %u", (unsigned)too_long[i]);
	}
	char got;
	cr_assert_eq(recv(sink, &got, 1, MSG_DONTWAIT), -1, "nothing was sent");
	cr_assert_eq(errno, EAGAIN);
	struct afe_sendto tx;
	afe_sendto_init(&tx, fd, "x", 1, 0, (struct sockaddr *)&ss, len);
	cr_assert_eq(test_block_on(rt, &tx.io), 1, "the right length sends");
	static char oversized[70000]; /* past UDP's 65507 bytes of payload */
	afe_sendto_init(&tx, fd, oversized, sizeof(oversized), 0, (struct sockaddr *)&ss, len);
	cr_assert_eq(test_block_on(rt, &tx.io), -EMSGSIZE);
	/* A port in use: bind's errno. */
	cr_assert_eq(afe_udp_bind(NULL, (uint16_t)afe_tcp_local_port(sink)), -EADDRINUSE);
	close(fd);
	close(sink);
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

/* sun_path holds 108 bytes: a path of 107 and its NUL, or an abstract
 * name of 107 after its leading NUL (the '@'); one more is too long. */
Test(socket, unix_names_fill_sun_path_and_one_byte_more_is_enametoolong)
{
	struct sockaddr_un un;
	socklen_t len;
	char name[110];
	memset(name, 'x', sizeof(name));
	name[107] = '\0';
	cr_assert_eq(afe_sockaddr_unix(name, &un, &len), 0);
	cr_assert_eq(len, offsetof(struct sockaddr_un, sun_path) + 108);
	name[107] = 'x';
	name[108] = '\0';
	cr_assert_eq(afe_sockaddr_unix(name, &un, &len), -ENAMETOOLONG);
	name[0] = '@';
	cr_assert_eq(afe_sockaddr_unix(name, &un, &len), 0);
	cr_assert_eq(len, offsetof(struct sockaddr_un, sun_path) + 108);
	cr_assert_eq(un.sun_path[0], '\0');
	name[108] = 'x';
	name[109] = '\0';
	cr_assert_eq(afe_sockaddr_unix(name, &un, &len), -ENAMETOOLONG);
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
