/* SPDX-License-Identifier: MIT */
/*
 * Waits for ring room, under stress, on both sides of a link.
 *
 * A producer's request ring holds 128 requests (AFE_IPC_RING_SLOTS), its
 * reply ring 128 replies. A task that finds the ring it writes full waits
 * for room (afe_ipc_wait, src/ipc/ipc_internal.h): its side's pump wants room
 * on its bell, the other process rings it when it frees slots, and the
 * pump wakes the waiters. Here the rings fill and empty again and again,
 * so that a lost wake shows: as calls that time out, as counts that do not
 * add up, or as a test that hangs until its time limit. Then one side is
 * killed while the other's tasks wait for room: they must end at once
 * with -EPIPE, long before any timeout.
 *
 * Consumers and producers in other processes are forked before the test
 * starts a runtime (they make their own after the fork), die with the test
 * (fork_tied), and report through pipes and their exit status: a child
 * cannot assert. The example consumer is used where a consumer only has to
 * hold its serving tasks (naps).
 *
 * How many waits happened is counted by wrappers that read the private
 * `waiting_room` (calls) and `waiting` (replies) fields after each poll:
 * the tests check that they exercised what they claim to.
 *
 * A reply waits for room at most the consumer's room_ms (1 s by default);
 * the tests of waiting give it a minute (PATIENT_ROOM_MS), so that a slow
 * machine does not turn a long wait into a failure; the test of a stopped
 * producer keeps the default.
 *
 * Counts are divided by IPC_ROOM_DIVISOR in sanitizer builds (the CMake
 * sets it), or by the environment's AFE_IPC_ROOM_DIVISOR when set.
 */
#include <poll.h>
#include <stdlib.h>
#include <string.h>

#include "ipc_helpers.h"

#ifndef IPC_ROOM_DIVISOR
#define IPC_ROOM_DIVISOR 1
#endif

static uint32_t scaled(uint32_t n)
{
	const char *env = getenv("AFE_IPC_ROOM_DIVISOR");
	long div = env ? strtol(env, NULL, 10) : IPC_ROOM_DIVISOR;
	uint32_t m = div > 1 ? n / (uint32_t)div : n;
	return m ? m : 1;
}

enum { PATIENT_ROOM_MS = 60000 };

static uint64_t ms_since(uint64_t start_ns)
{
	return (afe_now_ns() - start_ns) / 1000000u;
}

/* ---- counting the waits -------------------------------------------------------- */

/* Where a stream server stands, for the message of a test that fails:
 * which one is stuck, and in what. */
enum { NOTE_RECEIVING, NOTE_STREAMING, NOTE_FINAL_REPLY };

struct stream_note {
	atomic_int phase;
	atomic_uint replies; /* replies of the current stream sent before */
	atomic_int err;	     /* the current stream's error so far */
	atomic_uint streams; /* streams ended */
	atomic_int last_end; /* the error the last one ended with */
};

/* What a side's tasks counted (shared by its tasks: atomics). */
struct tally {
	atomic_uint_fast64_t room_sleeps; /* polls that left a task asleep for room */
	atomic_uint asleep;		  /* tasks asleep for room now */
	atomic_uint_fast64_t done, failed; /* calls or requests ended, and how many badly */
	atomic_int first_error;
	atomic_uint_fast64_t epipe; /* requests whose replies ended with -EPIPE */
	struct stream_note *notes;  /* one per stream server, or NULL */
};

static void tally_error(struct tally *t, int err)
{
	int none = 0;
	atomic_fetch_add(&t->failed, 1);
	atomic_compare_exchange_strong(&t->first_error, &none, err);
}

/* Awaits a future that may wait for room (*waiting says it does: a call's
 * waiting_room, a reply's waiting) and counts in t the polls that left it
 * asleep; t->asleep counts it from its first such poll to its end. */
struct counted {
	struct afe_future base;
	struct afe_future *inner;
	const bool *waiting;
	struct tally *t;
	bool asleep;
};

static int counted_poll(struct afe_future *f, struct afe_context *cx)
{
	struct counted *self = afe_container_of(f, struct counted, base);
	if (afe_future_poll(self->inner, cx) == AFE_PENDING) {
		if (*self->waiting) {
			atomic_fetch_add_explicit(&self->t->room_sleeps, 1, memory_order_relaxed);
			if (!self->asleep) {
				self->asleep = true;
				atomic_fetch_add(&self->t->asleep, 1);
			}
		}
		return AFE_PENDING;
	}
	if (self->asleep)
		atomic_fetch_sub(&self->t->asleep, 1);
	f->result = self->inner->result;
	return AFE_READY;
}

static void counted_call(struct counted *c, struct afe_ipc_call *call, struct tally *t)
{
	*c = (struct counted){.inner = &call->base, .waiting = &call->waiting_room, .t = t};
	afe_future_init(&c->base, counted_poll);
}

static void counted_reply(struct counted *c, struct afe_ipc_reply *rep, struct tally *t)
{
	*c = (struct counted){.inner = &rep->base, .waiting = &rep->waiting, .t = t};
	afe_future_init(&c->base, counted_poll);
}

/* ---- consumers ----------------------------------------------------------------- */

/* Serves add in bursts: takes `batch` requests before it answers any,
 * answers them all, pauses now and then, and so on until `total` were
 * served; then it takes no more (one more would be counted as failed).
 * With a batch larger than the ring, the producer must refill the ring
 * the consumer emptied while no reply comes back: only room wakes move it. */
struct burst_server {
	struct afe_future base;
	struct afe_ipc_consumer *c;
	struct tally *t;
	uint32_t batch, n, k, bursts;
	uint64_t total, served;
	struct afe_ipc_request *reqs;
	struct afe_ipc_reply *reps;
	int64_t *sums;
	struct add_args args;
	struct counted wait;
	struct afe_sleep pause;
};

