/* SPDX-License-Identifier: MIT */
/* Cross-process calls: against the example consumer in a child process, and
 * over shared memory to a consumer of this process. */
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

#include "ipc_helpers.h"
#include "src/ipc/ipc_shm.h"

Test(ipc, connecting_to_a_name_nobody_serves_is_refused)
{
	struct afe_runtime *rt = test_runtime(2);
	struct afe_ipc_producer *p = NULL;
	cr_assert_eq(afe_ipc_producer_connect(&p, rt, ipc_test_name("nobody"), NULL),
		     -ECONNREFUSED);
	cr_assert_eq(afe_ipc_producer_connect(&p, rt, "bad/name", NULL), -EINVAL);
	cr_assert_eq(afe_ipc_producer_connect(&p, rt, "", NULL), -EINVAL);
	test_runtime_destroy(rt);
}

/* Names: at most AFE_IPC_NAME_MAX bytes of letters, digits, '.', '_',
 * '-' (and not "." or ".."); anything else, a null name or out, or a
 * config that names what is not there, is -EINVAL on both sides. */
Test(ipc, bad_names_null_arguments_and_bad_configs_are_einval_on_both_sides)
{
	struct afe_runtime *rt = test_runtime(1);
	char longest[AFE_IPC_NAME_MAX + 2];
	memset(longest, 'n', sizeof(longest));
	longest[AFE_IPC_NAME_MAX] = '\0';
	struct afe_ipc_producer *p = NULL;
	cr_assert_eq(afe_ipc_producer_connect(&p, rt, longest, NULL), -ECONNREFUSED,
		     "a name of AFE_IPC_NAME_MAX bytes is a name");
	longest[AFE_IPC_NAME_MAX] = 'n';
	longest[AFE_IPC_NAME_MAX + 1] = '\0';
	const char *bad[] = {NULL, "", "bad/name", ".", "..", "sp ace", longest};
	struct afe_ipc_consumer *c = NULL;
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		cr_assert_eq(afe_ipc_producer_connect(&p, rt, bad[i], NULL), -EINVAL, "name %zu", i);
		cr_assert_eq(afe_ipc_consumer_serve(&c, rt, bad[i], NULL), -EINVAL, "name %zu", i);
	}
	cr_assert_eq(p, NULL);
	cr_assert_eq(c, NULL);
	const char *name = ipc_test_name("einval");
	cr_assert_eq(afe_ipc_consumer_serve(NULL, rt, name, NULL), -EINVAL);
	struct afe_ipc_consumer_config cc;
	afe_ipc_consumer_config_default(&cc);
	cc.n_functions = 2; /* and no functions */
	cr_assert_eq(afe_ipc_consumer_serve(&c, rt, name, &cc), -EINVAL);
	struct afe_ipc_producer_config pc;
	afe_ipc_producer_config_default(&pc);
	pc.n_timeouts = 1; /* and no timeouts */
	cr_assert_eq(afe_ipc_producer_connect(&p, rt, name, &pc), -EINVAL);
	afe_ipc_producer_config_default(&pc);
	pc.transport = (enum afe_ipc_transport)(AFE_IPC_IN_PROCESS + 1);
	cr_assert_eq(afe_ipc_producer_connect(&p, rt, name, &pc), -EINVAL);
	cr_assert_eq(p, NULL);
	cr_assert_eq(c, NULL);
	/* Nothing refused took the name. */
	cr_assert_eq(afe_ipc_consumer_serve(&c, rt, name, NULL), 0);
	afe_ipc_consumer_destroy(c);
	test_runtime_destroy(rt);
}

/* Function ids are 0 to 255: a bigger one is refused at arm, and never
 * wraps to a served id (65536 + add_ID called add). */
Test(ipc, function_ids_past_255_are_einval_and_never_wrap)
{
	struct ipc_session s;
	ipc_session_start(&s, "fn-ids", NULL);
	unsigned ids[] = {256, 65536 + add_ID, 0x10000u * 0x100u + add_ID};
	for (size_t i = 0; i < sizeof(ids) / sizeof(ids[0]); i++) {
		add_encode_args(afe_ipc_call_begin(&s.call, ids[i]), 1, 2, 3);
		cr_assert_eq(afe_ipc_call_arm(&s.call), -EINVAL, "id %u", ids[i]);
		cr_assert_eq(run_call(s.rt, &s.call), -EINVAL, "id %u", ids[i]);
	}
	add_encode_args(afe_ipc_call_begin(&s.call, 255), 1, 2, 3);
	cr_assert_eq(afe_ipc_call_arm(&s.call), 0, "255 is an id");
	cr_assert_eq(run_call(s.rt, &s.call), -ENOSYS);
	struct afe_ipc_stats st;
	afe_ipc_producer_stats(s.p, &st);
	cr_assert_eq(st.calls, 1, "only the call with a good id was sent");
	ipc_session_end(&s);
}

