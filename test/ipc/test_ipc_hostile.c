/* SPDX-License-Identifier: MIT */
/*
 * Hostile peers across real processes. A forked child maps the shared
 * object through the internal API and writes malformed frames straight into
 * a ring (a producer's requests, a consumer's replies), or the test sets up
 * an object whose header is wrong. The other side must drop and count each
 * malformed frame, answer what it can answer, and go on serving.
 *
 * Children are forked before the test starts a runtime (they use no
 * threads), die with the test (fork_tied), and report through pipes and
 * their exit status: a child cannot assert.
 */
#include <fcntl.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>

#include "ipc_helpers.h"
#include "src/ipc/ipc_shm.h"

/* ---- the child's tools ------------------------------------------------------- */

static uint64_t now_ms(void)
{
	return afe_now_ns() / 1000000u;
}

/* Writes a frame into the slot at position pos of a ring, as its writer
 * would, but publishing seq (pos + 1 unless the test spoils it) and n
 * payload bytes whatever f->len says. Waits up to 5 s for the slot to be
 * free; false if it never was. */
static bool raw_put(struct afe_ipc_slot *slots, uint64_t pos, const struct afe_ipc_frame *f,
		    const void *payload, uint32_t n, uint64_t seq)
{
	struct afe_ipc_slot *slot = &slots[pos % AFE_IPC_RING_SLOTS];
	for (uint64_t end = now_ms() + 5000; atomic_load(&slot->seq) != pos; usleep(100))
		if (now_ms() > end)
			return false;
	slot->frame = *f;
	memcpy(slot->payload, payload, n);
	atomic_store_explicit(&slot->seq, seq, memory_order_release);
	return true;
}

/* Pops the next frame, waiting up to 5 s: 0, -EPROTO, or -EAGAIN. */
static int pop_waiting(struct afe_ipc_slots *r, struct afe_ipc_frame *f, void *payload)
{
	int err;
	uint64_t end = now_ms() + 5000;
	while ((err = afe_ipc_slots_pop(r, f, payload)) == -EAGAIN && now_ms() < end)
		usleep(100);
	return err;
}

/* A frame to write, and how far ahead of its position its sequence
 * number says it is (0: as it should). */
struct raw_frame {
	struct afe_ipc_frame f;
	uint64_t seq_ahead;
};

/* Writes frames (their call ids replaced by call_id, len payload bytes
 * each) into a ring from position *pos on. false if a slot never freed. */
static bool put_frames(struct afe_ipc_slot *slots, uint64_t *pos, const struct raw_frame *frames,
		       size_t n, uint64_t call_id, const void *payload, uint32_t len)
{
	for (size_t i = 0; i < n; i++, ++*pos) {
		struct afe_ipc_frame f = frames[i].f;
		f.call_id = call_id;
		if (!raw_put(slots, *pos, &f, payload, len, *pos + 1 + frames[i].seq_ahead))
			return false;
	}
	return true;
}

/* Whether the test closed its end of the control pipe (the child's cue to
 * leave), waiting up to ms for it. */
static bool told_to_leave(int ctl, int ms)
{
	struct pollfd p = {.fd = ctl, .events = POLLIN};
	return poll(&p, 1, ms) != 0;
}

/* ---- a hostile producer ------------------------------------------------------- */

/* Requests a producer must never send, each with add's arguments (24
 * bytes): every one is dropped and counted, and those of the request kind
 * the consumer could read get an -EPROTO reply. */
#define ADD_ARGS 24
#define REQ(...) {.kind = AFE_IPC_REQUEST, __VA_ARGS__}
static const struct raw_frame bad_requests[] = {
	{.f = REQ(.fn = add_ID, .len = 5000)}, /* a length past the slot */
	{.f = {.kind = 9, .fn = add_ID, .len = ADD_ARGS}}, /* an unknown kind */
	{.f = {.kind = AFE_IPC_REPLY, .fn = add_ID, .len = ADD_ARGS}}, /* a reply */
	{.f = REQ(.fn = 300, .len = ADD_ARGS)}, /* a function id past 255 */
	{.f = REQ(.fn = add_ID, .len = ADD_ARGS, .flags = 0x40)}, /* an unknown flag */
	{.f = REQ(.fn = add_ID, .len = ADD_ARGS, .flags = AFE_IPC_F_MORE)}, /* a reply's flag */
	{.f = REQ(.fn = add_ID, .len = ADD_ARGS, .flags = AFE_IPC_F_RESET)}, /* another */
	{.f = REQ(.fn = add_ID, .len = ADD_ARGS, .reserved = 1)}, /* reserved, set */
	{.f = REQ(.fn = add_ID, .len = ADD_ARGS, .status = -5)}, /* a status */
	{.f = REQ(.fn = add_ID, .len = ADD_ARGS), .seq_ahead = 5}, /* a corrupt seq */
};
#define N_BAD_REQUESTS (sizeof(bad_requests) / sizeof(bad_requests[0]))

enum { UNKNOWN_FN = 200, CALL_UNKNOWN = 900, CALL_BAD_ARGS = 1000, CALL_GOOD = 1100 };

/* Claims a producer entry of h the way a producer does (claim_entry in
 * ipc_link_shm.c) and tells the consumer. Its index, or -1. */
static int claim_like_a_producer(struct afe_ipc_header *h)
{
	for (unsigned i = 0; i < AFE_IPC_MAX_PRODUCERS; i++) {
		struct afe_ipc_entry *e = &h->entries[i];
		uint32_t expected = AFE_IPC_ENTRY_FREE;
		if (!atomic_compare_exchange_strong(&e->state, &expected, afe_ipc_claim(getpid())))
			continue;
		afe_ipc_slots_format(afe_ipc_requests_of(h, i), AFE_IPC_RING_SLOTS);
		afe_ipc_slots_format(afe_ipc_replies_of(h, i), AFE_IPC_RING_SLOTS);
		atomic_store(&e->bell.wants, 0);
		atomic_store(&e->pid, getpid());
		atomic_fetch_add(&e->generation, 1);
		atomic_store_explicit(&e->state, AFE_IPC_ENTRY_LIVE, memory_order_release);
		afe_ipc_bell_ring(&h->bell, AFE_IPC_WANT_ANY);
		return (int)i;
	}
	return -1;
}