static int burst_server_poll(struct afe_future *f, struct afe_context *cx)
{
	struct burst_server *self = afe_container_of(f, struct burst_server, base);
	AFE_ASYNC_BEGIN(f, cx);
	while (self->served < self->total) {
		self->n = self->total - self->served < self->batch
				  ? (uint32_t)(self->total - self->served)
				  : self->batch;
		for (self->k = 0; self->k < self->n; self->k++) {
			afe_ipc_recv_init(&self->reqs[self->k], self->c);
			AFE_AWAIT(&self->reqs[self->k].base);
			if (self->reqs[self->k].base.result < 0)
				AFE_RETURN(self->reqs[self->k].base.result);
			struct afe_ipc_request *req = &self->reqs[self->k];
			if (req->fn == add_ID && add_decode(req, &self->args) == 0)
				self->sums[self->k] = self->args.a + self->args.b + self->args.c;
			else
				self->sums[self->k] = INT64_MIN;
		}
		for (self->k = 0; self->k < self->n; self->k++) {
			if (self->sums[self->k] == INT64_MIN)
				afe_ipc_reply_error(&self->reps[self->k], &self->reqs[self->k], -EPROTO);
			else
				add_reply(&self->reps[self->k], &self->reqs[self->k], self->sums[self->k]);
			counted_reply(&self->wait, &self->reps[self->k], self->t);
			AFE_AWAIT(&self->wait.base);
			atomic_fetch_add(&self->t->done, 1);
			if (self->wait.base.result < 0 || self->sums[self->k] == INT64_MIN)
				tally_error(self->t, self->wait.base.result < 0
							     ? (int)self->wait.base.result
							     : -EPROTO);
		}
		self->served += self->n;
		if (++self->bursts % 4 == 0) { /* slowly: let every waiter pile up */
			afe_sleep_init(&self->pause, 300 * 1000u);
			AFE_AWAIT(&self->pause.base);
		}
	}
	/* All served: anything more is a request nobody made. */
	afe_ipc_recv_init(&self->reqs[0], self->c);
	AFE_AWAIT(&self->reqs[0].base);
	if (self->reqs[0].base.result == 0) {
		tally_error(self->t, -EEXIST);
		afe_ipc_reply_error(&self->reps[0], &self->reqs[0], -EEXIST);
		AFE_AWAIT(&self->reps[0].base);
	}
	AFE_RETURN(0);
	AFE_ASYNC_END;
}

/* Serves count as a stream (count(n) replies 0 .. n-1 with more to come,
 * then n) and add, like the example consumer, one request at a time;
 * several of them serve one consumer. A reply that fails ends the stream
 * (its final reply is still sent, and fails too): counted in t->epipe. */
struct stream_server {
	struct afe_future base;
	struct afe_ipc_consumer *c;
	struct tally *t;
	struct stream_note *note; /* or NULL */
	uint32_t i;
	int err;
	union {
		struct add_args add;
		struct count_args count;
	} args;
	struct afe_ipc_request req;
	struct afe_ipc_reply rep;
	struct counted wait;
};

static void note_phase(struct stream_note *n, int phase, uint32_t replies, int err)
{
	if (!n)
		return;
	atomic_store(&n->phase, phase);
	atomic_store(&n->replies, replies);
	atomic_store(&n->err, err);
}

static void note_end(struct stream_note *n, int err)
{
	if (!n)
		return;
	atomic_store(&n->last_end, err);
	atomic_fetch_add(&n->streams, 1);
}

static int stream_server_poll(struct afe_future *f, struct afe_context *cx)
{
	struct stream_server *self = afe_container_of(f, struct stream_server, base);
	struct afe_ipc_request *req = &self->req;
	AFE_ASYNC_BEGIN(f, cx);
	for (;;) {
		note_phase(self->note, NOTE_RECEIVING, 0, 0);
		afe_ipc_recv_init(req, self->c);
		AFE_AWAIT(&req->base);
		if (req->base.result < 0)
			AFE_RETURN(0); /* closed */
		self->err = 0;
		self->i = 0;
		if (req->fn == count_ID && count_decode(req, &self->args.count) == 0) {
			for (self->i = 0; self->i < self->args.count.n && !self->err; self->i++) {
				note_phase(self->note, NOTE_STREAMING, self->i, 0);
				count_reply_more(&self->rep, req, self->i);
				counted_reply(&self->wait, &self->rep, self->t);
				AFE_AWAIT(&self->wait.base);
				self->err = (int)self->wait.base.result;
			}
			count_reply(&self->rep, req, self->args.count.n);
		} else if (req->fn == add_ID && add_decode(req, &self->args.add) == 0) {
			add_reply(&self->rep, req,
				  self->args.add.a + self->args.add.b + self->args.add.c);
		} else {
			afe_ipc_reply_error(&self->rep, req, -EPROTO);
			self->err = -EPROTO;
		}
		note_phase(self->note, NOTE_FINAL_REPLY, self->i, self->err);
		counted_reply(&self->wait, &self->rep, self->t);
		AFE_AWAIT(&self->wait.base);
		if (!self->err)
			self->err = (int)self->wait.base.result;
		if (self->err == -EPIPE)
			atomic_fetch_add(&self->t->epipe, 1);
		else if (self->err)
			tally_error(self->t, self->err);
		note_end(self->note, self->err);
		atomic_fetch_add(&self->t->done, 1);
	}
	AFE_ASYNC_END;
}

/* A consumer's cast in one process: its runtime, and the tasks serving. */
struct serving {
	struct afe_runtime *rt;
	struct afe_ipc_consumer *c;
	struct afe_join_handle *handles;
	uint32_t n;
	struct burst_server *burst; /* its batch buffers, freed at the end */
};

