/* SPDX-License-Identifier: MIT */
/*
 * Serving through a table of handlers (afe_ipc_serve), in one process,
 * over the in-process link and the shared-memory one: each request goes
 * to its function's handler, unknown functions and handler errors are
 * answered as errors, handlers that wait or stream work, closing the
 * consumer ends the serving tasks, cancelling one answers what it held,
 * and bad tables are refused.
 */
#include <sched.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "ipc_calls.h"

#include <afe/ipc_serve.h>

/* The table under test (ids of its own, beside the calc ones). */
AFE_IPC_FN(twice, 1, int64_t, int64_t, x)
AFE_IPC_FN(fails, 2, int32_t, int32_t, err)      /* returns err (negative) */
AFE_IPC_FN(slow, 3, uint32_t, uint32_t, ms)      /* sleeps ms, returns it */
AFE_IPC_FN(stream, 4, uint32_t, uint32_t, n)     /* 0..n-1 more, then n */
AFE_IPC_FN(silent, 5, afe_ipc_void)              /* sets up no reply */
AFE_IPC_FN(overruled, 6, int32_t, int32_t, err)  /* replies, then returns err */
AFE_IPC_FN(joined, 7, afe_ipc_str, afe_ipc_str, a, afe_ipc_str, b)
AFE_IPC_FN(seven, 8, int32_t)                    /* no arguments */
AFE_IPC_FN(nobody, 9, afe_ipc_void)              /* not in the table */

#define SERVERS 3

/* What the handlers saw; arg of every handler. */
struct seen_by {
	_Atomic int twice, started;
};

static int64_t twice_impl(int64_t x)
{
	return 2 * x;
}
AFE_IPC_HANDLER(twice, twice_impl)

static afe_ipc_str joined_impl(afe_ipc_str a, afe_ipc_str b)
{
	return strcmp(a, b) < 0 ? a : b; /* points into the request: copied */
}
AFE_IPC_HANDLER(joined, joined_impl)

static int32_t seven_impl(void)
{
	return 7;
}
AFE_IPC_HANDLER(seven, seven_impl)

/* twice again, counting its calls in arg: the handler's own entry. */
static int twice_counted(struct afe_ipc_request *req, struct afe_ipc_reply *rep, void *arg)
{
	struct seen_by *seen = arg;
	atomic_fetch_add(&seen->twice, 1); /* seq_cst: read by the test after the call */
	return twice_handle(req, rep, arg);
}

static int fails_handle(struct afe_ipc_request *req, struct afe_ipc_reply *rep, void *arg)
{
	(void)rep, (void)arg;
	struct fails_args args;
	int err = fails_decode(req, &args);
	return err < 0 ? err : args.err;
}

static int silent_handle(struct afe_ipc_request *req, struct afe_ipc_reply *rep, void *arg)
{
	(void)req, (void)rep, (void)arg;
	return 0;
}

static int overruled_handle(struct afe_ipc_request *req, struct afe_ipc_reply *rep, void *arg)
{
	(void)arg;
	struct overruled_args args;
	if (overruled_decode(req, &args) < 0)
		return -EPROTO;
	overruled_reply(rep, req, 1);
	return args.err;
}

/* slow and stream: futures in the serving task's scratch. */
struct waiting {
	struct afe_future base;
	struct afe_ipc_request *req;
	struct afe_ipc_reply *rep;
	struct seen_by *seen;
	uint32_t arg, i;
	struct afe_sleep sleep;
};

static int slow_poll(struct afe_future *f, struct afe_context *cx)
{
	AFE_ASYNC_BEGIN_SELF(struct waiting, self, f, cx);
	atomic_store(&self->seen->started, 1); /* seq_cst: the test waits for it */
	afe_sleep_init(&self->sleep, (uint64_t)self->arg * 1000000u);
	AFE_AWAIT(&self->sleep.base);
	AFE_RETURN(slow_reply(self->rep, self->req, self->arg));
	AFE_ASYNC_END;
}

static int stream_poll(struct afe_future *f, struct afe_context *cx)
{
	AFE_ASYNC_BEGIN_SELF(struct waiting, self, f, cx);
	for (self->i = 0; self->i < self->arg; self->i++) {
		stream_reply_more(self->rep, self->req, self->i);
		AFE_AWAIT(&self->rep->base);
		if (self->rep->base.result < 0)
			AFE_RETURN(self->rep->base.result);
	}
	stream_reply(self->rep, self->req, self->arg);
	AFE_AWAIT(&self->rep->base); /* sending the last one itself is allowed */
	AFE_RETURN(0);
	AFE_ASYNC_END;
}

