/* SPDX-License-Identifier: MIT */
/*
 * Connecting that waits for the name to be served (connect_wait_ms): from
 * a thread outside any runtime, and from a task (afe_ipc_connect), over
 * both links; a consumer that comes up meanwhile is found, none gives
 * -ETIMEDOUT, a worker thread is refused with -EDEADLK.
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "ipc_calls.h"

static const char *wait_name(const char *what)
{
	static char name[96];
	snprintf(name, sizeof(name), "afe-wait-%d-%s", (int)getpid(), what);
	return name;
}

/* Serves name on rt after a pause, from a thread of its own. */
struct late {
	struct afe_runtime *rt;
	const char *name;
	struct afe_ipc_consumer *consumer;
	int err;
	pthread_t thread;
};

static void *serve_late(void *arg)
{
	struct late *l = arg;
	usleep(50000);
	l->err = afe_ipc_consumer_serve(&l->consumer, l->rt, l->name, NULL);
	return NULL;
}

static void late_start(struct late *l, struct afe_runtime *rt, const char *name)
{
	l->rt = rt;
	l->name = name;
	l->consumer = NULL;
	cr_assert_eq(pthread_create(&l->thread, NULL, serve_late, l), 0);
}

static void late_end(struct late *l)
{
	pthread_join(l->thread, NULL);
	cr_assert_eq(l->err, 0);
	afe_ipc_consumer_close(l->consumer);
	afe_ipc_consumer_destroy(l->consumer);
}

static const enum afe_ipc_transport both[] = {AFE_IPC_IN_PROCESS, AFE_IPC_SHARED_MEMORY};

Test(ipc_connect_wait, a_thread_waits_until_the_name_is_served)
{
	struct afe_runtime *rt = test_runtime(1);
	for (size_t t = 0; t < 2; t++) {
		const char *name = wait_name(t ? "thread-shm" : "thread-local");
		struct afe_ipc_producer_config config;
		afe_ipc_producer_config_default(&config);
		config.transport = both[t];
		struct afe_ipc_producer *p = NULL;
		/* Without a wait: refused at once, as before. */
		cr_assert_eq(afe_ipc_producer_connect(&p, rt, name, &config), -ECONNREFUSED);
		struct late l;
		late_start(&l, rt, name);
		config.connect_wait_ms = 10000;
		cr_assert_eq(afe_ipc_producer_connect(&p, rt, name, &config), 0, "transport %zu", t);
		afe_ipc_producer_close(p);
		late_end(&l);
	}
	test_runtime_destroy(rt);
}

Test(ipc_connect_wait, nobody_serving_times_out)
{
	struct afe_ipc_producer_config config;
	afe_ipc_producer_config_default(&config);
	config.connect_wait_ms = 100;
	struct afe_ipc_producer *p = NULL;
	uint64_t start = afe_now_ns();
	/* NULL runtime: the producer's own, made once for every try. */
	cr_assert_eq(afe_ipc_producer_connect(&p, NULL, wait_name("nobody"), &config), -ETIMEDOUT);
	cr_assert_geq(afe_now_ns() - start, 100 * 1000000u, "it waited");
	cr_assert_eq(afe_ipc_producer_connect(&p, NULL, "bad/name", &config), -EINVAL);
}

/* A task that connects with afe_ipc_producer_connect (blocking) or
 * afe_ipc_connect (awaited), and closes what it got. */
struct connector {
	struct afe_future base;
	const char *name;
	struct afe_ipc_producer_config config;
	bool blocking;
	struct afe_ipc_producer *p;
	struct afe_ipc_connect connect;
};

static int connector_poll(struct afe_future *f, struct afe_context *cx)
{
	AFE_ASYNC_BEGIN_SELF(struct connector, self, f, cx);
	if (self->blocking)
		AFE_RETURN(afe_ipc_producer_connect(&self->p, NULL, self->name, &self->config));
	afe_ipc_connect_init(&self->connect, &self->p, NULL, self->name, &self->config);
	AFE_AWAIT(&self->connect.base);
	if (self->connect.base.result == 0)
		afe_ipc_producer_close(self->p);
	AFE_RETURN(self->connect.base.result);
	AFE_ASYNC_END;
}

