/* SPDX-License-Identifier: MIT */
/*
 * TCP helpers over the ring: a listening socket, sending a whole buffer,
 * and a server loop that runs each accepted connection as its own task.
 */
#ifndef AFE_NET_H
#define AFE_NET_H

#include <stddef.h>
#include <stdint.h>

#include "common.h"
#include "future.h"
#include "io.h"

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

/* Sends all len bytes of buf on fd, in as many sends as it takes. Result:
 * len, or the first error (-EPIPE, -ECONNRESET, ...). Sends use
 * MSG_NOSIGNAL, so a closed peer is an error, not a SIGPIPE. */
struct afe_send_all {
	struct afe_future base;
	int fd;
	const char *buf;
	size_t len, sent;
	struct afe_io io;
};
AFE_EXPORT void afe_send_all_init(struct afe_send_all *s, int fd, const void *buf, size_t len);

/*
 * A server: accepts connections on a listening socket and runs each as a
 * new, detached task. conn_init(conn, fd, arg) builds the connection's
 * future in conn (conn_size bytes of scratch) and returns its base; the
 * task runs a copy of it, and the connection's fd is closed when that
 * future finishes. At max_conns connections, new ones are accepted and
 * closed at once: load is shed, the server stays up.
 *
 * The server future runs until cancelled or until accept fails for good
 * (then its result is that error, e.g. -EBADF, -EINVAL). Connections
 * still open when it stops go on running. TCP_NODELAY is set on every
 * connection.
 */
struct afe_tcp_server_config {
	int listen_fd;
	unsigned max_conns; /* 0: 1024 */
	size_t conn_size;
	struct afe_future *(*conn_init)(void *conn, int fd, void *arg);
	void *arg;
};

struct afe_tcp_server {
	struct afe_future base;
	struct afe_tcp_server_config config;
	struct afe_tcp_server_shared *shared; /* from the first poll to the end */
	void *scratch;			      /* a connection task being built */
	int fd;				      /* the connection just accepted */
	struct afe_io accept;
};

/* Fills s; allocates nothing until its first poll, and frees what it
 * allocated when it finishes (cancelled or failed). A bad config (no
 * config, no conn_init, a zero conn_size, a negative listen_fd) gives
 * -EINVAL as the
 * future's result. */
AFE_EXPORT void afe_tcp_server_init(struct afe_tcp_server *s, const struct afe_tcp_server_config *c);

#endif /* AFE_NET_H */