static struct afe_future *waiting_start(void *scratch, struct afe_ipc_request *req,
					struct afe_ipc_reply *rep, void *arg, afe_poll_fn *poll)
{
	struct waiting *w = scratch;
	struct afe_ipc_reader r;
	afe_ipc_request_args(req, &r);
	afe_ipc_get_uint32_t(&r, &w->arg);
	if (afe_ipc_reader_finish(&r) < 0)
		return NULL; /* answered -EIO */
	afe_future_init(&w->base, poll);
	w->req = req;
	w->rep = rep;
	w->seen = arg;
	return &w->base;
}

static struct afe_future *slow_start(void *scratch, struct afe_ipc_request *req,
				     struct afe_ipc_reply *rep, void *arg)
{
	return waiting_start(scratch, req, rep, arg, slow_poll);
}

static struct afe_future *stream_start(void *scratch, struct afe_ipc_request *req,
				       struct afe_ipc_reply *rep, void *arg)
{
	return waiting_start(scratch, req, rep, arg, stream_poll);
}

static const struct afe_ipc_handler table[] = {
	{twice_ID, twice_counted, NULL},   {fails_ID, fails_handle, NULL},
	{slow_ID, NULL, slow_start},	   {stream_ID, NULL, stream_start},
	{silent_ID, silent_handle, NULL},  {overruled_ID, overruled_handle, NULL},
	{joined_ID, joined_handle, NULL},  {seven_ID, seven_handle, NULL},
};

struct serving {
	struct afe_runtime *rt;
	struct afe_ipc_consumer *consumer;
	struct afe_join_handle tasks[SERVERS];
	struct seen_by seen;
	struct afe_ipc_producer *p;
	struct afe_ipc_call call;
};

static void serving_start(struct serving *s, const char *what, enum afe_ipc_transport transport)
{
	char name[96];
	snprintf(name, sizeof(name), "afe-serve-%d-%s", (int)getpid(), what);
	memset(&s->seen, 0, sizeof(s->seen));
	s->rt = test_runtime(2);
	cr_assert_eq(afe_ipc_consumer_serve(&s->consumer, s->rt, name, NULL), 0);
	struct afe_ipc_serve_config config = {
		.consumer = s->consumer,
		.handlers = table,
		.n_handlers = sizeof(table) / sizeof(table[0]),
		.arg = &s->seen,
		.scratch_size = sizeof(struct waiting),
	};
	struct afe_ipc_serve serve;
	cr_assert_eq(afe_ipc_serve_init(&serve, &config), 0);
	for (int i = 0; i < SERVERS; i++)
		cr_assert_eq(afe_spawn(s->rt, &serve, &s->tasks[i]), 0);
	struct afe_ipc_producer_config pc;
	afe_ipc_producer_config_default(&pc);
	pc.transport = transport;
	cr_assert_eq(afe_ipc_producer_connect(&s->p, s->rt, name, &pc), 0);
	afe_ipc_call_init(&s->call, s->p);
}

/* Closes the consumer: every serving task must end with 0. */
static void serving_end(struct serving *s)
{
	afe_ipc_call_release(&s->call);
	afe_ipc_producer_close(s->p);
	afe_ipc_consumer_close(s->consumer);
	for (int i = 0; i < SERVERS; i++) {
		struct afe_join join;
		afe_join_init(&join, &s->tasks[i]);
		cr_assert_eq(test_block_on(s->rt, &join), 0, "serving task %d", i);
	}
	afe_ipc_consumer_destroy(s->consumer);
	test_runtime_destroy(s->rt);
}

static const enum afe_ipc_transport both[] = {AFE_IPC_IN_PROCESS, AFE_IPC_SHARED_MEMORY};

/* A stream's replies, recorded. */
struct stream_seen {
	int n, last_status;
	uint32_t values[16];
	bool ended;
};

static void on_stream(void *ctx, int status, struct afe_ipc_reader *r, bool more)
{
	struct stream_seen *seen = ctx;
	uint32_t v = 0;
	if (status == 0 && stream_decode_ret(r, &v) == 0 && seen->n < 16)
		seen->values[seen->n++] = v;
	seen->last_status = status;
	seen->ended = !more;
}

