/* SPDX-License-Identifier: MIT */
/*
 * The call layer over both links, in one process: a consumer serving the
 * calc functions here, and producers reaching it in-process (no shared
 * memory) or through its shared-memory object. The same calls must give
 * the same answers, timeouts, late replies and callbacks over either.
 */
#include <pthread.h>
#include <sched.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../examples/ipc_calc_server.h"
#include "ipc_calls.h"

#define SERVERS 4

static const enum afe_ipc_transport both[] = {AFE_IPC_IN_PROCESS, AFE_IPC_SHARED_MEMORY};

static const char *local_name(const char *what)
{
	static char name[96];
	snprintf(name, sizeof(name), "afe-local-%d-%s", (int)getpid(), what);
	return name;
}

/* A consumer serving the calc functions with SERVERS tasks on rt. */
struct served {
	struct afe_runtime *rt;
	struct afe_ipc_consumer *consumer;
	struct afe_join_handle servers[SERVERS];
};

static int serve(struct served *s, struct afe_runtime *rt, const char *name,
		 bool in_process_only)
{
	static const uint8_t functions[] = IPC_CALC_FUNCTIONS;
	struct afe_ipc_consumer_config config;
	afe_ipc_consumer_config_default(&config);
	config.functions = functions;
	config.n_functions = sizeof(functions);
	config.in_process_only = in_process_only;
	s->rt = rt;
	int err = afe_ipc_consumer_serve(&s->consumer, rt, name, &config);
	for (int i = 0; err == 0 && i < SERVERS; i++) {
		struct afe_ipc_serve server = calc_server_make(s->consumer);
		cr_assert_eq(afe_spawn(rt, &server, &s->servers[i]), 0);
	}
	return err;
}

static void unserve(struct served *s)
{
	afe_ipc_consumer_close(s->consumer);
	for (int i = 0; i < SERVERS; i++) {
		struct afe_join join;
		afe_join_init(&join, &s->servers[i]);
		cr_assert_eq(test_block_on(s->rt, &join), 0);
	}
	afe_ipc_consumer_destroy(s->consumer);
}

/* The consumer, a producer over transport, a call object. */
struct session {
	struct afe_runtime *rt;
	struct served served;
	struct afe_ipc_producer *p;
	struct afe_ipc_call call;
};

static void session_start(struct session *s, const char *what, enum afe_ipc_transport transport,
			  struct afe_ipc_producer_config *config)
{
	struct afe_ipc_producer_config defaults;
	if (!config) {
		afe_ipc_producer_config_default(&defaults);
		config = &defaults;
	}
	config->transport = transport;
	const char *name = local_name(what);
	s->rt = test_runtime(2);
	cr_assert_eq(serve(&s->served, s->rt, name, false), 0);
	int err = afe_ipc_producer_connect(&s->p, s->rt, name, config);
	cr_assert_eq(err, 0, "connect: %d", err);
	afe_ipc_call_init(&s->call, s->p);
}

static void session_end(struct session *s)
{
	afe_ipc_call_release(&s->call);
	afe_ipc_producer_close(s->p);
	unserve(&s->served);
	test_runtime_destroy(s->rt);
}