/* Whether bad request k gets an -EPROTO reply: a request the consumer read. */
static bool refused_as_malformed(size_t k)
{
	return bad_requests[k].f.kind == AFE_IPC_REQUEST && !bad_requests[k].seq_ahead;
}

/* The bad request whose sequence number spoils the ring: the consumer
 * answers it with a reset (-EPROTO: every call of ours ends). */
static size_t spoiling_request(void)
{
	size_t k = 0;
	while (!bad_requests[k].seq_ahead)
		k++;
	return k;
}

/* The bits of check_reply's *seen once every reply came. */
static unsigned all_replies(void)
{
	unsigned all = 7 | 8u << spoiling_request();
	for (size_t k = 0; k < N_BAD_REQUESTS; k++)
		if (refused_as_malformed(k))
			all |= 8u << k;
	return all;
}

/* Checks one reply to the hostile producer's requests: the three
 * well-formed ones, the malformed ones it could read (call ids 100,
 * 200, ...), and the reset its spoilt sequence number earns. Marks it seen in *seen (a bit per call). 0, or what was
 * wrong. */
static int check_reply(const struct afe_ipc_frame *f, const void *payload, unsigned *seen)
{
	struct afe_ipc_reader r;
	int64_t sum = 0;
	afe_ipc_reader_init(&r, payload, f->len);
	if (f->kind != AFE_IPC_REPLY)
		return 20;
	if (f->call_id == CALL_UNKNOWN && f->status == -ENOSYS && f->fn == UNKNOWN_FN)
		*seen |= 1;
	else if (f->call_id == CALL_BAD_ARGS && f->status == -EPROTO)
		*seen |= 2;
	else if (f->call_id == CALL_GOOD && f->status == 0 && add_decode_ret(&r, &sum) == 0 &&
		 sum == 6)
		*seen |= 4;
	else if (f->call_id == 0 && f->flags == AFE_IPC_F_RESET && f->status == -EPROTO)
		*seen |= 8u << spoiling_request();
	else if (f->call_id % 100 == 0 && f->call_id / 100 - 1 < N_BAD_REQUESTS &&
		 refused_as_malformed(f->call_id / 100 - 1) && f->status == -EPROTO)
		*seen |= 8u << (f->call_id / 100 - 1);
	else
		return 21; /* a reply to a dropped frame, or a wrong one */
	return 0;
}

/* The child: connects by hand, writes the bad requests then three
 * well-formed ones (an unknown function, arguments that do not decode,
 * add(1, 2, 3)), and checks the replies. Reports 0 or what failed through
 * result, stays until told to leave, then exits with the same code. */
static int hostile_producer(const char *name, int result, int ctl)
{
	struct afe_ipc_header *h = NULL;
	int err = -ECONNREFUSED;
	for (uint64_t end = now_ms() + 10000; err == -ECONNREFUSED && now_ms() < end;)
		if ((err = afe_ipc_shm_open(name, &h)) == -ECONNREFUSED)
			usleep(1000);
	int code = err < 0 ? 10 : 0;
	int i = code ? -1 : claim_like_a_producer(h);
	if (!code && i < 0)
		code = 11;
	struct afe_ipc_slots replies;
	uint64_t pos = 0;
	if (!code) {
		struct afe_ipc_slot *requests = afe_ipc_requests_of(h, (unsigned)i);
		afe_ipc_slots_attach(&replies, afe_ipc_replies_of(h, (unsigned)i),
				     AFE_IPC_RING_SLOTS);
		unsigned char args[AFE_IPC_MAX_PAYLOAD];
		struct afe_ipc_writer w;
		afe_ipc_writer_init(&w, args, sizeof(args));
		add_encode_args(&w, 1, 2, 3);
		/* Each bad request carries good arguments, under its own id. */
		for (size_t k = 0; k < N_BAD_REQUESTS && !code; k++)
			if (!put_frames(requests, &pos, &bad_requests[k], 1, 100 * (k + 1), args,
					w.len))
				code = 12;
		const struct raw_frame good[] = {
			{.f = REQ(.fn = UNKNOWN_FN, .len = w.len)},
			{.f = REQ(.fn = add_ID, .len = 4)}, /* arguments that do not decode */
			{.f = REQ(.fn = add_ID, .len = w.len)},
		};
		const uint64_t ids[] = {CALL_UNKNOWN, CALL_BAD_ARGS, CALL_GOOD};
		for (size_t k = 0; k < 3 && !code; k++)
			if (!put_frames(requests, &pos, &good[k], 1, ids[k], args, w.len))
				code = 13;
		afe_ipc_bell_ring(&h->bell, AFE_IPC_WANT_FRAME);
	}
	unsigned seen = 0;
	while (!code && seen != all_replies()) {
		struct afe_ipc_frame f;
		unsigned char payload[AFE_IPC_MAX_PAYLOAD];
		err = pop_waiting(&replies, &f, payload);
		code = err == -EAGAIN ? 14 : err < 0 ? 15 : check_reply(&f, payload, &seen);
	}
	if (write(result, &(char){(char)code}, 1) != 1)
		code = 16;
	told_to_leave(ctl, -1);
	if (i >= 0) {
		atomic_store(&h->entries[i].state, AFE_IPC_ENTRY_GONE);
		afe_ipc_bell_ring(&h->bell, AFE_IPC_WANT_ANY);
	}
	return code;
}

