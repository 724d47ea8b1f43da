/* SPDX-License-Identifier: MIT */
/* TCP helpers: listening sockets, send-all, and the accept stream. */
#define _GNU_SOURCE /* accept4 */
#include "afe/net.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <netinet/in.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "../pool/spinlock.h"
#include "../pool/wake_batch.h"
#include "compat.h"
#include "afe/runtime.h"
#include "afe/socket.h"

int afe_tcp_listen(const char *host, uint16_t port, int backlog)
{
	struct sockaddr_storage addr;
	socklen_t len;
	int err = afe_sockaddr_ip(host, port, &addr, &len);
	if (err < 0)
		return err;
	int fd = socket(addr.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	int one = 1;
	if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) < 0 ||
	    bind(fd, (struct sockaddr *)&addr, len) < 0 ||
	    listen(fd, backlog > 0 ? backlog : SOMAXCONN) < 0) {
		err = -errno;
		close(fd);
		return err;
	}
	return fd;
}

int afe_tcp_local_port(int fd)
{
	struct sockaddr_storage addr;
	socklen_t len = sizeof(addr);
	if (getsockname(fd, (struct sockaddr *)&addr, &len) < 0)
		return -errno;
	if (addr.ss_family == AF_INET)
		return ntohs(((struct sockaddr_in *)&addr)->sin_port);
	if (addr.ss_family == AF_INET6)
		return ntohs(((struct sockaddr_in6 *)&addr)->sin6_port);
	return -EAFNOSUPPORT;
}

/* ---- send all -------------------------------------------------------------- */

static int send_all_poll(struct afe_future *f, struct afe_context *cx)
{
	struct afe_send_all *self = afe_container_of(f, struct afe_send_all, base);
	AFE_ASYNC_BEGIN(f, cx);
	while (self->sent < self->len) {
		size_t left = self->len - self->sent;
		afe_io_send_init(&self->io, self->fd, self->buf + self->sent,
				 left > UINT_MAX ? UINT_MAX : (unsigned)left, MSG_NOSIGNAL);
		AFE_AWAIT(&self->io.base);
		if (self->io.base.result <= 0)
			AFE_RETURN(self->io.base.result < 0 ? self->io.base.result : -EPIPE);
		self->sent += (size_t)self->io.base.result;
	}
	AFE_RETURN((intptr_t)self->len);
	AFE_ASYNC_END;
}

void afe_send_all_init(struct afe_send_all *s, int fd, const void *buf, size_t len)
{
	afe_future_init(&s->base, send_all_poll);
	s->fd = fd;
	s->buf = buf;
	s->len = len;
	s->sent = 0;
}

/* ---- the accept stream ----------------------------------------------------- */

/* Makes room for one more fd; false when at the bound or out of memory.
 * Called with the lock held. */
static bool make_room_locked(struct afe_accept_stream *s)
{
	if (s->count < s->capacity)
		return true;
	if (s->capacity >= AFE_ACCEPT_BACKLOG)
		return false;
	unsigned capacity = s->capacity ? 2 * s->capacity : 64;
	int *fds = malloc(capacity * sizeof(*fds));
	if (!fds)
		return false;
	for (unsigned i = 0; i < s->count; i++)
		fds[i] = s->fds[(s->head + i) % s->capacity];
	free(s->fds);
	s->fds = fds;
	s->head = 0;
	s->capacity = capacity;
	return true;
}

/* Ring thread: one more connection from the multishot accept. */
static void accepted(struct afe_io *io, int32_t res, uint32_t flags)
{
	(void)flags;
	struct afe_accept_stream *s = afe_container_of(io, struct afe_accept_stream, accept);
	afe_spin_lock(&s->lock);
	if (res >= 0 && !make_room_locked(s)) {
		afe_spin_unlock(&s->lock);
		close(res); /* nobody is taking them: shed */
		return;
	}
	if (res >= 0)
		s->fds[(s->head + s->count++) % s->capacity] = res;
	struct afe_waker waker = afe_waker_take(&s->waker);
	afe_spin_unlock(&s->lock);
	afe_waker_wake_if_set(&waker);
}

static bool multishot_accept(void)
{
	return afe_runtime_uring_features(afe_runtime_current()) & AFE_URING_MULTISHOT_ACCEPT;
}

/* Arms a multishot accept, or without one (before Linux 5.19) a single
 * accept, whose connection ends it: the next poll arms another. */