Test(ipc_local, calls_of_every_kind_give_the_same_answers_over_both_links)
{
	for (size_t t = 0; t < 2; t++) {
		struct session s;
		session_start(&s, "kinds", both[t], NULL);

		int64_t sum = 0;
		cr_assert_eq(add_call(&s.call, 40, 1, 1), 0);
		cr_assert_eq(run_call(s.rt, &s.call), 0);
		cr_assert_eq(add_result(&s.call, &sum), 0);
		cr_assert_eq(sum, 42, "transport %zu", t);

		afe_ipc_str text = NULL;
		cr_assert_eq(greet_call(&s.call, "you", 30), 0);
		cr_assert_eq(run_call(s.rt, &s.call), 0);
		cr_assert_eq(greet_result(&s.call, &text), 0);
		cr_assert(text && strlen(text) == 30 * strlen("hello, you") + 29);

		static unsigned char big[3000];
		for (size_t i = 0; i < sizeof(big); i++)
			big[i] = (unsigned char)(i * 7);
		uint64_t weight = 0, want = (uint64_t)sizeof(big) << 32;
		for (size_t i = 0; i < sizeof(big); i++)
			want += big[i];
		cr_assert_eq(weigh_call(&s.call, (afe_ipc_bytes){big, sizeof(big)}), 0);
		cr_assert_eq(run_call(s.rt, &s.call), 0);
		cr_assert_eq(weigh_result(&s.call, &weight), 0);
		cr_assert_eq(weight, want);

		/* A function not served; arguments that do not decode. */
		afe_ipc_put_int32_t(afe_ipc_call_begin(&s.call, 200), 7);
		cr_assert_eq(afe_ipc_call_arm(&s.call), 0);
		cr_assert_eq(run_call(s.rt, &s.call), -ENOSYS);
		afe_ipc_put_int32_t(afe_ipc_call_begin(&s.call, add_ID), 7);
		cr_assert_eq(afe_ipc_call_arm(&s.call), 0);
		cr_assert_eq(run_call(s.rt, &s.call), -EPROTO);

		/* Several replies to a callback, in order. */
		struct seen seen = {0};
		afe_ipc_call_on_reply(&s.call, on_count, &seen);
		cr_assert_eq(count_call(&s.call, 5), 0);
		cr_assert_eq(run_call(s.rt, &s.call), 0);
		cr_assert_eq(seen.n, 6);
		for (int i = 0; i < 6; i++) {
			cr_assert_eq(seen.values[i], (uint32_t)i);
			cr_assert_eq(seen.more[i], i < 5);
		}

		/* Oversized arguments never leave. */
		static unsigned char huge[AFE_IPC_MAX_PAYLOAD];
		cr_assert_eq(weigh_call(&s.call, (afe_ipc_bytes){huge, sizeof(huge)}), -EMSGSIZE);
		cr_assert_eq(run_call(s.rt, &s.call), -EMSGSIZE);

		struct afe_ipc_stats st;
		afe_ipc_producer_stats(s.p, &st);
		cr_assert_eq(st.calls, 6);
		cr_assert_eq(st.replies, 5 + 6);
		afe_ipc_consumer_stats(s.served.consumer, &st);
		cr_assert_eq(st.unknown_fn, 1);
		session_end(&s);
	}
}

Test(ipc_local, a_late_reply_is_dropped_and_counted_over_both_links)
{
	for (size_t t = 0; t < 2; t++) {
		struct afe_ipc_producer_config config;
		afe_ipc_producer_config_default(&config);
		struct afe_ipc_fn_timeout nap_limit = {.fn = nap_ID, .ms = 50};
		config.timeouts = &nap_limit;
		config.n_timeouts = 1;
		struct session s;
		session_start(&s, "late", both[t], &config);
		cr_assert_eq(nap_call(&s.call, 300), 0);
		cr_assert_eq(run_call(s.rt, &s.call), -ETIMEDOUT);
		cr_assert_eq(nap_call(&s.call, 0), 0);
		cr_assert_eq(run_call(s.rt, &s.call), 0);
		usleep(400 * 1000); /* the first nap's reply comes, and is dropped */
		int64_t sum = 0;
		cr_assert_eq(add_call(&s.call, 1, 1, 1), 0);
		cr_assert_eq(run_call(s.rt, &s.call), 0);
		cr_assert_eq(add_result(&s.call, &sum), 0);
		cr_assert_eq(sum, 3);
		struct afe_ipc_stats st;
		afe_ipc_producer_stats(s.p, &st);
		cr_assert_eq(st.timeouts, 1);
		cr_assert_eq(st.late_replies, 1, "transport %zu", t);
		session_end(&s);
	}
}

/* tasks adders, n calls each, on s; every answer must be theirs. */
static void run_adders(struct session *s, int tasks, int n)
{
	struct afe_join_handle *handles = calloc((size_t)tasks, sizeof(*handles));
	cr_assert_not_null(handles);
	for (int i = 0; i < tasks; i++) {
		struct adder a = adder_make(s->p, (int64_t)i * 100000000, n);
		cr_assert_eq(afe_spawn(s->rt, &a, &handles[i]), 0);
	}
	for (int i = 0; i < tasks; i++) {
		struct afe_join join;
		afe_join_init(&join, &handles[i]);
		intptr_t result = test_block_on(s->rt, &join);
		cr_assert_eq(result, 0, "task %d: %ld", i, (long)result);
	}
	free(handles);
	struct afe_ipc_stats st;
	afe_ipc_producer_stats(s->p, &st);
	cr_assert_eq(st.calls, (uint64_t)tasks * (uint64_t)n);
	cr_assert_eq(st.replies, (uint64_t)tasks * (uint64_t)n);
	cr_assert_eq(st.late_replies, 0);
}