/* ---- the consumer the hostile producer talks to ---------------------------- */

/* Serves add; anything else is answered -EPROTO. */
struct add_server {
	struct afe_future base;
	struct afe_ipc_consumer *c;
	struct afe_ipc_request req;
	struct afe_ipc_reply rep;
	struct add_args args;
};

static int add_server_poll(struct afe_future *f, struct afe_context *cx)
{
	struct add_server *self = afe_container_of(f, struct add_server, base);
	AFE_ASYNC_BEGIN(f, cx);
	for (;;) {
		afe_ipc_recv_init(&self->req, self->c);
		AFE_AWAIT(&self->req.base);
		if (self->req.base.result < 0)
			AFE_RETURN(0); /* closed */
		if (self->req.fn == add_ID && add_decode(&self->req, &self->args) == 0)
			add_reply(&self->rep, &self->req,
				  self->args.a + self->args.b + self->args.c);
		else
			afe_ipc_reply_error(&self->rep, &self->req, -EPROTO);
		AFE_AWAIT(&self->rep.base);
	}
	AFE_ASYNC_END;
}

#define ADDERS 2

struct served {
	struct afe_runtime *rt;
	struct afe_ipc_consumer *c;
	struct afe_join_handle adders[ADDERS];
};

static void serve(struct served *s, const char *name)
{
	static const uint8_t functions[] = IPC_CALC_FUNCTIONS;
	struct afe_ipc_consumer_config config;
	afe_ipc_consumer_config_default(&config);
	config.functions = functions;
	config.n_functions = sizeof(functions);
	s->rt = test_runtime(2);
	cr_assert_eq(afe_ipc_consumer_serve(&s->c, s->rt, name, &config), 0);
	for (int i = 0; i < ADDERS; i++) {
		struct add_server a = {.c = s->c};
		afe_future_init(&a.base, add_server_poll);
		cr_assert_eq(afe_spawn(s->rt, &a, &s->adders[i]), 0);
	}
}

static void serve_end(struct served *s)
{
	afe_ipc_consumer_close(s->c);
	for (int i = 0; i < ADDERS; i++) {
		struct afe_join join;
		afe_join_init(&join, &s->adders[i]);
		cr_assert_eq(test_block_on(s->rt, &join), 0);
	}
	afe_ipc_consumer_destroy(s->c);
	test_runtime_destroy(s->rt);
}

/* The consumer's counts once it counted at least `malformed` (5 s at most). */
static struct afe_ipc_stats consumer_stats_after(struct afe_ipc_consumer *c, uint64_t malformed,
						 uint64_t unknown_fn)
{
	struct afe_ipc_stats st;
	for (uint64_t end = now_ms() + 5000;; usleep(1000)) {
		afe_ipc_consumer_stats(c, &st);
		if ((st.malformed >= malformed && st.unknown_fn >= unknown_fn) || now_ms() > end)
			return st;
	}
}

static void pipes(int result[2], int ctl[2])
{
	cr_assert_eq(pipe(result), 0);
	cr_assert_eq(pipe(ctl), 0);
}

/* In the child: keeps its ends (result's write end, ctl's read end). */
static void child_ends(int result[2], int ctl[2])
{
	close(result[0]);
	close(ctl[1]);
}

