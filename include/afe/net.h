/* SPDX-License-Identifier: MIT */
/*
 * TCP helpers over the ring: a listening socket, a connect by name or
 * address, sending a whole buffer, and a server loop that runs each
 * accepted connection as its own task.
 */
#ifndef AFE_NET_H
#define AFE_NET_H

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "blocking.h"
#include "common.h"
#include "future.h"
#include "io.h"
#include "notify.h"
#include "timeout.h"
#include "token.h"

struct addrinfo;

/*
 * Opens a TCP socket listening on host:port (an IPv4 or IPv6 literal;
 * NULL means 127.0.0.1; port 0 picks a free port, see afe_tcp_local_port),
 * with SO_REUSEADDR and the given backlog (0: SOMAXCONN). Returns the fd,
 * or -EINVAL for a host that is not an address literal, or the -errno of
 * socket/bind/listen.
 */
AFE_EXPORT int afe_tcp_listen(const char *host, uint16_t port, int backlog);

/* The local port of a bound socket, or a negative errno. */
AFE_EXPORT int afe_tcp_local_port(int fd);

/*
 * Connects to host:port over TCP. An IPv4 or IPv6 literal (NULL or "":
 * 127.0.0.1) is used as it is; any other name is resolved with
 * getaddrinfo(3) on the runtime's blocking pool, and the addresses it
 * gives are tried in its order (so "localhost" tries ::1, then 127.0.0.1)
 * until one connects, each connect through the ring. Await c->base: the
 * connected socket's fd (close-on-exec, TCP_NODELAY set), which the caller
 * then owns and closes; or -errno: the last address's connect error
 * (-ECONNREFUSED, -ENETUNREACH, ...), -ENOENT for a name that does not
 * resolve, -EAGAIN for a resolver that failed for now (no DNS server
 * answered), -EINVAL for a name longer than 255 bytes or port 0,
 * -ECANCELED when cancelled (no fd is left open). A cancel during the
 * name's resolution waits for getaddrinfo to return (it cannot be
 * interrupted; the resolver's own timeouts bound it); wrap the future in
 * afe_timeout to bound the whole connect.
 */
struct afe_tcp_connect {
	struct afe_future base;
	char host[256];
	uint16_t port;
	/* Private. */
	int fd;		/* the socket being connected, or -1 */
	int last_error; /* of the addresses tried so far */
	struct sockaddr_storage literal; /* host's address when it is a literal */
	socklen_t literal_len;
	struct addrinfo *addrs, *next; /* the resolved names */
	struct afe_blocking resolve;
	struct afe_io io;
};
AFE_EXPORT void afe_tcp_connect_init(struct afe_tcp_connect *c, const char *host, uint16_t port);

/* Sends all len bytes of buf on fd, in as many sends as it takes. Result:
 * len, or the first error (-EPIPE, -ECONNRESET, ...). Sends use
 * MSG_NOSIGNAL, so a closed peer is an error, not a SIGPIPE. */
struct afe_send_all {
	struct afe_future base;
	int fd;
	const char *buf;
	size_t len, sent;
	/* Private. */
	struct afe_io io;
};
AFE_EXPORT void afe_send_all_init(struct afe_send_all *s, int fd, const void *buf, size_t len);

/*
 * The connections arriving on a listening socket, from one multishot
 * accept kept armed in the ring (re-armed when the kernel ends it).
 *
 *   afe_accept_stream_init(&self->incoming, listen_fd);
 *   for (;;) {
 *       AFE_AWAIT(afe_accept_stream_next(&self->incoming));
 *       int fd = self->incoming.base.result;      // or a negative errno
 *       ...
 *   }
 *
 * Each await of afe_accept_stream_next gives one new connection's fd
 * (close-on-exec), or the error that ended the stream for good (-EBADF,
 * -EINVAL, -ENOTSOCK, ...). Connections accepted before they are taken
 * wait in a buffer that grows as needed, up to AFE_ACCEPT_BACKLOG; beyond
 * that they are closed (load shed). Cancelling an await stops the
 * multishot accept, waits for it, and closes the connections still
 * waiting: then the stream is finished. Transient accept errors
 * (-ECONNABORTED, -EMFILE, ...) are passed on; awaiting again re-arms.
 * A stream that ended with an error holds no memory; one that is still
 * armed must be stopped (afe_accept_stream_stop, or cancelled).
 * Without multishot accept (before Linux 5.19, see the README) the stream
 * arms one accept at a time; after each it takes what else waits in the
 * backlog with accept4(2), so it makes listen_fd non-blocking.
 */
