/* SPDX-License-Identifier: MIT */
/*
 * A producer that reconnects (reconnect_wait_ms) after its consumer went
 * away: the example consumer in a child process, killed with SIGKILL and
 * started again under the same name. The next call goes to the new one;
 * a call in flight at the kill ends with -EPIPE; with nobody serving, a
 * call ends with -ETIMEDOUT after the wait; tasks calling at once across
 * the restart reconnect once between them and none hangs; a close while
 * a reconnect waits ends it. Also over the in-process link.
 */
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <sys/syscall.h>

#include "ipc_helpers.h"

static uint64_t ms_since(uint64_t start)
{
	return (afe_now_ns() - start) / 1000000u;
}

static struct afe_ipc_producer_config reconnecting(uint32_t wait_ms)
{
	struct afe_ipc_producer_config config = over_shared_memory();
	config.reconnect_wait_ms = wait_ms;
	return config;
}

/* Waits (10 s at most) until p saw its consumer go. */
static void wait_gone(struct afe_ipc_producer *p)
{
	uint64_t start = afe_now_ns();
	while (!afe_ipc_producer_is_gone(p) && ms_since(start) < 10000)
		usleep(1000);
	cr_assert(afe_ipc_producer_is_gone(p), "the producer never saw the death");
}

static void kill_consumer(struct ipc_session *s)
{
	stop_consumer(s->consumer, SIGKILL);
	wait_gone(s->p);
}

/* add(a, 2, 3) on the session's call object: the call's result, and the
 * sum checked when it is 0. */
static intptr_t add_on(struct ipc_session *s, int64_t a)
{
	cr_assert_eq(add_call(&s->call, a, 2, 3), 0);
	intptr_t r = run_call(s->rt, &s->call);
	int64_t sum = 0;
	if (r == 0) {
		cr_assert_eq(add_result(&s->call, &sum), 0);
		cr_assert_eq(sum, a + 5);
	}
	return r;
}

static uint64_t reconnects(struct afe_ipc_producer *p)
{
	struct afe_ipc_stats stats;
	afe_ipc_producer_stats(p, &stats);
	return stats.reconnects;
}

Test(ipc_reconnect, the_next_call_goes_to_the_restarted_consumer)
{
	struct afe_ipc_producer_config config = reconnecting(10000);
	struct ipc_session s;
	ipc_session_start(&s, "restart", &config);
	cr_assert_eq(add_on(&s, 1), 0);
	kill_consumer(&s);
	s.consumer = start_consumer(ipc_test_name("restart"));
	cr_assert_eq(add_on(&s, 2), 0, "the call went to the new consumer");
	cr_assert_not(afe_ipc_producer_is_gone(s.p));
	cr_assert_eq(add_on(&s, 3), 0);
	cr_assert_eq(reconnects(s.p), 1);
	ipc_session_end(&s);
}

/* The call made while nobody serves waits for the name to be served. */
Test(ipc_reconnect, a_call_made_while_nobody_serves_waits_for_the_restart)
{
	struct afe_ipc_producer_config config = reconnecting(10000);
	struct ipc_session s;
	ipc_session_start(&s, "waits", &config);
	cr_assert_eq(add_on(&s, 1), 0);
	kill_consumer(&s);
	struct afe_join_handle call;
	spawn_call(s.rt, s.p, add_ID, 40, &call);
	usleep(100 * 1000); /* the call waits for a consumer meanwhile */
	s.consumer = start_consumer(ipc_test_name("waits"));
	struct afe_join join;
	afe_join_init(&join, &call);
	cr_assert_eq(test_block_on(s.rt, &join), 0);
	ipc_session_end(&s);
}

Test(ipc_reconnect, a_call_in_flight_at_the_kill_ends_with_epipe)
{
	struct afe_ipc_producer_config config = reconnecting(10000);
	struct ipc_session s;
	ipc_session_start(&s, "in-flight", &config);
	struct afe_join_handle nap;
	spawn_call(s.rt, s.p, nap_ID, 8000, &nap);
	usleep(100 * 1000); /* the call is out */
	uint64_t start = afe_now_ns();
	stop_consumer(s.consumer, SIGKILL);
	struct afe_join join;
	afe_join_init(&join, &nap);
	cr_assert_eq(test_block_on(s.rt, &join), -EPIPE, "never sent again");
	cr_assert_lt(ms_since(start), 5000, "-EPIPE came from the death, not the nap");
	s.consumer = start_consumer(ipc_test_name("in-flight"));
	cr_assert_eq(add_on(&s, 1), 0);
	ipc_session_end(&s);
}

Test(ipc_reconnect, nobody_serving_again_times_out_after_the_wait)
{
	struct afe_ipc_producer_config config = reconnecting(200);
	struct ipc_session s;
	ipc_session_start(&s, "nobody", &config);
	cr_assert_eq(add_on(&s, 1), 0);
	kill_consumer(&s);
	uint64_t start = afe_now_ns();
	cr_assert_eq(add_on(&s, 2), -ETIMEDOUT);
	cr_assert_geq(ms_since(start), 200, "it waited");
	cr_assert(afe_ipc_producer_is_gone(s.p));
	/* A later call tries again. */
	s.consumer = start_consumer(ipc_test_name("nobody"));
	intptr_t r = -ETIMEDOUT;
	for (int i = 0; i < 50 && r == -ETIMEDOUT; i++)
		r = add_on(&s, 3); /* the new consumer may take more than 200 ms */
	cr_assert_eq(r, 0);
	ipc_session_end(&s);
}