/* Null calls, readers, producers and consumers: a clear error (or the
 * answer that fits: no producer is gone, counts nothing), not a crash. */
Test(ipc, null_calls_producers_and_consumers_get_einval_or_nothing)
{
	cr_assert_eq(afe_ipc_call_arm(NULL), -EINVAL);
	cr_assert_eq(add_call(NULL, 1, 2, 3), -EINVAL);
	struct afe_ipc_reader r = {.err = 1};
	cr_assert_eq(afe_ipc_call_result(NULL, &r), -EINVAL);
	cr_assert_eq(r.len, 0);
	cr_assert_eq(r.err, 0);
	int64_t sum = 7;
	cr_assert_eq(add_result(NULL, &sum), -EINVAL);
	struct afe_ipc_call call;
	afe_ipc_call_init(&call, NULL);
	cr_assert_eq(afe_ipc_call_result(&call, NULL), -EINVAL);
	cr_assert_eq(afe_ipc_call_result(&call, &r), -EINVAL, "never armed");
	cr_assert(afe_ipc_producer_is_gone(NULL));
	struct afe_ipc_stats st;
	memset(&st, 0xff, sizeof(st));
	afe_ipc_producer_stats(NULL, &st);
	cr_assert_eq(st.calls, 0);
	cr_assert_eq(st.reconnects, 0);
	memset(&st, 0xff, sizeof(st));
	afe_ipc_consumer_stats(NULL, &st);
	cr_assert_eq(st.calls, 0);
	cr_assert_eq(st.peers_gone, 0);
	afe_ipc_producer_stats(NULL, NULL);
	afe_ipc_consumer_stats(NULL, NULL);
}

/* A reply to no request (NULL, or a request bound to no consumer) ends
 * with -EINVAL, as a receive bound to no consumer does; arm says so at
 * once. A real consumer's requests go on meanwhile. */
Test(ipc, a_reply_to_no_request_is_einval)
{
	struct afe_runtime *rt = test_runtime(1);
	struct afe_ipc_request req;
	afe_ipc_recv_init(&req, NULL);
	cr_assert_eq(test_block_on(rt, &req), -EINVAL);
	struct afe_ipc_reply rep;
	cr_assert_eq(add_reply(&rep, &req, 5), -EINVAL);
	cr_assert_eq(test_block_on(rt, &rep), -EINVAL);
	cr_assert_eq(add_reply(&rep, NULL, 5), -EINVAL);
	cr_assert_eq(test_block_on(rt, &rep), -EINVAL);
	static char text[1000]; /* past the reply's inline bytes: freed */
	memset(text, 'x', sizeof(text) - 1);
	cr_assert_eq(greet_reply(&rep, NULL, text), -EINVAL);
	cr_assert_eq(test_block_on(rt, &rep), -EINVAL);
	afe_ipc_reply_error(&rep, NULL, -EIO);
	cr_assert_eq(test_block_on(rt, &rep), -EINVAL);
	afe_ipc_reply_error(NULL, &req, -EIO);
	cr_assert_eq(afe_ipc_reply_arm(NULL), -EINVAL);
	cr_assert_eq(add_reply(NULL, &req, 5), -EINVAL);
	/* A consumer serving while all this happens is not disturbed. */
	const char *name = ipc_test_name("no-request");
	struct calc_serving served = serve_calc(rt, name);
	struct afe_ipc_producer *p = connect_retrying(rt, name, NULL);
	struct afe_ipc_call call;
	afe_ipc_call_init(&call, p);
	cr_assert_eq(add_call(&call, 1, 2, 3), 0);
	cr_assert_eq(run_call(rt, &call), 0);
	int64_t sum = 0;
	cr_assert_eq(add_result(&call, &sum), 0);
	cr_assert_eq(sum, 6);
	afe_ipc_call_release(&call);
	afe_ipc_producer_close(p);
	stop_serving(rt, &served);
	test_runtime_destroy(rt);
}