#define AFE_ACCEPT_BACKLOG 65536

struct afe_accept_stream {
	struct afe_future base; /* the current "next connection" future */
	int listen_fd;
	/* Private. */
	bool armed; /* the multishot accept is in the ring */
	struct afe_io accept;
	atomic_flag lock; /* guards the fds and the waker */
	unsigned head, count, capacity;
	int *fds; /* a ring buffer of accepted connections */
	struct afe_waker waker;
};

AFE_EXPORT void afe_accept_stream_init(struct afe_accept_stream *s, int listen_fd);

/* Resets the stream's future for the next connection and returns it. */
AFE_EXPORT struct afe_future *afe_accept_stream_next(struct afe_accept_stream *s);

/* Resets the stream's future to one that stops the stream (as cancelling
 * does) and returns it: for cleanup sections, where awaits are not
 * cancelled. Its result is -ECANCELED. */
AFE_EXPORT struct afe_future *afe_accept_stream_stop(struct afe_accept_stream *s);

/*
 * A server: accepts connections on a listening socket and runs each as a
 * new task. conn_init(conn, fd, arg) builds the connection's future in
 * conn (conn_size bytes of scratch) and returns its base; the task runs a
 * copy of it, and the connection's fd is closed when that future
 * finishes (through the runtime, afe_io_close: the future must not close
 * it itself, and nothing may use it after). At max_conns connections, new ones are accepted and closed at
 * once: load is shed, the server stays up. TCP_NODELAY is set on every
 * connection. The server never closes listen_fd: it stays the caller's.
 *
 * Without a stop token (stop NULL), the server future runs until
 * cancelled or until accept fails for good (then its result is that
 * error, e.g. -EBADF, -EINVAL), and connections still open when it stops
 * go on running, detached.
 *
 * With a stop token, the server owns its connections: it never finishes
 * while one still runs. When stop fires, the server stops accepting (the
 * connections the kernel accepted but the server had not taken yet are
 * closed), lets the open connections run on for up to drain_ns, then
 * cancels those still open (their futures are polled with cancel set, so
 * a pending receive ends with -ECANCELED) and waits until every one has
 * finished. Its result is then the number of connections it cancelled: 0
 * when all of them finished within the drain. drain_ns 0 cancels them as
 * soon as stop fires.
 *   struct afe_tcp_server_config c = {
 *       .listen_fd = fd, .conn_size = sizeof(struct conn), .conn_init = conn_init,
 *       .stop = afe_shutdown_token(), .drain_ns = 2000000000u,  // 2 s
 *   };
 *   afe_tcp_server_init(&self->server, &c);
 *   AFE_AWAIT(&self->server.base);    // until SIGTERM and the drain
 * Cancelling the server future, or accept failing for good, ends it as
 * stop does with no drain (connections cancelled at once and awaited);
 * the result is then -ECANCELED or the accept error.
 */
struct afe_tcp_server_config {
	int listen_fd;
	unsigned max_conns; /* 0: 1024 */
	size_t conn_size;
	struct afe_future *(*conn_init)(void *conn, int fd, void *arg);
	void *arg;
	/* Optional. Must stay alive until the server's first poll (which
	 * takes its own reference). NULL: no stop token, as above. */
	struct afe_token *stop;
	/* With stop: how long open connections may run on once it fired. */
	uint64_t drain_ns;
};

struct afe_tcp_server {
	struct afe_future base;
	struct afe_tcp_server_config config;
	/* Private. */
	struct afe_tcp_server_shared *shared; /* from the first poll to the end */
	void *scratch;			      /* a connection task being built */
	struct afe_accept_stream incoming;
	struct afe_sleep nap; /* out of descriptors: wait before going on */
	bool stopping;			 /* config.stop fired */
	struct afe_token_wait stop_wait; /* on config.stop */
	struct afe_notified idle;	 /* the last connection finished */
	struct afe_timeout drain;	 /* idle, limited to drain_ns */
};

/* Fills s; allocates nothing until its first poll, and frees what it
 * allocated when it finishes (stopped, cancelled or failed). A bad config
 * (no config, no conn_init, a zero conn_size, a negative listen_fd) gives
 * -EINVAL as the future's result; -ENOMEM when the first poll cannot
 * allocate. */
AFE_EXPORT void afe_tcp_server_init(struct afe_tcp_server *s, const struct afe_tcp_server_config *c);

#endif /* AFE_NET_H */
