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
#include "afe/token.h"

/*
 * Stopping, with a stop token: the server makes one token of its own,
 * conns, which every connection task waits on beside its user future;
 * cancelling it wakes each one, which from then on polls its user future
 * with cancel set. It is a root, not a child of config.stop, because a
 * drain lets the connections run on after stop fires. The server learns
 * that the last connection finished through idle: once closing is set,
 * the task that takes live to 0 notifies it.
 */

/* Shared by the server and its connection tasks, which may outlive it. */
struct afe_tcp_server_shared {
	_Atomic unsigned live;
	_Atomic unsigned refs;
	struct afe_token *conns;    /* with a stop token, else NULL */
	_Atomic bool closing;	    /* the server waits for live to reach 0 */
	_Atomic unsigned cancelled; /* connections polled with conns cancelled */
	struct afe_notify idle;
};

static void shared_release(struct afe_tcp_server_shared *shared)
{
	if (atomic_fetch_sub_explicit(&shared->refs, 1, memory_order_acq_rel) == 1) {
		afe_token_release(shared->conns);
		afe_notify_destroy(&shared->idle);
		free(shared);
	}
}

/* A connection task: this header, then a copy of the user's future. */
struct conn_task {
	struct afe_future base;
	struct afe_tcp_server_shared *shared;
	int fd;
	size_t user_offset; /* of the user's future base, from this header */
	bool cancelled;		    /* the server cancelled it */
	bool closing;		    /* the user's future finished: close runs */
	struct afe_token_wait stop; /* on shared->conns, when there is one */
	struct afe_io close;
};

#define CONN_HEADER_SIZE \
	((sizeof(struct conn_task) + _Alignof(max_align_t) - 1) & ~(_Alignof(max_align_t) - 1))

/* Watches shared->conns: true once the server cancelled the connection. */
static bool conn_cancelled(struct conn_task *self, struct afe_context *cx)
{
	if (!self->shared->conns || self->cancelled || afe_future_is_done(&self->stop.base))
		return self->cancelled;
	if (afe_future_poll(&self->stop.base, cx) == AFE_READY && self->stop.base.result == 0) {
		self->cancelled = true;
		/* Relaxed: read by the server after live reached 0 (seq_cst). */
		atomic_fetch_add_explicit(&self->shared->cancelled, 1, memory_order_relaxed);
	}
	return self->cancelled;
}

/* Unlinks w from its token if it still waits there (a cancelled poll of a
 * token wait ends it at once). */
static void withdraw(struct afe_token_wait *w, const struct afe_context *cx)
{
	if (afe_future_is_done(&w->base))
		return;
	struct afe_context cancelling = *cx;
	cancelling.cancel = true;
	afe_future_poll(&w->base, &cancelling);
}

static int conn_poll(struct afe_future *f, struct afe_context *cx)
{
	struct conn_task *self = afe_container_of(f, struct conn_task, base);
	struct afe_future *user = (struct afe_future *)(void *)((char *)self + self->user_offset);
	struct afe_context inner = *cx;
	if (!self->closing) {
		inner.cancel = conn_cancelled(self, cx) || cx->cancel;
		inner.owned_fd = &self->fd;
		if (afe_future_poll(user, &inner) == AFE_PENDING)
			return AFE_PENDING;
		if (self->shared->conns)
			withdraw(&self->stop, cx);
		self->closing = true;
		afe_io_close_init(&self->close, self->fd);
	}
	/* Through the ring, as owned_fd promised; not cancelled, which would
	 * leave the fd open. */
	inner.cancel = false;
	inner.owned_fd = NULL;
	if (afe_future_poll(&self->close.base, &inner) == AFE_PENDING)
		return AFE_PENDING;
	if (self->close.base.result == -ESHUTDOWN)
		close(self->fd); /* the ring thread ended: nothing watches the fd */
	struct afe_tcp_server_shared *shared = self->shared;
	/* seq_cst, with the load of closing after it: pairs with the server's
	 * store of closing and load of live, so that the last connection
	 * sees closing or the server sees live at 0 (or both). */
	if (atomic_fetch_sub_explicit(&shared->live, 1, memory_order_seq_cst) == 1 &&
	    atomic_load_explicit(&shared->closing, memory_order_seq_cst))
		afe_notify_one(&shared->idle);
	shared_release(shared);
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
	task->cancelled = false;
	task->closing = false;
	afe_token_wait_init(&task->stop, s->shared->conns);
	atomic_fetch_add_explicit(&s->shared->live, 1, memory_order_relaxed);
	atomic_fetch_add_explicit(&s->shared->refs, 1, memory_order_relaxed);
	if (afe_spawn_raw(NULL, scratch, total, &task->base, NULL) < 0) {
		atomic_fetch_sub_explicit(&s->shared->live, 1, memory_order_relaxed);
		atomic_fetch_sub_explicit(&s->shared->refs, 1, memory_order_relaxed);
		close(fd);
	}
}

