/* SPDX-License-Identifier: MIT */
/* TCP over the ring: echo round trips over loopback with many
 * connections, partial reads and writes, shedding at the connection bound,
 * resets and closed peers, cancelling the server, a burst of new
 * connections on a tiny ring. */
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include "echo_conn.h"
#include "io_helpers.h"

/* An echo server on a free port, running as a task. */
struct test_server {
	int listen_fd, port;
	struct afe_join_handle handle;
};

static struct test_server start_server(struct afe_runtime *rt, unsigned max_conns)
{
	struct test_server ts;
	ts.listen_fd = afe_tcp_listen(NULL, 0, 0);
	cr_assert_geq(ts.listen_fd, 0);
	ts.port = afe_tcp_local_port(ts.listen_fd);
	cr_assert_gt(ts.port, 0);
	struct afe_tcp_server_config config = {
		.listen_fd = ts.listen_fd,
		.max_conns = max_conns,
		.conn_size = sizeof(struct echo_conn),
		.conn_init = echo_conn_init,
	};
	struct afe_tcp_server server;
	afe_tcp_server_init(&server, &config);
	cr_assert_eq(afe_spawn(rt, &server, &ts.handle), 0);
	return ts;
}

static void stop_server(struct afe_runtime *rt, struct test_server *ts)
{
	struct afe_cancel c;
	cr_assert_eq(afe_cancel_init(&c, &ts->handle), 0);
	cr_assert_eq(test_block_on(rt, &c), -ECANCELED);
	close(ts->listen_fd);
}

static struct sockaddr_in loopback(int port)
{
	struct sockaddr_in a;
	memset(&a, 0, sizeof(a));
	a.sin_family = AF_INET;
	a.sin_port = htons((uint16_t)port);
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	return a;
}

/* A client task: connects through the ring, then `rounds` times sends
 * `size` bytes and reads the echo back in whatever pieces it comes. */
struct client {
	struct afe_future base;
	int port, fd, round, rounds;
	size_t size, got;
	unsigned char *out, *in;
	struct sockaddr_in addr;
	struct afe_io io;
	struct afe_send_all send;
};

static int client_poll(struct afe_future *f, struct afe_context *cx)
{
	struct client *c = afe_container_of(f, struct client, base);
	AFE_ASYNC_BEGIN(f, cx);
	c->fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (c->fd < 0)
		AFE_RETURN(-errno);
	c->addr = loopback(c->port);
	afe_io_connect_init(&c->io, c->fd, (struct sockaddr *)&c->addr, sizeof(c->addr));
	AFE_AWAIT(&c->io.base);
	if (c->io.base.result < 0)
		AFE_RETURN(c->io.base.result);
	for (c->round = 0; c->round < c->rounds; c->round++) {
		for (size_t i = 0; i < c->size; i++)
			c->out[i] = (unsigned char)(i * 7 + (size_t)c->round + (size_t)c->port);
		afe_send_all_init(&c->send, c->fd, c->out, c->size);
		AFE_AWAIT(&c->send.base);
		if (c->send.base.result != (intptr_t)c->size) /* -errno, or short */
			AFE_RETURN(c->send.base.result < 0 ? c->send.base.result : -1000);
		for (c->got = 0; c->got < c->size;) {
			afe_io_recv_init(&c->io, c->fd, c->in + c->got, (unsigned)(c->size - c->got), 0);
			AFE_AWAIT(&c->io.base);
			if (c->io.base.result <= 0)
				AFE_RETURN(-1001);
			c->got += (size_t)c->io.base.result;
		}
		if (memcmp(c->in, c->out, c->size) != 0)
			AFE_RETURN(-1002);
	}
	AFE_RETURN(0);
	AFE_CLEANUP;
	if (c->fd >= 0)
		close(c->fd);
	free(c->out);
	free(c->in);
	AFE_ASYNC_END;
}

static int spawn_client(struct afe_runtime *rt, int port, int rounds, size_t size,
			struct afe_join_handle *h)
{
	struct client c = {.port = port, .fd = -1, .rounds = rounds, .size = size,
			   .out = malloc(size), .in = malloc(size)};
	afe_future_init(&c.base, client_poll);
	return afe_spawn(rt, &c, h);
}