Test(ipc, calls_of_every_kind_round_trip)
{
	struct ipc_session s;
	ipc_session_start(&s, "kinds", NULL);

	int64_t sum = 0;
	cr_assert_eq(add_call(&s.call, 40, 1, 1), 0);
	cr_assert_eq(run_call(s.rt, &s.call), 0);
	cr_assert_eq(add_result(&s.call, &sum), 0);
	cr_assert_eq(sum, 42);

	afe_ipc_str text = NULL;
	cr_assert_eq(greet_call(&s.call, "you", 3), 0);
	cr_assert_eq(run_call(s.rt, &s.call), 0);
	cr_assert_eq(greet_result(&s.call, &text), 0);
	cr_assert(text && !strcmp(text, "hello, you hello, you hello, you"));

	cr_assert_eq(greet_call(&s.call, NULL, 1), 0, "a NULL string travels");
	cr_assert_eq(run_call(s.rt, &s.call), 0);
	cr_assert_eq(greet_result(&s.call, &text), 0);
	cr_assert(text && !strcmp(text, "hello, (null)"));

	static unsigned char big[3000];
	for (size_t i = 0; i < sizeof(big); i++)
		big[i] = (unsigned char)i;
	uint64_t weight = 0, want = (uint64_t)sizeof(big) << 32;
	for (size_t i = 0; i < sizeof(big); i++)
		want += big[i];
	cr_assert_eq(weigh_call(&s.call, (afe_ipc_bytes){big, sizeof(big)}), 0);
	cr_assert_eq(run_call(s.rt, &s.call), 0);
	cr_assert_eq(weigh_result(&s.call, &weight), 0);
	cr_assert_eq(weight, want);

	ipc_session_end(&s);
}

/* Runs greet(who, times) on call and returns the string it got. */
static afe_ipc_str greet_on(struct afe_runtime *rt, struct afe_ipc_call *call, const char *who,
			    uint32_t times)
{
	afe_ipc_str text = NULL;
	cr_assert_eq(greet_call(call, who, times), 0);
	cr_assert_eq(run_call(rt, call), 0);
	cr_assert_eq(greet_result(call, &text), 0);
	cr_assert_not_null(text);
	return text;
}

Test(ipc, returned_bytes_live_in_their_call_object_until_its_next_call)
{
	struct ipc_session s;
	ipc_session_start(&s, "lifetime", NULL);
	struct afe_ipc_call long_call, other;
	afe_ipc_call_init(&long_call, s.p);
	afe_ipc_call_init(&other, s.p);
	/* A reply that fits in the call object, and one on the heap. */
	afe_ipc_str short_text = greet_on(s.rt, &s.call, "a", 1);
	afe_ipc_str long_text = greet_on(s.rt, &long_call, "b", 20);
	char long_want[512];
	snprintf(long_want, sizeof(long_want), "%s", long_text);
	cr_assert_gt(strlen(long_want), sizeof(s.call.ret_inline));

	/* Calls on another call object, of the same function and others,
	 * short and long replies, leave both alone. */
	for (uint32_t i = 0; i < 20; i++) {
		afe_ipc_str t = greet_on(s.rt, &other, "c", i % 2 ? 30 : 1);
		cr_assert(t != short_text && t != long_text);
		int64_t sum = 0;
		cr_assert_eq(add_call(&other, i, 0, 0), 0);
		cr_assert_eq(run_call(s.rt, &other), 0);
		cr_assert_eq(add_result(&other, &sum), 0);
	}
	cr_assert(strcmp(short_text, "hello, a") == 0);
	cr_assert(strcmp(long_text, long_want) == 0);
	afe_ipc_str again = NULL;
	cr_assert_eq(greet_result(&long_call, &again), 0);
	cr_assert_eq(again, long_text, "read again, the same bytes");

	/* The next call armed on the object ends them: its result is not
	 * readable while it runs, then it is the new call's. */
	cr_assert_eq(greet_call(&s.call, "d", 3), 0);
	cr_assert_eq(greet_result(&s.call, &again), -EINVAL);
	cr_assert_eq(run_call(s.rt, &s.call), 0);
	cr_assert_eq(greet_result(&s.call, &again), 0);
	cr_assert(strcmp(again, "hello, d hello, d hello, d") == 0);

	/* Released, they are gone too: no pointer comes out. */
	afe_ipc_call_release(&long_call);
	again = "unchanged";
	cr_assert_lt(greet_result(&long_call, &again), 0);
	cr_assert_null(again);
	afe_ipc_call_release(&other);
	ipc_session_end(&s);
}

Test(ipc, oversized_arguments_are_refused_before_sending)
{
	struct ipc_session s;
	ipc_session_start(&s, "big", NULL);
	static unsigned char huge[AFE_IPC_MAX_PAYLOAD];
	cr_assert_eq(weigh_call(&s.call, (afe_ipc_bytes){huge, sizeof(huge)}), -EMSGSIZE);
	cr_assert_eq(run_call(s.rt, &s.call), -EMSGSIZE);
	struct afe_ipc_stats st;
	afe_ipc_producer_stats(s.p, &st);
	cr_assert_eq(st.calls, 0, "nothing was sent");
	ipc_session_end(&s);
}

