/* SPDX-License-Identifier: MIT */
/* Blocking calls (afe_ipc_call_wait) from threads outside any runtime,
 * against the example consumer in a child process. */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "ipc_helpers.h"
#include "src/ipc/ipc_producer.h"

static uint64_t ms_since(uint64_t start_ns)
{
	return (afe_now_ns() - start_ns) / 1000000u;
}

/* The threads of this process. */
static int thread_count(void)
{
	return test_dir_entries("/proc/self/task");
}

/* The thread count once it came down to want (2 s at most): a thread that
 * pthread_join returned for may stay listed a moment longer, as the
 * kernel wakes the joiner before it has removed the thread. */
static int thread_count_down_to(int want)
{
	int n = thread_count();
	for (int i = 0; i < 2000 && n > want; i++) {
		usleep(1000);
		n = thread_count();
	}
	return n;
}

/* The thread count once it stayed the same for 20 ms (2 s at most). */
static int thread_count_settled(void)
{
	int n = thread_count();
	for (int same = 0, i = 0; same < 20 && i < 2000; i++) {
		usleep(1000);
		int now = thread_count();
		same = now == n ? same + 1 : 0;
		n = now;
	}
	return n;
}

Test(ipc_wait, a_blocking_call_without_a_runtime_gets_its_answer)
{
	struct ipc_session s;
	ipc_session_start_alone(&s, "wait", NULL);
	int64_t sum = 0;
	cr_assert_eq(add_call(&s.call, 1, 2, 3), 0);
	cr_assert_eq(afe_ipc_call_wait(&s.call), 0);
	cr_assert_eq(add_result(&s.call, &sum), 0);
	cr_assert_eq(sum, 6);
	cr_assert_eq(afe_ipc_call_wait(&s.call), 0, "an ended call gives its result again");

	afe_ipc_str text = NULL;
	cr_assert_eq(greet_call(&s.call, "you", 2), 0);
	cr_assert_eq(afe_ipc_call_wait(&s.call), 0);
	cr_assert_eq(greet_result(&s.call, &text), 0);
	cr_assert(text && strcmp(text, "hello, you hello, you") == 0);

	/* A consumer's error comes back as the result. */
	struct afe_ipc_writer *w = afe_ipc_call_begin(&s.call, 200);
	afe_ipc_put_int32_t(w, 7);
	cr_assert_eq(afe_ipc_call_arm(&s.call), 0);
	cr_assert_eq(afe_ipc_call_wait(&s.call), -ENOSYS);
	ipc_session_end(&s);
}

Test(ipc_wait, a_blocking_call_to_a_killed_consumer_ends_with_epipe_well_before_its_timeout)
{
	struct afe_ipc_producer_config config;
	afe_ipc_producer_config_default(&config);
	config.timeout_ms = 10000;
	struct ipc_session s;
	ipc_session_start_alone(&s, "wait-kill", &config);
	cr_assert_eq(nap_call(&s.call, 8000), 0);
	pid_t killer = fork_tied();
	if (killer == 0) {
		usleep(100 * 1000); /* the call is out */
		kill(s.consumer, SIGKILL);
		_exit(0);
	}
	uint64_t start = afe_now_ns();
	cr_assert_eq(afe_ipc_call_wait(&s.call), -EPIPE);
	cr_assert_lt(ms_since(start), 2000, "-EPIPE came from the death, not a timeout");
	waitpid(killer, NULL, 0);
	cr_assert_eq(add_call(&s.call, 1, 2, 3), 0);
	cr_assert_eq(afe_ipc_call_wait(&s.call), -EPIPE, "later calls fail at once");
	ipc_session_end(&s);
}

Test(ipc_wait, a_blocking_call_past_its_timeout_ends_with_etimedout)
{
	struct afe_ipc_producer_config config;
	afe_ipc_producer_config_default(&config);
	struct afe_ipc_fn_timeout nap_limit = {.fn = nap_ID, .ms = 100};
	config.timeouts = &nap_limit;
	config.n_timeouts = 1;
	struct ipc_session s;
	ipc_session_start_alone(&s, "wait-late", &config);
	cr_assert_eq(nap_call(&s.call, 1500), 0);
	uint64_t start = afe_now_ns();
	cr_assert_eq(afe_ipc_call_wait(&s.call), -ETIMEDOUT);
	uint64_t took = ms_since(start);
	cr_assert(took >= 100 && took < 1000, "timed out after %llu ms", (unsigned long long)took);
	struct afe_ipc_stats st;
	afe_ipc_producer_stats(s.p, &st);
	cr_assert_eq(st.timeouts, 1);
	ipc_session_end(&s);
}

