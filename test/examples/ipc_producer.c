/* SPDX-License-Identifier: MIT */
/*
 * Calls the functions ipc_consumer serves: add, greet, a buffer, and a
 * streamed count whose replies go to a callback. Waits up to 5 s for the
 * consumer to come up. Exits 0 when every answer was right.
 *
 *   ipc_producer [NAME]      (default afe-calc)
 */
#include <afe.h>
#include <stdio.h>
#include <string.h>

#include "ipc_calc.h"

struct app {
	struct afe_future base;
	const char *name;
	struct afe_ipc_producer *producer;
	struct afe_ipc_call call;
	struct afe_ipc_producer_config config;
	struct afe_ipc_connect connect;
	int64_t sum;
	afe_ipc_str text;
	uint64_t weight;
	unsigned char buffer[1000];
	uint32_t counted;
};

/* The count stream's callback: runs for every reply, in order. */
static void on_count(void *ctx, int status, struct afe_ipc_reader *r, bool more)
{
	struct app *app = ctx;
	uint32_t n;
	if (status == 0 && count_decode_ret(r, &n) == 0) {
		printf("count: %u%s\n", n, more ? "" : " (last)");
		app->counted++;
	}
}

static int app_poll(struct afe_future *f, struct afe_context *cx)
{
	struct app *self = afe_container_of(f, struct app, base);
	int err;
	AFE_ASYNC_BEGIN(f, cx);
	afe_ipc_producer_config_default(&self->config);
	self->config.connect_wait_ms = 5000; /* the consumer may be starting */
	afe_ipc_connect_init(&self->connect, &self->producer, NULL, self->name, &self->config);
	AFE_AWAIT(&self->connect.base);
	if ((err = (int)self->connect.base.result) < 0) {
		fprintf(stderr, "ipc_producer: cannot connect to %s: %s\n", self->name,
			strerror(-err));
		AFE_RETURN(1);
	}
	afe_ipc_call_init(&self->call, self->producer);

	add_call(&self->call, 1, 2, 3);
	AFE_AWAIT(&self->call.base);
	if (self->call.base.result < 0 || add_result(&self->call, &self->sum) < 0)
		AFE_RETURN(2);
	printf("add(1, 2, 3) = %lld\n", (long long)self->sum);

	greet_call(&self->call, "world", 2);
	AFE_AWAIT(&self->call.base);
	if (self->call.base.result < 0 || greet_result(&self->call, &self->text) < 0)
		AFE_RETURN(3);
	printf("greet(\"world\", 2) = \"%s\"\n", self->text);
	/* The string lives in the call object until its next call: check it now. */
	if (strcmp(self->text, "hello, world hello, world"))
		AFE_RETURN(3);

	memset(self->buffer, 1, sizeof(self->buffer));
	weigh_call(&self->call, (afe_ipc_bytes){self->buffer, sizeof(self->buffer)});
	AFE_AWAIT(&self->call.base);
	if (self->call.base.result < 0 || weigh_result(&self->call, &self->weight) < 0)
		AFE_RETURN(4);
	printf("weigh(1000 bytes of 1) = %llu bytes, sum %llu\n",
	       (unsigned long long)(self->weight >> 32),
	       (unsigned long long)(self->weight & 0xffffffffu));

	afe_ipc_call_on_reply(&self->call, on_count, self);
	count_call(&self->call, 3);
	AFE_AWAIT(&self->call.base);
	if (self->call.base.result < 0 || self->counted != 4)
		AFE_RETURN(5);

	AFE_RETURN(self->sum == 6 && self->weight == ((uint64_t)1000 << 32 | 1000) ? 0 : 6);
	AFE_CLEANUP;
	if (self->producer) {
		afe_ipc_call_release(&self->call);
		afe_ipc_producer_close(self->producer);
	}
	AFE_ASYNC_END;
}

static int app_init(struct app *app, int argc, char **argv)
{
	app->name = argc > 1 ? argv[1] : "afe-calc";
	afe_future_init(&app->base, app_poll);
	return 0;
}

AFE_MAIN(struct app, app_init)