Test(ipc, sixty_four_tasks_call_at_once_and_every_answer_is_theirs)
{
	struct ipc_session s;
	ipc_session_start(&s, "many", NULL);
	struct afe_join_handle handles[64];
	for (int i = 0; i < 64; i++) {
		struct adder a = adder_make(s.p, (int64_t)i * 1000000, 200);
		cr_assert_eq(afe_spawn(s.rt, &a, &handles[i]), 0);
	}
	for (int i = 0; i < 64; i++) {
		struct afe_join join;
		afe_join_init(&join, &handles[i]);
		cr_assert_eq(test_block_on(s.rt, &join), 0, "task %d", i);
	}
	struct afe_ipc_stats st;
	afe_ipc_producer_stats(s.p, &st);
	cr_assert_eq(st.calls, 64 * 200);
	cr_assert_eq(st.replies, 64 * 200);
	cr_assert_eq(st.late_replies, 0);
	ipc_session_end(&s);
}

Test(ipc, calls_that_find_the_request_ring_full_wait_for_room)
{
	struct ipc_session s;
	ipc_session_start(&s, "full", NULL);
	/* Four naps hold the consumer's four serving tasks: nobody takes
	 * requests, and the 300 adds behind them overflow the 128-slot ring. */
	enum { NAPS = 4, ADDS = 300 };
	struct afe_join_handle handles[NAPS + ADDS];
	for (int i = 0; i < NAPS + ADDS; i++) {
		spawn_call(s.rt, s.p, i < NAPS ? nap_ID : add_ID, i < NAPS ? 300 : (uint32_t)i,
			   &handles[i]);
		if (i == NAPS - 1)
			usleep(100 * 1000); /* the naps are taken first */
	}
	for (int i = 0; i < NAPS + ADDS; i++) {
		struct afe_join join;
		afe_join_init(&join, &handles[i]);
		cr_assert_eq(test_block_on(s.rt, &join), 0, "call %d", i);
	}
	ipc_session_end(&s);
}

Test(ipc, a_late_reply_is_dropped_and_counted_never_taken_by_the_next_call)
{
	struct afe_ipc_producer_config config;
	afe_ipc_producer_config_default(&config);
	struct afe_ipc_fn_timeout nap_limit = {.fn = nap_ID, .ms = 50};
	config.timeouts = &nap_limit;
	config.n_timeouts = 1;
	struct ipc_session s;
	ipc_session_start(&s, "late", &config);
	cr_assert_eq(nap_call(&s.call, 300), 0);
	cr_assert_eq(run_call(s.rt, &s.call), -ETIMEDOUT);
	/* The next call gets its own answer, not the timed-out nap's reply,
	 * which comes in later and is dropped. */
	cr_assert_eq(nap_call(&s.call, 0), 0);
	cr_assert_eq(run_call(s.rt, &s.call), 0); /* nap(0) */
	usleep(400 * 1000);
	int64_t sum = 0;
	cr_assert_eq(add_call(&s.call, 1, 1, 1), 0);
	cr_assert_eq(run_call(s.rt, &s.call), 0);
	cr_assert_eq(add_result(&s.call, &sum), 0);
	cr_assert_eq(sum, 3);
	struct afe_ipc_stats st;
	afe_ipc_producer_stats(s.p, &st);
	cr_assert_eq(st.timeouts, 1);
	cr_assert_eq(st.late_replies, 1, "the nap's reply came after its call ended");
	ipc_session_end(&s);
}

Test(ipc, a_function_the_consumer_does_not_serve_is_enosys)
{
	struct ipc_session s;
	ipc_session_start(&s, "enosys", NULL);
	struct afe_ipc_writer *w = afe_ipc_call_begin(&s.call, 200);
	afe_ipc_put_int32_t(w, 7);
	cr_assert_eq(afe_ipc_call_arm(&s.call), 0);
	cr_assert_eq(run_call(s.rt, &s.call), -ENOSYS);
	/* Arguments of the wrong shape: the consumer cannot decode them. */
	w = afe_ipc_call_begin(&s.call, add_ID);
	afe_ipc_put_int32_t(w, 7);
	cr_assert_eq(afe_ipc_call_arm(&s.call), 0);
	cr_assert_eq(run_call(s.rt, &s.call), -EPROTO);
	ipc_session_end(&s);
}

Test(ipc, a_callback_gets_every_reply_in_order)
{
	struct ipc_session s;
	ipc_session_start(&s, "stream", NULL);
	struct seen seen = {0};
	afe_ipc_call_on_reply(&s.call, on_count, &seen);
	cr_assert_eq(count_call(&s.call, 5), 0);
	cr_assert_eq(run_call(s.rt, &s.call), 0);
	cr_assert_eq(seen.n, 6);
	for (int i = 0; i < 6; i++) {
		cr_assert_eq(seen.values[i], (uint32_t)i);
		cr_assert_eq(seen.more[i], i < 5);
	}
	/* The callback holds for that call only. */
	uint32_t n = 0;
	cr_assert_eq(count_call(&s.call, 0), 0);
	cr_assert_eq(run_call(s.rt, &s.call), 0);
	cr_assert_eq(count_result(&s.call, &n), 0);
	cr_assert_eq(n, 0);
	cr_assert_eq(seen.n, 6);
	ipc_session_end(&s);
}