Test(ipc_serve, each_request_goes_to_its_functions_handler)
{
	for (size_t t = 0; t < 2; t++) {
		struct serving s;
		serving_start(&s, "dispatch", both[t]);
		for (int64_t x = -3; x < 4; x++) {
			int64_t got = 0;
			cr_assert_eq(twice_call(&s.call, x), 0);
			cr_assert_eq(run_call(s.rt, &s.call), 0);
			cr_assert_eq(twice_result(&s.call, &got), 0);
			cr_assert_eq(got, 2 * x, "transport %zu", t);
		}
		cr_assert_eq(atomic_load(&s.seen.twice), 7, "arg reaches the handler");

		afe_ipc_str text = NULL;
		cr_assert_eq(joined_call(&s.call, "pear", "apple"), 0);
		cr_assert_eq(run_call(s.rt, &s.call), 0);
		cr_assert_eq(joined_result(&s.call, &text), 0);
		cr_assert(text && strcmp(text, "apple") == 0);

		int32_t seven = 0;
		cr_assert_eq(seven_call(&s.call), 0);
		cr_assert_eq(run_call(s.rt, &s.call), 0);
		cr_assert_eq(seven_result(&s.call, &seven), 0);
		cr_assert_eq(seven, 7);

		uint32_t ms = 0;
		cr_assert_eq(slow_call(&s.call, 5), 0);
		cr_assert_eq(run_call(s.rt, &s.call), 0);
		cr_assert_eq(slow_result(&s.call, &ms), 0);
		cr_assert_eq(ms, 5);
		serving_end(&s);
	}
}

Test(ipc_serve, errors_are_answered_as_errors)
{
	for (size_t t = 0; t < 2; t++) {
		struct serving s;
		serving_start(&s, "errors", both[t]);
		/* A function without a handler. */
		cr_assert_eq(nobody_call(&s.call), 0);
		cr_assert_eq(run_call(s.rt, &s.call), -ENOSYS);
		/* A handler returning an errno, and one whose reply it overrules. */
		cr_assert_eq(fails_call(&s.call, -EACCES), 0);
		cr_assert_eq(run_call(s.rt, &s.call), -EACCES);
		cr_assert_eq(overruled_call(&s.call, -ENOENT), 0);
		cr_assert_eq(run_call(s.rt, &s.call), -ENOENT);
		cr_assert_eq(overruled_call(&s.call, 0), 0);
		cr_assert_eq(run_call(s.rt, &s.call), 0);
		/* Nothing but an errno is passed on. */
		cr_assert_eq(fails_call(&s.call, -100000), 0);
		cr_assert_eq(run_call(s.rt, &s.call), -EPROTO);
		cr_assert_eq(overruled_call(&s.call, -100000), 0);
		cr_assert_eq(run_call(s.rt, &s.call), -EPROTO);
		/* No reply set up; arguments that do not decode (the typed
		 * handler, and a start that refuses them). */
		cr_assert_eq(silent_call(&s.call), 0);
		cr_assert_eq(run_call(s.rt, &s.call), -EIO);
		afe_ipc_put_int32_t(afe_ipc_call_begin(&s.call, twice_ID), 7);
		cr_assert_eq(afe_ipc_call_arm(&s.call), 0);
		cr_assert_eq(run_call(s.rt, &s.call), -EPROTO);
		afe_ipc_call_begin(&s.call, slow_ID);
		cr_assert_eq(afe_ipc_call_arm(&s.call), 0);
		cr_assert_eq(run_call(s.rt, &s.call), -EIO);
		/* The tasks serve on after every one of them. */
		int64_t got = 0;
		cr_assert_eq(twice_call(&s.call, 21), 0);
		cr_assert_eq(run_call(s.rt, &s.call), 0);
		cr_assert_eq(twice_result(&s.call, &got), 0);
		cr_assert_eq(got, 42);
		serving_end(&s);
	}
}

Test(ipc_serve, a_start_handler_streams_replies)
{
	for (size_t t = 0; t < 2; t++) {
		struct serving s;
		serving_start(&s, "stream", both[t]);
		struct stream_seen seen = {0};
		afe_ipc_call_on_reply(&s.call, on_stream, &seen);
		cr_assert_eq(stream_call(&s.call, 5), 0);
		cr_assert_eq(run_call(s.rt, &s.call), 0);
		cr_assert_eq(seen.n, 6, "transport %zu", t);
		for (int i = 0; i < 6; i++)
			cr_assert_eq(seen.values[i], (uint32_t)i);
		cr_assert(seen.ended);
		serving_end(&s);
	}
}

/* Calls slow in parallel: the SERVERS tasks each wait in one. */
Test(ipc_serve, serving_tasks_wait_side_by_side)
{
	struct serving s;
	serving_start(&s, "parallel", AFE_IPC_IN_PROCESS);
	struct afe_ipc_call calls[SERVERS];
	struct afe_join_handle waits[SERVERS];
	for (int i = 0; i < SERVERS; i++) {
		afe_ipc_call_init(&calls[i], s.p);
		cr_assert_eq(slow_call(&calls[i], 50), 0);
		struct await_call a = {.call = &calls[i]};
		afe_future_init(&a.base, await_call_poll);
		cr_assert_eq(afe_spawn(s.rt, &a, &waits[i]), 0);
	}
	for (int i = 0; i < SERVERS; i++) {
		struct afe_join join;
		afe_join_init(&join, &waits[i]);
		cr_assert_eq(test_block_on(s.rt, &join), 0);
		afe_ipc_call_release(&calls[i]);
	}
	serving_end(&s);
}