Test(ipc_wait, waiting_on_a_null_unarmed_or_unbound_call_is_einval)
{
	cr_assert_eq(afe_ipc_call_wait(NULL), -EINVAL);
	struct afe_ipc_call call;
	afe_ipc_call_init(&call, NULL);
	cr_assert_eq(afe_ipc_call_wait(&call), -EINVAL, "never armed");
	cr_assert_eq(add_call(&call, 1, 2, 3), -EINVAL, "no producer");
	cr_assert_eq(afe_ipc_call_wait(&call), -EINVAL);
	afe_ipc_call_release(&call);
	struct afe_ipc_producer *p = NULL;
	cr_assert_eq(afe_ipc_producer_connect(NULL, NULL, "afe-calc", NULL), -EINVAL);
	cr_assert_eq(afe_ipc_producer_connect(&p, NULL, "bad/name", NULL), -EINVAL);
	cr_assert_null(p);
}

Test(ipc_wait, refused_arguments_end_a_blocking_call_at_once)
{
	struct ipc_session s;
	ipc_session_start_alone(&s, "wait-big", NULL);
	static unsigned char huge[AFE_IPC_MAX_PAYLOAD];
	cr_assert_eq(weigh_call(&s.call, (afe_ipc_bytes){huge, sizeof(huge)}), -EMSGSIZE);
	cr_assert_eq(afe_ipc_call_wait(&s.call), -EMSGSIZE);
	ipc_session_end(&s);
}

/* Calls afe_ipc_call_wait from a worker thread. */
struct wait_in_task {
	struct afe_future base;
	struct afe_ipc_call *call;
};

static int wait_in_task_poll(struct afe_future *f, struct afe_context *cx)
{
	struct wait_in_task *self = afe_container_of(f, struct wait_in_task, base);
	(void)cx;
	f->result = afe_ipc_call_wait(self->call);
	return AFE_READY;
}

Test(ipc_wait, waiting_on_a_worker_is_edeadlk_and_leaves_the_call_armed)
{
	struct ipc_session s;
	ipc_session_start(&s, "wait-worker", NULL);
	cr_assert_eq(add_call(&s.call, 4, 5, 6), 0);
	struct wait_in_task t = {.call = &s.call};
	afe_future_init(&t.base, wait_in_task_poll);
	cr_assert_eq(test_block_on(s.rt, &t), -EDEADLK);
	/* Nothing was sent: awaiting it now makes the call. */
	int64_t sum = 0;
	cr_assert_eq(run_call(s.rt, &s.call), 0);
	cr_assert_eq(add_result(&s.call, &sum), 0);
	cr_assert_eq(sum, 15);
	/* A thread outside the runtime may wait on a producer of it, too. */
	cr_assert_eq(add_call(&s.call, 1, 1, 1), 0);
	cr_assert_eq(afe_ipc_call_wait(&s.call), 0);
	cr_assert_eq(add_result(&s.call, &sum), 0);
	cr_assert_eq(sum, 3);
	ipc_session_end(&s);
}

Test(ipc_wait, a_producer_with_a_runtime_of_its_own_leaves_no_thread_behind)
{
	/* ThreadSanitizer starts a thread of its own at the first
	 * pthread_create: a runtime made and destroyed first counts it in. */
	test_runtime_destroy(test_runtime(1));
	int before = thread_count_settled();
	struct afe_ipc_producer *p = NULL;
	cr_assert_eq(afe_ipc_producer_connect(&p, NULL, ipc_test_name("nobody"), NULL),
		     -ECONNREFUSED);
	cr_assert_eq(thread_count_down_to(before), before, "a failed connect keeps no runtime");

	struct ipc_session s;
	ipc_session_start_alone(&s, "wait-threads", NULL);
	cr_assert_gt(thread_count(), before, "the producer runs its own runtime");
	cr_assert_eq(add_call(&s.call, 1, 2, 3), 0);
	cr_assert_eq(afe_ipc_call_wait(&s.call), 0);
	ipc_session_end(&s);
	cr_assert_eq(thread_count_down_to(before), before,
		     "close destroyed the producer's runtime");
}