/* Serves name with one burst server (batch > 0) or `servers` stream
 * servers, counting in t, its replies waiting for room up to room_ms (0:
 * the default). 0 or an error (nothing to undo but rt). */
static int serving_start(struct serving *s, struct afe_runtime *rt, const char *name,
			 uint32_t servers, uint32_t batch, uint64_t total, struct tally *t,
			 uint32_t room_ms)
{
	memset(s, 0, sizeof(*s));
	s->rt = rt;
	struct afe_ipc_consumer_config config;
	afe_ipc_consumer_config_default(&config);
	if (room_ms)
		config.room_ms = room_ms;
	int err = afe_ipc_consumer_serve(&s->c, rt, name, &config);
	if (err < 0)
		return err;
	s->n = batch ? 1 : servers;
	s->handles = calloc(s->n, sizeof(*s->handles));
	if (!s->handles)
		return -ENOMEM;
	for (uint32_t i = 0; i < s->n; i++) {
		if (batch) {
			struct burst_server b = {.c = s->c, .t = t, .batch = batch, .total = total};
			b.reqs = calloc(batch, sizeof(*b.reqs));
			b.reps = calloc(batch, sizeof(*b.reps));
			b.sums = calloc(batch, sizeof(*b.sums));
			if (!b.reqs || !b.reps || !b.sums)
				return -ENOMEM;
			afe_future_init(&b.base, burst_server_poll);
			s->burst = malloc(sizeof(*s->burst));
			if (!s->burst)
				return -ENOMEM;
			*s->burst = b;
			err = afe_spawn(rt, &b, &s->handles[i]);
		} else {
			struct stream_server srv = {.c = s->c, .t = t,
						    .note = t->notes ? &t->notes[i] : NULL};
			afe_future_init(&srv.base, stream_server_poll);
			err = afe_spawn(rt, &srv, &s->handles[i]);
		}
		if (err < 0)
			return err;
	}
	return 0;
}

/* Closes the consumer and joins its tasks: 0, or the first task's error. */
static int serving_end(struct serving *s)
{
	int first = 0;
	afe_ipc_consumer_close(s->c);
	for (uint32_t i = 0; i < s->n; i++) {
		struct afe_join join;
		intptr_t r = 0;
		afe_join_init(&join, &s->handles[i]);
		if (afe_block_on(s->rt, &join, &r) < 0 || (r < 0 && r != -EPIPE && !first))
			first = r < 0 ? (int)r : -EIO;
	}
	afe_ipc_consumer_destroy(s->c);
	free(s->handles);
	if (s->burst) {
		free(s->burst->reqs);
		free(s->burst->reps);
		free(s->burst->sums);
		free(s->burst);
	}
	return first;
}

/* What a consumer in a child process reports when told to leave. */
struct consumer_report {
	uint64_t room_sleeps, done, failed;
	int first_error, end_error;
};

struct child_consumer {
	pid_t pid;
	int ctl, report; /* the test's ends: close ctl to make it leave */
};

/* Forks a consumer serving name (see serving_start) until told to leave. */
static struct child_consumer child_consumer_start(const char *name, uint32_t servers,
						  uint32_t batch, uint64_t total)
{
	int ctl[2], report[2];
	cr_assert_eq(pipe(ctl), 0);
	cr_assert_eq(pipe(report), 0);
	pid_t pid = fork_tied();
	if (pid == 0) {
		close(ctl[1]);
		close(report[0]);
		struct afe_runtime_config config;
		afe_runtime_config_default(&config);
		config.workers = 2;
		struct afe_runtime *rt;
		if (afe_runtime_create(&rt, &config) < 0)
			_exit(20);
		static struct tally t;
		struct serving s;
		int err = serving_start(&s, rt, name, servers, batch, total, &t, PATIENT_ROOM_MS);
		if (err < 0)
			_exit(21);
		char byte;
		while (read(ctl[0], &byte, 1) > 0)
			;
		struct consumer_report r = {0};
		r.end_error = serving_end(&s);
		r.room_sleeps = atomic_load(&t.room_sleeps);
		r.done = atomic_load(&t.done);
		r.failed = atomic_load(&t.failed);
		r.first_error = atomic_load(&t.first_error);
		afe_runtime_destroy(rt);
		_exit(write(report[1], &r, sizeof(r)) == (ssize_t)sizeof(r) ? 0 : 22);
	}
	close(ctl[0]);
	close(report[1]);
	return (struct child_consumer){.pid = pid, .ctl = ctl[1], .report = report[0]};
}

/* Tells the consumer to leave and returns its report. */
static struct consumer_report child_consumer_end(struct child_consumer *cc)
{
	close(cc->ctl);
	struct consumer_report r;
	cr_assert_eq(read(cc->report, &r, sizeof(r)), (ssize_t)sizeof(r),
		     "the consumer did not report");
	close(cc->report);
	int status;
	cr_assert_eq(waitpid(cc->pid, &status, 0), cc->pid);
	cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0, "consumer status %d", status);
	return r;
}

/* ---- producers ----------------------------------------------------------------- */

/* Makes calls from a pool shared with other adders until it is empty:
 * add(i, 2i, 1) for the next i, checking every sum. Sharing the pool keeps
 * every adder busy to the end, so that the calls not answered yet are
 * always all in flight (a consumer serving in bursts waits for them). */
struct pool_adder {
	struct afe_future base;
	struct afe_ipc_producer *p;
	struct tally *t;
	atomic_uint_fast64_t *next;
	uint64_t total, i;
	int64_t sum;
	struct afe_ipc_call call;
	struct counted wait;
};

