/* SPDX-License-Identifier: MIT */
/* Calls ipc_consumer's add and greet from a coroutine, blocking-style: a
 * plain C function with locals. Waits up to 5 s for the consumer to come
 * up; exits 0 when both answers were right.
 *   coro_ipc_client [NAME]      (default afe-calc) */
#include <afe.h>
#include <stdio.h>
#include <string.h>

#include "ipc_calc.h"

static intptr_t client(void *arg)
{
	const char *name = arg;
	struct afe_ipc_producer *p = NULL;
	struct afe_ipc_producer_config config;
	afe_ipc_producer_config_default(&config);
	config.connect_wait_ms = 5000; /* the consumer may be starting */
	struct afe_ipc_connect connect;
	afe_ipc_connect_init(&connect, &p, NULL, name, &config);
	int err = (int)afe_co_await(&connect.base);
	if (err < 0)
		return fprintf(stderr, "coro_ipc_client: %s: %s\n", name, strerror(-err)), 1;
	struct afe_ipc_call call;
	afe_ipc_call_init(&call, p);
	int64_t sum = 0;
	afe_ipc_str text = NULL;
	int ok = add_call(&call, 1, 2, 3) == 0 && afe_co_ipc_call(&call) == 0 &&
		 add_result(&call, &sum) == 0 && sum == 6;
	printf("add(1, 2, 3) = %lld\n", (long long)sum);
	ok = ok && greet_call(&call, "world", 2) == 0 && afe_co_ipc_call(&call) == 0 &&
	     greet_result(&call, &text) == 0 && !strcmp(text, "hello, world hello, world");
	printf("greet(\"world\", 2) = \"%s\"\n", text ? text : "");
	afe_ipc_call_release(&call);
	afe_ipc_producer_close(p);
	return ok ? 0 : 2;
}

static int app_init(struct afe_coro *app, int argc, char **argv)
{
	return afe_coro_init(app, client, argc > 1 ? argv[1] : "afe-calc", NULL);
}

AFE_MAIN(struct afe_coro, app_init)