Test(net, many_connections_echo_over_loopback, .timeout = 300)
{
	struct afe_runtime *rt = test_runtime(2);
	struct test_server ts = start_server(rt, 1000);
	enum { CLIENTS = 200 };
	static struct afe_join_handle handles[CLIENTS];
	for (int i = 0; i < CLIENTS; i++)
		cr_assert_eq(spawn_client(rt, ts.port, 50, 64, &handles[i]), 0);
	for (int i = 0; i < CLIENTS; i++) {
		struct afe_join j;
		afe_join_init(&j, &handles[i]);
		cr_assert_eq(test_block_on(rt, &j), 0, "client %d", i);
	}
	stop_server(rt, &ts);
	test_runtime_destroy(rt);
}

Test(net, large_messages_go_through_in_partial_reads_and_writes, .timeout = 300)
{
	struct afe_runtime *rt = test_runtime(2);
	struct test_server ts = start_server(rt, 10);
	struct afe_join_handle handles[4];
	for (int i = 0; i < 4; i++)
		cr_assert_eq(spawn_client(rt, ts.port, 3, 4u << 20, &handles[i]), 0);
	for (int i = 0; i < 4; i++) {
		struct afe_join j;
		afe_join_init(&j, &handles[i]);
		intptr_t r = test_block_on(rt, &j);
		cr_assert_eq(r, 0, "client %d ended with %ld", i, (long)r);
	}
	stop_server(rt, &ts);
	test_runtime_destroy(rt);
}

/* A burst of new connections on a tiny ring, beside busy ones (issue 23):
 * the kernel ends the multishot accept whenever it finds the completion
 * queue full and queues the rest of the completions in its overflow list,
 * so with a 4-entry queue each connection of the burst was accepted a
 * ring round after the one before: the last waited 0.33-0.35 s for its
 * first echo (ASan 0.36-0.51 s, TSan 0.23-0.29 s), against 9-22 ms now
 * (ASan 11-19, TSan 17-20). TSan, slower, runs a smaller burst beside more
 * busy connections (longer rounds), which fails as clearly. */
#if defined(__SANITIZE_THREAD__)
#define BURST_UNDER_TSAN 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define BURST_UNDER_TSAN 1
#endif
#endif
#ifdef BURST_UNDER_TSAN
enum { BUSY_CONNS = 600, BURST_CONNS = 40 };
#else
enum { BUSY_CONNS = 300, BURST_CONNS = 200 };
#endif
/* Before the fix a burst took seconds; a loaded 2-core machine under
 * TSan made correct ones take 110-130 ms, so 500 ms tells the two apart. */
#define BURST_PATIENCE_NS (500 * 1000000ull)
#define BURST_TRIES 3

struct burst_state {
	atomic_bool stop;	   /* the busy connections finish their round and end */
	atomic_int busy_served;	   /* busy connections that had their first echo */
	_Atomic uint64_t worst_ns; /* the burst's longest wait for a first echo */
};

/* Connects and exchanges 64-byte echoes: once (a connection of the
 * burst, which notes how long its first echo took), or until stop. */
struct pinger {
	struct afe_future base;
	struct burst_state *state;
	int port, fd;
	bool of_burst, served;
	uint64_t start_ns;
	struct sockaddr_in addr;
	struct afe_io io;
	struct afe_send_all send;
	char buf[64];
};

static void note_first_echo(struct pinger *p)
{
	p->served = true;
	if (!p->of_burst) {
		atomic_fetch_add(&p->state->busy_served, 1);
		return;
	}
	uint64_t took = afe_now_ns() - p->start_ns;
	uint64_t worst = atomic_load(&p->state->worst_ns);
	while (took > worst && !atomic_compare_exchange_weak(&p->state->worst_ns, &worst, took))
		;
}