/* Keeps a CPU busy until *stop: the workers get preempted at random
 * points, as on a loaded machine. */
static void *spin_until(void *stop)
{
	while (!atomic_load_explicit((_Atomic bool *)stop, memory_order_relaxed))
		;
	return NULL;
}

Test(ipc, a_producer_that_reconnects_at_once_hears_its_replies)
{
	/* The next producer takes the entry the last one left. The last
	 * one's pump, waking from the close, must be done with that entry's
	 * bell before the entry is given back: it once cleared the next
	 * pump's wants, and the next pump slept through its reply
	 * (test_ipc_shrink hung 1 run in 35 on a loaded 2-CPU machine; this
	 * test, without the fix, failed 5 runs in 5). */
	const char *name = ipc_test_name("reconnect");
	pid_t consumer = start_consumer(name);
	struct afe_runtime *rt = test_runtime(2);
	struct afe_ipc_producer_config config = over_shared_memory();
	config.timeout_ms = 2000; /* a reply is due in microseconds */
	_Atomic bool stop = false;
	pthread_t spinners[2];
	for (int k = 0; k < 2; k++)
		cr_assert_eq(pthread_create(&spinners[k], NULL, spin_until, &stop), 0);
	int64_t i = 0, sum = 0;
	intptr_t err = 0;
	for (; i < 2000 && err == 0; i++) {
		struct afe_ipc_producer *p = connect_retrying(rt, name, &config);
		struct afe_ipc_call call;
		afe_ipc_call_init(&call, p);
		cr_assert_eq(add_call(&call, i, 1, 1), 0);
		err = run_call(rt, &call);
		if (err == 0 && (add_result(&call, &sum) < 0 || sum != i + 2))
			err = -EBADMSG;
		afe_ipc_call_release(&call);
		afe_ipc_producer_close(p);
	}
	atomic_store(&stop, true);
	for (int k = 0; k < 2; k++)
		pthread_join(spinners[k], NULL);
	cr_assert_eq(err, 0, "connection %d: %d", (int)i - 1, (int)err);
	test_runtime_destroy(rt);
	stop_consumer(consumer, SIGTERM);
}

/* One add of 40 + 1 + 1 on call, checked. */
static void add_checked(struct afe_runtime *rt, struct afe_ipc_call *call)
{
	int64_t sum = 0;
	cr_assert_eq(add_call(call, 40, 1, 1), 0);
	cr_assert_eq(run_call(rt, call), 0);
	cr_assert_eq(add_result(call, &sum), 0);
	cr_assert_eq(sum, 42);
}

/* The same on a call of its own, then closes p. */
static void add_checked_and_close(struct afe_runtime *rt, struct afe_ipc_producer *p)
{
	struct afe_ipc_call call;
	afe_ipc_call_init(&call, p);
	add_checked(rt, &call);
	afe_ipc_call_release(&call);
	afe_ipc_producer_close(p);
}

Test(ipc, producers_that_leave_before_the_consumer_looks_free_their_entries)
{
	/* Every entry taken and given back while the consumer is stopped:
	 * it never adopted them, and must still free them (it once left them
	 * GONE for good, and every later connect was -EBUSY). */
	const char *name = ipc_test_name("unadopted");
	pid_t consumer = start_consumer(name);
	struct afe_runtime *rt = test_runtime(2);
	struct afe_ipc_producer_config config = over_shared_memory();
	struct afe_ipc_header *h = NULL; /* up and serving, all entries free */
	for (int tries = 0; tries < 1000 && afe_ipc_shm_open(name, &h) < 0; tries++)
		usleep(10000);
	cr_assert(h, "the consumer did not start");
	afe_ipc_shm_unmap(h);
	kill(consumer, SIGSTOP);
	for (unsigned i = 0; i < AFE_IPC_MAX_PRODUCERS; i++) {
		struct afe_ipc_producer *p = NULL;
		cr_assert_eq(afe_ipc_producer_connect(&p, rt, name, &config), 0, "entry %u", i);
		afe_ipc_producer_close(p);
	}
	kill(consumer, SIGCONT);
	add_checked_and_close(rt, connect_retrying(rt, name, &config));
	test_runtime_destroy(rt);
	stop_consumer(consumer, SIGTERM);
}

