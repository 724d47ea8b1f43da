/* SPDX-License-Identifier: MIT */
#include "echo_conn.h"

#include <errno.h>
#include <sys/socket.h>

static int echo_conn_poll(struct afe_future *f, struct afe_context *cx)
{
	AFE_ASYNC_BEGIN_SELF(struct echo_conn, self, f, cx);
	afe_io_recv_init(&self->recv, self->fd, self->bufs[0], sizeof(self->bufs[0]), 0);
	AFE_AWAIT(&self->recv.base);
	/* Send back what came in and, linked to it, receive what comes next:
	 * one trip through the ring per message. */
	while (self->recv.base.result > 0) {
		self->len = (unsigned)self->recv.base.result;
		self->in = !self->in;
		afe_io_send_init(&self->send, self->fd, self->bufs[!self->in], self->len,
				 MSG_WAITALL | MSG_NOSIGNAL);
		afe_io_recv_init(&self->recv, self->fd, self->bufs[self->in],
				 sizeof(self->bufs[0]), 0);
		afe_io_link(&self->send, &self->recv);
		AFE_AWAIT(&self->send.base);
		if (self->send.base.result != (intptr_t)self->len) /* the recv was cancelled */
			AFE_RETURN(self->send.base.result < 0 ? self->send.base.result : -EIO);
	}
	AFE_RETURN(self->recv.base.result); /* 0: the peer closed */
	AFE_ASYNC_END;
}

struct afe_future *echo_conn_init(void *conn, int fd, void *arg)
{
	(void)arg;
	struct echo_conn *c = conn;
	afe_future_init(&c->base, echo_conn_poll);
	c->fd = fd;
	c->in = 0;
	return &c->base;
}
