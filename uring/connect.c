/* SPDX-License-Identifier: MIT */
/* afe_tcp_connect: a TCP connect by address literal or name. */
#define _GNU_SOURCE
#include "afe/net.h"

#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "afe/socket.h"

/* getaddrinfo's error as an errno: -ENOENT for a name that is not there,
 * -EAGAIN for a resolver that failed for now. */
static int resolver_error(int eai)
{
	switch (eai) {
	case EAI_NONAME:
	case EAI_NODATA:
	case EAI_ADDRFAMILY:
		return -ENOENT;
	case EAI_AGAIN:
		return -EAGAIN;
	case EAI_MEMORY:
		return -ENOMEM;
	case EAI_SYSTEM:
		return errno ? -errno : -EIO;
	default:
		return -EINVAL;
	}
}

/* The blocking pool's job: resolves c->host to its TCP addresses
 * (c->addrs). 0 or -errno. */
static intptr_t resolve(void *arg)
{
	struct afe_tcp_connect *c = arg;
	char service[8];
	snprintf(service, sizeof(service), "%u", (unsigned)c->port);
	struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM,
				 .ai_flags = AI_ADDRCONFIG};
	errno = 0;
	int eai = getaddrinfo(c->host, service, &hints, &c->addrs);
	return eai == 0 ? 0 : resolver_error(eai);
}

/* A socket for address a, connecting through c->io. -errno when no
 * socket can be had (the next address may still do). */
static int start_connect(struct afe_tcp_connect *c, const struct sockaddr *a, socklen_t len)
{
	c->fd = socket(a->sa_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (c->fd < 0)
		return -errno;
	afe_io_connect_init(&c->io, c->fd, a, len);
	return 0;
}

static void close_fd(struct afe_tcp_connect *c)
{
	if (c->fd >= 0)
		close(c->fd);
	c->fd = -1;
}

static int connect_poll(struct afe_future *f, struct afe_context *cx)
{
	struct afe_tcp_connect *self = afe_container_of(f, struct afe_tcp_connect, base);
	AFE_ASYNC_BEGIN(f, cx);
	if (self->port == 0 || self->last_error == -EINVAL)
		AFE_RETURN(-EINVAL);
	/* A literal needs no resolver: one address, tried at once. The
	 * address stays in self: the ring reads it when it submits. */
	if (afe_sockaddr_ip(self->host[0] ? self->host : NULL, self->port, &self->literal,
			    &self->literal_len) == 0) {
		int err = start_connect(self, (struct sockaddr *)&self->literal, self->literal_len);
		if (err < 0)
			AFE_RETURN(err);
		AFE_AWAIT(&self->io.base);
		if (self->io.base.result < 0) {
			self->last_error = (int)self->io.base.result;
			close_fd(self);
			AFE_RETURN(self->last_error);
		}
	} else {
		afe_blocking_init(&self->resolve, resolve, self);
		AFE_AWAIT(&self->resolve.base);
		if (self->resolve.base.result < 0)
			AFE_RETURN(self->resolve.base.result);
		self->last_error = -EHOSTUNREACH; /* a name with no address of ours */
		for (self->next = self->addrs; self->next && self->fd < 0;
		     self->next = self->next->ai_next) {
			int err = start_connect(self, self->next->ai_addr, self->next->ai_addrlen);
			if (err < 0) {
				self->last_error = err;
				continue;
			}
			AFE_AWAIT(&self->io.base);
			if (self->io.base.result < 0) {
				self->last_error = (int)self->io.base.result;
				close_fd(self);
			}
		}
		if (self->fd < 0)
			AFE_RETURN(self->last_error);
	}
	int one = 1;
	setsockopt(self->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	int fd = self->fd;
	self->fd = -1; /* the caller's now */
	AFE_RETURN(fd);
	AFE_CLEANUP;
	close_fd(self); /* cancelled, or failed part way */
	if (self->addrs)
		freeaddrinfo(self->addrs);
	self->addrs = NULL;
	AFE_ASYNC_END;
}

void afe_tcp_connect_init(struct afe_tcp_connect *c, const char *host, uint16_t port)
{
	memset(c, 0, sizeof(*c));
	afe_future_init(&c->base, connect_poll);
	c->fd = -1;
	c->port = port;
	if (host && strlen(host) >= sizeof(c->host))
		c->last_error = -EINVAL; /* said at the first poll */
	else if (host)
		strcpy(c->host, host);
}