/* Polls a call until it waits (for room), then only once the gate opens:
 * what woke it meanwhile (its failure) is looked at late. */
struct gated_call {
	struct afe_future base;
	struct afe_ipc_call *call;
	struct afe_notified opened;
	_Atomic bool *waiting;
};

static int gated_call_poll(struct afe_future *f, struct afe_context *cx)
{
	struct gated_call *self = afe_container_of(f, struct gated_call, base);
	AFE_ASYNC_BEGIN(f, cx);
	if (afe_future_poll(&self->call->base, cx) == AFE_READY || !self->call->waiting_room)
		AFE_RETURN(-EALREADY); /* it did not wait for room */
	atomic_store(self->waiting, true);
	AFE_AWAIT(&self->opened.base);
	AFE_AWAIT(&self->call->base);
	AFE_RETURN(self->call->base.result);
	AFE_ASYNC_END;
}

Test(ipc, a_call_that_waited_for_room_never_writes_into_the_next_producers_rings)
{
	/* A call waits for room; its producer closes, fails it, and gives
	 * its entry back; the next producer takes the entry and makes a call,
	 * which frees the very slot the waiting call would write next. Only
	 * then does the waiting call look again: it must not send into the
	 * next producer's ring (its request would be served in turn, and its
	 * reply go to that producer). */
	const char *name = ipc_test_name("late-send");
	struct afe_runtime *rt = test_runtime(2);
	struct afe_ipc_consumer *c; /* no server yet: the requests stay */
	cr_assert_eq(afe_ipc_consumer_serve(&c, rt, name, NULL), 0);
	struct afe_ipc_header *h;
	cr_assert_eq(afe_ipc_shm_open(name, &h), 0);
	struct afe_ipc_producer_config config = over_shared_memory();
	struct afe_ipc_producer *first = connect_retrying(rt, name, &config);

	enum { FILL = AFE_IPC_RING_SLOTS };
	static struct afe_ipc_call calls[FILL + 1];
	static struct await_call fillers[FILL];
	static struct afe_join_handle handles[FILL + 1];
	for (int i = 0; i < FILL; i++) {
		afe_ipc_call_init(&calls[i], first);
		cr_assert_eq(add_call(&calls[i], i, 1, 1), 0);
		fillers[i] = (struct await_call){.call = &calls[i]};
		afe_future_init(&fillers[i].base, await_call_poll);
		cr_assert_eq(afe_spawn(rt, &fillers[i], &handles[i]), 0);
	}
	struct afe_ipc_stats st;
	uint64_t end = afe_now_ns() + 10000000000u;
	do {
		usleep(1000);
		afe_ipc_producer_stats(first, &st);
	} while (st.calls < FILL && afe_now_ns() < end);
	cr_assert_eq(st.calls, FILL);
	struct afe_notify gate;
	afe_notify_init(&gate);
	afe_ipc_call_init(&calls[FILL], first);
	cr_assert_eq(add_call(&calls[FILL], 0, 1, 1), 0);
	_Atomic bool waiting = false;
	struct gated_call gated = {.call = &calls[FILL], .waiting = &waiting};
	afe_future_init(&gated.base, gated_call_poll);
	afe_notified_init(&gated.opened, &gate);
	cr_assert_eq(afe_spawn(rt, &gated, &handles[FILL]), 0);
	while (!atomic_load(&waiting) && afe_now_ns() < end)
		usleep(1000);
	cr_assert(atomic_load(&waiting), "the call did not wait for room");

	uint32_t gen = atomic_load(&h->entries[0].generation);
	afe_ipc_producer_close(first);
	while (atomic_load(&h->entries[0].state) != AFE_IPC_ENTRY_FREE && afe_now_ns() < end)
		usleep(1000);
	cr_assert_eq(atomic_load(&h->entries[0].state), AFE_IPC_ENTRY_FREE);
	struct afe_ipc_producer *next = connect_retrying(rt, name, &config);
	cr_assert_neq(atomic_load(&h->entries[0].generation), gen, "the next producer took entry 0");
	struct calc_serving served = {.c = c};
	struct afe_ipc_serve server = calc_server_make(c);
	cr_assert_eq(afe_spawn(rt, &server, &served.server), 0);
	struct afe_ipc_call call;
	afe_ipc_call_init(&call, next);
	add_checked(rt, &call); /* its slot 0 is free for the 129th write now */

	afe_notify_one(&gate);
	for (int i = 0; i <= FILL; i++) {
		struct afe_join join;
		afe_join_init(&join, &handles[i]);
		cr_assert_eq(test_block_on(rt, &join), -EPIPE, "call %d", i);
		afe_ipc_call_release(&calls[i]);
	}
	/* Slot 0 stays free for position 128 (a write there makes it 129). */
	uint64_t seq = atomic_load(&afe_ipc_requests_of(h, 0)[0].seq);
	cr_assert_eq(seq, FILL, "the closed producer's call was sent: slot 0 at %d", (int)seq);
	add_checked(rt, &call);

	afe_ipc_call_release(&call);
	afe_ipc_producer_close(next);
	afe_ipc_shm_unmap(h);
	stop_serving(rt, &served);
	afe_notify_destroy(&gate);
	test_runtime_destroy(rt);
}

