/* SPDX-License-Identifier: MIT */
/* afe_tcp_connect: by address literal and by name, each address of a name
 * tried in turn, refused ports, bad arguments, and a cancel that leaves
 * no socket open. */
#define _GNU_SOURCE /* unshare */
#include <arpa/inet.h>
#include <sched.h>
#include <stdio.h>
#include <sys/mount.h>
#include <sys/wait.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "afe/net.h"
#include "afe/timeout.h"
#include "helpers.h"

/* The open fds of this process. */
static int fd_count(void)
{
	return test_dir_entries("/proc/self/fd");
}

/* A port nobody listens on: one that was bound a moment ago. */
static uint16_t closed_port(void)
{
	int fd = afe_tcp_listen("127.0.0.1", 0, 1);
	cr_assert_geq(fd, 0);
	int port = afe_tcp_local_port(fd);
	close(fd);
	return (uint16_t)port;
}

static intptr_t connect_to(struct afe_runtime *rt, const char *host, uint16_t port)
{
	struct afe_tcp_connect c;
	afe_tcp_connect_init(&c, host, port);
	return test_block_on(rt, &c);
}

/* Whether fd's peer is 127.0.0.1:port. */
static bool peer_is_loopback_v4(int fd, int port)
{
	struct sockaddr_in a;
	socklen_t len = sizeof(a);
	return getpeername(fd, (struct sockaddr *)&a, &len) == 0 && a.sin_family == AF_INET &&
	       a.sin_addr.s_addr == htonl(INADDR_LOOPBACK) && ntohs(a.sin_port) == port;
}

/* The connection works both ways: fd's bytes reach the listener's
 * accepted socket and back. */
static void check_connected(int fd, int listen_fd)
{
	int peer = accept(listen_fd, NULL, NULL);
	cr_assert_geq(peer, 0);
	char got[3] = {0};
	cr_assert_eq(write(fd, "hi", 2), 2);
	cr_assert_eq(read(peer, got, 2), 2);
	cr_assert(strcmp(got, "hi") == 0);
	cr_assert_eq(write(peer, "yo", 2), 2);
	cr_assert_eq(read(fd, got, 2), 2);
	cr_assert(strcmp(got, "yo") == 0);
	close(peer);
}

Test(connect, an_address_literal_connects_without_a_resolver)
{
	struct afe_runtime *rt = test_runtime(2);
	int listen_fd = afe_tcp_listen("127.0.0.1", 0, 0);
	int port = afe_tcp_local_port(listen_fd);
	intptr_t fd = connect_to(rt, "127.0.0.1", (uint16_t)port);
	cr_assert_geq(fd, 0, "connect: %d", (int)fd);
	cr_assert(peer_is_loopback_v4((int)fd, port));
	int nodelay = 0;
	socklen_t len = sizeof(nodelay);
	cr_assert_eq(getsockopt((int)fd, IPPROTO_TCP, TCP_NODELAY, &nodelay, &len), 0);
	cr_assert(nodelay, "TCP_NODELAY is set");
	check_connected((int)fd, listen_fd);
	close((int)fd);
	/* NULL is 127.0.0.1, as for afe_tcp_listen. */
	fd = connect_to(rt, NULL, (uint16_t)port);
	cr_assert_geq(fd, 0, "connect: %d", (int)fd);
	check_connected((int)fd, listen_fd);
	close((int)fd);
	/* So is the empty name. */
	fd = connect_to(rt, "", (uint16_t)port);
	cr_assert_geq(fd, 0, "connect: %d", (int)fd);
	cr_assert(peer_is_loopback_v4((int)fd, port));
	check_connected((int)fd, listen_fd);
	close((int)fd);
	close(listen_fd);
	test_runtime_destroy(rt);
}

enum { SKIP = 77 };

/* The child of each_address_of_a_name_is_tried_in_turn: in a mount
 * namespace of its own, /etc/hosts gives "two-addresses" 127.0.0.1 and
 * 127.0.0.2, and only 127.0.0.2:port listens. Exit 0 when the connect
 * got there, SKIP where the namespace or the order cannot be had, else
 * what failed. */
static int connect_past_a_refused_address(int port)
{
	char path[64];
	snprintf(path, sizeof(path), "/tmp/afe-test-hosts-%d", (int)getpid());
	FILE *f = fopen(path, "w");
	if (!f || fputs("127.0.0.1 two-addresses\n127.0.0.2 two-addresses\n", f) < 0 || fclose(f))
		return 2;
	bool private = unshare(CLONE_NEWNS) == 0 &&
		       mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) == 0 &&
		       mount(path, "/etc/hosts", NULL, MS_BIND, NULL) == 0;
	unlink(path);
	if (!private)
		return SKIP;
	struct addrinfo hints = {.ai_socktype = SOCK_STREAM}, *list = NULL;
	if (getaddrinfo("two-addresses", "1", &hints, &list) != 0)
		return SKIP;
	const struct sockaddr_in *first = (const struct sockaddr_in *)list->ai_addr;
	bool order = list->ai_next && first->sin_addr.s_addr == htonl(INADDR_LOOPBACK);
	freeaddrinfo(list);
	if (!order)
		return SKIP; /* the resolver put 127.0.0.2 first: nothing to try in turn */
	struct afe_runtime_config config;
	afe_runtime_config_default(&config);
	config.workers = 1;
	struct afe_runtime *rt = NULL;
	if (afe_runtime_create(&rt, &config) < 0)
		return 3;
	struct afe_tcp_connect c;
	afe_tcp_connect_init(&c, "two-addresses", (uint16_t)port);
	intptr_t fd = 0;
	if (afe_block_on(rt, &c, &fd) < 0 || fd < 0)
		return 4;
	struct sockaddr_in peer;
	socklen_t len = sizeof(peer);
	bool second = getpeername((int)fd, (struct sockaddr *)&peer, &len) == 0 &&
		      peer.sin_addr.s_addr == htonl(INADDR_LOOPBACK + 1);
	close((int)fd);
	afe_runtime_destroy(rt);
	return second ? 0 : 5;
}