Test(ipc_local, sixty_four_tasks_call_at_once_over_both_links)
{
	for (size_t t = 0; t < 2; t++) {
		struct session s;
		session_start(&s, "many", both[t], NULL);
		run_adders(&s, 64, 200);
		session_end(&s);
	}
}

/* Lost wakeups between callers and receivers of the in-process link: 8
 * callers against 4 receivers, each call a wake of a receiver and one of
 * its caller. */
Test(ipc_local, stress_eight_callers_half_a_million_in_process_calls, .timeout = 300)
{
	struct session s;
	session_start(&s, "stress", AFE_IPC_IN_PROCESS, NULL);
	run_adders(&s, 8, 64 * 1024);
	session_end(&s);
}

Test(ipc_local, a_consumer_serving_in_process_only_has_no_shared_memory)
{
	const char *name = local_name("only");
	char path[128];
	snprintf(path, sizeof(path), "/dev/shm/%s", name);
	struct afe_runtime *rt = test_runtime(2);
	struct served served;
	cr_assert_eq(serve(&served, rt, name, true), 0);
	cr_assert_eq(access(path, F_OK), -1, "no object in /dev/shm");

	struct afe_ipc_consumer *twin = NULL;
	cr_assert_eq(afe_ipc_consumer_serve(&twin, rt, name, NULL), -EADDRINUSE);

	struct afe_ipc_producer_config config;
	afe_ipc_producer_config_default(&config);
	struct afe_ipc_producer *p = NULL;
	config.transport = AFE_IPC_SHARED_MEMORY;
	cr_assert_eq(afe_ipc_producer_connect(&p, rt, name, &config), -ECONNREFUSED);
	config.transport = AFE_IPC_IN_PROCESS;
	char nobody[128];
	snprintf(nobody, sizeof(nobody), "%s-nobody", name);
	cr_assert_eq(afe_ipc_producer_connect(&p, rt, nobody, &config), -ECONNREFUSED);
	config.transport = (enum afe_ipc_transport)7;
	cr_assert_eq(afe_ipc_producer_connect(&p, rt, name, &config), -EINVAL);
	config.transport = AFE_IPC_ANY; /* finds it in this process */
	cr_assert_eq(afe_ipc_producer_connect(&p, rt, name, &config), 0);

	struct afe_ipc_call call;
	afe_ipc_call_init(&call, p);
	int64_t sum = 0;
	cr_assert_eq(add_call(&call, 1, 2, 3), 0);
	cr_assert_eq(run_call(rt, &call), 0);
	cr_assert_eq(add_result(&call, &sum), 0);
	cr_assert_eq(sum, 6);
	afe_ipc_producer_close(p);
	unserve(&served);
	cr_assert_eq(access(path, F_OK), -1);
	test_runtime_destroy(rt);
}

static intptr_t join(struct afe_runtime *rt, struct afe_join_handle *handle)
{
	struct afe_join j;
	afe_join_init(&j, handle);
	return test_block_on(rt, &j);
}

/* The timeout sweeper sleeps until the earliest deadline it knows: a call
 * due before that must wake it, or it would time out only when the naps'
 * 10 s deadlines come (and here get its reply first, after the naps). */
Test(ipc_local, a_call_due_before_the_calls_in_flight_times_out_on_time_over_both_links)
{
	for (size_t t = 0; t < 2; t++) {
		struct afe_ipc_producer_config config;
		afe_ipc_producer_config_default(&config);
		config.timeout_ms = 10000;
		struct afe_ipc_fn_timeout add_limit = {.fn = add_ID, .ms = 100};
		config.timeouts = &add_limit;
		config.n_timeouts = 1;
		struct session s;
		session_start(&s, "due", both[t], &config);
		struct afe_join_handle naps[SERVERS];
		for (int i = 0; i < SERVERS; i++)
			spawn_call(s.rt, s.p, nap_ID, 700, &naps[i]);
		usleep(50 * 1000); /* every server naps: the add waits its turn */
		uint64_t start = afe_now_ns();
		cr_assert_eq(add_call(&s.call, 1, 2, 3), 0);
		cr_assert_eq(run_call(s.rt, &s.call), -ETIMEDOUT, "transport %zu", t);
		cr_assert_geq(afe_now_ns() - start, 100 * 1000000ull, "never early");
		for (int i = 0; i < SERVERS; i++)
			cr_assert_eq(join(s.rt, &naps[i]), 0);
		/* Again, the sweeper asleep now for the first naps' deadlines. */
		for (int i = 0; i < SERVERS; i++)
			spawn_call(s.rt, s.p, nap_ID, 700, &naps[i]);
		usleep(50 * 1000);
		cr_assert_eq(add_call(&s.call, 1, 2, 3), 0);
		cr_assert_eq(run_call(s.rt, &s.call), -ETIMEDOUT, "transport %zu", t);
		for (int i = 0; i < SERVERS; i++)
			cr_assert_eq(join(s.rt, &naps[i]), 0);
		struct afe_ipc_stats st;
		afe_ipc_producer_stats(s.p, &st);
		cr_assert_eq(st.timeouts, 2);
		session_end(&s);
	}
}