/* How many fds this process has open. */
Test(ipc, a_consumer_and_its_producers_leave_no_fd_behind)
{
	int before = test_dir_entries("/proc/self/fd");
	struct afe_runtime *rt = test_runtime(2);
	const char *name = ipc_test_name("fds");
	struct calc_serving served = serve_calc(rt, name);
	struct afe_ipc_producer_config config = over_shared_memory();
	for (int round = 0; round < 3; round++) /* the entry is adopted again */
		add_checked_and_close(rt, connect_retrying(rt, name, &config));
	stop_serving(rt, &served);
	test_runtime_destroy(rt);
	cr_assert_eq(test_dir_entries("/proc/self/fd"), before);
}

Test(ipc, a_consumer_out_of_fds_serves_a_new_producer_and_sees_it_die_later)
{
	/* Adopting a producer opens a pidfd to watch for its death. Out of
	 * fds, the consumer once took the producer for dead and freed its
	 * entry: its calls failed. It serves it unwatched now, and watches
	 * it once an fd is free again. */
	const char *name = ipc_test_name("no-fds");
	int go[2], result[2];
	cr_assert_eq(pipe(go), 0);
	cr_assert_eq(pipe(result), 0);
	pid_t child = fork_tied();
	if (child == 0)
		_exit(producer_child(name, go[0], result[1]));
	struct afe_runtime *rt = test_runtime(2);
	struct calc_serving served = serve_calc(rt, name);

	struct rlimit limit, low;
	cr_assert_eq(getrlimit(RLIMIT_NOFILE, &limit), 0);
	low = limit;
	low.rlim_cur = 256;
	cr_assert_eq(setrlimit(RLIMIT_NOFILE, &low), 0);
	static int taken[256];
	int n = 0;
	while (n < 256 && (taken[n] = dup(0)) >= 0)
		n++;
	cr_assert_eq(errno, EMFILE);
	char code = 0;
	cr_assert_eq(write(go[1], &code, 1), 1);
	code = -1;
	bool reported = read(result[0], &code, 1) == 1;
	while (n > 0)
		close(taken[--n]);
	cr_assert_eq(setrlimit(RLIMIT_NOFILE, &limit), 0);
	cr_assert(reported, "the producer died");
	cr_assert_eq(code, 0, "the call of a producer adopted out of fds: %d", -code);

	/* It dies: the next look of the consumer (another producer coming)
	 * opens its pidfd, and finds it gone. */
	kill(child, SIGKILL);
	cr_assert_eq(waitpid(child, NULL, 0), child);
	struct afe_ipc_producer_config config = over_shared_memory();
	struct afe_ipc_producer *p = connect_retrying(rt, name, &config);
	struct afe_ipc_stats st;
	for (uint64_t end = afe_now_ns() + 10000000000u;; usleep(1000)) {
		afe_ipc_consumer_stats(served.c, &st);
		if (st.peers_gone >= 1 || afe_now_ns() > end)
			break;
	}
	cr_assert_eq(st.peers_gone, 1);
	afe_ipc_producer_close(p);
	stop_serving(rt, &served);
	test_runtime_destroy(rt);
}

Test(ipc, killing_the_consumer_fails_calls_with_epipe_and_a_restart_serves_again)
{
	const char *name = ipc_test_name("kill");
	pid_t consumer = start_consumer(name);
	struct afe_runtime *rt = test_runtime(2);
	struct afe_ipc_producer *p = connect_retrying(rt, name, NULL);
	struct afe_ipc_call call;
	afe_ipc_call_init(&call, p);
	cr_assert_eq(nap_call(&call, 4000), 0);
	/* Kill it mid-call from another process, after the call went out. */
	pid_t killer = fork_tied();
	cr_assert_neq(killer, -1);
	if (killer == 0) {
		usleep(100 * 1000);
		kill(consumer, SIGKILL);
		_exit(0);
	}
	uint64_t start = afe_now_ns();
	cr_assert_eq(run_call(rt, &call), -EPIPE);
	cr_assert_lt(afe_now_ns() - start, 3000000000ull, "-EPIPE came before the timeout");
	waitpid(killer, NULL, 0);
	waitpid(consumer, NULL, 0);
	cr_assert(afe_ipc_producer_is_gone(p));
	cr_assert_eq(add_call(&call, 1, 2, 3), 0);
	cr_assert_eq(run_call(rt, &call), -EPIPE, "later calls fail at once");
	afe_ipc_producer_close(p);

	consumer = start_consumer(name); /* the dead one's object is replaced */
	p = connect_retrying(rt, name, NULL);
	afe_ipc_call_init(&call, p);
	int64_t sum = 0;
	cr_assert_eq(add_call(&call, 1, 2, 3), 0);
	cr_assert_eq(run_call(rt, &call), 0);
	cr_assert_eq(add_result(&call, &sum), 0);
	cr_assert_eq(sum, 6);
	afe_ipc_producer_close(p);
	test_runtime_destroy(rt);
	stop_consumer(consumer, SIGTERM);
}