Test(connect, each_address_of_a_name_is_tried_in_turn)
{
	int listen_fd = afe_tcp_listen("127.0.0.2", 0, 0);
	cr_assert_geq(listen_fd, 0);
	int port = afe_tcp_local_port(listen_fd);
	pid_t child = fork();
	cr_assert_geq(child, 0);
	if (child == 0)
		_exit(connect_past_a_refused_address(port));
	int status;
	cr_assert_eq(waitpid(child, &status, 0), child);
	close(listen_fd);
	cr_assert(WIFEXITED(status), "child status %#x", status);
	if (WEXITSTATUS(status) == SKIP)
		cr_skip_test("no private /etc/hosts here, or a resolver that orders otherwise");
	cr_assert_eq(WEXITSTATUS(status), 0,
		     "2: no hosts file, 3: no runtime, 4: no connect, 5: the wrong peer");
}

/* Resolved through the system's resolver ("localhost" from /etc/hosts). */
Test(connect, a_name_is_resolved)
{
	struct addrinfo hints = {.ai_socktype = SOCK_STREAM}, *list = NULL;
	if (getaddrinfo("localhost", "1", &hints, &list) != 0)
		cr_skip_test("localhost does not resolve here");
	freeaddrinfo(list);
	struct afe_runtime *rt = test_runtime(2);
	int listen_fd = afe_tcp_listen("127.0.0.1", 0, 0);
	int port = afe_tcp_local_port(listen_fd);
	int before = fd_count();
	intptr_t fd = connect_to(rt, "localhost", (uint16_t)port);
	cr_assert_geq(fd, 0, "connect: %d", (int)fd);
	cr_assert(peer_is_loopback_v4((int)fd, port));
	cr_assert_eq(fd_count(), before + 1, "only the connected socket is left open");
	check_connected((int)fd, listen_fd);
	close((int)fd);
	close(listen_fd);
	test_runtime_destroy(rt);
}

Test(connect, a_port_nobody_listens_on_is_refused_and_leaves_no_socket)
{
	struct afe_runtime *rt = test_runtime(2);
	uint16_t port = closed_port();
	int before = fd_count();
	cr_assert_eq(connect_to(rt, "127.0.0.1", port), -ECONNREFUSED);
	cr_assert_eq(connect_to(rt, "::1", port) < 0, true); /* refused, or no IPv6 here */
	cr_assert_eq(connect_to(rt, "localhost", port), -ECONNREFUSED,
		     "the last address's error");
	cr_assert_eq(fd_count(), before);
	test_runtime_destroy(rt);
}

Test(connect, bad_arguments_are_einval)
{
	struct afe_runtime *rt = test_runtime(1);
	cr_assert_eq(connect_to(rt, "127.0.0.1", 0), -EINVAL, "port 0");
	char long_name[300];
	memset(long_name, 'a', sizeof(long_name) - 1);
	long_name[sizeof(long_name) - 1] = '\0';
	cr_assert_eq(connect_to(rt, long_name, 80), -EINVAL, "a name past 255 bytes");
	long_name[255] = '\0';
	cr_assert_neq(connect_to(rt, long_name, 80), -EINVAL, "255 bytes is a name (no host's)");
	test_runtime_destroy(rt);
}

/* A listener whose accept queue is full drops new SYNs, so a connect to it
 * waits; the timeout cancels it, and no socket is left open. */
Test(connect, a_cancelled_connect_leaves_no_socket)
{
	struct afe_runtime *rt = test_runtime(2);
	int listen_fd = afe_tcp_listen("127.0.0.1", 0, 1);
	int port = afe_tcp_local_port(listen_fd);
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port),
				.sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	int fillers[4];
	for (int i = 0; i < 4; i++) {
		fillers[i] = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
		connect(fillers[i], (struct sockaddr *)&a, sizeof(a)); /* EINPROGRESS */
	}
	usleep(50 * 1000); /* the queue fills */
	int before = fd_count();
	struct afe_tcp_connect c;
	afe_tcp_connect_init(&c, "127.0.0.1", (uint16_t)port);
	struct afe_timeout t;
	afe_timeout_init(&t, &c.base, 200 * 1000000ull);
	intptr_t r = test_block_on(rt, &t);
	cr_assert_eq(r, -ETIMEDOUT, "connect: %d", (int)r);
	cr_assert_eq(fd_count(), before, "the cancelled connect's socket is closed");
	for (int i = 0; i < 4; i++)
		close(fillers[i]);
	close(listen_fd);
	test_runtime_destroy(rt);
}

/* A name under .invalid never resolves (RFC 6761): -ENOENT, no socket
 * left; where no resolver answers at all, -EAGAIN instead (skipped). */
Test(connect, a_name_that_does_not_resolve_is_enoent)
{
	struct afe_runtime *rt = test_runtime(1);
	int before = fd_count();
	intptr_t r = connect_to(rt, "no-such-host.invalid", 80);
	int after = fd_count();
	test_runtime_destroy(rt);
	if (r == -EAGAIN)
		cr_skip_test("the resolver failed for now (-EAGAIN)");
	cr_assert_eq(r, -ENOENT);
	cr_assert_eq(after, before);
}
