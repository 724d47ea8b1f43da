/* SPDX-License-Identifier: MIT */
/* Stopping the TCP server with a token: idle connections cancelled at
 * once, a drain that every connection outlasts by finishing, a drain that
 * runs out, a token fired before the server starts, cancelling the server
 * itself, and no token at all (connections outlive the server). */
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdatomic.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "io_helpers.h"

/* What the connections of one server saw. */
struct probe {
	atomic_int started;   /* connections whose first receive is armed */
	atomic_int closed;    /* ended by the peer closing (receive gave 0) */
	atomic_int cancelled; /* ended by a receive that gave -ECANCELED */
};

/* A connection that waits for its peer to close. */
struct idle_conn {
	struct afe_future base;
	int fd;
	struct probe *probe;
	struct afe_io recv;
	char buf[16];
};

static int idle_conn_poll(struct afe_future *f, struct afe_context *cx)
{
	AFE_ASYNC_BEGIN_SELF(struct idle_conn, self, f, cx);
	afe_io_recv_init(&self->recv, self->fd, self->buf, sizeof(self->buf), 0);
	atomic_fetch_add(&self->probe->started, 1);
	AFE_AWAIT(&self->recv.base);
	AFE_RETURN(self->recv.base.result);
	AFE_CLEANUP;
	if (self->recv.base.result == 0)
		atomic_fetch_add(&self->probe->closed, 1);
	else if (self->recv.base.result == -ECANCELED)
		atomic_fetch_add(&self->probe->cancelled, 1);
	AFE_ASYNC_END;
}

static struct afe_future *idle_conn_init(void *conn, int fd, void *arg)
{
	struct idle_conn *c = conn;
	afe_future_init(&c->base, idle_conn_poll);
	c->fd = fd;
	c->probe = arg;
	return &c->base;
}

#define LONG_NS (30 * 1000000000ull) /* a bound only a hang reaches */

struct stop_server {
	int listen_fd, port;
	struct probe probe;
	struct afe_token *stop;
	struct afe_join_handle handle;
};

static void start(struct afe_runtime *rt, struct stop_server *s, bool with_token,
		  uint64_t drain_ns)
{
	memset(&s->probe, 0, sizeof(s->probe));
	s->stop = NULL;
	if (with_token)
		cr_assert_eq(afe_token_new(&s->stop), 0);
	s->listen_fd = afe_tcp_listen(NULL, 0, 0);
	cr_assert_geq(s->listen_fd, 0);
	s->port = afe_tcp_local_port(s->listen_fd);
	struct afe_tcp_server_config config = {
		.listen_fd = s->listen_fd,
		.conn_size = sizeof(struct idle_conn),
		.conn_init = idle_conn_init,
		.arg = &s->probe,
		.stop = s->stop,
		.drain_ns = drain_ns,
	};
	struct afe_tcp_server server;
	afe_tcp_server_init(&server, &config);
	cr_assert_eq(afe_spawn(rt, &server, &s->handle), 0);
}

/* A connected client, with a receive timeout so that a connection the
 * server forgot to close fails the test instead of hanging it. */
static int client(int port)
{
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	cr_assert_eq(connect(fd, (struct sockaddr *)&a, sizeof(a)), 0);
	struct timeval tv = {.tv_sec = 10};
	cr_assert_eq(setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv)), 0);
	return fd;
}

/* Waits (10 s at most) until *counter reaches n. */
static void wait_for(atomic_int *counter, int n, const char *what)
{
	for (int i = 0; i < 10000 && atomic_load(counter) < n; i++)
		usleep(1000);
	cr_assert_eq(atomic_load(counter), n, "%s", what);
}

/* The server's result, or -ETIMEDOUT when it runs on past a bound that
 * only a hang reaches. */
static intptr_t join_server(struct afe_runtime *rt, struct stop_server *s)
{
	struct afe_join j;
	cr_assert_eq(afe_join_init(&j, &s->handle), 0);
	struct afe_timeout t;
	afe_timeout_init(&t, &j.base, LONG_NS);
	return test_block_on(rt, &t);
}

/* The server closed the client's connection: the client reads the end. */
static void assert_closed_by_server(int fd)
{
	char c;
	cr_assert_eq(read(fd, &c, 1), 0, "the server closed the connection");
	close(fd);
}

static void finish(struct afe_runtime *rt, struct stop_server *s)
{
	cr_assert_eq(fcntl(s->listen_fd, F_GETFD) >= 0, true, "the listening fd is the user's");
	close(s->listen_fd);
	afe_token_release(s->stop);
	test_runtime_destroy(rt);
}

static uint64_t now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

Test(tcp_stop, the_token_cancels_idle_connections_at_once_with_no_drain, .timeout = 120)
{
	struct afe_runtime *rt = test_runtime(2);
	struct stop_server s;
	start(rt, &s, true, 0);
	int fds[3];
	for (int i = 0; i < 3; i++)
		fds[i] = client(s.port);
	wait_for(&s.probe.started, 3, "three connections run");
	cr_assert_eq(afe_token_cancel(s.stop), 0);
	cr_assert_eq(join_server(rt, &s), 3, "the server cancelled three connections");
	cr_assert_eq(atomic_load(&s.probe.cancelled), 3, "their receives gave -ECANCELED");
	for (int i = 0; i < 3; i++)
		assert_closed_by_server(fds[i]);
	finish(rt, &s);
}

