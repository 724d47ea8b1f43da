/* SPDX-License-Identifier: MIT */
/*
 * UDP and Unix-domain sockets: opening them by address, and futures that
 * send and receive datagrams with their addresses (sendmsg/recvmsg on the
 * ring). TCP is in net.h; the raw operations (sendmsg, recvmsg, shutdown)
 * in io.h.
 *
 *   int fd = afe_udp_bind("127.0.0.1", 9000);
 *   afe_recvfrom_init(&self->rx, fd, self->buf, sizeof(self->buf), 0);
 *   AFE_AWAIT(&self->rx.io.base);          // bytes; the sender in self->rx.from
 *   afe_sendto_init(&self->tx, fd, self->buf, n, 0,
 *                   (struct sockaddr *)&self->rx.from, self->rx.msg.msg_namelen);
 *   AFE_AWAIT(&self->tx.io.base);
 *
 * The sendto and recvfrom futures point into themselves: initialise them
 * where they are awaited (a future copied after its init, as spawn copies,
 * would send from the original's memory).
 */
#ifndef AFE_SOCKET_H
#define AFE_SOCKET_H

#include <stdint.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <sys/un.h>

#include "common.h"
#include "io.h"

/*
 * The address host:port (an IPv4 or IPv6 literal; NULL: 127.0.0.1) into
 * out and its length into len. Returns 0, or -EINVAL for a host that is
 * not an address literal, or a null out or len.
 */
AFE_EXPORT int afe_sockaddr_ip(const char *host, uint16_t port, struct sockaddr_storage *out,
			       socklen_t *len);

/*
 * The Unix-domain address of path into out and its length into len; a
 * path starting with '@' names an abstract socket (Linux: no file, gone
 * with its last fd). Returns 0, -EINVAL (NULL or empty path, null out or
 * len), or -ENAMETOOLONG (past sizeof(sun_path)).
 */
AFE_EXPORT int afe_sockaddr_unix(const char *path, struct sockaddr_un *out, socklen_t *len);

/* A UDP socket bound to host:port (port 0: a free one; see
 * afe_tcp_local_port, which works for any IP socket). Returns the fd, or
 * -EINVAL (host), or the -errno of socket/bind. */
AFE_EXPORT int afe_udp_bind(const char *host, uint16_t port);

/*
 * A Unix socket of type (SOCK_STREAM, SOCK_SEQPACKET or SOCK_DGRAM) bound
 * to path ('@': abstract), listening with backlog (0: SOMAXCONN) unless it
 * is a datagram socket. A file left at path by an earlier run is not
 * removed: unlink it first (the call fails with -EADDRINUSE). Returns the
 * fd, or an error of afe_sockaddr_unix, or the -errno of
 * socket/bind/listen.
 */
AFE_EXPORT int afe_unix_listen(const char *path, int type, int backlog);

/* Sends len bytes of buf as one datagram to the address `to` (tolen
 * bytes, copied: it need not outlive the init; NULL for a connected
 * socket). Await s->io.base: the byte count, or -errno (-EMSGSIZE for a
 * datagram too large, -EINVAL for tolen past sockaddr_storage). */
struct afe_sendto {
	struct afe_io io;
	struct iovec iov;
	struct msghdr msg;
	struct sockaddr_storage to;
};
AFE_EXPORT void afe_sendto_init(struct afe_sendto *s, int fd, const void *buf, unsigned len,
				int flags, const struct sockaddr *to, socklen_t tolen);

/* Receives one datagram (or stream bytes) into buf. Await r->io.base: the
 * byte count, or -errno; then r->from holds the sender's address
 * (r->msg.msg_namelen bytes) and r->msg.msg_flags has MSG_TRUNC when the
 * datagram was longer than len (its rest is lost, as with recvfrom(2)). */
struct afe_recvfrom {
	struct afe_io io;
	struct iovec iov;
	struct msghdr msg;
	struct sockaddr_storage from;
};
AFE_EXPORT void afe_recvfrom_init(struct afe_recvfrom *r, int fd, void *buf, unsigned len,
				  int flags);

#endif /* AFE_SOCKET_H */