/* Waits (10 s at most) until pid ended, as its pidfd says (readable),
 * without reaping it. */
static void wait_ended(pid_t pid)
{
	int fd = (int)syscall(SYS_pidfd_open, pid, 0);
	if (fd < 0 && (errno == ENOSYS || errno == EPERM))
		cr_skip_test("no pidfds");
	cr_assert_geq(fd, 0);
	struct pollfd pfd = {.fd = fd, .events = POLLIN};
	cr_assert_eq(poll(&pfd, 1, 10000), 1, "it never ended");
	close(fd);
}

/* Starts a consumer process serving name, connects to it once (so that
 * it serves), kills it and waits until it ended, unreaped: its pid. */
static pid_t consumer_dead_unreaped(struct afe_runtime *rt, const char *name)
{
	pid_t consumer = start_consumer(name);
	struct afe_ipc_producer_config config = over_shared_memory();
	afe_ipc_producer_close(connect_retrying(rt, name, &config));
	kill(consumer, SIGKILL);
	wait_ended(consumer);
	return consumer;
}

/* A consumer that died and is not reaped yet still has a pidfd: a
 * reconnect that came that early took it for a live one, and went
 * through a second reconnect once its watch saw the death. */
Test(ipc_reconnect, a_dead_consumer_not_reaped_yet_is_not_connected_to)
{
	struct afe_runtime *rt = test_runtime(1);
	const char *name = ipc_test_name("zombie");
	pid_t consumer = consumer_dead_unreaped(rt, name);
	struct afe_ipc_producer_config config = over_shared_memory();
	struct afe_ipc_producer *p = NULL;
	int err = afe_ipc_producer_connect(&p, rt, name, &config);
	cr_assert_eq(err, -ECONNREFUSED, "connect: %d", err);
	waitpid(consumer, NULL, 0);
	test_runtime_destroy(rt);
}

/* Its name is free for a new consumer at once: a consumer restarted by a
 * supervisor that had not reaped the old one got -EADDRINUSE. */
Test(ipc_reconnect, a_dead_consumer_not_reaped_yet_leaves_its_name_to_a_new_one)
{
	struct afe_runtime *rt = test_runtime(1);
	const char *name = ipc_test_name("zombie-name");
	pid_t consumer = consumer_dead_unreaped(rt, name);
	struct afe_ipc_consumer *again = NULL;
	int err = afe_ipc_consumer_serve(&again, rt, name, NULL);
	cr_assert_eq(err, 0, "serve: %d", err);
	afe_ipc_consumer_close(again);
	afe_ipc_consumer_destroy(again);
	waitpid(consumer, NULL, 0);
	test_runtime_destroy(rt);
}

/* ---- tasks calling at once across a restart --------------------------------- */

#define CALLERS 8

struct caller_stats {
	_Atomic uint64_t ok, epipe;
	_Atomic bool stop;
};

/* Calls add until told to stop: 0, or the first result that is neither
 * 0 nor -EPIPE (or -EBADMSG for a wrong sum). */
struct caller {
	struct afe_future base;
	struct afe_ipc_producer *p;
	struct caller_stats *stats;
	int64_t i, sum;
	struct afe_ipc_call call;
};

static int caller_poll(struct afe_future *f, struct afe_context *cx)
{
	AFE_ASYNC_BEGIN_SELF(struct caller, self, f, cx);
	afe_ipc_call_init(&self->call, self->p);
	/* seq_cst, all: a few counters the test reads while we run. */
	for (self->i = 0; !atomic_load(&self->stats->stop); self->i++) {
		add_call(&self->call, self->i, 0, 0);
		AFE_AWAIT(&self->call.base);
		if (self->call.base.result == -EPIPE) {
			atomic_fetch_add(&self->stats->epipe, 1);
			continue;
		}
		if (self->call.base.result < 0)
			AFE_RETURN(self->call.base.result);
		if (add_result(&self->call, &self->sum) < 0 || self->sum != self->i)
			AFE_RETURN(-EBADMSG);
		atomic_fetch_add(&self->stats->ok, 1);
	}
	afe_ipc_call_release(&self->call);
	AFE_RETURN(0);
	AFE_ASYNC_END;
}

/* Waits (10 s at most) until ok grew by n. */
static void wait_ok(struct caller_stats *stats, uint64_t n)
{
	uint64_t from = atomic_load(&stats->ok), start = afe_now_ns();
	while (atomic_load(&stats->ok) < from + n && ms_since(start) < 10000)
		usleep(1000);
	cr_assert_geq(atomic_load(&stats->ok), from + n, "calls stopped going through");
}