static int pinger_poll(struct afe_future *f, struct afe_context *cx)
{
	struct pinger *p = afe_container_of(f, struct pinger, base);
	AFE_ASYNC_BEGIN(f, cx);
	p->start_ns = afe_now_ns();
	p->fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (p->fd < 0)
		AFE_RETURN(-errno);
	p->addr = loopback(p->port);
	afe_io_connect_init(&p->io, p->fd, (struct sockaddr *)&p->addr, sizeof(p->addr));
	AFE_AWAIT(&p->io.base);
	if (p->io.base.result < 0)
		AFE_RETURN(p->io.base.result);
	do {
		afe_send_all_init(&p->send, p->fd, p->buf, sizeof(p->buf));
		AFE_AWAIT(&p->send.base);
		if (p->send.base.result != (intptr_t)sizeof(p->buf))
			AFE_RETURN(-1000);
		afe_io_recv_init(&p->io, p->fd, p->buf, sizeof(p->buf), MSG_WAITALL);
		AFE_AWAIT(&p->io.base);
		if (p->io.base.result != (intptr_t)sizeof(p->buf))
			AFE_RETURN(-1001);
		if (!p->served)
			note_first_echo(p);
	} while (!p->of_burst && !atomic_load(&p->state->stop));
	AFE_RETURN(0);
	AFE_CLEANUP;
	if (p->fd >= 0)
		close(p->fd);
	AFE_ASYNC_END;
}

static void spawn_pingers(struct afe_runtime *rt, struct burst_state *state, int port,
			  bool of_burst, struct afe_join_handle *handles, int n)
{
	for (int i = 0; i < n; i++) {
		struct pinger p = {.state = state, .port = port, .fd = -1, .of_burst = of_burst};
		afe_future_init(&p.base, pinger_poll);
		cr_assert_eq(afe_spawn(rt, &p, &handles[i]), 0);
	}
}

static void join_all(struct afe_runtime *rt, struct afe_join_handle *handles, int n)
{
	for (int i = 0; i < n; i++) {
		struct afe_join j;
		afe_join_init(&j, &handles[i]);
		cr_assert_eq(test_block_on(rt, &j), 0, "connection %d", i);
	}
}

/* Both ends of every connection live in this process: raises the soft
 * descriptor limit (often 1024) to what the test needs. */
static void allow_descriptors(rlim_t needed)
{
	struct rlimit limit;
	cr_assert_eq(getrlimit(RLIMIT_NOFILE, &limit), 0);
	if (limit.rlim_cur >= needed)
		return;
	cr_assert_geq(limit.rlim_max, needed, "the test needs %llu descriptors",
		      (unsigned long long)needed);
	limit.rlim_cur = needed;
	cr_assert_eq(setrlimit(RLIMIT_NOFILE, &limit), 0);
}

/* The burst's longest wait for a first echo; a burst a loaded machine
 * slowed is tried again, up to BURST_TRIES times (before the fix every
 * burst was slow). Returns how many bursts ran. */
static int time_bursts(struct afe_runtime *rt, struct burst_state *state, int port,
		       uint64_t worst[BURST_TRIES])
{
	static struct afe_join_handle burst[BURST_CONNS];
	int tries = 0;
	do {
		atomic_store(&state->worst_ns, 0);
		spawn_pingers(rt, state, port, true, burst, BURST_CONNS);
		join_all(rt, burst, BURST_CONNS);
		worst[tries] = atomic_load(&state->worst_ns);
	} while (worst[tries++] >= BURST_PATIENCE_NS && tries < BURST_TRIES);
	return tries;
}

Test(net, a_tiny_ring_serves_a_burst_of_new_connections_beside_busy_ones, .timeout = 120)
{
	enum { MOST_CONNS = BUSY_CONNS + BURST_TRIES * BURST_CONNS };
	allow_descriptors(2 * MOST_CONNS + 64);
	struct afe_runtime_config config;
	afe_runtime_config_default(&config);
	config.workers = 2;
	config.ring_entries = 2;
	config.cq_entries = 4; /* raised to AFE_MIN_CQ_ENTRIES */
	struct afe_runtime *rt = NULL;
	cr_assert_eq(afe_runtime_create(&rt, &config), 0);
	struct test_server ts = start_server(rt, MOST_CONNS);
	static struct burst_state state;
	static struct afe_join_handle busy[BUSY_CONNS];
	spawn_pingers(rt, &state, ts.port, false, busy, BUSY_CONNS);
	uint64_t deadline = afe_now_ns() + 60 * 1000000000ull;
	while (atomic_load(&state.busy_served) < BUSY_CONNS && afe_now_ns() < deadline)
		usleep(1000);
	cr_assert_eq(atomic_load(&state.busy_served), BUSY_CONNS, "every busy connection served");
	uint64_t worst[BURST_TRIES] = {0};
	int tries = time_bursts(rt, &state, ts.port, worst);
	atomic_store(&state.stop, true);
	join_all(rt, busy, BUSY_CONNS);
	stop_server(rt, &ts);
	test_runtime_destroy(rt);
	cr_assert_lt(worst[tries - 1], BURST_PATIENCE_NS,
		     "the bursts' last first echoes took %llu, %llu, %llu us",
		     (unsigned long long)(worst[0] / 1000), (unsigned long long)(worst[1] / 1000),
		     (unsigned long long)(worst[2] / 1000));
}

