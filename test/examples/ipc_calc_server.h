/* SPDX-License-Identifier: MIT */
/* A task serving the functions of ipc_calc.h from a consumer, until it
 * closes: ipc_consumer runs four, and the tests serve in-process with it. */
#ifndef IPC_CALC_SERVER_H
#define IPC_CALC_SERVER_H

#include <afe.h>
#include <stdio.h>

#include "ipc_calc.h"

struct calc_server {
	struct afe_future base;
	struct afe_ipc_consumer *consumer;
	struct afe_ipc_request req;
	struct afe_ipc_reply rep;
	union {
		struct add_args add;
		struct greet_args greet;
		struct nap_args nap;
		struct count_args count;
		struct weigh_args weigh;
	} args;
	char text[1024];
	uint32_t i;
	uint64_t weight;
	struct afe_sleep nap;
};

static inline void greeting(char *out, size_t size, const char *who, uint32_t times)
{
	size_t used = 0;
	out[0] = '\0';
	for (uint32_t i = 0; i < times && used < size; i++)
		used += (size_t)snprintf(out + used, size - used, "%shello, %s", i ? " " : "",
					 who ? who : "(null)");
}

static inline int calc_server_poll(struct afe_future *f, struct afe_context *cx)
{
	struct calc_server *self = afe_container_of(f, struct calc_server, base);
	struct afe_ipc_request *req = &self->req;
	AFE_ASYNC_BEGIN(f, cx);
	for (;;) {
		afe_ipc_recv_init(req, self->consumer);
		AFE_AWAIT(&req->base);
		if (req->base.result < 0)
			AFE_RETURN(0); /* the consumer closed */
		if (req->fn == add_ID && add_decode(req, &self->args.add) == 0) {
			add_reply(&self->rep, req,
				  self->args.add.a + self->args.add.b + self->args.add.c);
		} else if (req->fn == greet_ID && greet_decode(req, &self->args.greet) == 0) {
			greeting(self->text, sizeof(self->text), self->args.greet.who,
				 self->args.greet.times);
			greet_reply(&self->rep, req, self->text);
		} else if (req->fn == nap_ID && nap_decode(req, &self->args.nap) == 0 &&
			   self->args.nap.ms > CALC_NAP_MAX_MS) {
			afe_ipc_reply_error(&self->rep, req, -EINVAL); /* the caller is not trusted */
		} else if (req->fn == nap_ID && nap_decode(req, &self->args.nap) == 0) {
			afe_sleep_init(&self->nap, (uint64_t)self->args.nap.ms * 1000000u);
			AFE_AWAIT(&self->nap.base);
			nap_reply(&self->rep, req, self->args.nap.ms);
		} else if (req->fn == count_ID && count_decode(req, &self->args.count) == 0) {
			for (self->i = 0; self->i < self->args.count.n; self->i++) {
				count_reply_more(&self->rep, req, self->i);
				AFE_AWAIT(&self->rep.base);
				if (self->rep.base.result < 0)
					break; /* the caller went, or its replies are dropped */
			}
			count_reply(&self->rep, req, self->args.count.n);
		} else if (req->fn == weigh_ID && weigh_decode(req, &self->args.weigh) == 0) {
			self->weight = (uint64_t)self->args.weigh.data.len << 32;
			for (uint32_t k = 0; k < self->args.weigh.data.len; k++)
				self->weight += ((const unsigned char *)self->args.weigh.data.data)[k];
			weigh_reply(&self->rep, req, self->weight);
		} else {
			afe_ipc_reply_error(&self->rep, req, -EPROTO); /* arguments did not decode */
		}
		AFE_AWAIT(&self->rep.base);
	}
	AFE_ASYNC_END;
}

static inline struct calc_server calc_server_make(struct afe_ipc_consumer *consumer)
{
	struct calc_server s = {.consumer = consumer};
	afe_future_init(&s.base, calc_server_poll);
	return s;
}

#endif /* IPC_CALC_SERVER_H */
