/* SPDX-License-Identifier: MIT */
/* A consumer served through a table of handlers (afe/ipc_serve.h): the
 * receive, dispatch, reply loop every serving task would otherwise write. */
#include "afe/ipc_serve.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

static int serve_poll(struct afe_future *f, struct afe_context *cx);

/* Whether a config may be served; fills s->entry from it. */
static int fill_index(struct afe_ipc_serve *s, const struct afe_ipc_serve_config *c)
{
	if (!c->consumer || !c->handlers || c->n_handlers == 0 ||
	    c->n_handlers > sizeof(s->entry) / sizeof(s->entry[0]))
		return -EINVAL;
	for (size_t i = 0; i < c->n_handlers; i++) {
		const struct afe_ipc_handler *h = &c->handlers[i];
		if (!h->handle == !h->start || (h->start && c->scratch_size == 0) ||
		    s->entry[h->fn])
			return -EINVAL;
		s->entry[h->fn] = (uint16_t)(i + 1);
	}
	return 0;
}

int afe_ipc_serve_init(struct afe_ipc_serve *s, const struct afe_ipc_serve_config *config)
{
	if (!s)
		return -EINVAL;
	memset(s, 0, sizeof(*s));
	afe_future_init(&s->base, serve_poll);
	int err = config ? fill_index(s, config) : -EINVAL;
	if (err == 0)
		s->config = *config;
	else
		memset(s->entry, 0, sizeof(s->entry)); /* config.consumer NULL: refused */
	return err;
}

/* Runs req's handler: a handle at once, else starts a start's future
 * (s->running) for the caller to await. Sets s->status for the rest. */
static void dispatch(struct afe_ipc_serve *s)
{
	unsigned entry = s->req.fn > 0xff ? 0 : s->entry[s->req.fn];
	const struct afe_ipc_handler *h = entry ? &s->config.handlers[entry - 1] : NULL;
	s->running = NULL;
	if (!h) {
		s->status = -ENOSYS;
	} else if (h->handle) {
		s->status = h->handle(&s->req, &s->rep, s->config.arg);
	} else {
		struct afe_future *f = h->start(s->scratch, &s->req, &s->rep, s->config.arg);
		char *lo = s->scratch, *at = (char *)f;
		if (!f || s->config.scratch_size < sizeof(*f) || at < lo ||
		    at > lo + s->config.scratch_size - sizeof(*f))
			s->status = -EIO;
		else
			s->running = f;
	}
}

/* Once the handler ended with status: makes sure req has its final reply
 * set up, the error's when status is one. Returns whether rep waits to be
 * sent. */
static bool settle(struct afe_ipc_serve *s, int status)
{
	struct afe_ipc_request *req = &s->req;
	struct afe_ipc_reply *rep = &s->rep;
	/* req->held: the request still has its count of the consumer, which
	 * its final reply takes over (afe_ipc_reply_begin): no final reply
	 * was set up yet. Otherwise rep was set up (begun) for this request,
	 * so whether it is done tells whether the handler sent it already. */
	if (req->held)
		afe_ipc_reply_error(rep, req, status < 0 ? status : -EIO);
	else if (status < 0 && !afe_future_is_done(&rep->base))
		/* The final reply, unsent: an error instead (an errno, as
		 * afe_ipc_reply_error passes on). */
		rep->status = status > -4096 ? status : -EPROTO;
	return !afe_future_is_done(&rep->base);
}

static int serve_poll(struct afe_future *f, struct afe_context *cx)
{
	struct afe_ipc_serve *self = afe_container_of(f, struct afe_ipc_serve, base);
	AFE_ASYNC_BEGIN(f, cx);
	if (!self->config.consumer)
		AFE_RETURN(-EINVAL);
	if (self->config.scratch_size) {
		self->scratch = malloc(self->config.scratch_size);
		if (!self->scratch)
			AFE_RETURN(-ENOMEM);
	}
	for (;;) {
		afe_ipc_recv_init(&self->req, self->config.consumer);
		AFE_AWAIT(&self->req.base);
		if (self->req.base.result < 0)
			AFE_RETURN(self->req.base.result == -EPIPE ? 0 : self->req.base.result);
		dispatch(self);
		if (self->running) {
			AFE_AWAIT(self->running);
			self->status = (int)self->running->result;
			self->running = NULL;
		}
		if (settle(self, self->status))
			AFE_AWAIT(&self->rep.base); /* -EPIPE and the like: the caller's */
	}
	AFE_CLEANUP;
	/* Cancelled: a request taken still gets its final reply, which
	 * releases what it holds of the consumer. */
	if (self->req.base.result == 0 && afe_future_is_done(&self->req.base) &&
	    settle(self, -ECANCELED))
		AFE_AWAIT(&self->rep.base);
	free(self->scratch);
	self->scratch = NULL;
	AFE_ASYNC_END;
}