static int blocking_connect(int port)
{
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	struct sockaddr_in a = loopback(port);
	cr_assert_eq(connect(fd, (struct sockaddr *)&a, sizeof(a)), 0);
	return fd;
}

/* Sends a byte and reads the echo; returns what read returned. */
static ssize_t ping_once(int fd)
{
	char c = 'p';
	cr_assert_eq(write(fd, &c, 1), 1);
	return read(fd, &c, 1);
}

Test(net, connections_past_the_bound_are_shed_and_the_server_stays_up)
{
	struct afe_runtime *rt = test_runtime(2);
	struct test_server ts = start_server(rt, 2);
	int a = blocking_connect(ts.port), b = blocking_connect(ts.port);
	cr_assert_eq(ping_once(a), 1);
	cr_assert_eq(ping_once(b), 1);
	for (int i = 0; i < 20; i++) {
		int shed = blocking_connect(ts.port);
		char c;
		ssize_t n = read(shed, &c, 1); /* closed by the server at once */
		cr_assert(n == 0 || (n < 0 && errno == ECONNRESET), "got %zd", n);
		close(shed);
	}
	close(a);
	cr_assert_eq(ping_once(b), 1, "the old connection still works");
	/* Room again once a finished connection is counted out. */
	int c = -1;
	for (int tries = 0; tries < 500; tries++) {
		c = blocking_connect(ts.port);
		if (ping_once(c) == 1)
			break;
		close(c);
		c = -1;
		usleep(2000);
	}
	cr_assert_geq(c, 0, "a new connection was served after one closed");
	close(b);
	close(c);
	stop_server(rt, &ts);
	test_runtime_destroy(rt);
}

Test(net, reset_peer_is_econnreset_and_closed_peer_is_epipe)
{
	struct afe_runtime *rt = test_runtime(2);
	int lfd = afe_tcp_listen("127.0.0.1", 0, 0);
	cr_assert_geq(lfd, 0);
	int cfd = blocking_connect(afe_tcp_local_port(lfd));
	int sfd = accept(lfd, NULL, NULL);
	cr_assert_geq(sfd, 0);
	struct linger hard = {.l_onoff = 1, .l_linger = 0};
	cr_assert_eq(setsockopt(cfd, SOL_SOCKET, SO_LINGER, &hard, sizeof(hard)), 0);
	close(cfd); /* sends a reset */
	char buf[8];
	struct afe_io io;
	afe_io_recv_init(&io, sfd, buf, sizeof(buf), 0);
	cr_assert_eq(run_io(rt, &io), -ECONNRESET);
	close(sfd);

	int sv[2];
	cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
	close(sv[1]);
	static char big[1 << 16];
	struct afe_send_all s;
	afe_send_all_init(&s, sv[0], big, sizeof(big));
	intptr_t r = test_block_on(rt, &s);
	cr_assert(r == -EPIPE || r == -ECONNRESET, "got %ld", (long)r);
	close(sv[0]);
	close(lfd);
	test_runtime_destroy(rt);
}

