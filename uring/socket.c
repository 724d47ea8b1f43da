/* SPDX-License-Identifier: MIT */
/* UDP and Unix-domain sockets: see afe/socket.h. */
#define _GNU_SOURCE
#include <afe/socket.h>

#include <arpa/inet.h>
#include <errno.h>
#include <stddef.h>
#include <string.h>
#include <unistd.h>

int afe_sockaddr_ip(const char *host, uint16_t port, struct sockaddr_storage *out,
		    socklen_t *len)
{
	if (!out || !len)
		return -EINVAL;
	memset(out, 0, sizeof(*out));
	struct sockaddr_in *v4 = (struct sockaddr_in *)out;
	struct sockaddr_in6 *v6 = (struct sockaddr_in6 *)out;
	if (!host)
		host = "127.0.0.1";
	if (inet_pton(AF_INET, host, &v4->sin_addr) == 1) {
		v4->sin_family = AF_INET;
		v4->sin_port = htons(port);
		*len = sizeof(*v4);
	} else if (inet_pton(AF_INET6, host, &v6->sin6_addr) == 1) {
		v6->sin6_family = AF_INET6;
		v6->sin6_port = htons(port);
		*len = sizeof(*v6);
	} else {
		return -EINVAL;
	}
	return 0;
}

int afe_sockaddr_unix(const char *path, struct sockaddr_un *out, socklen_t *len)
{
	if (!path || !*path || !out || !len)
		return -EINVAL;
	size_t n = strlen(path);
	bool abstract = path[0] == '@';
	/* A path needs its terminating NUL; an abstract name has none, and
	 * its leading NUL stands where the '@' was. */
	if (n + !abstract > sizeof(out->sun_path))
		return -ENAMETOOLONG;
	memset(out, 0, sizeof(*out));
	out->sun_family = AF_UNIX;
	memcpy(out->sun_path, path, n);
	if (abstract)
		out->sun_path[0] = '\0';
	*len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + n + !abstract);
	return 0;
}

/* A socket of family and type bound to addr, listening unless it is a
 * datagram socket; the fd or -errno. */
static int bound_socket(int family, int type, const struct sockaddr *addr, socklen_t len,
			int backlog)
{
	int fd = socket(family, type | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	if (bind(fd, addr, len) < 0 ||
	    (type != SOCK_DGRAM && listen(fd, backlog > 0 ? backlog : SOMAXCONN) < 0)) {
		int err = -errno;
		close(fd);
		return err;
	}
	return fd;
}

int afe_udp_bind(const char *host, uint16_t port)
{
	struct sockaddr_storage addr;
	socklen_t len;
	int err = afe_sockaddr_ip(host, port, &addr, &len);
	return err < 0 ? err : bound_socket(addr.ss_family, SOCK_DGRAM, (struct sockaddr *)&addr, len, 0);
}

int afe_unix_listen(const char *path, int type, int backlog)
{
	if (type != SOCK_STREAM && type != SOCK_SEQPACKET && type != SOCK_DGRAM)
		return -EINVAL;
	struct sockaddr_un addr;
	socklen_t len;
	int err = afe_sockaddr_unix(path, &addr, &len);
	return err < 0 ? err : bound_socket(AF_UNIX, type, (struct sockaddr *)&addr, len, backlog);
}

void afe_sendto_init(struct afe_sendto *s, int fd, const void *buf, unsigned len, int flags,
		     const struct sockaddr *to, socklen_t tolen)
{
	memset(&s->msg, 0, sizeof(s->msg));
	s->iov.iov_base = (void *)buf;
	s->iov.iov_len = len;
	s->msg.msg_iov = &s->iov;
	s->msg.msg_iovlen = 1;
	if (to) {
		/* A longer address is copied in part, and given a length the
		 * kernel refuses (-EINVAL), as sendto(2) refuses it: sendmsg
		 * would cut any length up to INT_MAX to sockaddr_storage's,
		 * and send to the address cut short. */
		memcpy(&s->to, to, tolen < sizeof(s->to) ? tolen : sizeof(s->to));
		s->msg.msg_name = &s->to;
		s->msg.msg_namelen = tolen <= sizeof(s->to) ? tolen : (socklen_t)-1;
	}
	afe_io_sendmsg_init(&s->io, fd, &s->msg, flags);
}

void afe_recvfrom_init(struct afe_recvfrom *r, int fd, void *buf, unsigned len, int flags)
{
	memset(&r->msg, 0, sizeof(r->msg));
	r->iov.iov_base = buf;
	r->iov.iov_len = len;
	r->msg.msg_iov = &r->iov;
	r->msg.msg_iovlen = 1;
	r->msg.msg_name = &r->from;
	r->msg.msg_namelen = sizeof(r->from);
	afe_io_recvmsg_init(&r->io, fd, &r->msg, flags);
}