static struct connector connector_make(const char *name, uint32_t wait_ms,
				       enum afe_ipc_transport transport, bool blocking)
{
	struct connector c = {.name = name, .blocking = blocking};
	afe_future_init(&c.base, connector_poll);
	afe_ipc_producer_config_default(&c.config);
	c.config.connect_wait_ms = wait_ms;
	c.config.transport = transport;
	return c;
}

static intptr_t run_connector(struct afe_runtime *rt, const char *name, uint32_t wait_ms,
			      enum afe_ipc_transport transport, bool blocking)
{
	struct connector c = connector_make(name, wait_ms, transport, blocking);
	return test_block_on(rt, &c);
}

Test(ipc_connect_wait, a_task_awaits_until_the_name_is_served)
{
	struct afe_runtime *rt = test_runtime(1);
	for (size_t t = 0; t < 2; t++) {
		const char *name = wait_name(t ? "task-shm" : "task-local");
		struct late l;
		late_start(&l, rt, name);
		cr_assert_eq(run_connector(rt, name, 10000, both[t], false), 0, "transport %zu", t);
		late_end(&l);
	}
	cr_assert_eq(run_connector(rt, wait_name("task-nobody"), 50, AFE_IPC_ANY, false),
		     -ETIMEDOUT);
	cr_assert_eq(run_connector(rt, wait_name("task-once"), 0, AFE_IPC_ANY, false),
		     -ECONNREFUSED);
	/* The blocking connect would hold the worker. */
	cr_assert_eq(run_connector(rt, wait_name("task-blocking"), 50, AFE_IPC_ANY, true),
		     -EDEADLK);
	test_runtime_destroy(rt);
}

Test(ipc_connect_wait, a_cancelled_wait_ends_at_once_with_ecanceled, .timeout = 30)
{
	struct afe_runtime *rt = test_runtime(1);
	struct connector c = connector_make(wait_name("cancelled"), 10000, AFE_IPC_ANY, false);
	struct afe_join_handle h;
	cr_assert_eq(afe_spawn(rt, &c, &h), 0);
	usleep(30000); /* into its pauses */
	uint64_t asked = afe_now_ns();
	struct afe_cancel cancel;
	cr_assert_eq(afe_cancel_init(&cancel, &h), 0);
	cr_assert_eq(test_block_on(rt, &cancel), -ECANCELED);
	/* Not the 10 s wait, nor retries until then: */
	cr_assert_lt(afe_now_ns() - asked, 2000000000u);
	test_runtime_destroy(rt);
}

/* afe_ipc_connect's bad input gives afe_ipc_producer_connect's -EINVAL at
 * once, without a wait: no out, no name, a bad name, a bad config; a
 * null config means the defaults (one try). */
Test(ipc_connect_wait, an_awaited_connect_with_bad_arguments_is_einval_at_once)
{
	struct afe_runtime *rt = test_runtime(1);
	struct afe_ipc_producer_config config;
	afe_ipc_producer_config_default(&config);
	config.connect_wait_ms = 10000;
	struct afe_ipc_producer *p = NULL;
	uint64_t began = afe_now_ns();
	struct afe_ipc_connect c;
	afe_ipc_connect_init(&c, NULL, rt, wait_name("einval"), &config);
	cr_assert_eq(test_block_on(rt, &c), -EINVAL, "no out");
	afe_ipc_connect_init(&c, &p, rt, NULL, &config);
	cr_assert_eq(test_block_on(rt, &c), -EINVAL, "no name");
	afe_ipc_connect_init(&c, &p, rt, "bad/name", &config);
	cr_assert_eq(test_block_on(rt, &c), -EINVAL, "a bad name");
	config.n_timeouts = 1;
	afe_ipc_connect_init(&c, &p, rt, wait_name("einval"), &config);
	cr_assert_eq(test_block_on(rt, &c), -EINVAL, "timeouts counted, none given");
	cr_assert_lt(afe_now_ns() - began, 2000000000u, "none waited");
	afe_ipc_connect_init(&c, &p, NULL, wait_name("einval"), NULL);
	cr_assert_eq(test_block_on(rt, &c), -ECONNREFUSED, "the defaults: one try");
	cr_assert_eq(p, NULL);
	test_runtime_destroy(rt);
}