static void arm(struct afe_accept_stream *s)
{
	afe_io_accept_init(&s->accept, s->listen_fd, NULL, NULL, SOCK_CLOEXEC);
	if (multishot_accept()) {
		struct io_uring_sqe *sqe = (struct io_uring_sqe *)(void *)s->accept.sqe;
		sqe->ioprio |= IORING_ACCEPT_MULTISHOT;
		s->accept.on_more = accepted;
	} else { /* for take_backlog: the ring's accept works either way */
		int flags = fcntl(s->listen_fd, F_GETFL);
		if (flags >= 0 && !(flags & O_NONBLOCK))
			fcntl(s->listen_fd, F_SETFL, flags | O_NONBLOCK);
	}
	s->armed = true;
}

/* After a single accept: the connections that came with it wait in the
 * backlog, and one ring round trip each would serve a burst of them one
 * by one (measured: 200 new beside 300 busy took 230 ms). Taken with
 * accept4 on the (non-blocking) listening socket instead, until it has no
 * more; an error is left for the next ring accept to report. */
static void take_backlog(struct afe_accept_stream *s)
{
	for (;;) {
		int fd = accept4(s->listen_fd, NULL, NULL, SOCK_CLOEXEC);
		if (fd < 0)
			return;
		afe_spin_lock(&s->lock);
		bool room = make_room_locked(s);
		if (room)
			s->fds[(s->head + s->count++) % s->capacity] = fd;
		afe_spin_unlock(&s->lock);
		if (!room) {
			close(fd); /* shed, as accepted() does */
			return;
		}
	}
}

/* Closes the connections still waiting and frees the buffer; only when
 * the accept is not armed (the ring thread no longer adds to it). */
static void close_waiting(struct afe_accept_stream *s)
{
	for (unsigned i = 0; i < s->count; i++)
		close(s->fds[(s->head + i) % s->capacity]);
	free(s->fds);
	s->fds = NULL;
	s->head = s->count = s->capacity = 0;
	afe_waker_drop(&s->waker); /* it refers to our own task */
}

/* Stops the multishot accept, waits for its end, closes what waits. */
static int stop(struct afe_accept_stream *s, struct afe_context *cx)
{
	struct afe_context cancelling = *cx;
	cancelling.cancel = true;
	if (s->armed) {
		if (afe_future_poll(&s->accept.base, &cancelling) == AFE_PENDING)
			return AFE_PENDING;
		if (s->accept.base.result >= 0) /* a last connection: nobody takes it */
			close((int)s->accept.base.result);
		s->armed = false;
	}
	close_waiting(s);
	s->base.result = -ECANCELED;
	return AFE_READY;
}

static int accept_stop_poll(struct afe_future *f, struct afe_context *cx)
{
	return stop(afe_container_of(f, struct afe_accept_stream, base), cx);
}

static int accept_next_poll(struct afe_future *f, struct afe_context *cx)
{
	struct afe_accept_stream *s = afe_container_of(f, struct afe_accept_stream, base);
	if (cx->cancel)
		return stop(s, cx);
	for (;;) {
		afe_spin_lock(&s->lock);
		if (s->count) {
			f->result = s->fds[s->head];
			s->head = (s->head + 1) % s->capacity;
			s->count--;
			afe_spin_unlock(&s->lock);
			return AFE_READY;
		}
		afe_waker_register(&s->waker, cx);
		afe_spin_unlock(&s->lock);
		if (!s->armed)
			arm(s);
		if (afe_future_poll(&s->accept.base, cx) == AFE_PENDING)
			return AFE_PENDING;
		/* The multishot accept ended: its last result. */
		intptr_t last = s->accept.base.result;
		s->armed = false;
		if (last >= 0) {
			if (!multishot_accept())
				take_backlog(s);
			f->result = last;
			return AFE_READY;
		}
		if (s->count == 0) { /* not armed: no one else touches the buffer */
			close_waiting(s); /* frees it */
			f->result = last; /* transient errors too: the caller decides */
			return AFE_READY;
		}
	}
}

void afe_accept_stream_init(struct afe_accept_stream *s, int listen_fd)
{
	memset(s, 0, sizeof(*s));
	afe_future_init(&s->base, accept_next_poll);
	atomic_flag_clear(&s->lock);
	s->listen_fd = listen_fd;
	s->armed = false; /* armed at the first poll */
}

struct afe_future *afe_accept_stream_next(struct afe_accept_stream *s)
{
	afe_future_init(&s->base, accept_next_poll);
	return &s->base;
}

struct afe_future *afe_accept_stream_stop(struct afe_accept_stream *s)
{
	afe_future_init(&s->base, accept_stop_poll);
	return &s->base;
}
