/* SPDX-License-Identifier: MIT */
/*
 * Serves the functions of ipc_calc.h to producer processes, with four
 * tasks taking requests, until Ctrl-C (or SIGTERM).
 *
 *   ipc_consumer [NAME]      (default afe-calc)
 */
#include <afe.h>
#include <stdio.h>
#include <string.h>

#include "ipc_calc.h"

#define SERVERS 4

struct server {
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

static void greeting(char *out, size_t size, const char *who, uint32_t times)
{
	size_t used = 0;
	out[0] = '\0';
	for (uint32_t i = 0; i < times && used < size; i++)
		used += (size_t)snprintf(out + used, size - used, "%shello, %s", i ? " " : "",
					 who ? who : "(null)");
}

static int server_poll(struct afe_future *f, struct afe_context *cx)
{
	struct server *self = afe_container_of(f, struct server, base);
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
		} else if (req->fn == nap_ID && nap_decode(req, &self->args.nap) == 0) {
			afe_sleep_init(&self->nap, (uint64_t)self->args.nap.ms * 1000000u);
			AFE_AWAIT(&self->nap.base);
			nap_reply(&self->rep, req, self->args.nap.ms);
		} else if (req->fn == count_ID && count_decode(req, &self->args.count) == 0) {
			for (self->i = 0; self->i < self->args.count.n; self->i++) {
				count_reply_more(&self->rep, req, self->i);
				AFE_AWAIT(&self->rep.base);
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

struct app {
	struct afe_future base;
	const char *name;
	struct afe_ipc_consumer *consumer;
	struct afe_join_handle servers[SERVERS];
	struct afe_token_wait stop;
	struct afe_join join;
	struct afe_ipc_stats stats; /* read before the joins: kept across their awaits */
	int i;
};

static int app_poll(struct afe_future *f, struct afe_context *cx)
{
	struct app *self = afe_container_of(f, struct app, base);
	AFE_ASYNC_BEGIN(f, cx);
	static const uint8_t functions[] = IPC_CALC_FUNCTIONS;
	struct afe_ipc_consumer_config config;
	afe_ipc_consumer_config_default(&config);
	config.functions = functions;
	config.n_functions = sizeof(functions);
	int err = afe_ipc_consumer_serve(&self->consumer, afe_runtime_current(), self->name,
					 &config);
	if (err < 0) {
		fprintf(stderr, "ipc_consumer: cannot serve %s: %s\n", self->name, strerror(-err));
		AFE_RETURN(1);
	}
	for (self->i = 0; self->i < SERVERS; self->i++) {
		struct server s = {.consumer = self->consumer};
		afe_future_init(&s.base, server_poll);
		if (afe_spawn(NULL, &s, &self->servers[self->i]) < 0)
			AFE_RETURN(1);
	}
	printf("ipc_consumer: serving %s (Ctrl-C stops)\n", self->name);
	fflush(stdout);
	afe_token_wait_init(&self->stop, afe_shutdown_token());
	AFE_AWAIT(&self->stop.base);
	afe_ipc_consumer_stats(self->consumer, &self->stats);
	afe_ipc_consumer_close(self->consumer);
	for (self->i = 0; self->i < SERVERS; self->i++) {
		afe_join_init(&self->join, &self->servers[self->i]);
		AFE_AWAIT(&self->join.base);
	}
	afe_ipc_consumer_destroy(self->consumer);
	printf("ipc_consumer: stopped after %llu requests\n", (unsigned long long)self->stats.calls);
	AFE_RETURN(0);
	AFE_ASYNC_END;
}

static int app_init(struct app *app, int argc, char **argv)
{
	app->name = argc > 1 ? argv[1] : "afe-calc";
	afe_future_init(&app->base, app_poll);
	return 0;
}

AFE_MAIN(struct app, app_init)