Test(net, bad_listen_arguments_and_a_bad_server_config_are_refused)
{
	cr_assert_eq(afe_tcp_listen("not-an-address", 0, 0), -EINVAL);
	cr_assert_eq(afe_tcp_local_port(-1), -EBADF);
	int pfd[2];
	cr_assert_eq(pipe(pfd), 0);
	cr_assert_eq(afe_tcp_local_port(pfd[0]), -ENOTSOCK);
	struct afe_runtime *rt = test_runtime(2);
	struct afe_tcp_server s;
	afe_tcp_server_init(&s, NULL);
	cr_assert_eq(test_block_on(rt, &s), -EINVAL);
	struct afe_tcp_server_config config = {
		.listen_fd = pfd[0], .conn_size = sizeof(struct echo_conn), .conn_init = echo_conn_init};
	afe_tcp_server_init(&s, &config);
	cr_assert_eq(test_block_on(rt, &s), -ENOTSOCK, "accept on a pipe ends the server");
	config.conn_size = 0;
	afe_tcp_server_init(&s, &config);
	cr_assert_eq(test_block_on(rt, &s), -EINVAL);
	config.conn_size = sizeof(struct echo_conn);
	config.conn_init = NULL;
	afe_tcp_server_init(&s, &config);
	cr_assert_eq(test_block_on(rt, &s), -EINVAL, "no conn_init");
	config.conn_init = echo_conn_init;
	config.listen_fd = -1;
	afe_tcp_server_init(&s, &config);
	cr_assert_eq(test_block_on(rt, &s), -EINVAL, "a negative listen_fd");
	/* A port in use is bind's -EADDRINUSE; an IPv6 literal listens. */
	int l = afe_tcp_listen(NULL, 0, 0);
	cr_assert_geq(l, 0);
	cr_assert_eq(afe_tcp_listen("127.0.0.1", (uint16_t)afe_tcp_local_port(l), 0), -EADDRINUSE);
	/* An accept stream stopped before any await: -ECANCELED, as said. */
	struct afe_accept_stream as;
	afe_accept_stream_init(&as, l);
	afe_accept_stream_stop(&as);
	cr_assert_eq(test_block_on(rt, &as), -ECANCELED);
	close(l);
	l = afe_tcp_listen("::1", 0, 0);
	cr_assert(l >= 0 || l == -EADDRNOTAVAIL, "::1: %d", l); /* or no IPv6 here */
	if (l >= 0)
		close(l);
	close(pfd[0]);
	close(pfd[1]);
	test_runtime_destroy(rt);
}

/* The accept stream: connections made before the first await come out
 * one per await; stopping it ends the multishot accept. */
struct take_five {
	struct afe_future base;
	struct afe_accept_stream incoming;
	int taken, fds[5];
};

static int take_five_poll(struct afe_future *f, struct afe_context *cx)
{
	struct take_five *self = afe_container_of(f, struct take_five, base);
	AFE_ASYNC_BEGIN(f, cx);
	for (self->taken = 0; self->taken < 5; self->taken++) {
		AFE_AWAIT(afe_accept_stream_next(&self->incoming));
		if (self->incoming.base.result < 0)
			AFE_RETURN(self->incoming.base.result);
		self->fds[self->taken] = (int)self->incoming.base.result;
	}
	AFE_AWAIT(afe_accept_stream_stop(&self->incoming));
	if (self->incoming.base.result != -ECANCELED || self->incoming.armed)
		AFE_RETURN(-1000);
	for (int i = 0; i < 5; i++)
		close(self->fds[i]);
	AFE_RETURN(self->taken);
	AFE_ASYNC_END;
}

Test(net, accept_stream_gives_one_connection_per_await_and_stops)
{
	struct afe_runtime *rt = test_runtime(2);
	int lfd = afe_tcp_listen(NULL, 0, 0);
	cr_assert_geq(lfd, 0);
	int port = afe_tcp_local_port(lfd);
	int clients[8];
	for (int i = 0; i < 8; i++)
		clients[i] = blocking_connect(port);
	struct take_five t;
	afe_future_init(&t.base, take_five_poll);
	afe_accept_stream_init(&t.incoming, lfd);
	cr_assert_eq(test_block_on(rt, &t), 5);
	for (int i = 0; i < 8; i++)
		close(clients[i]);
	close(lfd);
	test_runtime_destroy(rt);
}

Test(net, accept_stream_on_a_bad_socket_ends_with_its_error)
{
	struct afe_runtime *rt = test_runtime(2);
	struct afe_accept_stream s;
	afe_accept_stream_init(&s, 987654);
	struct afe_future *next = afe_accept_stream_next(&s);
	(void)next;
	cr_assert_eq(test_block_on(rt, &s), -EBADF);
	test_runtime_destroy(rt);
}