/* Connects with a NULL runtime from a task, and makes one call. */
struct connect_in_task {
	struct afe_future base;
	const char *name;
	struct afe_runtime **rt; /* the producer's runtime (the task is a copy) */
	struct afe_ipc_producer *p;
	struct afe_ipc_call call;
};

static int connect_in_task_poll(struct afe_future *f, struct afe_context *cx)
{
	struct connect_in_task *self = afe_container_of(f, struct connect_in_task, base);
	int err;
	AFE_ASYNC_BEGIN(f, cx);
	if ((err = afe_ipc_producer_connect(&self->p, NULL, self->name, NULL)) < 0)
		AFE_RETURN(err);
	*self->rt = self->p->rt;
	afe_ipc_call_init(&self->call, self->p);
	add_call(&self->call, 2, 2, 2);
	AFE_AWAIT(&self->call.base);
	err = (int)self->call.base.result;
	afe_ipc_producer_close(self->p);
	AFE_RETURN(err);
	AFE_ASYNC_END;
}

Test(ipc_wait, a_null_runtime_on_a_worker_is_that_workers_runtime)
{
	struct ipc_session s;
	ipc_session_start(&s, "wait-current", NULL);
	struct afe_runtime *used = NULL;
	struct connect_in_task t = {.name = ipc_test_name("wait-current"), .rt = &used};
	afe_future_init(&t.base, connect_in_task_poll);
	cr_assert_eq(test_block_on(s.rt, &t), 0);
	/* Not by counting threads: futex threads come and go with the calls
	 * where the ring cannot wait on a futex (see pool/watch.h). */
	cr_assert_eq(used, s.rt, "no runtime of its own");
	ipc_session_end(&s);
}

/* A thread making blocking calls with a call object of its own. */
struct caller {
	pthread_t thread;
	struct afe_ipc_producer *p;
	int64_t base;
	int errors;
};

static void *caller_main(void *arg)
{
	struct caller *c = arg;
	struct afe_ipc_call call;
	afe_ipc_call_init(&call, c->p);
	for (int i = 0; i < 200; i++) {
		int64_t sum = 0;
		if (add_call(&call, c->base, i, 1) < 0 || afe_ipc_call_wait(&call) != 0 ||
		    add_result(&call, &sum) < 0 || sum != c->base + i + 1)
			c->errors++;
	}
	afe_ipc_call_release(&call);
	return NULL;
}

Test(ipc_wait, threads_wait_on_calls_of_one_producer_at_once)
{
	struct ipc_session s;
	ipc_session_start_alone(&s, "wait-threads-many", NULL);
	struct caller callers[4];
	for (int i = 0; i < 4; i++) {
		callers[i] = (struct caller){.p = s.p, .base = (int64_t)i * 1000000};
		cr_assert_eq(pthread_create(&callers[i].thread, NULL, caller_main, &callers[i]), 0);
	}
	for (int i = 0; i < 4; i++) {
		pthread_join(callers[i].thread, NULL);
		cr_assert_eq(callers[i].errors, 0, "thread %d", i);
	}
	struct afe_ipc_stats st;
	afe_ipc_producer_stats(s.p, &st);
	cr_assert_eq(st.calls, 4 * 200);
	ipc_session_end(&s);
}

struct napper {
	pthread_t thread;
	struct afe_ipc_call *call;
	int result;
	uint64_t took_ms;
};

static void *napper_main(void *arg)
{
	struct napper *n = arg;
	uint64_t start = afe_now_ns();
	n->result = afe_ipc_call_wait(n->call);
	n->took_ms = ms_since(start);
	return NULL;
}

Test(ipc_wait, closing_the_producer_ends_a_blocking_call_on_another_thread_with_epipe)
{
	const char *name = ipc_test_name("wait-close");
	pid_t consumer = start_consumer(name);
	struct afe_ipc_producer *p = connect_retrying(NULL, name, NULL);
	struct afe_ipc_call call;
	afe_ipc_call_init(&call, p);
	cr_assert_eq(nap_call(&call, 3000), 0);
	struct napper n = {.call = &call};
	cr_assert_eq(pthread_create(&n.thread, NULL, napper_main, &n), 0);
	usleep(100 * 1000); /* the call is out */
	afe_ipc_producer_close(p);
	pthread_join(n.thread, NULL);
	cr_assert_eq(n.result, -EPIPE);
	cr_assert_lt(n.took_ms, 2000, "ended by the close, not by the nap");
	afe_ipc_call_release(&call);
	stop_consumer(consumer, SIGKILL); /* its nap would hold a SIGTERM back */
}
