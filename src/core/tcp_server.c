/* SPDX-License-Identifier: MIT */
/* The TCP server (afe_tcp_server, afe/net.h): an accept loop that runs
 * each connection as a task of its own. In the core, not beside the
 * socket operations in uring/net.c, because it spawns tasks. */
#include "afe/net.h"

#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "afe/sleep.h"
#include "afe/task.h"

/* Shared by the server and its connection tasks, which may outlive it. */
struct afe_tcp_server_shared {
	_Atomic unsigned live;
	_Atomic unsigned refs;
};

static void shared_release(struct afe_tcp_server_shared *shared)
{
	if (atomic_fetch_sub_explicit(&shared->refs, 1, memory_order_acq_rel) == 1)
		free(shared);
}

/* A connection task: this header, then a copy of the user's future. */
struct conn_task {
	struct afe_future base;
	struct afe_tcp_server_shared *shared;
	int fd;
	size_t user_offset; /* of the user's future base, from this header */
};

#define CONN_HEADER_SIZE \
	((sizeof(struct conn_task) + _Alignof(max_align_t) - 1) & ~(_Alignof(max_align_t) - 1))

static int conn_poll(struct afe_future *f, struct afe_context *cx)
{
	struct conn_task *self = afe_container_of(f, struct conn_task, base);
	struct afe_future *user = (struct afe_future *)(void *)((char *)self + self->user_offset);
	if (afe_future_poll(user, cx) == AFE_PENDING)
		return AFE_PENDING;
	close(self->fd);
	atomic_fetch_sub_explicit(&self->shared->live, 1, memory_order_relaxed);
	shared_release(self->shared);
	f->result = user->result;
	return AFE_READY;
}

/* Accept errors that concern one connection, not the listener. */
static bool accept_error_is_transient(intptr_t err)
{
	return err == -ECONNABORTED || err == -EINTR || err == -EAGAIN || err == -EPROTO ||
	       err == -ENETDOWN || err == -EHOSTUNREACH || err == -ENETUNREACH;
}

/* Out of descriptors or memory: worth waiting for, not worth spinning on. */
static bool accept_error_is_exhaustion(intptr_t err)
{
	return err == -EMFILE || err == -ENFILE || err == -ENOBUFS || err == -ENOMEM;
}

/* Runs the accepted fd as a connection task; closes it on failure. */
static void start_connection(struct afe_tcp_server *s, int fd)
{
	const struct afe_tcp_server_config *c = &s->config;
	unsigned live = atomic_load_explicit(&s->shared->live, memory_order_relaxed);
	if (live >= c->max_conns) {
		close(fd); /* shed */
		return;
	}
	int one = 1;
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	char *scratch = s->scratch;
	struct afe_future *user = c->conn_init(scratch + CONN_HEADER_SIZE, fd, c->arg);
	size_t total = CONN_HEADER_SIZE + c->conn_size;
	size_t offset = user ? (size_t)((char *)user - scratch) : 0;
	if (!user || offset < CONN_HEADER_SIZE || offset > total - sizeof(*user)) {
		close(fd);
		return;
	}
	struct conn_task *task = (struct conn_task *)(void *)scratch;
	afe_future_init(&task->base, conn_poll);
	task->shared = s->shared;
	task->fd = fd;
	task->user_offset = offset;
	atomic_fetch_add_explicit(&s->shared->live, 1, memory_order_relaxed);
	atomic_fetch_add_explicit(&s->shared->refs, 1, memory_order_relaxed);
	if (afe_spawn_raw(NULL, scratch, total, &task->base, NULL) < 0) {
		atomic_fetch_sub_explicit(&s->shared->live, 1, memory_order_relaxed);
		atomic_fetch_sub_explicit(&s->shared->refs, 1, memory_order_relaxed);
		close(fd);
	}
}

static int server_poll(struct afe_future *f, struct afe_context *cx)
{
	struct afe_tcp_server *self = afe_container_of(f, struct afe_tcp_server, base);
	const struct afe_tcp_server_config *c = &self->config;
	AFE_ASYNC_BEGIN(f, cx);
	if (!c->conn_init || c->conn_size == 0 || c->listen_fd < 0 ||
	    c->conn_size > SIZE_MAX - CONN_HEADER_SIZE)
		AFE_RETURN(-EINVAL);
	self->shared = calloc(1, sizeof(*self->shared));
	if (self->shared)
		atomic_init(&self->shared->refs, 1);
	self->scratch = malloc(CONN_HEADER_SIZE + c->conn_size);
	if (!self->shared || !self->scratch)
		AFE_RETURN(-ENOMEM);
	afe_accept_stream_init(&self->incoming, c->listen_fd);
	for (;;) {
		AFE_AWAIT(afe_accept_stream_next(&self->incoming));
		intptr_t fd = self->incoming.base.result;
		if (fd >= 0) {
			start_connection(self, (int)fd);
		} else if (accept_error_is_exhaustion(fd)) {
			afe_sleep_init(&self->nap, 10 * 1000000u);
			AFE_AWAIT(&self->nap.base);
		} else if (!accept_error_is_transient(fd)) {
			AFE_RETURN(fd);
		}
	}
	AFE_CLEANUP;
	/* Cancelled while napping, the accept may still be armed. */
	AFE_AWAIT(afe_accept_stream_stop(&self->incoming));
	if (self->shared)
		shared_release(self->shared);
	free(self->scratch);
	self->shared = NULL;
	self->scratch = NULL;
	AFE_ASYNC_END;
}

void afe_tcp_server_init(struct afe_tcp_server *s, const struct afe_tcp_server_config *c)
{
	memset(s, 0, sizeof(*s));
	afe_future_init(&s->base, server_poll);
	if (c)
		s->config = *c; /* else all zero: the first poll gives -EINVAL */
	else
		s->config.listen_fd = -1;
	if (s->config.max_conns == 0)
		s->config.max_conns = 1024;
}