/* A single accept and connect through the ring, side by side. */
struct accept_one {
	struct afe_future base;
	int lfd;
	struct sockaddr_in peer;
	unsigned peer_len;
	struct afe_io accept;
};

static int accept_one_poll(struct afe_future *f, struct afe_context *cx)
{
	struct accept_one *self = afe_container_of(f, struct accept_one, base);
	AFE_ASYNC_BEGIN(f, cx);
	self->peer_len = sizeof(self->peer);
	afe_io_accept_init(&self->accept, self->lfd, (struct sockaddr *)&self->peer,
			   &self->peer_len, SOCK_CLOEXEC);
	AFE_AWAIT(&self->accept.base);
	if (self->accept.base.result >= 0 &&
	    (self->peer_len != sizeof(self->peer) || self->peer.sin_family != AF_INET))
		AFE_RETURN(-1000); /* the peer's address was not filled in */
	AFE_RETURN(self->accept.base.result);
	AFE_ASYNC_END;
}

Test(net, accept_and_connect_operations)
{
	struct afe_runtime *rt = test_runtime(2);
	int lfd = afe_tcp_listen("127.0.0.1", 0, 0);
	cr_assert_geq(lfd, 0);
	struct accept_one a = {.lfd = lfd};
	afe_future_init(&a.base, accept_one_poll);
	struct afe_join_handle h;
	cr_assert_eq(afe_spawn(rt, &a, &h), 0);
	struct client c = {.port = afe_tcp_local_port(lfd), .fd = -1, .rounds = 0};
	afe_future_init(&c.base, client_poll);
	cr_assert_eq(test_block_on(rt, &c), 0, "connected");
	struct afe_join j;
	afe_join_init(&j, &h);
	intptr_t fd = test_block_on(rt, &j);
	cr_assert_geq(fd, 0);
	close((int)fd);
	/* Connecting where nobody listens is refused. */
	close(lfd);
	struct client refused = {.port = c.port, .fd = -1, .rounds = 0};
	afe_future_init(&refused.base, client_poll);
	cr_assert_eq(test_block_on(rt, &refused), -ECONNREFUSED);
	test_runtime_destroy(rt);
}

/* The other end of a stream socket pair, on its own thread: reads (or
 * writes) `size` bytes in small pieces with pauses, so the operation under
 * test finds the socket full (or empty) many times; stops early at the
 * end of the stream. keep, if set, receives what it reads (size bytes). */
struct slow_peer {
	int fd;
	size_t size, moved;
	bool writes;
	char *keep;
};

static void *slow_peer_main(void *arg)
{
	struct slow_peer *p = arg;
	char piece[4096];
	memset(piece, 'x', sizeof(piece));
	while (p->moved < p->size) {
		size_t want = p->size - p->moved < sizeof(piece) ? p->size - p->moved : sizeof(piece);
		char *into = p->keep ? p->keep + p->moved : piece;
		ssize_t n = p->writes ? write(p->fd, piece, want) : read(p->fd, into, want);
		if (n <= 0)
			break;
		p->moved += (size_t)n;
		if (p->moved % (64 * 1024) < (size_t)n)
			usleep(1000);
	}
	return NULL;
}

/* MSG_WAITALL: a send or recv larger than the socket holds ends only
 * when all of it went, in one result, as io_uring does it (the epoll
 * backend goes on after each short call). */
Test(net, msg_waitall_moves_the_whole_buffer_in_one_operation)
{
	struct afe_runtime *rt = test_runtime(2);
	enum { SIZE = 1 << 20 };
	char *buf = calloc(1, SIZE);
	cr_assert(buf);
	for (int writes = 0; writes < 2; writes++) {
		int sv[2];
		cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
		int small = 16 * 1024;
		setsockopt(sv[0], SOL_SOCKET, SO_SNDBUF, &small, sizeof(small));
		setsockopt(sv[1], SOL_SOCKET, SO_RCVBUF, &small, sizeof(small));
		struct slow_peer peer = {.fd = sv[1], .size = SIZE, .writes = writes};
		pthread_t thread;
		cr_assert_eq(pthread_create(&thread, NULL, slow_peer_main, &peer), 0);
		struct afe_io io;
		if (writes) /* the peer writes: we receive */
			afe_io_recv_init(&io, sv[0], buf, SIZE, MSG_WAITALL);
		else
			afe_io_send_init(&io, sv[0], buf, SIZE, MSG_WAITALL | MSG_NOSIGNAL);
		intptr_t r = run_io(rt, &io);
		cr_assert_eq(r, SIZE, "%s ended with %ld", writes ? "recv" : "send", (long)r);
		pthread_join(thread, NULL);
		cr_assert_eq(peer.moved, (size_t)SIZE);
		close(sv[0]);
		close(sv[1]);
	}
	free(buf);
	test_runtime_destroy(rt);
}