static int pool_adder_poll(struct afe_future *f, struct afe_context *cx)
{
	struct pool_adder *self = afe_container_of(f, struct pool_adder, base);
	AFE_ASYNC_BEGIN(f, cx);
	afe_ipc_call_init(&self->call, self->p);
	while ((self->i = atomic_fetch_add(self->next, 1)) < self->total) {
		add_call(&self->call, (int64_t)self->i, 2 * (int64_t)self->i, 1);
		counted_call(&self->wait, &self->call, self->t);
		AFE_AWAIT(&self->wait.base);
		atomic_fetch_add(&self->t->done, 1);
		if (self->wait.base.result < 0) {
			tally_error(self->t, (int)self->wait.base.result);
			AFE_RETURN(self->wait.base.result);
		}
		if (add_result(&self->call, &self->sum) < 0 ||
		    self->sum != 3 * (int64_t)self->i + 1) {
			tally_error(self->t, -EBADMSG);
			AFE_RETURN(-EBADMSG);
		}
	}
	AFE_RETURN(0);
	AFE_ASYNC_END;
}

/* A stream's replies as the callback checks them: 0, 1, ..., n. */
struct stream_check {
	uint32_t n, next;
	bool bad;
};

static void on_stream(void *ctx, int status, struct afe_ipc_reader *r, bool more)
{
	struct stream_check *s = ctx;
	uint32_t v;
	if (status != 0 || count_decode_ret(r, &v) < 0 || v != s->next || more != (v < s->n))
		s->bad = true;
	else
		s->next++;
}

/* Calls count(n) `calls` times, each reply checked by on_stream. */
struct streamer {
	struct afe_future base;
	struct afe_ipc_producer *p;
	struct tally *t;
	uint32_t n, i, calls;
	struct stream_check check;
	struct afe_ipc_call call;
	struct counted wait;
};

static int streamer_poll(struct afe_future *f, struct afe_context *cx)
{
	struct streamer *self = afe_container_of(f, struct streamer, base);
	AFE_ASYNC_BEGIN(f, cx);
	afe_ipc_call_init(&self->call, self->p);
	for (self->i = 0; self->i < self->calls; self->i++) {
		self->check = (struct stream_check){.n = self->n};
		afe_ipc_call_on_reply(&self->call, on_stream, &self->check);
		count_call(&self->call, self->n);
		counted_call(&self->wait, &self->call, self->t);
		AFE_AWAIT(&self->wait.base);
		atomic_fetch_add(&self->t->done, 1);
		if (self->wait.base.result < 0) {
			tally_error(self->t, (int)self->wait.base.result);
			AFE_RETURN(self->wait.base.result);
		}
		if (self->check.bad || self->check.next != self->n + 1) {
			tally_error(self->t, -EBADMSG);
			AFE_RETURN(-EBADMSG);
		}
	}
	AFE_RETURN(0);
	AFE_ASYNC_END;
}

/* Keeps its worker busy in slices of spin_us, yielding between them, until
 * *stop: on a runtime of one worker, the producer's pump drains replies
 * only between slices, in bursts. */
struct hog {
	struct afe_future base;
	atomic_bool *stop;
	uint32_t spin_us;
};

static int hog_poll(struct afe_future *f, struct afe_context *cx)
{
	struct hog *self = afe_container_of(f, struct hog, base);
	AFE_ASYNC_BEGIN(f, cx);
	while (!atomic_load(self->stop)) {
		for (uint64_t end = afe_now_ns() + self->spin_us * 1000u; afe_now_ns() < end;)
			;
		AFE_YIELD();
	}
	AFE_RETURN(0);
	AFE_ASYNC_END;
}

/* Joins n tasks; returns how many ended with a result other than want. */
static uint32_t join_all(struct afe_runtime *rt, struct afe_join_handle *handles, uint32_t n,
			 intptr_t want)
{
	uint32_t other = 0;
	for (uint32_t i = 0; i < n; i++) {
		struct afe_join join;
		afe_join_init(&join, &handles[i]);
		if (test_block_on(rt, &join) != want)
			other++;
	}
	return other;
}

/* ---- the request ring: many callers against a consumer serving in bursts ------- */

enum { ADDERS = 512, BURST = 192 };

Test(ipc_room, calls_refill_a_request_ring_a_bursty_consumer_empties_without_replying,
     .timeout = 120)
{
	uint64_t total = (uint64_t)ADDERS * scaled(2000);
	const char *name = ipc_test_name("room-requests");
	struct child_consumer cc = child_consumer_start(name, 0, BURST, total);
	struct afe_runtime *rt = test_runtime(2);
	struct afe_ipc_producer *p = connect_retrying(rt, name, NULL); /* timeouts of 5 s */
	static struct tally t;
	static atomic_uint_fast64_t next;
	uint64_t start = afe_now_ns();
	struct afe_join_handle *handles = calloc(ADDERS, sizeof(*handles));
	for (uint32_t i = 0; i < ADDERS; i++) {
		struct pool_adder a = {.p = p, .t = &t, .next = &next, .total = total};
		afe_future_init(&a.base, pool_adder_poll);
		cr_assert_eq(afe_spawn(rt, &a, &handles[i]), 0);
	}
	uint32_t bad = join_all(rt, handles, ADDERS, 0);
	uint64_t ms = ms_since(start);
	struct afe_ipc_stats st;
	afe_ipc_producer_stats(p, &st);
	afe_ipc_producer_close(p);
	test_runtime_destroy(rt);
	free(handles);
	struct consumer_report r = child_consumer_end(&cc);
	uint64_t sleeps = atomic_load(&t.room_sleeps);
	fprintf(stderr, "%llu of %llu calls in %llu ms: %llu room sleeps here, %llu in the "
		"consumer\n", (unsigned long long)atomic_load(&t.done), (unsigned long long)total,
		(unsigned long long)ms, (unsigned long long)sleeps,
		(unsigned long long)r.room_sleeps);
	cr_assert_eq(bad, 0, "%u of %u callers failed (%llu calls failed, the first with %d; "
		     "%llu timed out)", bad, ADDERS, (unsigned long long)atomic_load(&t.failed),
		     atomic_load(&t.first_error), (unsigned long long)st.timeouts);
	cr_assert_eq(atomic_load(&t.done), total);
	cr_assert_eq(st.calls, total);
	cr_assert_eq(st.replies, total);
	cr_assert_eq(st.timeouts, 0);
	cr_assert_eq(st.late_replies, 0);
	cr_assert_eq(r.failed, 0, "the consumer: %d", r.first_error);
	cr_assert_eq(r.done, total, "the consumer answered every request, and no other");
	cr_assert_eq(r.end_error, 0);
	/* Each burst empties the full ring while 320 callers wait for room. */
	cr_assert_geq(sleeps, total / 4, "the callers waited for room %llu times",
		      (unsigned long long)sleeps);
}

