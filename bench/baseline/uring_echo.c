/* SPDX-License-Identifier: MIT */
/*
 * uring_echo: the server side of the `echo` workload (bench/README.md) as a
 * bare liburing loop on one thread, with no executor: the floor of CPU per
 * message that an io_uring echo server can reach, beside which AFE's
 * overhead (and Tokio's and libuv's figures) can be read. Load and figures
 * come from bench/echo_client.
 *
 *   uring_echo [--port=7000] [--seconds=0]
 *
 * The ring is SINGLE_ISSUER | DEFER_TASKRUN, as AFE's. Every connection
 * gets TCP_NODELAY and, per message, the shape AFE's echo example uses: a
 * send of what came in (MSG_WAITALL) linked to the recv of what comes next,
 * so one io_uring_enter round per message. The loop submits everything
 * queued and waits for one completion, then takes every completion there
 * is. --seconds=0 serves until SIGINT or SIGTERM.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <liburing.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "../flags.h"

#define MESSAGE_BUFFER 4096
#define RING_ENTRIES 4096 /* 2 SQEs per connection between two enters */
#define MAX_CONNS (RING_ENTRIES / 2 - 1)

/* A CQE's user_data: the connection's address, low bit set for a send;
 * ACCEPT_TAG for the listener's accept. */
#define SEND_BIT 1u
#define ACCEPT_TAG 0u

struct conn {
	int fd;
	unsigned in; /* which buffer the pending recv fills */
	char buf[2][MESSAGE_BUFFER];
};

static volatile sig_atomic_t stop_requested;
static unsigned conns_open;

static void on_signal(int signum)
{
	(void)signum;
	stop_requested = 1;
}

static struct io_uring_sqe *sqe_of(struct io_uring *ring)
{
	/* Each CQE queues at most two SQEs and the ring holds two per
	 * connection plus the accept, so this never runs dry. */
	struct io_uring_sqe *sqe = io_uring_get_sqe(ring);
	if (!sqe) {
		fprintf(stderr, "uring_echo: submission queue full\n");
		exit(1);
	}
	return sqe;
}

static void queue_accept(struct io_uring *ring, int listener)
{
	struct io_uring_sqe *sqe = sqe_of(ring);
	io_uring_prep_accept(sqe, listener, NULL, NULL, 0);
	io_uring_sqe_set_data64(sqe, ACCEPT_TAG);
}

static void queue_recv(struct io_uring *ring, struct conn *c)
{
	struct io_uring_sqe *sqe = sqe_of(ring);
	io_uring_prep_recv(sqe, c->fd, c->buf[c->in], MESSAGE_BUFFER, 0);
	io_uring_sqe_set_data64(sqe, (uintptr_t)c);
}

static void close_conn(struct conn *c)
{
	close(c->fd);
	free(c);
	conns_open--;
}

static void on_accepted(struct io_uring *ring, int listener, int fd)
{
	queue_accept(ring, listener);
	if (fd < 0) {
		fprintf(stderr, "uring_echo: accept: %s\n", strerror(-fd));
		return;
	}
	int one = 1;
	struct conn *c = calloc(1, sizeof(*c));
	if (!c || conns_open == MAX_CONNS ||
	    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one)) < 0) {
		fprintf(stderr, "uring_echo: dropping a connection (%u open)\n", conns_open);
		free(c);
		close(fd);
		return;
	}
	c->fd = fd;
	conns_open++;
	queue_recv(ring, c);
}

/* A recv completed with res: echo it, linked to the next recv. */
static void on_received(struct io_uring *ring, struct conn *c, int res)
{
	if (res <= 0) { /* EOF, an error, or the recv after a failed send */
		close_conn(c);
		return;
	}
	struct io_uring_sqe *send = sqe_of(ring);
	io_uring_prep_send(send, c->fd, c->buf[c->in], (size_t)res, MSG_WAITALL | MSG_NOSIGNAL);
	io_uring_sqe_set_data64(send, (uintptr_t)c | SEND_BIT);
	send->flags |= IOSQE_IO_LINK;
	c->in = !c->in;
	queue_recv(ring, c);
}

static int listen_on(long port)
{
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0), one = 1;
	struct sockaddr_in addr = {.sin_family = AF_INET,
				   .sin_port = htons((uint16_t)port),
				   .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	if (fd < 0 || setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) < 0 ||
	    bind(fd, (struct sockaddr *)&addr, sizeof(addr)) < 0 || listen(fd, 1024) < 0) {
		fprintf(stderr, "uring_echo: cannot listen on port %ld: %s\n", port,
			strerror(errno));
		exit(1);
	}
	return fd;
}

int main(int argc, char **argv)
{
	long port = 7000, seconds = 0;
	for (int i = 1; i < argc; i++) {
		if (strncmp(argv[i], "--port=", 7) == 0)
			port = flag_number("uring_echo", "port", argv[i] + 7, 65535);
		else if (strncmp(argv[i], "--seconds=", 10) == 0)
			seconds = flag_number("uring_echo", "seconds", argv[i] + 10, 1000000000L);
		else {
			fprintf(stderr, "uring_echo: unknown flag '%s' (flags: --port=N --seconds=N)\n",
				argv[i]);
			return 2;
		}
	}
	/* No SA_RESTART: a signal ends the wait with -EINTR. */
	struct sigaction sa = {.sa_handler = on_signal};
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGALRM, &sa, NULL);
	alarm((unsigned)seconds);

	int listener = listen_on(port);
	struct io_uring ring;
	struct io_uring_params params = {.flags = IORING_SETUP_SINGLE_ISSUER |
						  IORING_SETUP_DEFER_TASKRUN};
	int err = io_uring_queue_init_params(RING_ENTRIES, &ring, &params);
	if (err < 0) {
		fprintf(stderr, "uring_echo: io_uring setup: %s\n", strerror(-err));
		return 1;
	}
	queue_accept(&ring, listener);
	while (!stop_requested) {
		err = io_uring_submit_and_wait(&ring, 1);
		if (err < 0 && err != -EINTR && err != -EAGAIN && err != -EBUSY) {
			fprintf(stderr, "uring_echo: io_uring_enter: %s\n", strerror(-err));
			return 1;
		}
		struct io_uring_cqe *cqe;
		unsigned head, seen = 0;
		io_uring_for_each_cqe(&ring, head, cqe)
		{
			uint64_t data = cqe->user_data;
			seen++;
			if (data == ACCEPT_TAG)
				on_accepted(&ring, listener, cqe->res);
			else if (!(data & SEND_BIT)) /* a failed send fails the linked recv */
				on_received(&ring, (struct conn *)(uintptr_t)data, cqe->res);
		}
		io_uring_cq_advance(&ring, seen);
	}
	io_uring_queue_exit(&ring); /* the process exit closes the connections */
	return 0;
}