Test(ipc_local, a_closed_consumer_ends_in_process_calls_with_epipe_and_its_name_serves_again)
{
	const char *name = local_name("closed");
	struct afe_runtime *rt = test_runtime(2);
	struct served served;
	cr_assert_eq(serve(&served, rt, name, true), 0);
	struct afe_ipc_producer_config config;
	afe_ipc_producer_config_default(&config);
	config.timeout_ms = 60000; /* -EPIPE must come from the close */
	struct afe_ipc_producer *p = NULL;
	cr_assert_eq(afe_ipc_producer_connect(&p, rt, name, &config), 0);

	/* A nap held by a server, and more calls than servers queued. */
	struct afe_join_handle naps[SERVERS + 3];
	for (int i = 0; i < SERVERS + 3; i++)
		spawn_call(rt, p, nap_ID, 1000, &naps[i]);
	usleep(100 * 1000);
	afe_ipc_consumer_close(served.consumer);
	for (int i = 0; i < SERVERS + 3; i++)
		cr_assert_eq(join(rt, &naps[i]), -EPIPE, "call %d", i);
	cr_assert(afe_ipc_producer_is_gone(p));
	struct afe_join_handle late;
	spawn_call(rt, p, add_ID, 1, &late);
	cr_assert_eq(join(rt, &late), -EPIPE);

	/* The servers end their naps: their replies go nowhere (-EPIPE, as
	 * over the ring), not counted as late. */
	for (int i = 0; i < SERVERS; i++)
		cr_assert_eq(join(rt, &served.servers[i]), 0);
	struct afe_ipc_stats st;
	afe_ipc_producer_stats(p, &st);
	cr_assert_eq(st.late_replies, 0);
	afe_ipc_producer_close(p);
	afe_ipc_consumer_destroy(served.consumer);
	cr_assert_eq(afe_ipc_producer_connect(&p, rt, name, &config), -ECONNREFUSED);

	/* The name serves again. */
	cr_assert_eq(serve(&served, rt, name, true), 0);
	cr_assert_eq(afe_ipc_producer_connect(&p, rt, name, &config), 0);
	struct afe_join_handle again;
	spawn_call(rt, p, add_ID, 5, &again);
	cr_assert_eq(join(rt, &again), 0);
	afe_ipc_producer_close(p);
	unserve(&served);
	test_runtime_destroy(rt);
}

/* Serves name with a NULL runtime, from a task: the task's runtime. */
struct serve_here {
	struct afe_future base;
	struct afe_ipc_consumer **out;
	const char *name;
	const struct afe_ipc_consumer_config *config;
};

static int serve_here_poll(struct afe_future *f, struct afe_context *cx)
{
	struct serve_here *self = afe_container_of(f, struct serve_here, base);
	AFE_ASYNC_BEGIN(f, cx);
	AFE_RETURN(afe_ipc_consumer_serve(self->out, NULL, self->name, self->config));
	AFE_ASYNC_END;
}