/* ---- the reply ring: streams into a producer slow to drain them ------------------ */

enum { STREAM_SERVERS = 64, STREAMERS = 64, STREAM_LEN = 200 };

Test(ipc_room, streamed_replies_wait_for_room_while_a_busy_producer_drains_in_bursts,
     .timeout = 120)
{
	uint32_t calls = scaled(60);
	uint64_t total = (uint64_t)STREAMERS * calls;
	const char *name = ipc_test_name("room-replies");
	struct child_consumer cc = child_consumer_start(name, STREAM_SERVERS, 0, 0);
	/* One worker, shared with a hog: replies are drained between its
	 * slices, by then the consumer filled the ring and waits. */
	struct afe_runtime *rt = test_runtime(1);
	/* A stream of 200 replies drained between a hog's slices took over
	 * the default 5 s once on a loaded CI machine: the Criterion
	 * timeout, not the call's, is what catches a hang here. */
	struct afe_ipc_producer_config config;
	afe_ipc_producer_config_default(&config);
	config.timeout_ms = 60000;
	struct afe_ipc_producer *p = connect_retrying(rt, name, &config);
	static struct tally t;
	atomic_bool stop = false;
	struct hog hog = {.stop = &stop, .spin_us = 50};
	afe_future_init(&hog.base, hog_poll);
	struct afe_join_handle hog_handle, handles[STREAMERS];
	cr_assert_eq(afe_spawn(rt, &hog, &hog_handle), 0);
	uint64_t start = afe_now_ns();
	for (uint32_t i = 0; i < STREAMERS; i++) {
		struct streamer s = {.p = p, .t = &t, .n = STREAM_LEN, .calls = calls};
		afe_future_init(&s.base, streamer_poll);
		cr_assert_eq(afe_spawn(rt, &s, &handles[i]), 0);
	}
	uint32_t bad = join_all(rt, handles, STREAMERS, 0);
	uint64_t ms = ms_since(start);
	atomic_store(&stop, true);
	join_all(rt, &hog_handle, 1, 0);
	struct afe_ipc_stats st;
	afe_ipc_producer_stats(p, &st);
	afe_ipc_producer_close(p);
	test_runtime_destroy(rt);
	struct consumer_report r = child_consumer_end(&cc);
	fprintf(stderr, "%llu streams of %u replies in %llu ms: %llu room sleeps in the "
		"consumer, %llu here\n", (unsigned long long)total, STREAM_LEN + 1,
		(unsigned long long)ms, (unsigned long long)r.room_sleeps,
		(unsigned long long)atomic_load(&t.room_sleeps));
	cr_assert_eq(bad, 0, "%u of %u streamers failed (%llu calls failed, the first with %d; "
		     "%llu timed out)", bad, STREAMERS, (unsigned long long)atomic_load(&t.failed),
		     atomic_load(&t.first_error), (unsigned long long)st.timeouts);
	cr_assert_eq(atomic_load(&t.done), total);
	cr_assert_eq(st.calls, total);
	cr_assert_eq(st.replies, total * (STREAM_LEN + 1));
	cr_assert_eq(st.timeouts, 0);
	cr_assert_eq(st.late_replies, 0);
	cr_assert_eq(st.malformed, 0);
	cr_assert_eq(r.failed, 0, "the consumer: %d", r.first_error);
	cr_assert_eq(r.done, total);
	cr_assert_eq(r.end_error, 0);
	cr_assert_geq(r.room_sleeps, total, "the consumer's replies waited for room %llu times",
		      (unsigned long long)r.room_sleeps);
}

/* ---- a side killed while the other's tasks wait for room --------------------------- */

/* One call of nap(ms) or add(arg, 0, 0), counted. */
struct counted_one_call {
	struct afe_future base;
	struct afe_ipc_producer *p;
	struct tally *t;
	bool nap;
	uint32_t arg;
	struct afe_ipc_call call;
	struct counted wait;
};

static int counted_one_call_poll(struct afe_future *f, struct afe_context *cx)
{
	struct counted_one_call *self = afe_container_of(f, struct counted_one_call, base);
	AFE_ASYNC_BEGIN(f, cx);
	afe_ipc_call_init(&self->call, self->p);
	if (self->nap)
		nap_call(&self->call, self->arg);
	else
		add_call(&self->call, self->arg, 0, 0);
	counted_call(&self->wait, &self->call, self->t);
	AFE_AWAIT(&self->wait.base);
	AFE_RETURN(self->wait.base.result);
	AFE_ASYNC_END;
}

/* Waits up to 10 s for *n to reach want. */
static bool reaches(atomic_uint *n, uint32_t want)
{
	uint64_t start = afe_now_ns();
	while (atomic_load(n) < want && ms_since(start) < 10000)
		usleep(1000);
	return atomic_load(n) >= want;
}

