/* SPDX-License-Identifier: MIT */
#include "echo_conn.h"

static int echo_conn_poll(struct afe_future *f, struct afe_context *cx)
{
	struct echo_conn *self = afe_container_of(f, struct echo_conn, base);
	AFE_ASYNC_BEGIN(f, cx);
	for (;;) {
		afe_io_recv_init(&self->recv, self->fd, self->buf, sizeof(self->buf), 0);
		AFE_AWAIT(&self->recv.base);
		if (self->recv.base.result <= 0) /* 0: the peer closed */
			AFE_RETURN(self->recv.base.result);
		afe_send_all_init(&self->send, self->fd, self->buf, (size_t)self->recv.base.result);
		AFE_AWAIT(&self->send.base);
		if (self->send.base.result < 0)
			AFE_RETURN(self->send.base.result);
	}
	AFE_ASYNC_END;
}

struct afe_future *echo_conn_init(void *conn, int fd, void *arg)
{
	(void)arg;
	struct echo_conn *c = conn;
	afe_future_init(&c->base, echo_conn_poll);
	c->fd = fd;
	return &c->base;
}