Test(ipc_local, a_consumer_served_with_a_null_runtime_runs_on_the_current_one)
{
	const char *name = local_name("null-rt");
	static const uint8_t functions[] = IPC_CALC_FUNCTIONS;
	struct afe_ipc_consumer_config config;
	afe_ipc_consumer_config_default(&config);
	config.functions = functions;
	config.n_functions = sizeof(functions);
	config.in_process_only = true;
	struct served served = {.rt = test_runtime(2)};
	cr_assert_eq(afe_ipc_consumer_serve(&served.consumer, NULL, name, &config), -EINVAL,
		     "no runtime on this thread");

	struct serve_here here = {.out = &served.consumer, .name = name, .config = &config};
	afe_future_init(&here.base, serve_here_poll);
	intptr_t err = test_block_on(served.rt, &here);
	cr_assert_eq(err, 0, "served from a task: %d", (int)err);
	for (int i = 0; i < SERVERS; i++) {
		struct afe_ipc_serve server = calc_server_make(served.consumer);
		cr_assert_eq(afe_spawn(served.rt, &server, &served.servers[i]), 0);
	}
	struct afe_ipc_producer *p = NULL;
	cr_assert_eq(afe_ipc_producer_connect(&p, served.rt, name, NULL), 0);
	struct afe_join_handle call;
	spawn_call(served.rt, p, add_ID, 5, &call);
	cr_assert_eq(join(served.rt, &call), 0);
	afe_ipc_producer_close(p);
	unserve(&served);
	test_runtime_destroy(served.rt);
}

Test(ipc_local, a_closed_producer_ends_its_calls_and_the_consumer_serves_others)
{
	const char *name = local_name("pclosed");
	struct afe_runtime *rt = test_runtime(2);
	struct served served;
	cr_assert_eq(serve(&served, rt, name, true), 0);
	struct afe_ipc_producer *leaving = NULL, *staying = NULL;
	cr_assert_eq(afe_ipc_producer_connect(&leaving, rt, name, NULL), 0);
	cr_assert_eq(afe_ipc_producer_connect(&staying, rt, name, NULL), 0);

	/* One call taken by a server, the rest still queued. */
	struct afe_join_handle calls[SERVERS + 2];
	spawn_call(rt, leaving, nap_ID, 200, &calls[0]);
	usleep(50 * 1000);
	for (int i = 1; i < SERVERS + 2; i++)
		spawn_call(rt, leaving, nap_ID, 200, &calls[i]);
	usleep(20 * 1000);
	afe_ipc_producer_close(leaving);
	for (int i = 0; i < SERVERS + 2; i++)
		cr_assert_eq(join(rt, &calls[i]), -EPIPE, "call %d", i);

	struct afe_join_handle other;
	spawn_call(rt, staying, add_ID, 9, &other);
	cr_assert_eq(join(rt, &other), 0);
	afe_ipc_producer_close(staying);
	unserve(&served);
	test_runtime_destroy(rt);
}

/* Connects and closes over the in-process link until told to stop. */
struct connector {
	struct afe_runtime *rt;
	const char *name;
	_Atomic bool stop;
	long connected;
};

static void *connect_in_a_loop(void *arg)
{
	struct connector *k = arg;
	struct afe_ipc_producer_config config;
	afe_ipc_producer_config_default(&config);
	config.transport = AFE_IPC_IN_PROCESS;
	while (!atomic_load(&k->stop)) {
		struct afe_ipc_producer *p;
		if (afe_ipc_producer_connect(&p, k->rt, k->name, &config) == 0) {
			k->connected++;
			afe_ipc_producer_close(p);
		}
	}
	return NULL;
}

/* A producer retrying connect (as it is told to) while consumers come and
 * go under the name: none may adopt a consumer still being set up. Under
 * ASan a use-after-free shows within a few hundred rounds without that. */
Test(ipc_local, stress_producers_connecting_while_consumers_start_and_stop, .timeout = 300)
{
	struct connector k = {.rt = test_runtime(2), .name = local_name("churn")};
	pthread_t thread;
	cr_assert_eq(pthread_create(&thread, NULL, connect_in_a_loop, &k), 0);
	struct afe_ipc_consumer_config config;
	afe_ipc_consumer_config_default(&config);
	for (int i = 0; i < 4000; i++) {
		config.in_process_only = i % 8 != 0; /* an object now and then */
		struct afe_ipc_consumer *c;
		cr_assert_eq(afe_ipc_consumer_serve(&c, k.rt, k.name, &config), 0, "round %d", i);
		for (int y = 0; y < i % 16; y++)
			sched_yield(); /* serve for a moment, now and then */
		afe_ipc_consumer_destroy(c);
	}
	atomic_store(&k.stop, true);
	pthread_join(thread, NULL);
	cr_assert_gt(k.connected, 0);
	test_runtime_destroy(k.rt);
}