enum { NAPS = 4, WAITING_ADDS = 400, KILL_ROUNDS = 5, PROMPT_MS = 2000 };

Test(ipc_room, killing_the_consumer_ends_calls_waiting_for_room_with_epipe_at_once,
     .timeout = 120)
{
	const char *name = ipc_test_name("room-kill-consumer");
	struct afe_runtime *rt = test_runtime(2);
	struct afe_ipc_producer_config config;
	afe_ipc_producer_config_default(&config);
	config.timeout_ms = 20000; /* an -EPIPE is not a timeout in disguise */
	static struct afe_join_handle handles[NAPS + WAITING_ADDS];
	for (int round = 0; round < KILL_ROUNDS; round++) {
		pid_t consumer = start_consumer(name); /* the dead one's object is replaced */
		struct afe_ipc_producer *p = connect_retrying(rt, name, &config);
		static struct tally t;
		memset(&t, 0, sizeof(t));
		/* The naps hold the example consumer's four serving tasks: the
		 * adds fill the ring, the rest of them wait for room. */
		for (uint32_t i = 0; i < NAPS + WAITING_ADDS; i++) {
			struct counted_one_call c = {.p = p, .t = &t, .nap = i < NAPS,
					     .arg = i < NAPS ? CALC_NAP_MAX_MS : i};
			afe_future_init(&c.base, counted_one_call_poll);
			cr_assert_eq(afe_spawn(rt, &c, &handles[i]), 0);
			if (i == NAPS - 1)
				usleep(100 * 1000); /* the naps are taken first */
		}
		uint32_t want = WAITING_ADDS - 128;
		cr_assert(reaches(&t.asleep, want), "round %d: %u calls wait for room, not %u",
			  round, atomic_load(&t.asleep), want);
		uint64_t start = afe_now_ns();
		stop_consumer(consumer, SIGKILL);
		uint32_t other = join_all(rt, handles, NAPS + WAITING_ADDS, -EPIPE);
		uint64_t ms = ms_since(start);
		cr_assert_eq(other, 0, "round %d: %u calls ended otherwise than -EPIPE", round,
			     other);
		cr_assert_lt(ms, PROMPT_MS, "round %d: the calls took %llu ms to end", round,
			     (unsigned long long)ms);
		cr_assert_eq(atomic_load(&t.asleep), 0);
		afe_ipc_producer_close(p);
	}
	test_runtime_destroy(rt);
}

/* A producer process for the next tests: waits for its cue, connects,
 * makes `calls` calls of count(STUCK_LEN) (writing how each ended, an int,
 * to report unless it is -1), and waits to be frozen and killed. */
/* Streams far longer than the test: one that ended before the freeze
 * would leave its server free to take a second call, and another server
 * none (100000 replies once took ~20 ms, less than taking the 24 calls on
 * a loaded machine). */
enum { STUCK_SERVERS = 24, STUCK_LEN = 1 << 30 };

static void ignore_reply(void *ctx, int status, struct afe_ipc_reader *r, bool more)
{
	(void)ctx, (void)status, (void)r, (void)more;
}

struct stuck_call {
	struct afe_future base;
	struct afe_ipc_producer *p;
	int report;
	struct afe_ipc_call call;
};

/* Sends count(STUCK_LEN), waits for its end and reports it. */
static int stuck_call_poll(struct afe_future *f, struct afe_context *cx)
{
	struct stuck_call *self = afe_container_of(f, struct stuck_call, base);
	AFE_ASYNC_BEGIN(f, cx);
	afe_ipc_call_init(&self->call, self->p);
	afe_ipc_call_on_reply(&self->call, ignore_reply, NULL);
	count_call(&self->call, STUCK_LEN);
	AFE_AWAIT(&self->call.base);
	int result = (int)self->call.base.result;
	if (self->report >= 0 && write(self->report, &result, sizeof(result)) != sizeof(result))
		_exit(33);
	AFE_RETURN(self->call.base.result);
	AFE_ASYNC_END;
}

/* Tells which stream servers are not where the test expects them (the
 * message of a failed assertion only says how many): each has ended
 * `ended` streams, the last with -EPIPE, and is streaming when `streaming`. */
static void report_streams(struct tally *t, uint32_t servers, uint32_t ended, bool streaming)
{
	static const char *const phases[] = {
		[NOTE_RECEIVING] = "receiving",
		[NOTE_STREAMING] = "streaming, a reply pending",
		[NOTE_FINAL_REPLY] = "sending a final reply",
	};
	fprintf(stderr, "%u replies asleep for room\n", atomic_load(&t->asleep));
	for (uint32_t i = 0; i < servers; i++) {
		struct stream_note *n = &t->notes[i];
		uint32_t streams = atomic_load(&n->streams);
		int phase = atomic_load(&n->phase), last = atomic_load(&n->last_end);
		if (streams == ended && (!ended || last == -EPIPE) &&
		    (!streaming || phase == NOTE_STREAMING))
			continue;
		fprintf(stderr, "server %u: %s (%u replies sent before, error %d so far); "
			"%u streams ended, the last with %d\n", i, phases[phase],
			atomic_load(&n->replies), atomic_load(&n->err), streams, last);
	}
}