Test(tcp_stop, connections_that_finish_within_the_drain_are_not_cancelled, .timeout = 120)
{
	struct afe_runtime *rt = test_runtime(2);
	struct stop_server s;
	start(rt, &s, true, LONG_NS);
	int fds[3];
	for (int i = 0; i < 3; i++)
		fds[i] = client(s.port);
	wait_for(&s.probe.started, 3, "three connections run");
	cr_assert_eq(afe_token_cancel(s.stop), 0);
	usleep(50 * 1000);
	cr_assert_not(afe_join_handle_is_finished(&s.handle), "the server drains");
	for (int i = 0; i < 3; i++)
		close(fds[i]);
	cr_assert_eq(join_server(rt, &s), 0, "none cancelled");
	cr_assert_eq(atomic_load(&s.probe.closed), 3);
	cr_assert_eq(atomic_load(&s.probe.cancelled), 0);
	finish(rt, &s);
}

Test(tcp_stop, connections_still_open_when_the_drain_runs_out_are_cancelled, .timeout = 120)
{
	struct afe_runtime *rt = test_runtime(2);
	struct stop_server s;
	const uint64_t drain_ns = 100 * 1000000ull;
	start(rt, &s, true, drain_ns);
	int done = client(s.port), stuck = client(s.port);
	wait_for(&s.probe.started, 2, "two connections run");
	close(done);
	wait_for(&s.probe.closed, 1, "one connection ended by itself");
	uint64_t fired = now_ns();
	cr_assert_eq(afe_token_cancel(s.stop), 0);
	cr_assert_eq(join_server(rt, &s), 1, "the server cancelled the stuck one");
	/* Half: whatever the timers' rounding, not at once. */
	cr_assert_geq(now_ns() - fired, drain_ns / 2, "after the drain");
	cr_assert_eq(atomic_load(&s.probe.cancelled), 1);
	assert_closed_by_server(stuck);
	finish(rt, &s);
}

Test(tcp_stop, a_token_fired_before_the_first_poll_ends_the_server, .timeout = 120)
{
	struct afe_runtime *rt = test_runtime(2);
	struct afe_token *stop;
	cr_assert_eq(afe_token_new(&stop), 0);
	cr_assert_eq(afe_token_cancel(stop), 0);
	struct stop_server s;
	memset(&s.probe, 0, sizeof(s.probe));
	s.stop = stop;
	s.listen_fd = afe_tcp_listen(NULL, 0, 0);
	cr_assert_geq(s.listen_fd, 0);
	struct afe_tcp_server_config config = {
		.listen_fd = s.listen_fd,
		.conn_size = sizeof(struct idle_conn),
		.conn_init = idle_conn_init,
		.arg = &s.probe,
		.stop = stop,
		.drain_ns = LONG_NS,
	};
	struct afe_tcp_server server;
	afe_tcp_server_init(&server, &config);
	cr_assert_eq(afe_spawn(rt, &server, &s.handle), 0);
	cr_assert_eq(join_server(rt, &s), 0);
	finish(rt, &s);
}

Test(tcp_stop, cancelling_a_server_with_a_token_cancels_its_connections, .timeout = 120)
{
	struct afe_runtime *rt = test_runtime(2);
	struct stop_server s;
	start(rt, &s, true, LONG_NS);
	int fds[2] = {client(s.port), client(s.port)};
	wait_for(&s.probe.started, 2, "two connections run");
	struct afe_cancel c;
	cr_assert_eq(afe_cancel_init(&c, &s.handle), 0);
	struct afe_timeout t;
	afe_timeout_init(&t, &c.base, LONG_NS);
	cr_assert_eq(test_block_on(rt, &t), -ECANCELED);
	cr_assert_eq(atomic_load(&s.probe.cancelled), 2, "cancelled at once, no drain");
	for (int i = 0; i < 2; i++)
		assert_closed_by_server(fds[i]);
	finish(rt, &s);
}

Test(tcp_stop, without_a_token_connections_outlive_the_cancelled_server, .timeout = 120)
{
	struct afe_runtime *rt = test_runtime(2);
	struct stop_server s;
	start(rt, &s, false, 0);
	int fd = client(s.port);
	wait_for(&s.probe.started, 1, "the connection runs");
	struct afe_cancel c;
	cr_assert_eq(afe_cancel_init(&c, &s.handle), 0);
	cr_assert_eq(test_block_on(rt, &c), -ECANCELED);
	usleep(50 * 1000);
	cr_assert_eq(atomic_load(&s.probe.cancelled), 0, "the connection runs on");
	close(fd);
	wait_for(&s.probe.closed, 1, "it ends when its peer closes");
	finish(rt, &s);
}