/* In the test: lets the child go and returns its exit code (-1: killed). */
static int child_leave(pid_t pid, int ctl_write)
{
	close(ctl_write);
	int status;
	cr_assert_eq(waitpid(pid, &status, 0), pid);
	return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

Test(ipc_hostile, a_producer_writing_malformed_requests_is_counted_and_the_consumer_serves_on)
{
	const char *name = ipc_test_name("bad-requests");
	int result[2], ctl[2];
	pipes(result, ctl);
	pid_t child = fork_tied();
	if (child == 0) {
		child_ends(result, ctl);
		_exit(hostile_producer(name, result[1], ctl[0]));
	}
	close(result[1]);
	close(ctl[0]);
	struct served s;
	serve(&s, name);

	char code = -1;
	cr_assert_eq(read(result[0], &code, 1), 1, "the hostile producer died");
	cr_assert_eq(code, 0, "the hostile producer saw failure %d", code);
	struct afe_ipc_stats st = consumer_stats_after(s.c, N_BAD_REQUESTS, 1);
	cr_assert_eq(st.malformed, N_BAD_REQUESTS, "malformed: %llu",
		     (unsigned long long)st.malformed);
	cr_assert_eq(st.unknown_fn, 1);
	cr_assert_eq(st.calls, 2, "two requests were passed on (bad arguments, add)");

	/* A well-behaved producer is served as before. */
	struct afe_ipc_producer *p = connect_retrying(s.rt, name, NULL);
	struct afe_ipc_call call;
	afe_ipc_call_init(&call, p);
	int64_t sum = 0;
	cr_assert_eq(add_call(&call, 40, 1, 1), 0);
	cr_assert_eq(run_call(s.rt, &call), 0);
	cr_assert_eq(add_result(&call, &sum), 0);
	cr_assert_eq(sum, 42);
	afe_ipc_call_release(&call);
	afe_ipc_producer_close(p);

	cr_assert_eq(child_leave(child, ctl[1]), 0);
	close(result[0]);
	serve_end(&s);
}

/* ---- a hostile consumer ------------------------------------------------------- */

/* Replies a consumer must never send, each with an int64: every one is
 * dropped and counted. */
#define REP(...) {.kind = AFE_IPC_REPLY, __VA_ARGS__}
static const struct raw_frame bad_replies[] = {
	{.f = REP(.fn = add_ID, .len = 5000)}, /* a length past the slot */
	{.f = {.kind = 9, .fn = add_ID, .len = 8}}, /* an unknown kind */
	{.f = {.kind = AFE_IPC_REQUEST, .fn = add_ID, .len = 8}}, /* a request */
	{.f = REP(.fn = 300, .len = 8)}, /* a function id past 255 */
	{.f = REP(.fn = add_ID, .len = 8, .flags = AFE_IPC_F_STREAM)}, /* a request's flag */
	{.f = REP(.fn = add_ID, .len = 8, .reserved = 7)}, /* reserved, set */
	{.f = REP(.fn = add_ID, .len = 8, .status = 5)}, /* a positive status */
	{.f = REP(.fn = add_ID, .len = 8, .status = -5000)}, /* past the errno range */
	{.f = REP(.fn = add_ID, .len = 8, .flags = AFE_IPC_F_MORE)}, /* more, to a 1-reply call */
	/* a reset naming a call, with bytes: it must not end every call */
	{.f = REP(.fn = add_ID, .len = 8, .flags = AFE_IPC_F_RESET, .status = -ETIMEDOUT)},
	/* (A corrupt sequence number spoils the ring instead: see
	 * a_spoilt_ring_fails_its_producers_calls_with_eproto_at_once.) */
};
#define N_BAD_REPLIES (sizeof(bad_replies) / sizeof(bad_replies[0]))

/* The child: serves name by hand. It answers each request with every bad
 * reply (a wrong sum, 666, inside), then, for add only, the right reply.
 * Exits when told to leave: 0, or what failed. */
static int hostile_consumer(const char *name, int ctl)
{
	struct afe_ipc_header *h;
	if (afe_ipc_shm_create(name, &h) < 0)
		return 30;
	int i = -1;
	for (uint64_t end = now_ms() + 10000; i < 0; usleep(1000)) {
		for (unsigned k = 0; k < AFE_IPC_MAX_PRODUCERS && i < 0; k++)
			if (atomic_load(&h->entries[k].state) == AFE_IPC_ENTRY_LIVE)
				i = (int)k;
		if (i < 0 && (now_ms() > end || told_to_leave(ctl, 0)))
			return 31;
	}
	struct afe_ipc_slots requests;
	afe_ipc_slots_attach(&requests, afe_ipc_requests_of(h, (unsigned)i), AFE_IPC_RING_SLOTS);
	struct afe_ipc_slot *replies = afe_ipc_replies_of(h, (unsigned)i);
	uint64_t pos = 0;
	unsigned char wrong[8], right[8], args[AFE_IPC_MAX_PAYLOAD];
	struct afe_ipc_writer w;
	afe_ipc_writer_init(&w, wrong, sizeof(wrong));
	add_encode_ret(&w, 666);
	while (!told_to_leave(ctl, 1)) {
		struct afe_ipc_frame f;
		int err = afe_ipc_slots_pop(&requests, &f, args);
		if (err == -EAGAIN)
			continue;
		if (err < 0 || f.kind != AFE_IPC_REQUEST)
			return 32; /* the real producer wrote a bad frame */
		if (!put_frames(replies, &pos, bad_replies, N_BAD_REPLIES, f.call_id, wrong, 8))
			return 33;
		struct afe_ipc_reader r;
		struct add_args a;
		afe_ipc_reader_init(&r, args, f.len);
		if (f.fn == add_ID && add_decode_args(&r, &a) == 0) {
			afe_ipc_writer_init(&w, right, sizeof(right));
			add_encode_ret(&w, a.a + a.b + a.c);
			struct afe_ipc_frame ok = {.call_id = f.call_id, .len = 8, .fn = add_ID,
						   .kind = AFE_IPC_REPLY};
			if (!raw_put(replies, pos, &ok, right, 8, pos + 1))
				return 34;
			pos++;
		}
		afe_ipc_bell_ring(&h->entries[i].bell, AFE_IPC_WANT_FRAME);
	}
	return 0;
}

/* The producer's counts once it counted at least `malformed` (5 s at most). */
static struct afe_ipc_stats producer_stats_after(struct afe_ipc_producer *p, uint64_t malformed)
{
	struct afe_ipc_stats st;
	for (uint64_t end = now_ms() + 5000;; usleep(1000)) {
		afe_ipc_producer_stats(p, &st);
		if (st.malformed >= malformed || now_ms() > end)
			return st;
	}
}

Test(ipc_hostile, a_consumer_writing_malformed_replies_is_counted_and_calls_still_end)
{
	const char *name = ipc_test_name("bad-replies");
	int result[2], ctl[2];
	pipes(result, ctl);
	pid_t child = fork_tied();
	if (child == 0) {
		child_ends(result, ctl);
		_exit(hostile_consumer(name, ctl[0]));
	}
	close(result[1]);
	close(ctl[0]);
	struct afe_ipc_producer_config config;
	afe_ipc_producer_config_default(&config);
	struct afe_ipc_fn_timeout nap_limit = {.fn = nap_ID, .ms = 200};
	config.timeouts = &nap_limit;
	config.n_timeouts = 1;
	struct afe_runtime *rt = test_runtime(2);
	struct afe_ipc_producer *p = connect_retrying(rt, name, &config);
	struct afe_ipc_call call;
	afe_ipc_call_init(&call, p);

	/* Every bad reply comes before the right one: none ended the call. */
	int64_t sum = 0;
	cr_assert_eq(add_call(&call, 1, 2, 3), 0);
	cr_assert_eq(run_call(rt, &call), 0);
	cr_assert_eq(add_result(&call, &sum), 0);
	cr_assert_eq(sum, 6);
	struct afe_ipc_stats st = producer_stats_after(p, N_BAD_REPLIES);
	cr_assert_eq(st.malformed, N_BAD_REPLIES, "malformed: %llu",
		     (unsigned long long)st.malformed);
	cr_assert_eq(st.replies, 1);
	cr_assert_eq(st.late_replies, 0);

	/* Only bad replies: the call ends with its timeout. */
	cr_assert_eq(nap_call(&call, 1), 0);
	cr_assert_eq(run_call(rt, &call), -ETIMEDOUT);
	st = producer_stats_after(p, 2 * N_BAD_REPLIES);
	cr_assert_eq(st.malformed, 2 * N_BAD_REPLIES);
	cr_assert_eq(st.timeouts, 1);

	cr_assert_eq(add_call(&call, 7, 8, 9), 0);
	cr_assert_eq(run_call(rt, &call), 0);
	cr_assert_eq(add_result(&call, &sum), 0);
	cr_assert_eq(sum, 24);
	st = producer_stats_after(p, 3 * N_BAD_REPLIES);
	cr_assert_eq(st.malformed, 3 * N_BAD_REPLIES);
	cr_assert_eq(st.replies, 2);
	cr_assert_not(afe_ipc_producer_is_gone(p));

	afe_ipc_call_release(&call);
	afe_ipc_producer_close(p);
	test_runtime_destroy(rt);
	cr_assert_eq(child_leave(child, ctl[1]), 0);
	close(result[0]);
	char path[AFE_IPC_NAME_MAX + 2];
	cr_assert_eq(afe_ipc_shm_path(path, sizeof(path), name), 0);
	shm_unlink(path);
}

/* ---- a spoilt ring -------------------------------------------------------------- */

/* The entry of a producer of this process that is LIVE and not entry
 * other, or -1. */
static int live_entry_of_ours(struct afe_ipc_header *h, int other)
{
	for (unsigned i = 0; i < AFE_IPC_MAX_PRODUCERS; i++)
		if ((int)i != other && atomic_load(&h->entries[i].state) == AFE_IPC_ENTRY_LIVE &&
		    atomic_load(&h->entries[i].pid) == getpid())
			return (int)i;
	return -1;
}

/* Writes, into the slot of position pos of a ring, a sequence number no
 * claim explains: behind pos by less than a lap, so that both sides took
 * it for a full (empty) ring before, and waited for ever. */
static void spoil_slot(struct afe_ipc_slot *slots, uint64_t pos)
{
	atomic_store(&slots[pos % AFE_IPC_RING_SLOTS].seq, pos - 40);
}

/* add(a, 1, 1) from p: 0 (the sum checked), or the call's error. */
static int add_once(struct afe_runtime *rt, struct afe_ipc_producer *p, int64_t a)
{
	struct afe_ipc_call call;
	afe_ipc_call_init(&call, p);
	int64_t sum = 0;
	int err = add_call(&call, a, 1, 1);
	if (err == 0)
		err = (int)run_call(rt, &call);
	if (err == 0 && (add_result(&call, &sum) < 0 || sum != a + 2))
		err = -EBADMSG;
	afe_ipc_call_release(&call);
	return err;
}

/* Waits up to 5 s for the consumer to have taken `calls` requests. */
static void wait_taken(struct afe_ipc_consumer *c, uint64_t calls)
{
	struct afe_ipc_stats st;
	for (uint64_t end = now_ms() + 5000;; usleep(1000)) {
		afe_ipc_consumer_stats(c, &st);
		if (st.calls >= calls || now_ms() > end)
			break;
	}
	cr_assert_geq(st.calls, calls, "the consumer took %llu requests",
		      (unsigned long long)st.calls);
}

enum { SPOIL_SERVERS = 4, SPOIL_NAPS = 2, SPOIL_NAP_MS = 1000, SPOIL_TIMEOUT_MS = 3000,
       SPOIL_PROMPT_MS = 500 };

Test(ipc_hostile, a_spoilt_ring_fails_its_producers_calls_with_eproto_at_once, .timeout = 60)
{
	const char *name = ipc_test_name("spoilt");
	struct afe_runtime *rt = test_runtime(2);
	struct afe_ipc_consumer *c;
	cr_assert_eq(afe_ipc_consumer_serve(&c, rt, name, NULL), 0);
	struct afe_join_handle servers[SPOIL_SERVERS];
	for (int i = 0; i < SPOIL_SERVERS; i++) {
		struct afe_ipc_serve server = calc_server_make(c);
		cr_assert_eq(afe_spawn(rt, &server, &servers[i]), 0);
	}
	struct afe_ipc_producer_config config = over_shared_memory();
	config.timeout_ms = SPOIL_TIMEOUT_MS; /* what the calls waited for before */
	struct afe_ipc_header *h; /* the object, as the hostile process sees it */
	struct afe_ipc_producer *victim = connect_retrying(rt, name, &config);
	cr_assert_eq(afe_ipc_shm_open(name, &h), 0);
	int v = live_entry_of_ours(h, -1);
	struct afe_ipc_producer *bystander = connect_retrying(rt, name, &config);
	int b = live_entry_of_ours(h, v);
	cr_assert(v >= 0 && b >= 0);
	cr_assert_eq(add_once(rt, bystander, 1), 0);

	/* The request ring: spoilt at the slot the victim writes next, while
	 * two of its calls are out. Its next call finds it so. */
	struct afe_join_handle naps[SPOIL_NAPS];
	for (int i = 0; i < SPOIL_NAPS; i++)
		spawn_call(rt, victim, nap_ID, SPOIL_NAP_MS, &naps[i]);
	wait_taken(c, 1 + SPOIL_NAPS);
	spoil_slot(afe_ipc_requests_of(h, (unsigned)v), SPOIL_NAPS);
	uint64_t start = now_ms();
	int later = add_once(rt, victim, 2);
	int nap_results[SPOIL_NAPS];
	for (int i = 0; i < SPOIL_NAPS; i++) {
		struct afe_join join;
		afe_join_init(&join, &naps[i]);
		nap_results[i] = (int)test_block_on(rt, &join);
	}
	uint64_t ms = now_ms() - start;
	fprintf(stderr, "request ring spoilt: the next call %d, the pending ones %d and %d, "
		"in %llu ms\n", later, nap_results[0], nap_results[1], (unsigned long long)ms);
	cr_assert_eq(later, -EPROTO);
	for (int i = 0; i < SPOIL_NAPS; i++)
		cr_assert_eq(nap_results[i], -EPROTO, "a pending call ended with %d",
			     nap_results[i]);
	cr_assert_lt(ms, SPOIL_PROMPT_MS, "the calls took %llu ms to end",
		     (unsigned long long)ms);
	start = now_ms();
	cr_assert_eq(add_once(rt, victim, 3), -EPROTO, "later calls too");
	cr_assert_lt(now_ms() - start, SPOIL_PROMPT_MS);
	cr_assert(afe_ipc_producer_is_gone(victim));
	cr_assert_eq(add_once(rt, bystander, 4), 0, "another producer is served as before");

	/* Reconnected, it gets fresh rings. Now the reply ring: spoilt at the
	 * slot the consumer writes next, while a call of the victim is out;
	 * that call's reply finds it so. */
	afe_ipc_producer_close(victim);
	victim = connect_retrying(rt, name, &config);
	cr_assert_eq(add_once(rt, victim, 5), 0, "a new connection serves again");
	v = live_entry_of_ours(h, b);
	cr_assert_geq(v, 0);
	struct afe_ipc_stats st;
	afe_ipc_consumer_stats(c, &st);
	struct afe_join_handle nap_handle;
	spawn_call(rt, victim, nap_ID, SPOIL_NAP_MS, &nap_handle);
	wait_taken(c, st.calls + 1);
	spoil_slot(afe_ipc_replies_of(h, (unsigned)v), 1); /* one reply (the add's) read */
	start = now_ms();
	struct afe_join join;
	afe_join_init(&join, &nap_handle);
	int pending = (int)test_block_on(rt, &join);
	ms = now_ms() - start;
	fprintf(stderr, "reply ring spoilt: the pending call %d in %llu ms (its nap %d ms)\n",
		pending, (unsigned long long)ms, SPOIL_NAP_MS);
	cr_assert_eq(pending, -EPROTO);
	cr_assert_lt(ms, SPOIL_NAP_MS + SPOIL_PROMPT_MS, "it took %llu ms to end",
		     (unsigned long long)ms);
	start = now_ms();
	cr_assert_eq(add_once(rt, victim, 6), -EPROTO, "later calls too");
	cr_assert_lt(now_ms() - start, SPOIL_PROMPT_MS);
	cr_assert_eq(add_once(rt, bystander, 7), 0, "another producer is served as before");

	/* The request ring again, at a slot written and not read yet (every
	 * serving task naps): the consumer finds it so, and tells the victim. */
	afe_ipc_producer_close(victim);
	victim = connect_retrying(rt, name, &config);
	cr_assert_eq(add_once(rt, victim, 8), 0); /* position 0 */
	v = live_entry_of_ours(h, b);
	cr_assert_geq(v, 0);
	afe_ipc_consumer_stats(c, &st);
	struct afe_join_handle held[SPOIL_SERVERS], unread;
	for (int i = 0; i < SPOIL_SERVERS; i++) /* positions 1 to 4 */
		spawn_call(rt, victim, nap_ID, SPOIL_NAP_MS, &held[i]);
	wait_taken(c, st.calls + SPOIL_SERVERS);
	spawn_call(rt, victim, add_ID, 9, &unread); /* position 5, in the ring */
	struct afe_ipc_slot *requests = afe_ipc_requests_of(h, (unsigned)v);
	for (uint64_t end = now_ms() + 5000;
	     atomic_load(&requests[SPOIL_SERVERS + 1].seq) != SPOIL_SERVERS + 2 && now_ms() < end;)
		usleep(1000);
	spoil_slot(requests, SPOIL_SERVERS + 1); /* published at 5, unread */
	start = now_ms();
	afe_join_init(&join, &unread);
	pending = (int)test_block_on(rt, &join);
	ms = now_ms() - start;
	for (int i = 0; i < SPOIL_SERVERS; i++) {
		afe_join_init(&join, &held[i]);
		test_block_on(rt, &join); /* answered, or -EPROTO: both fine */
	}
	fprintf(stderr, "unread request spoilt: its call %d in %llu ms (the naps %d ms)\n",
		pending, (unsigned long long)ms, SPOIL_NAP_MS);
	cr_assert_eq(pending, -EPROTO);
	cr_assert_lt(ms, SPOIL_NAP_MS + SPOIL_PROMPT_MS, "it took %llu ms to end",
		     (unsigned long long)ms);
	cr_assert_eq(add_once(rt, victim, 10), -EPROTO, "later calls too");
	cr_assert_eq(add_once(rt, bystander, 11), 0, "another producer is served as before");

	afe_ipc_producer_close(victim);
	afe_ipc_producer_close(bystander);
	afe_ipc_shm_unmap(h);
	afe_ipc_consumer_close(c);
	for (int i = 0; i < SPOIL_SERVERS; i++) {
		afe_join_init(&join, &servers[i]);
		cr_assert_eq(test_block_on(rt, &join), 0);
	}
	afe_ipc_consumer_destroy(c);
	test_runtime_destroy(rt);
}

/* ---- a caller the example server does not trust ------------------------------ */

Test(ipc_hostile, the_calc_servers_nap_is_bounded, .timeout = 30)
{
	const char *name = ipc_test_name("nap-bound");
	struct afe_runtime *rt = test_runtime(2);
	struct calc_serving s = serve_calc(rt, name);
	struct afe_ipc_producer_config config;
	afe_ipc_producer_config_default(&config);
	config.timeout_ms = 2000; /* what a nap too long waited for before */
	struct afe_ipc_producer *p = connect_retrying(rt, name, &config);
	struct afe_ipc_call call;
	afe_ipc_call_init(&call, p);
	const uint32_t too_long[] = {UINT32_MAX, CALC_NAP_MAX_MS + 1};
	for (int i = 0; i < 2; i++) {
		uint64_t start = now_ms();
		cr_assert_eq(nap_call(&call, too_long[i]), 0);
		int err = (int)run_call(rt, &call);
		uint64_t ms = now_ms() - start;
		fprintf(stderr, "nap(%u): %d in %llu ms\n", too_long[i], err,
			(unsigned long long)ms);
		cr_assert_eq(err, -EINVAL);
		cr_assert_lt(ms, 1000);
	}
	uint32_t slept = 0;
	cr_assert_eq(nap_call(&call, 1), 0);
	cr_assert_eq(run_call(rt, &call), 0, "the server serves on");
	cr_assert_eq(nap_result(&call, &slept), 0);
	cr_assert_eq(slept, 1);
	afe_ipc_producer_close(p);
	uint64_t start = now_ms();
	stop_serving(rt, &s); /* no nap holds its task */
	cr_assert_lt(now_ms() - start, 1000);
	test_runtime_destroy(rt);
}

/* ---- headers --------------------------------------------------------------- */

/* A header as a live consumer (this process) writes it. */
static struct afe_ipc_header good_header(void)
{
	struct afe_ipc_header h;
	memset(&h, 0, sizeof(h));
	atomic_store(&h.magic, AFE_IPC_MAGIC);
	h.version = AFE_IPC_VERSION;
	h.slot_size = AFE_IPC_SLOT_SIZE;
	h.ring_slots = AFE_IPC_RING_SLOTS;
	h.max_producers = AFE_IPC_MAX_PRODUCERS;
	h.size = AFE_IPC_OBJECT_SIZE;
	h.consumer_pid = getpid();
	return h;
}

/* Makes the object of name by hand: size bytes (zeros), h at the start. */
static void make_object(const char *name, uint64_t size, const struct afe_ipc_header *h)
{
	char path[AFE_IPC_NAME_MAX + 2];
	cr_assert_eq(afe_ipc_shm_path(path, sizeof(path), name), 0);
	shm_unlink(path);
	int fd = shm_open(path, O_RDWR | O_CREAT | O_EXCL, 0600);
	cr_assert_geq(fd, 0);
	cr_assert_eq(ftruncate(fd, (off_t)size), 0);
	if (size >= sizeof(*h))
		cr_assert_eq(pwrite(fd, h, sizeof(*h), 0), (ssize_t)sizeof(*h));
	close(fd);
}

static uint64_t object_size(const char *name)
{
	char path[AFE_IPC_NAME_MAX + 2];
	cr_assert_eq(afe_ipc_shm_path(path, sizeof(path), name), 0);
	int fd = shm_open(path, O_RDONLY, 0);
	cr_assert_geq(fd, 0);
	struct stat st;
	cr_assert_eq(fstat(fd, &st), 0);
	close(fd);
	return (uint64_t)st.st_size;
}

/* What connecting to an object of size bytes with header h gives. */
static int connect_to(struct afe_runtime *rt, const char *name, uint64_t size,
		      const struct afe_ipc_header *h)
{
	make_object(name, size, h);
	struct afe_ipc_producer *p = NULL;
	int err = afe_ipc_producer_connect(&p, rt, name, NULL);
	if (err == 0)
		afe_ipc_producer_close(p);
	return err;
}

Test(ipc_hostile, a_header_of_another_kind_is_eproto_and_one_being_set_up_is_refused)
{
	const char *name = ipc_test_name("headers");
	struct afe_runtime *rt = test_runtime(2);
	const uint64_t size = AFE_IPC_OBJECT_SIZE;
	struct afe_ipc_header h = good_header();
	cr_assert_eq(connect_to(rt, name, size, &h), 0, "the unspoilt header connects");

	h = good_header();
	atomic_store(&h.magic, AFE_IPC_MAGIC ^ 1);
	cr_assert_eq(connect_to(rt, name, size, &h), -EPROTO, "magic");
	h = good_header();
	h.version = AFE_IPC_VERSION + 1;
	cr_assert_eq(connect_to(rt, name, size, &h), -EPROTO, "version");
	h = good_header();
	h.slot_size = AFE_IPC_SLOT_SIZE / 2;
	cr_assert_eq(connect_to(rt, name, size, &h), -EPROTO, "slot size");
	h = good_header();
	h.ring_slots = AFE_IPC_RING_SLOTS * 2;
	cr_assert_eq(connect_to(rt, name, size, &h), -EPROTO, "ring slots");
	h = good_header();
	h.max_producers = 1;
	cr_assert_eq(connect_to(rt, name, size, &h), -EPROTO, "max producers");
	h = good_header();
	h.size = AFE_IPC_OBJECT_SIZE - 4096;
	cr_assert_eq(connect_to(rt, name, size, &h), -EPROTO, "size in the header");
	h = good_header();
	cr_assert_eq(connect_to(rt, name, 2 * size, &h), -EPROTO, "a long object");
	/* A short one may be ours, shrunk under its consumer: it is grown
	 * back for the consumer to repair, and refused this time. */
	cr_assert_eq(connect_to(rt, name, 65536, &h), -ECONNREFUSED, "a short object");
	cr_assert_eq(object_size(name), AFE_IPC_OBJECT_SIZE);

	/* Being set up: no size yet, or no magic yet. */
	cr_assert_eq(connect_to(rt, name, 0, &h), -ECONNREFUSED);
	atomic_store(&h.magic, 0);
	cr_assert_eq(connect_to(rt, name, size, &h), -ECONNREFUSED);
	/* A consumer pid that names no process. */
	h = good_header();
	h.consumer_pid = 0;
	cr_assert_eq(connect_to(rt, name, size, &h), -ECONNREFUSED);
	h.consumer_pid = -5;
	cr_assert_eq(connect_to(rt, name, size, &h), -ECONNREFUSED);

	char path[AFE_IPC_NAME_MAX + 2];
	cr_assert_eq(afe_ipc_shm_path(path, sizeof(path), name), 0);
	shm_unlink(path);
	test_runtime_destroy(rt);
}

Test(ipc_hostile, serving_replaces_an_object_no_live_consumer_owns)
{
	const char *name = ipc_test_name("replace");
	struct afe_runtime *rt = test_runtime(2);
	struct afe_ipc_consumer *c = NULL;
	struct afe_ipc_header h = good_header(); /* this process: live */
	make_object(name, AFE_IPC_OBJECT_SIZE, &h);
	cr_assert_eq(afe_ipc_consumer_serve(&c, rt, name, NULL), -EADDRINUSE);

	/* The same header on objects no consumer would make: garbage. */
	atomic_store(&h.magic, AFE_IPC_MAGIC ^ 1);
	make_object(name, AFE_IPC_OBJECT_SIZE, &h);
	cr_assert_eq(afe_ipc_consumer_serve(&c, rt, name, NULL), 0);
	afe_ipc_consumer_destroy(c);
	h = good_header();
	make_object(name, 65536, &h);
	cr_assert_eq(afe_ipc_consumer_serve(&c, rt, name, NULL), 0);
	struct afe_ipc_producer *p = connect_retrying(rt, name, NULL);
	afe_ipc_producer_close(p);
	afe_ipc_consumer_destroy(c); /* unlinks the name */
	test_runtime_destroy(rt);
}

/* ---- many malformed requests at once ------------------------------------------ */

/* Fills its request ring with malformed requests (an unknown kind), tells
 * the test, and stays until told to leave. 0, or what failed. */
static int filling_producer(const char *name, int result, int ctl)
{
	struct afe_ipc_header *h = NULL;
	int err = -ECONNREFUSED;
	for (uint64_t end = now_ms() + 10000; err == -ECONNREFUSED && now_ms() < end;)
		if ((err = afe_ipc_shm_open(name, &h)) == -ECONNREFUSED)
			usleep(1000);
	int i = err < 0 ? -1 : claim_like_a_producer(h);
	int code = i < 0 ? 10 : 0;
	const struct raw_frame junk = {.f = {.kind = 9, .fn = add_ID}};
	const unsigned char none[1] = {0};
	uint64_t pos = 0;
	for (unsigned k = 0; k < AFE_IPC_RING_SLOTS && !code; k++)
		if (!put_frames(afe_ipc_requests_of(h, (unsigned)i), &pos, &junk, 1, k, none, 0))
			code = 12;
	if (write(result, &(char){(char)code}, 1) != 1)
		code = 16;
	told_to_leave(ctl, -1);
	return code;
}

/* Yields until the consumer dropped `until` frames; its result is the most
 * the consumer dropped between two of its polls. */
struct drop_probe {
	struct afe_future base;
	struct afe_ipc_consumer *c;
	uint64_t until, last, most;
};

static int drop_probe_poll(struct afe_future *f, struct afe_context *cx)
{
	struct drop_probe *self = afe_container_of(f, struct drop_probe, base);
	AFE_ASYNC_BEGIN(f, cx);
	while (self->last < self->until) {
		struct afe_ipc_stats st;
		afe_ipc_consumer_stats(self->c, &st);
		if (st.malformed - self->last > self->most)
			self->most = st.malformed - self->last;
		self->last = st.malformed;
		AFE_YIELD();
	}
	AFE_RETURN((intptr_t)self->most);
	AFE_ASYNC_END;
}

Test(ipc_hostile, a_receiver_dropping_many_frames_lets_the_other_tasks_run)
{
	const char *name = ipc_test_name("many-bad");
	int result[2], ctl[2];
	pipes(result, ctl);
	pid_t child = fork_tied();
	if (child == 0) {
		child_ends(result, ctl);
		_exit(filling_producer(name, result[1], ctl[0]));
	}
	close(result[1]);
	close(ctl[0]);
	/* One worker, so the receiver and the probe take turns on it. */
	struct afe_runtime *rt = test_runtime(1);
	struct afe_ipc_consumer *c;
	cr_assert_eq(afe_ipc_consumer_serve(&c, rt, name, NULL), 0);
	char code = -1;
	cr_assert_eq(read(result[0], &code, 1), 1, "the filling producer died");
	cr_assert_eq(code, 0, "the filling producer saw failure %d", code);
	struct drop_probe probe = {.c = c, .until = AFE_IPC_RING_SLOTS};
	afe_future_init(&probe.base, drop_probe_poll);
	struct afe_join_handle probe_handle;
	cr_assert_eq(afe_spawn(rt, &probe, &probe_handle), 0);
	struct add_server a = {.c = c};
	afe_future_init(&a.base, add_server_poll);
	struct afe_join_handle adder;
	cr_assert_eq(afe_spawn(rt, &a, &adder), 0);
	struct afe_join join;
	afe_join_init(&join, &probe_handle);
	intptr_t most = test_block_on(rt, &join);
	cr_assert_gt(most, 0);
	cr_assert_leq(most, 64, "the receiver dropped %ld frames in one poll", (long)most);

	cr_assert_eq(child_leave(child, ctl[1]), 0);
	close(result[0]);
	afe_ipc_consumer_close(c);
	afe_join_init(&join, &adder);
	cr_assert_eq(test_block_on(rt, &join), 0);
	afe_ipc_consumer_destroy(c);
	test_runtime_destroy(rt);
}