static _Noreturn void stuck_producer(const char *name, int cue, int calls, int report)
{
	char byte;
	if (read(cue, &byte, 1) != 1)
		_exit(0); /* not needed */
	struct afe_runtime_config config;
	afe_runtime_config_default(&config);
	config.workers = 1;
	struct afe_runtime *rt;
	if (afe_runtime_create(&rt, &config) < 0)
		_exit(30);
	struct afe_ipc_producer_config pc;
	afe_ipc_producer_config_default(&pc);
	pc.timeout_ms = 60000; /* a call that ends, ends for another reason */
	struct afe_ipc_producer *p = NULL;
	int err = -ECONNREFUSED;
	for (int i = 0; i < 1000 && err == -ECONNREFUSED; i++)
		if ((err = afe_ipc_producer_connect(&p, rt, name, &pc)) == -ECONNREFUSED)
			usleep(10000);
	if (err < 0)
		_exit(31);
	for (int i = 0; i < calls; i++) {
		struct stuck_call c = {.p = p, .report = report};
		afe_future_init(&c.base, stuck_call_poll);
		if (afe_spawn(rt, &c, NULL) < 0)
			_exit(32);
	}
	for (;;)
		pause(); /* the test freezes us (SIGSTOP), then kills us */
}

Test(ipc_room, killing_the_producer_ends_replies_waiting_for_room_with_epipe_at_once,
     .timeout = 120)
{
	const char *name = ipc_test_name("room-kill-producer");
	pid_t kids[KILL_ROUNDS];
	int cues[KILL_ROUNDS];
	for (int k = 0; k < KILL_ROUNDS; k++) { /* before any thread of ours */
		int cue[2];
		cr_assert_eq(pipe(cue), 0);
		kids[k] = fork_tied();
		if (kids[k] == 0) {
			close(cue[1]);
			stuck_producer(name, cue[0], STUCK_SERVERS, -1);
		}
		close(cue[0]);
		cues[k] = cue[1];
	}
	struct afe_runtime *rt = test_runtime(2);
	static struct tally t;
	static struct stream_note notes[STUCK_SERVERS];
	t.notes = notes;
	struct serving s;
	/* Patient: the replies wait for room until the producer dies. */
	cr_assert_eq(serving_start(&s, rt, name, STUCK_SERVERS, 0, 0, &t, PATIENT_ROOM_MS), 0);
	for (int k = 0; k < KILL_ROUNDS; k++) {
		cr_assert_eq(write(cues[k], "g", 1), 1);
		/* Once the consumer took every call, the producer freezes: it
		 * drains no reply again. (Its worker must not block inside a
		 * poll instead: a poll never blocks, and the bells a worker
		 * holds back go out only once its poll returns.) */
		uint64_t taken = (uint64_t)STUCK_SERVERS * (uint64_t)(k + 1);
		struct afe_ipc_stats st;
		uint64_t wait_start = afe_now_ns();
		do {
			usleep(1000);
			afe_ipc_consumer_stats(s.c, &st);
		} while (st.calls < taken && ms_since(wait_start) < 10000);
		cr_assert_eq(st.calls, taken, "round %d: the consumer took %llu calls", k,
			     (unsigned long long)st.calls);
		kill(kids[k], SIGSTOP);
		/* Every server streams into the full reply ring, and waits. */
		bool asleep = reaches(&t.asleep, STUCK_SERVERS);
		if (!asleep)
			report_streams(&t, STUCK_SERVERS, (uint32_t)k, true);
		cr_assert(asleep,
			  "round %d: %u replies wait for room, not %u", k, atomic_load(&t.asleep),
			  STUCK_SERVERS);
		uint64_t start = afe_now_ns();
		kill(kids[k], SIGKILL);
		while (atomic_load(&t.epipe) < (uint64_t)STUCK_SERVERS * (k + 1) &&
		       ms_since(start) < 10000)
			usleep(1000);
		uint64_t ms = ms_since(start);
		uint64_t epipe = atomic_load(&t.epipe);
		if (epipe != (uint64_t)STUCK_SERVERS * (k + 1))
			report_streams(&t, STUCK_SERVERS, (uint32_t)k + 1, false);
		cr_assert_eq(epipe, (uint64_t)STUCK_SERVERS * (k + 1),
			     "round %d: %llu streams ended with -EPIPE, %llu otherwise (the first "
			     "with %d)", k, (unsigned long long)epipe,
			     (unsigned long long)atomic_load(&t.failed), atomic_load(&t.first_error));
		cr_assert_lt(ms, PROMPT_MS, "round %d: the replies took %llu ms to end", k,
			     (unsigned long long)ms);
		cr_assert_eq(atomic_load(&t.failed), 0, "a reply failed with %d",
			     atomic_load(&t.first_error));
		/* Dropped once: a dead producer is not taken on again (its
		 * entry still says LIVE, and its pidfd opens while it is a
		 * zombie), which would let replies into its rings anew. */
		afe_ipc_consumer_stats(s.c, &st);
		cr_assert_eq(st.peers_gone, (uint64_t)k + 1, "round %d: producers dropped %llu times",
			     k, (unsigned long long)st.peers_gone);
		int status;
		cr_assert_eq(waitpid(kids[k], &status, 0), kids[k]);
		cr_assert(WIFSIGNALED(status), "producer %d ended with status %d", k, status);
		close(cues[k]);
	}
	cr_assert_eq(atomic_load(&t.asleep), 0);
	cr_assert_eq(serving_end(&s), 0);
	test_runtime_destroy(rt);
}

/* ---- a stopped producer holds no task for long --------------------------------- */

/* What the witness of the next test saw. */
struct witness_log {
	atomic_uint answers, failures;
	_Atomic uint64_t first_answer_ns;
	atomic_bool stop;
};

/* Calls add(i, 1, 1) until told to stop, logging each end. */
struct witness {
	struct afe_future base;
	struct afe_ipc_producer *p;
	struct witness_log *log;
	int64_t i, sum;
	struct afe_ipc_call call;
};