/* The connections still running, once no more start. seq_cst: see
 * conn_poll. */
static unsigned still_live(struct afe_tcp_server_shared *shared)
{
	return atomic_load_explicit(&shared->live, memory_order_seq_cst);
}

/* The accept loop; with cancel set (by the caller, or by config.stop
 * firing) its cleanup also ends the connections when there is a stop
 * token. */
static int serve_poll(struct afe_future *f, struct afe_context *cx)
{
	struct afe_tcp_server *self = afe_container_of(f, struct afe_tcp_server, base);
	const struct afe_tcp_server_config *c = &self->config;
	AFE_ASYNC_BEGIN(f, cx);
	if (!c->conn_init || c->conn_size == 0 || c->listen_fd < 0 ||
	    c->conn_size > SIZE_MAX - CONN_HEADER_SIZE)
		AFE_RETURN(-EINVAL);
	self->shared = calloc(1, sizeof(*self->shared));
	if (self->shared) {
		atomic_init(&self->shared->refs, 1);
		afe_notify_init(&self->shared->idle);
	}
	self->scratch = malloc(CONN_HEADER_SIZE + c->conn_size);
	if (!self->shared || !self->scratch)
		AFE_RETURN(-ENOMEM);
	if (c->stop && afe_token_new(&self->shared->conns) < 0)
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
	if (self->shared && self->shared->conns) {
		/* seq_cst: see conn_poll. */
		atomic_store_explicit(&self->shared->closing, true, memory_order_seq_cst);
		if (self->stopping && c->drain_ns > 0 && still_live(self->shared) > 0) {
			afe_notified_init(&self->idle, &self->shared->idle);
			afe_timeout_init(&self->drain, &self->idle.base, c->drain_ns);
			AFE_AWAIT(&self->drain.base);
		}
		afe_token_cancel(self->shared->conns);
		if (still_live(self->shared) > 0) {
			/* A notify the drain's timeout cut off is passed back
			 * as the permit: this wait takes it. */
			afe_notified_init(&self->idle, &self->shared->idle);
			AFE_AWAIT(&self->idle.base);
		}
		if (self->stopping) /* relaxed: after live reached 0, see conn_cancelled */
			f->result = atomic_load_explicit(&self->shared->cancelled,
							 memory_order_relaxed);
	}
	if (self->shared)
		shared_release(self->shared);
	free(self->scratch);
	self->shared = NULL;
	self->scratch = NULL;
	AFE_ASYNC_END;
}

/* The accept loop, and beside it, with a stop token, the wait for it:
 * once it fires, the loop is polled with cancel set from then on. */
static int server_poll(struct afe_future *f, struct afe_context *cx)
{
	struct afe_tcp_server *self = afe_container_of(f, struct afe_tcp_server, base);
	struct afe_context inner = *cx;
	inner.cancel = cx->cancel || self->stopping;
	int ready = serve_poll(f, &inner);
	if (!self->config.stop)
		return ready;
	if (ready == AFE_PENDING && !inner.cancel &&
	    afe_future_poll(&self->stop_wait.base, cx) == AFE_READY) {
		self->stopping = true;
		inner.cancel = true;
		ready = serve_poll(f, &inner);
	}
	if (ready == AFE_READY)
		withdraw(&self->stop_wait, cx);
	return ready;
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
	afe_token_wait_init(&s->stop_wait, s->config.stop);
}
