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

#include "ipc_calc_server.h"

#define SERVERS 4

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
		struct afe_ipc_serve s = calc_server_make(self->consumer);
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