/* A producer process: connects, calls add n times, exits 0 when right. */
static void producer_process(const char *name, int n, bool die_mid_call)
{
	struct afe_runtime *rt = test_runtime(1);
	struct afe_ipc_producer *p = connect_retrying(rt, name, NULL);
	struct afe_ipc_call call;
	afe_ipc_call_init(&call, p);
	if (die_mid_call) {
		cr_assert_eq(nap_call(&call, 2000), 0);
		struct await_call a = {.call = &call};
		afe_future_init(&a.base, await_call_poll);
		afe_spawn(rt, &a, NULL);
		usleep(100 * 1000);
		_exit(9); /* with a call in flight */
	}
	for (int i = 0; i < n; i++) {
		int64_t sum = 0;
		if (add_call(&call, i, i, i) < 0 || run_call(rt, &call) != 0 ||
		    add_result(&call, &sum) < 0 || sum != 3 * i)
			_exit(1);
	}
	afe_ipc_producer_close(p);
	afe_runtime_destroy(rt);
	_exit(0);
}

Test(ipc, several_producer_processes_share_a_consumer_and_a_dead_one_leaves_it_serving)
{
	const char *name = ipc_test_name("several");
	pid_t consumer = start_consumer(name);
	pid_t dying = fork_tied();
	if (dying == 0)
		producer_process(name, 0, true);
	int status;
	waitpid(dying, &status, 0);
	cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 9);
	pid_t kids[4];
	for (int k = 0; k < 4; k++) {
		kids[k] = fork_tied();
		if (kids[k] == 0)
			producer_process(name, 2000, false);
	}
	for (int k = 0; k < 4; k++) {
		waitpid(kids[k], &status, 0);
		cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0, "producer %d", k);
	}
	stop_consumer(consumer, SIGTERM);
}

/* The example consumer stopped by SIGTERM while a request is being
 * served: its last line counts the requests it took (it read the count
 * into a local that did not survive the awaits of its servers' joins). */
Test(ipc, a_consumer_stopped_mid_call_reports_the_requests_it_took)
{
	const char *name = ipc_test_name("stopped");
	int out[2];
	cr_assert_eq(pipe(out), 0);
	pid_t consumer = fork_tied();
	if (consumer == 0) {
		dup2(out[1], STDOUT_FILENO);
		execl(IPC_CONSUMER, IPC_CONSUMER, name, (char *)NULL);
		_exit(127);
	}
	close(out[1]);
	struct afe_runtime *rt = test_runtime(2);
	struct afe_ipc_producer *p = connect_retrying(rt, name, NULL);
	struct afe_ipc_call call, napping;
	afe_ipc_call_init(&call, p);
	afe_ipc_call_init(&napping, p);
	for (int i = 0; i < 3; i++) {
		cr_assert_eq(add_call(&call, i, 0, 0), 0);
		cr_assert_eq(run_call(rt, &call), 0);
	}
	cr_assert_eq(nap_call(&napping, 1000), 0);
	struct await_call a = {.call = &napping};
	afe_future_init(&a.base, await_call_poll);
	struct afe_join_handle h;
	cr_assert_eq(afe_spawn(rt, &a, &h), 0);
	usleep(200 * 1000); /* the nap is taken */
	stop_consumer(consumer, SIGTERM);
	char text[512];
	size_t len = 0;
	for (ssize_t n; len < sizeof(text) - 1; len += (size_t)n)
		if ((n = read(out[0], text + len, sizeof(text) - 1 - len)) <= 0)
			break;
	text[len] = '\0';
	close(out[0]);
	cr_assert(strstr(text, "stopped after 4 requests\n"), "it said: %s", text);
	struct afe_join join;
	afe_join_init(&join, &h);
	test_block_on(rt, &join); /* the nap's answer, or -EPIPE */
	afe_ipc_producer_close(p);
	test_runtime_destroy(rt);
}