Test(ipc_reconnect, tasks_calling_at_once_reconnect_once)
{
	struct afe_ipc_producer_config config = reconnecting(10000);
	struct ipc_session s;
	ipc_session_start(&s, "callers", &config);
	struct caller_stats stats = {0};
	struct afe_join_handle callers[CALLERS];
	for (int i = 0; i < CALLERS; i++) {
		struct caller c = {.p = s.p, .stats = &stats};
		afe_future_init(&c.base, caller_poll);
		cr_assert_eq(afe_spawn(s.rt, &c, &callers[i]), 0);
	}
	wait_ok(&stats, 100);
	stop_consumer(s.consumer, SIGKILL);
	s.consumer = start_consumer(ipc_test_name("callers"));
	uint64_t start = afe_now_ns();
	while (reconnects(s.p) == 0 && ms_since(start) < 10000)
		usleep(1000);
	wait_ok(&stats, 100);
	atomic_store(&stats.stop, true);
	for (int i = 0; i < CALLERS; i++) {
		struct afe_join join;
		afe_join_init(&join, &callers[i]);
		cr_assert_eq(test_block_on(s.rt, &join), 0, "caller %d", i);
	}
	cr_assert_eq(reconnects(s.p), 1, "one reconnect for all the callers");
	ipc_session_end(&s);
}

/* ---- closing while a reconnect waits ----------------------------------------- */

Test(ipc_reconnect, a_close_while_a_reconnect_waits_ends_it)
{
	struct afe_ipc_producer_config config = reconnecting(60000);
	struct ipc_session s;
	ipc_session_start(&s, "close", &config);
	cr_assert_eq(add_on(&s, 1), 0);
	kill_consumer(&s);
	struct afe_join_handle calls[3];
	for (int i = 0; i < 3; i++)
		spawn_call(s.rt, s.p, add_ID, 1, &calls[i]);
	usleep(100 * 1000); /* they wait for a consumer meanwhile */
	uint64_t start = afe_now_ns();
	afe_ipc_producer_close(s.p);
	for (int i = 0; i < 3; i++) {
		struct afe_join join;
		afe_join_init(&join, &calls[i]);
		cr_assert_eq(test_block_on(s.rt, &join), -EPIPE);
	}
	cr_assert_lt(ms_since(start), 10000, "ended by the close, not by the wait");
	afe_ipc_call_release(&s.call);
	test_runtime_destroy(s.rt); /* no task left behind */
}

/* The producer's own runtime: a thread waits in afe_ipc_call_wait while
 * the reconnect waits, and the close (which destroys that runtime) ends
 * its call. */
struct blocked_call {
	struct afe_ipc_call *call;
	int result;
	pthread_t thread;
};

static void *wait_call(void *arg)
{
	struct blocked_call *b = arg;
	b->result = afe_ipc_call_wait(b->call);
	return NULL;
}

Test(ipc_reconnect, a_close_of_an_own_runtime_while_a_reconnect_waits)
{
	struct afe_ipc_producer_config config = reconnecting(60000);
	struct ipc_session s;
	ipc_session_start_alone(&s, "close-alone", &config);
	cr_assert_eq(add_call(&s.call, 1, 2, 3), 0);
	cr_assert_eq(afe_ipc_call_wait(&s.call), 0, "the typed call works blocking too");
	kill_consumer(&s);
	cr_assert_eq(add_call(&s.call, 1, 2, 3), 0);
	struct blocked_call b = {.call = &s.call};
	cr_assert_eq(pthread_create(&b.thread, NULL, wait_call, &b), 0);
	usleep(100 * 1000); /* the call waits for a consumer meanwhile */
	uint64_t start = afe_now_ns();
	afe_ipc_producer_close(s.p);
	pthread_join(b.thread, NULL);
	cr_assert_eq(b.result, -EPIPE);
	cr_assert_lt(ms_since(start), 10000, "ended by the close, not by the wait");
	afe_ipc_call_release(&s.call);
}

/* ---- the in-process link -------------------------------------------------------- */

Test(ipc_reconnect, over_the_in_process_link)
{
	struct afe_runtime *rt = test_runtime(2);
	const char *name = ipc_test_name("local");
	struct calc_serving serving = serve_calc(rt, name);
	struct afe_ipc_producer_config config;
	afe_ipc_producer_config_default(&config);
	config.transport = AFE_IPC_IN_PROCESS;
	config.reconnect_wait_ms = 10000;
	struct ipc_session s = {.consumer = -1, .rt = rt};
	cr_assert_eq(afe_ipc_producer_connect(&s.p, rt, name, &config), 0);
	afe_ipc_call_init(&s.call, s.p);
	cr_assert_eq(add_on(&s, 1), 0);
	stop_serving(rt, &serving);
	cr_assert(afe_ipc_producer_is_gone(s.p));
	serving = serve_calc(rt, name);
	cr_assert_eq(add_on(&s, 2), 0);
	cr_assert_eq(reconnects(s.p), 1);
	afe_ipc_call_release(&s.call);
	afe_ipc_producer_close(s.p);
	stop_serving(rt, &serving);
	test_runtime_destroy(rt);
}