/* A big MSG_WAITALL send linked to a send of "END" on the same socket, in
 * one future; its results land in *first and *second. */
struct send_then_end {
	struct afe_future base;
	int fd;
	const char *buf;
	unsigned len;
	intptr_t *first, *second;
	struct afe_io send, end;
};

static int send_then_end_poll(struct afe_future *f, struct afe_context *cx)
{
	struct send_then_end *self = afe_container_of(f, struct send_then_end, base);
	AFE_ASYNC_BEGIN(f, cx);
	afe_io_send_init(&self->send, self->fd, self->buf, self->len, MSG_WAITALL | MSG_NOSIGNAL);
	afe_io_send_init(&self->end, self->fd, "END", 3, MSG_NOSIGNAL);
	if (afe_io_link(&self->send, &self->end) < 0)
		AFE_RETURN(-1000);
	AFE_AWAIT(&self->send.base);
	*self->first = self->send.base.result;
	*self->second = self->end.base.result;
	AFE_ASYNC_END;
}

/* The operation linked to a MSG_WAITALL send starts only once all of it
 * went: before Linux 5.18 the ring thread sends the rest itself, and
 * must hold the link's second back until then (the kernel's link would
 * send "END" after the first short part). */
Test(net, msg_waitall_send_goes_whole_before_its_linked_operation)
{
	struct afe_runtime *rt = test_runtime(2);
	enum { SIZE = 1 << 20 };
	char *out = malloc(SIZE), *in = malloc(SIZE + 16);
	cr_assert(out && in);
	memset(out, 'x', SIZE);
	int sv[2];
	cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
	int small = 16 * 1024;
	setsockopt(sv[0], SOL_SOCKET, SO_SNDBUF, &small, sizeof(small));
	setsockopt(sv[1], SOL_SOCKET, SO_RCVBUF, &small, sizeof(small));
	struct slow_peer peer = {.fd = sv[1], .keep = in, .size = SIZE + 16};
	pthread_t thread;
	cr_assert_eq(pthread_create(&thread, NULL, slow_peer_main, &peer), 0);
	intptr_t first = 0, second = 0;
	struct send_then_end pair = {
		.fd = sv[0], .buf = out, .len = SIZE, .first = &first, .second = &second};
	afe_future_init(&pair.base, send_then_end_poll);
	test_block_on(rt, &pair);
	cr_assert_eq(first, SIZE, "the send ended with %ld", (long)first);
	cr_assert_eq(second, 3, "the linked send ended with %ld", (long)second);
	shutdown(sv[0], SHUT_WR);
	pthread_join(thread, NULL);
	cr_assert_eq(peer.moved, (size_t)SIZE + 3);
	cr_assert_null(memchr(in, 'E', SIZE), "\"END\" came before the whole send");
	cr_assert_eq(memcmp(in + SIZE, "END", 3), 0);
	close(sv[0]);
	close(sv[1]);
	free(out);
	free(in);
	test_runtime_destroy(rt);
}

/* A MSG_WAITALL send whose peer stops reading, ended by its timeout while
 * waiting for room, reports the bytes it moved, as io_uring does (since
 * Linux 5.18, and so the ring thread's retries before it). */