/* A serving task cancelled while its handler waits: the handler's future
 * winds down, and the caller gets -ECANCELED (not a timeout). */
Test(ipc_serve, a_cancelled_serving_task_answers_what_it_held)
{
	for (size_t t = 0; t < 2; t++) {
	struct serving s;
	serving_start(&s, "cancel", both[t]);
	cr_assert_eq(slow_call(&s.call, 60000), 0);
	struct await_call a = {.call = &s.call};
	afe_future_init(&a.base, await_call_poll);
	struct afe_join_handle waiter;
	cr_assert_eq(afe_spawn(s.rt, &a, &waiter), 0);
	while (!atomic_load(&s.seen.started))
		sched_yield();
	/* Whichever task took it: cancel them all. */
	for (int i = 0; i < SERVERS; i++) {
		struct afe_cancel cancel;
		cr_assert_eq(afe_cancel_init(&cancel, &s.tasks[i]), 0);
		cr_assert_eq(test_block_on(s.rt, &cancel), -ECANCELED);
	}
	struct afe_join join;
	afe_join_init(&join, &waiter);
	cr_assert_eq(test_block_on(s.rt, &join), -ECANCELED);
	afe_ipc_call_release(&s.call);
	afe_ipc_producer_close(s.p);
	afe_ipc_consumer_close(s.consumer);
	afe_ipc_consumer_destroy(s.consumer);
	test_runtime_destroy(s.rt);
	}
}

Test(ipc_serve, bad_tables_are_refused)
{
	struct afe_runtime *rt = test_runtime(1);
	struct afe_ipc_consumer *c;
	char name[96];
	snprintf(name, sizeof(name), "afe-serve-%d-bad", (int)getpid());
	cr_assert_eq(afe_ipc_consumer_serve(&c, rt, name, NULL), 0);
	struct afe_ipc_serve s;
	struct afe_ipc_serve_config ok = {
		.consumer = c, .handlers = table, .n_handlers = 2, .scratch_size = 0,
	};
	cr_assert_eq(afe_ipc_serve_init(&s, &ok), 0);
	cr_assert_eq(afe_ipc_serve_init(NULL, &ok), -EINVAL);
	cr_assert_eq(afe_ipc_serve_init(&s, NULL), -EINVAL);
	cr_assert_eq(test_block_on(rt, &s), -EINVAL, "a refused config ends so");

	struct afe_ipc_serve_config bad = ok;
	bad.consumer = NULL;
	cr_assert_eq(afe_ipc_serve_init(&s, &bad), -EINVAL);
	bad = ok;
	bad.handlers = NULL;
	cr_assert_eq(afe_ipc_serve_init(&s, &bad), -EINVAL);
	bad = ok;
	bad.n_handlers = 0;
	cr_assert_eq(afe_ipc_serve_init(&s, &bad), -EINVAL);
	bad = ok;
	bad.n_handlers = 3; /* slow's start, without scratch */
	cr_assert_eq(afe_ipc_serve_init(&s, &bad), -EINVAL);
	bad.scratch_size = sizeof(struct waiting);
	cr_assert_eq(afe_ipc_serve_init(&s, &bad), 0);

	const struct afe_ipc_handler dup[] = {{1, twice_counted, NULL}, {1, fails_handle, NULL}};
	const struct afe_ipc_handler neither[] = {{1, NULL, NULL}};
	const struct afe_ipc_handler both_kinds[] = {{3, fails_handle, slow_start}};
	bad = ok;
	bad.scratch_size = sizeof(struct waiting);
	bad.handlers = dup;
	bad.n_handlers = 2;
	cr_assert_eq(afe_ipc_serve_init(&s, &bad), -EINVAL);
	bad.handlers = neither;
	bad.n_handlers = 1;
	cr_assert_eq(afe_ipc_serve_init(&s, &bad), -EINVAL);
	bad.handlers = both_kinds;
	cr_assert_eq(afe_ipc_serve_init(&s, &bad), -EINVAL);
	cr_assert_eq(test_block_on(rt, &s), -EINVAL);

	afe_ipc_consumer_close(c);
	afe_ipc_consumer_destroy(c);
	test_runtime_destroy(rt);
}
