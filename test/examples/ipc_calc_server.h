/* SPDX-License-Identifier: MIT */
/* The handlers of the functions of ipc_calc.h, and a serving task built
 * from them (until the consumer closes): ipc_consumer runs four, and the
 * tests serve in-process with it. */
#ifndef IPC_CALC_SERVER_H
#define IPC_CALC_SERVER_H

#include <afe.h>
#include <stdio.h>

#include "ipc_calc.h"

static inline void greeting(char *out, size_t size, const char *who, uint32_t times)
{
	size_t used = 0;
	out[0] = '\0';
	for (uint32_t i = 0; i < times && used < size; i++)
		used += (size_t)snprintf(out + used, size - used, "%shello, %s", i ? " " : "",
					 who ? who : "(null)");
}

/* add: a plain function, answered at once. */
static inline int64_t calc_add(int64_t a, int64_t b, int64_t c)
{
	return a + b + c;
}
AFE_IPC_HANDLER(add, calc_add)

static inline int greet_handle(struct afe_ipc_request *req, struct afe_ipc_reply *rep, void *arg)
{
	(void)arg;
	struct greet_args args;
	char text[1024];
	int err = greet_decode(req, &args);
	if (err < 0)
		return err;
	greeting(text, sizeof(text), args.who, args.times);
	return greet_reply(rep, req, text); /* copied into the reply */
}

static inline int weigh_handle(struct afe_ipc_request *req, struct afe_ipc_reply *rep, void *arg)
{
	(void)arg;
	struct weigh_args args;
	int err = weigh_decode(req, &args);
	if (err < 0)
		return err;
	uint64_t weight = (uint64_t)args.data.len << 32;
	for (uint32_t k = 0; k < args.data.len; k++)
		weight += ((const unsigned char *)args.data.data)[k];
	return weigh_reply(rep, req, weight);
}

/* nap and count wait: futures built in the serving task's scratch. */
struct calc_wait {
	struct afe_future base;
	struct afe_ipc_request *req;
	struct afe_ipc_reply *rep;
	union {
		struct nap_args nap;
		struct count_args count;
	} args;
	uint32_t i;
	struct afe_sleep sleep;
};

static inline int nap_poll(struct afe_future *f, struct afe_context *cx)
{
	AFE_ASYNC_BEGIN_SELF(struct calc_wait, self, f, cx);
	int err = nap_decode(self->req, &self->args.nap);
	if (err < 0)
		AFE_RETURN(err);
	if (self->args.nap.ms > CALC_NAP_MAX_MS)
		AFE_RETURN(-EINVAL); /* the caller is not trusted */
	afe_sleep_init(&self->sleep, (uint64_t)self->args.nap.ms * 1000000u);
	AFE_AWAIT(&self->sleep.base);
	AFE_RETURN(nap_reply(self->rep, self->req, self->args.nap.ms));
	AFE_ASYNC_END;
}

static inline int count_poll(struct afe_future *f, struct afe_context *cx)
{
	AFE_ASYNC_BEGIN_SELF(struct calc_wait, self, f, cx);
	int err = count_decode(self->req, &self->args.count);
	if (err < 0)
		AFE_RETURN(err);
	for (self->i = 0; self->i < self->args.count.n; self->i++) {
		count_reply_more(self->rep, self->req, self->i);
		AFE_AWAIT(&self->rep->base);
		if (self->rep->base.result < 0)
			break; /* the caller went, or its replies are dropped */
	}
	AFE_RETURN(count_reply(self->rep, self->req, self->args.count.n));
	AFE_ASYNC_END;
}

static inline struct afe_future *calc_wait_start(void *scratch, struct afe_ipc_request *req,
						 struct afe_ipc_reply *rep, afe_poll_fn *poll)
{
	struct calc_wait *w = scratch;
	afe_future_init(&w->base, poll);
	w->req = req;
	w->rep = rep;
	return &w->base;
}

static inline struct afe_future *nap_start(void *scratch, struct afe_ipc_request *req,
					   struct afe_ipc_reply *rep, void *arg)
{
	(void)arg;
	return calc_wait_start(scratch, req, rep, nap_poll);
}

static inline struct afe_future *count_start(void *scratch, struct afe_ipc_request *req,
					     struct afe_ipc_reply *rep, void *arg)
{
	(void)arg;
	return calc_wait_start(scratch, req, rep, count_poll);
}

static const struct afe_ipc_handler calc_handlers[] = {
	{add_ID, add_handle, NULL},
	{greet_ID, greet_handle, NULL},
	{nap_ID, NULL, nap_start},
	{count_ID, NULL, count_start},
	{weigh_ID, weigh_handle, NULL},
};

/* A serving task's future for consumer (spawn copies of it). */
static inline struct afe_ipc_serve calc_server_make(struct afe_ipc_consumer *consumer)
{
	struct afe_ipc_serve s;
	struct afe_ipc_serve_config config = {
		.consumer = consumer,
		.handlers = calc_handlers,
		.n_handlers = sizeof(calc_handlers) / sizeof(calc_handlers[0]),
		.scratch_size = sizeof(struct calc_wait),
	};
	afe_ipc_serve_init(&s, &config);
	return s;
}

#endif /* IPC_CALC_SERVER_H */