static int witness_poll(struct afe_future *f, struct afe_context *cx)
{
	struct witness *self = afe_container_of(f, struct witness, base);
	AFE_ASYNC_BEGIN(f, cx);
	afe_ipc_call_init(&self->call, self->p);
	for (self->i = 0; !atomic_load(&self->log->stop); self->i++) {
		add_call(&self->call, self->i, 1, 1);
		AFE_AWAIT(&self->call.base);
		if (self->call.base.result == 0 && add_result(&self->call, &self->sum) == 0 &&
		    self->sum == self->i + 2) {
			uint64_t none = 0;
			atomic_compare_exchange_strong(&self->log->first_answer_ns, &none,
						       afe_now_ns());
			atomic_fetch_add(&self->log->answers, 1);
		} else {
			atomic_fetch_add(&self->log->failures, 1);
		}
	}
	afe_ipc_call_release(&self->call);
	AFE_RETURN(0);
	AFE_ASYNC_END;
}

/* Reads n ints from fd, waiting up to ms in all: how many came. */
static int read_reports(int fd, int *out, int n, int ms)
{
	uint64_t start = afe_now_ns();
	int got = 0;
	while (got < n && ms_since(start) < (uint64_t)ms) {
		struct pollfd pfd = {.fd = fd, .events = POLLIN};
		if (poll(&pfd, 1, 10) == 1 && read(fd, &out[got], sizeof(int)) == sizeof(int))
			got++;
	}
	return got;
}

enum { STOPPED_SERVERS = 4, STOPPED_CALLS = 4, STOP_MS = 3000, WITNESS_TIMEOUT_MS = 2000 };

Test(ipc_room, a_stopped_producer_streaming_does_not_starve_the_other_producers, .timeout = 120)
{
	const char *name = ipc_test_name("room-stopped");
	int cue[2], report[2];
	cr_assert_eq(pipe(cue), 0);
	cr_assert_eq(pipe(report), 0);
	pid_t kid = fork_tied(); /* before any thread of ours */
	if (kid == 0) {
		close(cue[1]);
		close(report[0]);
		stuck_producer(name, cue[0], STOPPED_CALLS, report[1]);
	}
	close(cue[0]);
	close(report[1]);
	struct afe_runtime *rt = test_runtime(2);
	static struct tally t;
	struct serving s; /* as many serving tasks as the stopped producer has calls */
	cr_assert_eq(serving_start(&s, rt, name, STOPPED_SERVERS, 0, 0, &t, 0), 0);
	struct afe_ipc_producer_config config = over_shared_memory();
	config.timeout_ms = WITNESS_TIMEOUT_MS;
	struct afe_ipc_producer *p = connect_retrying(rt, name, &config);
	cr_assert_eq(write(cue[1], "g", 1), 1);
	struct afe_ipc_stats st;
	uint64_t wait_start = afe_now_ns();
	do {
		usleep(1000);
		afe_ipc_consumer_stats(s.c, &st);
	} while (st.calls < STOPPED_CALLS && ms_since(wait_start) < 10000);
	cr_assert_eq(st.calls, STOPPED_CALLS, "the consumer took %llu calls",
		     (unsigned long long)st.calls);

	/* Every serving task streams into the stopped producer's ring. */
	kill(kid, SIGSTOP);
	uint64_t stop_start = afe_now_ns();
	static struct witness_log log;
	struct witness w = {.p = p, .log = &log};
	afe_future_init(&w.base, witness_poll);
	struct afe_join_handle witness;
	cr_assert_eq(afe_spawn(rt, &w, &witness), 0);
	usleep(STOP_MS * 1000);
	uint32_t answers = atomic_load(&log.answers), failures = atomic_load(&log.failures);
	uint64_t first = atomic_load(&log.first_answer_ns);
	uint64_t first_ms = first ? (first - stop_start) / 1000000u : UINT64_MAX;
	afe_ipc_consumer_stats(s.c, &st);
	fprintf(stderr, "while a producer was stopped %d ms: %u answers to another (the first "
		"after %lld ms), %u of its calls failed; %llu replies dropped\n", STOP_MS,
		answers, first ? (long long)first_ms : -1LL, failures,
		(unsigned long long)st.timeouts);
	cr_assert_gt(answers, 0, "another producer got no answer while one was stopped");
	cr_assert_lt(first_ms, AFE_IPC_DEFAULT_ROOM_MS + 1500, "its first answer came after %llu ms",
		     (unsigned long long)first_ms);
	cr_assert_geq(st.timeouts, STOPPED_CALLS, "replies dropped: %llu",
		      (unsigned long long)st.timeouts);

	/* Resumed, it learns that its replies were dropped: its calls end. */
	uint64_t cont_start = afe_now_ns();
	kill(kid, SIGCONT);
	int ends[STOPPED_CALLS];
	int got = read_reports(report[0], ends, STOPPED_CALLS, 5000);
	uint64_t ms = ms_since(cont_start);
	fprintf(stderr, "resumed: %d of its %d calls ended in %llu ms, the first with %d\n", got,
		STOPPED_CALLS, (unsigned long long)ms, got ? ends[0] : 0);
	cr_assert_eq(got, STOPPED_CALLS, "%d of its calls ended", got);
	for (int i = 0; i < got; i++)
		cr_assert_eq(ends[i], -ETIMEDOUT, "a call of the stopped producer ended with %d",
			     ends[i]);
	cr_assert_lt(ms, 2000);

	atomic_store(&log.stop, true);
	struct afe_join join;
	afe_join_init(&join, &witness);
	cr_assert_eq(test_block_on(rt, &join), 0);
	kill(kid, SIGKILL);
	cr_assert_eq(waitpid(kid, NULL, 0), kid);
	close(cue[1]);
	close(report[0]);
	afe_ipc_producer_close(p);
	cr_assert_eq(serving_end(&s), 0);
	test_runtime_destroy(rt);
}