Test(net, a_timed_out_msg_waitall_send_reports_what_it_moved)
{
	struct afe_runtime *rt = test_runtime(2);
	enum { SIZE = 1 << 20 };
	char *buf = calloc(1, SIZE);
	cr_assert(buf);
	int sv[2];
	cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
	int small = 16 * 1024;
	setsockopt(sv[0], SOL_SOCKET, SO_SNDBUF, &small, sizeof(small));
	struct afe_io io;
	afe_io_send_init(&io, sv[0], buf, SIZE, MSG_WAITALL | MSG_NOSIGNAL);
	cr_assert_eq(afe_io_set_timeout(&io, 50 * 1000000u), 0);
	intptr_t r = run_io(rt, &io);
	cr_assert(r > 0 && r < SIZE, "the send ended with %ld", (long)r);
	size_t queued = 0;
	ssize_t n;
	while ((n = recv(sv[1], buf, SIZE, MSG_DONTWAIT)) > 0)
		queued += (size_t)n;
	cr_assert_eq(queued, (size_t)r, "the peer can read %zu bytes", queued);
	close(sv[0]);
	close(sv[1]);
	free(buf);
	test_runtime_destroy(rt);
}

/* The slow peer writing, then half-closing its end. */
static void *writer_then_eof_main(void *arg)
{
	struct slow_peer *p = arg;
	slow_peer_main(p);
	shutdown(p->fd, SHUT_WR);
	return NULL;
}

/* A MSG_WAITALL recv whose peer closes half way ends with what came. */
Test(net, a_msg_waitall_recv_ends_with_what_came_before_the_end_of_the_stream)
{
	struct afe_runtime *rt = test_runtime(2);
	enum { SIZE = 1 << 20, SENT = 300 * 1000 };
	char *buf = calloc(1, SIZE);
	cr_assert(buf);
	int sv[2];
	cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
	int small = 16 * 1024;
	setsockopt(sv[0], SOL_SOCKET, SO_RCVBUF, &small, sizeof(small));
	setsockopt(sv[1], SOL_SOCKET, SO_SNDBUF, &small, sizeof(small));
	struct slow_peer peer = {.fd = sv[1], .size = SENT, .writes = true};
	pthread_t thread;
	cr_assert_eq(pthread_create(&thread, NULL, writer_then_eof_main, &peer), 0);
	struct afe_io io;
	afe_io_recv_init(&io, sv[0], buf, SIZE, MSG_WAITALL);
	intptr_t r = run_io(rt, &io);
	pthread_join(thread, NULL);
	cr_assert_eq(r, SENT, "the recv ended with %ld", (long)r);
	close(sv[1]);
	close(sv[0]);
	free(buf);
	test_runtime_destroy(rt);
}

/* A MSG_WAITALL send waiting for room, cancelled: the bytes it moved. */
struct cancelled_send {
	struct afe_future base;
	struct afe_io io;
	struct afe_timeout limited;
};

static int cancelled_send_poll(struct afe_future *f, struct afe_context *cx)
{
	struct cancelled_send *self = afe_container_of(f, struct cancelled_send, base);
	AFE_ASYNC_BEGIN(f, cx);
	afe_timeout_init(&self->limited, &self->io.base, 50 * 1000000ull);
	AFE_AWAIT(&self->limited.base);
	AFE_RETURN(self->io.base.result);
	AFE_ASYNC_END;
}

Test(net, a_cancelled_msg_waitall_send_reports_what_it_moved)
{
	struct afe_runtime *rt = test_runtime(2);
	enum { SIZE = 1 << 20 };
	char *buf = calloc(1, SIZE);
	cr_assert(buf);
	int sv[2];
	cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
	int small = 16 * 1024;
	setsockopt(sv[0], SOL_SOCKET, SO_SNDBUF, &small, sizeof(small));
	struct cancelled_send send = {0};
	afe_io_send_init(&send.io, sv[0], buf, SIZE, MSG_WAITALL | MSG_NOSIGNAL);
	afe_future_init(&send.base, cancelled_send_poll);
	intptr_t r = test_block_on(rt, &send);
	cr_assert(r > 0 && r < SIZE, "the send ended with %ld", (long)r);
	size_t queued = 0;
	ssize_t n;
	while ((n = recv(sv[1], buf, SIZE, MSG_DONTWAIT)) > 0)
		queued += (size_t)n;
	cr_assert_eq(queued, (size_t)r, "the peer can read %zu bytes", queued);
	close(sv[0]);
	close(sv[1]);
	free(buf);
	test_runtime_destroy(rt);
}
