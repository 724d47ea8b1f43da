/* SPDX-License-Identifier: MIT */
/* Stackful coroutines: spawn, await, cancel, stacks, and bad input. */
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>

#include "afe/net.h"
#include "helpers.h"

/* ---- running and awaiting ------------------------------------------------ */

/* Keeps a local array across yields and sleeps, and returns its sum. */
static intptr_t sum_across_suspends(void *arg)
{
	int n = (int)(intptr_t)arg, seen[16];
	for (int i = 0; i < 16; i++) {
		seen[i] = i * n;
		if (afe_co_yield() < 0 || (i % 4 == 0 && afe_co_sleep(1000000) < 0))
			return -1;
	}
	intptr_t sum = 0;
	for (int i = 0; i < 16; i++)
		sum += seen[i];
	return sum;
}

Test(coro, a_coroutine_keeps_its_locals_and_its_join_gives_its_result)
{
	struct afe_runtime *rt = test_runtime(2);
	struct afe_join_handle h;
	cr_assert_eq(afe_coro_spawn(rt, sum_across_suspends, (void *)3, &h, NULL), 0);
	struct afe_join join;
	afe_join_init(&join, &h);
	cr_assert_eq(test_block_on(rt, &join), 3 * 120);
	test_runtime_destroy(rt);
}

Test(coro, plain_code_blocks_on_a_coroutine)
{
	struct afe_runtime *rt = test_runtime(1);
	struct afe_coro c;
	cr_assert_eq(afe_coro_init(&c, sum_across_suspends, (void *)1, NULL), 0);
	cr_assert_eq(test_block_on(rt, &c), 120);
	test_runtime_destroy(rt);
}

static intptr_t inner_coroutine(void *arg)
{
	(void)arg;
	return afe_co_sleep(1000000) == 0 ? 7 : -1;
}

static intptr_t awaits_a_coroutine(void *arg)
{
	(void)arg;
	struct afe_coro inner;
	afe_coro_init(&inner, inner_coroutine, NULL, NULL);
	return afe_co_await(&inner.base) * 6;
}

Test(coro, a_coroutine_awaits_another_coroutine)
{
	struct afe_runtime *rt = test_runtime(2);
	struct afe_coro c;
	afe_coro_init(&c, awaits_a_coroutine, NULL, NULL);
	cr_assert_eq(test_block_on(rt, &c), 42);
	test_runtime_destroy(rt);
}

/* Echoes one message over a socket pair, byte for byte. */
static intptr_t echo_once(void *arg)
{
	int fd = (int)(intptr_t)arg;
	char buf[64];
	ssize_t n = afe_co_recv(fd, buf, sizeof(buf), 0);
	if (n <= 0)
		return n;
	return afe_co_send_all(fd, buf, (size_t)n) == 0 ? n : -1;
}

/* Connects to 127.0.0.1:port (arg), sends "hi": the connected fd, or
 * -errno. */
static intptr_t connect_and_greet(void *arg)
{
	int fd = afe_co_tcp_connect("127.0.0.1", (uint16_t)(intptr_t)arg);
	if (fd < 0)
		return fd;
	return afe_co_send_all(fd, "hi", 2) == 0 ? fd : -EIO;
}

Test(coro, a_coroutine_connects_by_address)
{
	struct afe_runtime *rt = test_runtime(2);
	int listen_fd = afe_tcp_listen("127.0.0.1", 0, 0);
	int port = afe_tcp_local_port(listen_fd);
	struct afe_coro c;
	afe_coro_init(&c, connect_and_greet, (void *)(intptr_t)port, NULL);
	intptr_t fd = test_block_on(rt, &c);
	cr_assert_geq(fd, 0, "connect: %d", (int)fd);
	int peer = accept(listen_fd, NULL, NULL);
	char got[2];
	cr_assert_eq(read(peer, got, 2), 2);
	cr_assert_eq(memcmp(got, "hi", 2), 0);
	close(peer);
	close((int)fd);
	close(listen_fd);
	/* Nobody listens now: refused. Outside a coroutine: -EPERM. */
	afe_coro_init(&c, connect_and_greet, (void *)(intptr_t)port, NULL);
	cr_assert_eq(test_block_on(rt, &c), -ECONNREFUSED);
	cr_assert_eq(afe_co_tcp_connect("127.0.0.1", (uint16_t)port), -EPERM);
	test_runtime_destroy(rt);
}

Test(coro, a_coroutine_serves_a_socket)
{
	struct afe_runtime *rt = test_runtime(2);
	int sv[2];
	cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
	struct afe_join_handle h;
	cr_assert_eq(afe_coro_spawn(rt, echo_once, (void *)(intptr_t)sv[1], &h, NULL), 0);
	usleep(20000); /* the coroutine waits in its recv */
	cr_assert_eq(write(sv[0], "hello", 5), 5);
	char back[8] = {0};
	cr_assert_eq(read(sv[0], back, sizeof(back)), 5);
	cr_assert_eq(memcmp(back, "hello", 5), 0);
	struct afe_join join;
	afe_join_init(&join, &h);
	cr_assert_eq(test_block_on(rt, &join), 5);
	close(sv[0]);
	close(sv[1]);
	test_runtime_destroy(rt);
}

enum { REPLY_BYTES = 1 << 20 }; /* more than a socket's buffer holds */

/* Answers each request with its first byte repeated, the last one with
 * REPLY_BYTES of it, through afe_co_send_recv; buffers in static memory,
 * so that it runs on a shared stack too. The requests answered, or -errno. */
static intptr_t reply_and_receive(void *arg)
{
	static char in[64], out[REPLY_BYTES];
	int fd = (int)(intptr_t)arg;
	intptr_t answered = 0;
	ssize_t n = afe_co_recv(fd, in, sizeof(in), 0);
	while (n > 0) {
		size_t len = in[0] == 'L' ? REPLY_BYTES : (size_t)n;
		memset(out, in[0], len);
		answered++;
		n = afe_co_send_recv(fd, out, len, in, sizeof(in));
	}
	return n < 0 ? n : answered;
}

/* The client side of reply_and_receive over sv: three requests, each
 * answered in full, then a close. */
static void ask_three_times(int fd)
{
	static char back[REPLY_BYTES];
	const char *requests[] = {"abc", "zz", "L"};
	for (int r = 0; r < 3; r++) {
		size_t want = requests[r][0] == 'L' ? REPLY_BYTES : strlen(requests[r]), got = 0;
		cr_assert_eq(write(fd, requests[r], strlen(requests[r])), (ssize_t)strlen(requests[r]));
		while (got < want) {
			ssize_t n = read(fd, back + got, want - got);
			cr_assert_gt(n, 0, "request %d: %zd after %zu bytes", r, n, got);
			got += (size_t)n;
		}
		for (size_t i = 0; i < want; i++)
			cr_assert_eq(back[i], requests[r][0], "request %d, byte %zu", r, i);
	}
	shutdown(fd, SHUT_WR);
}

static void serve_three_requests(const struct afe_coro_opts *opts)
{
	struct afe_runtime *rt = test_runtime(2);
	int sv[2];
	cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
	struct afe_join_handle h;
	cr_assert_eq(afe_coro_spawn(rt, reply_and_receive, (void *)(intptr_t)sv[1], &h, opts), 0);
	ask_three_times(sv[0]);
	struct afe_join join;
	afe_join_init(&join, &h);
	cr_assert_eq(test_block_on(rt, &join), 3);
	close(sv[0]);
	close(sv[1]);
	test_runtime_destroy(rt);
}

Test(coro, send_recv_replies_in_full_then_receives_the_next_request)
{
	serve_three_requests(NULL);
}

Test(coro, send_recv_on_a_shared_stack_replies_and_receives_one_after_the_other)
{
	static const struct afe_coro_opts on_shared = {.shared_stack = true};
	serve_three_requests(&on_shared);
}

/* A reply to a peer that has gone: the send's error, not the receive's. */
static intptr_t reply_to_nobody(void *arg)
{
	static char in[8];
	return afe_co_send_recv((int)(intptr_t)arg, "late", 4, in, sizeof(in));
}

/* A 1 MiB reply the peer stops reading part way. */
static intptr_t reply_in_full(void *arg)
{
	static char in[8], out[REPLY_BYTES];
	return afe_co_send_recv((int)(intptr_t)arg, out, sizeof(out), in, sizeof(in));
}

Test(coro, send_recv_whose_peer_leaves_mid_reply_gets_epipe)
{
	struct afe_runtime *rt = test_runtime(1);
	int sv[2];
	cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
	struct afe_join_handle h;
	cr_assert_eq(afe_coro_spawn(rt, reply_in_full, (void *)(intptr_t)sv[1], &h, NULL), 0);
	char some[4096];
	cr_assert_eq(read(sv[0], some, sizeof(some)) > 0, true); /* part of it went out */
	usleep(10000); /* the send waits for room */
	close(sv[0]);
	struct afe_join join;
	afe_join_init(&join, &h);
	cr_assert_eq(test_block_on(rt, &join), -EPIPE);
	close(sv[1]);
	test_runtime_destroy(rt);
}

Test(coro, send_recv_to_a_closed_peer_gets_epipe)
{
	struct afe_runtime *rt = test_runtime(1);
	int sv[2];
	cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
	close(sv[0]);
	struct afe_coro c;
	afe_coro_init(&c, reply_to_nobody, (void *)(intptr_t)sv[1], NULL);
	cr_assert_eq(test_block_on(rt, &c), -EPIPE);
	close(sv[1]);
	test_runtime_destroy(rt);
}

/* ---- channels between coroutines, and migration between workers ---------- */

enum { ITEMS = 2000 };

static intptr_t produce(void *arg)
{
	for (int i = 1; i <= ITEMS; i++)
		if (afe_co_chan_send(arg, &i) < 0)
			return -1;
	afe_chan_close(arg);
	return 0;
}

static intptr_t consume(void *arg)
{
	intptr_t sum = 0;
	int item, err;
	while ((err = afe_co_chan_recv(arg, &item)) == 0)
		sum += item;
	return err == -EPIPE ? sum : err;
}

Test(coro, coroutines_pass_items_through_a_channel)
{
	struct afe_runtime *rt = test_runtime(2);
	struct afe_chan ch;
	cr_assert_eq(afe_chan_init(&ch, sizeof(int), 4), 0);
	struct afe_join_handle p, c;
	cr_assert_eq(afe_coro_spawn(rt, produce, &ch, &p, NULL), 0);
	cr_assert_eq(afe_coro_spawn(rt, consume, &ch, &c, NULL), 0);
	struct afe_join join;
	afe_join_init(&join, &c);
	cr_assert_eq(test_block_on(rt, &join), (intptr_t)ITEMS * (ITEMS + 1) / 2);
	afe_join_init(&join, &p);
	cr_assert_eq(test_block_on(rt, &join), 0);
	cr_assert_eq(afe_chan_destroy(&ch), 0);
	test_runtime_destroy(rt);
}

/* Thousands of coroutines yield on two workers, so they move between
 * them; each checks that its stack came along intact. Every other one is
 * on a shared stack, so swaps and busy shared stacks happen too. Every
 * other pair yields through the library's function, not the inline form:
 * its second half must read the thread it resumed on, not the one it
 * left (inlined beside the first half, clang kept the first's). */
enum { MIGRANTS = 2000, HOPS = 50 };

static intptr_t migrate(void *arg)
{
	volatile uint64_t mark = (uint64_t)(uintptr_t)arg * 0x9e3779b97f4a7c15ull;
	int (*volatile yield)(void) = ((uintptr_t)arg - 1) % 4 < 2 ? NULL : afe_co_yield;
	for (int i = 0; i < HOPS; i++) {
		if ((yield ? yield() : afe_co_yield()) < 0)
			return -1;
		if (mark != (uint64_t)(uintptr_t)arg * 0x9e3779b97f4a7c15ull)
			return -2;
	}
	return 1;
}

Test(coro, coroutines_move_between_workers_with_their_stacks)
{
	struct afe_runtime *rt = test_runtime(2);
	static struct afe_join_handle h[MIGRANTS];
	for (int i = 0; i < MIGRANTS; i++) {
		struct afe_coro_opts opts = {.shared_stack = i % 2};
		cr_assert_eq(afe_coro_spawn(rt, migrate, (void *)(intptr_t)(i + 1), &h[i], &opts), 0);
	}
	for (int i = 0; i < MIGRANTS; i++) {
		struct afe_join join;
		afe_join_init(&join, &h[i]);
		cr_assert_eq(test_block_on(rt, &join), 1, "coroutine %d", i);
	}
	test_runtime_destroy(rt);
}

/* Many values live across every switch, in more registers than there
 * are: six integer and four floating-point chains mixed after each pause.
 * With pause a yield, a register the switch fails to keep (one missing
 * from its clobber list) comes back holding the other side's value and
 * the result differs from the same chains run with no switch at all.
 * Both yields: the inline one (afe/coro_inline.h, its switch in this
 * loop) when pause is NULL, else the library's through the pointer. */
enum { CHAIN_ROUNDS = 2000 };

static int no_pause(void)
{
	return 0;
}

static uint64_t mix_chains(uint64_t seed, int (*volatile pause)(void))
{
	uint64_t a = seed, b = seed ^ 0x5555, c = seed * 3, d = seed + 7, e = ~seed, g = seed >> 3;
	double x = (double)(seed & 1023), y = x * 0.5 + 1, z = y * 1.5, w = z - 2;
	for (int i = 0; i < CHAIN_ROUNDS; i++) {
		if ((pause ? pause() : afe_co_yield()) < 0)
			return 0;
		a = a * 6364136223846793005ull + b;
		b ^= c >> 7;
		c += d * 31;
		d = (d << 5) ^ e;
		e -= g;
		g = g * 17 + a;
		x = x * 0.999 + y;
		y = y * 0.998 + z;
		z = z * 0.997 + w;
		w = w * 0.996 + x;
	}
	return a ^ b ^ c ^ d ^ e ^ g ^ (uint64_t)x ^ (uint64_t)y ^ (uint64_t)z ^ (uint64_t)w;
}

/* arg: the seed; odd seeds yield inline, even ones through the library. */
static intptr_t mix_across_yields(void *arg)
{
	uint64_t seed = (uint64_t)(uintptr_t)arg;
	return (intptr_t)(mix_chains(seed, seed & 1 ? NULL : afe_co_yield) ==
			  mix_chains(seed, no_pause));
}

Test(coro, values_in_registers_survive_every_switch, .timeout = 30)
{
	struct afe_runtime *rt = test_runtime(1);
	struct afe_join_handle h[4];
	for (uintptr_t i = 0; i < 4; i++)
		cr_assert_eq(afe_coro_spawn(rt, mix_across_yields, (void *)(i * 1000003 + 1), &h[i],
					    NULL),
			     0);
	for (int i = 0; i < 4; i++) {
		struct afe_join join;
		afe_join_init(&join, &h[i]);
		cr_assert_eq(test_block_on(rt, &join), 1, "coroutine %d", i);
	}
	test_runtime_destroy(rt);
}

/* A program compiled against a header whose switch differs from the
 * library's (afe/coro_inline.h's AFE__CO_SWITCH_FORMAT) gets its yields
 * made out of line by the library: begin returns the whole yield's result
 * and the other coroutine has run meanwhile. */
static atomic_int turns;
static atomic_bool format_test_done;

static intptr_t yield_as_another_format(void *arg)
{
	(void)arg;
	while (atomic_load(&turns) == 0) /* until the other one is on this worker */
		if (afe_co_yield() < 0)
			return -1;
	int others_ran = 0;
	for (int i = 0; i < 20; i++) {
		int before = atomic_load(&turns);
		struct afe__co_switch s;
		if (afe__co_yield_begin(&s, AFE__CO_SWITCH_FORMAT + 1) != 0)
			return -1;
		others_ran += atomic_load(&turns) != before;
	}
	atomic_store(&format_test_done, true);
	return others_ran;
}

static intptr_t take_turns(void *arg)
{
	(void)arg;
	while (!atomic_load(&format_test_done)) {
		atomic_fetch_add(&turns, 1);
		if (afe_co_yield() < 0)
			return -1;
	}
	return 0;
}

Test(coro, a_yield_compiled_for_another_switch_is_made_out_of_line)
{
	struct afe_runtime *rt = test_runtime(1);
	struct afe_join_handle a, b;
	cr_assert_eq(afe_coro_spawn(rt, yield_as_another_format, NULL, &a, NULL), 0);
	cr_assert_eq(afe_coro_spawn(rt, take_turns, NULL, &b, NULL), 0);
	struct afe_join join;
	afe_join_init(&join, &a);
	cr_assert_geq(test_block_on(rt, &join), 10, "the other coroutine ran between its yields");
	afe_join_init(&join, &b);
	cr_assert_eq(test_block_on(rt, &join), 0);
	test_runtime_destroy(rt);
}

/* ---- cancellation ---------------------------------------------------------- */

struct waiting {
	int kind;
	int fd;
	struct afe_chan *ch;
	struct afe_mutex *m;
	struct afe_token *t;
	atomic_bool started;
	int got, after; /* what the waiting call, then a later one, returned */
	bool cancelled_seen;
};

static intptr_t wait_then_unwind(void *arg)
{
	struct waiting *w = arg;
	char buf[8];
	int item;
	atomic_store(&w->started, true);
	switch (w->kind) {
	case 0: w->got = afe_co_sleep(10ull * 1000000000); break;
	case 1: w->got = (int)afe_co_recv(w->fd, buf, sizeof(buf), 0); break;
	case 2: w->got = afe_co_chan_recv(w->ch, &item); break;
	case 3: w->got = afe_co_mutex_lock(w->m); break;
	case 4: w->got = (int)afe_co_send_recv(w->fd, "x", 1, buf, sizeof(buf)); break;
	default: w->got = afe_co_token_wait(w->t); break;
	}
	w->cancelled_seen = afe_co_cancelled();
	w->after = afe_co_sleep(1000);
	return 99;
}

Test(coro, a_cancelled_coroutine_s_waiting_and_later_calls_end_ecanceled)
{
	struct afe_runtime *rt = test_runtime(2);
	int sv[2];
	cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
	struct afe_chan ch;
	cr_assert_eq(afe_chan_init(&ch, sizeof(int), 1), 0);
	struct afe_mutex m;
	afe_mutex_init(&m);
	cr_assert_eq(afe_mutex_try_lock(&m), 0); /* held: the lock waits */
	struct afe_token *t;
	cr_assert_eq(afe_token_new(&t), 0);
	for (int kind = 0; kind < 6; kind++) {
		struct waiting w = {.kind = kind, .fd = sv[1], .ch = &ch, .m = &m, .t = t};
		struct afe_join_handle h;
		cr_assert_eq(afe_coro_spawn(rt, wait_then_unwind, &w, &h, NULL), 0);
		while (!atomic_load(&w.started))
			sched_yield();
		usleep(10000); /* into its wait */
		struct afe_cancel cancel;
		cr_assert_eq(afe_cancel_init(&cancel, &h), 0);
		cr_assert_eq(test_block_on(rt, &cancel), 99, "kind %d", kind);
		cr_assert_eq(w.got, -ECANCELED, "kind %d: %d", kind, w.got);
		cr_assert(w.cancelled_seen, "kind %d", kind);
		cr_assert_eq(w.after, -ECANCELED, "kind %d", kind);
	}
	afe_mutex_unlock(&m);
	afe_token_release(t);
	cr_assert_eq(afe_chan_destroy(&ch), 0);
	close(sv[0]);
	close(sv[1]);
	test_runtime_destroy(rt);
}

static atomic_int detached_done;

static intptr_t finish_late(void *arg)
{
	(void)arg;
	if (afe_co_sleep(30000000) == 0 && !afe_co_cancelled())
		atomic_store(&detached_done, 1);
	return 0;
}

Test(coro, a_detached_coroutine_runs_to_its_end)
{
	struct afe_runtime *rt = test_runtime(1);
	struct afe_join_handle h;
	cr_assert_eq(afe_coro_spawn(rt, finish_late, NULL, &h, NULL), 0);
	afe_join_handle_drop(&h);
	cr_assert_geq(afe_runtime_wait_idle(rt, 5000), 0);
	cr_assert_eq(atomic_load(&detached_done), 1);
	test_runtime_destroy(rt);
}

/* ---- bad input ------------------------------------------------------------ */

static intptr_t returns_zero(void *arg)
{
	(void)arg;
	return 0;
}

Test(coro, calls_outside_a_coroutine_get_eperm)
{
	int sv[2];
	cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
	char buf[4];
	cr_assert_eq(afe_co_recv(sv[0], buf, sizeof(buf), 0), -EPERM);
	cr_assert_eq(afe_co_send_recv(sv[0], "x", 1, buf, sizeof(buf)), -EPERM);
	cr_assert_eq(afe_co_sleep(1), -EPERM);
	cr_assert_eq(afe_co_yield(), -EPERM);
	cr_assert_eq((afe_co_yield)(), -EPERM);
	cr_assert_not(afe_co_cancelled());
	struct afe_sleep s;
	afe_sleep_init(&s, 1);
	cr_assert_eq(afe_co_await(&s.base), -EPERM);
	close(sv[0]);
	close(sv[1]);
}

Test(coro, a_stack_below_the_minimum_or_no_function_gets_einval)
{
	struct afe_runtime *rt = test_runtime(1);
	struct afe_coro_opts small = {.stack_size = AFE_CORO_STACK_MIN - 1};
	cr_assert_eq(afe_coro_spawn(rt, returns_zero, NULL, NULL, &small), -EINVAL);
	cr_assert_eq(afe_coro_spawn(rt, NULL, NULL, NULL, NULL), -EINVAL);
	struct afe_coro c;
	cr_assert_eq(afe_coro_init(&c, returns_zero, NULL, &small), -EINVAL);
	cr_assert_eq(test_block_on(rt, &c), -EINVAL);
	test_runtime_destroy(rt);
}

Test(coro, a_stack_that_cannot_be_had_gets_enomem_and_leaves_nothing)
{
	struct afe_runtime *rt = test_runtime(1);
	struct afe_coro_opts huge = {.stack_size = (size_t)1 << 50}; /* past the address space */
	struct afe_join_handle h = {0};
	cr_assert_eq(afe_coro_spawn(rt, returns_zero, NULL, &h, &huge), -ENOMEM);
	cr_assert_null(h.task);
	struct afe_coro c;
	cr_assert_eq(afe_coro_init(&c, returns_zero, NULL, &huge), 0);
	cr_assert_eq(test_block_on(rt, &c), -ENOMEM);
	test_runtime_destroy(rt);
}

/* A size whose rounding up to pages wraps past zero: -ENOMEM, never a
 * stack of a few bytes (it crashed the spawn, and hung the first poll). */
Test(coro, a_stack_size_near_size_max_gets_enomem)
{
	struct afe_runtime *rt = test_runtime(1);
	size_t sizes[] = {SIZE_MAX, SIZE_MAX - 4095, SIZE_MAX / 2 + 1};
	for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
		struct afe_coro_opts opts = {.stack_size = sizes[i]};
		struct afe_join_handle h = {0};
		cr_assert_eq(afe_coro_spawn(rt, returns_zero, NULL, &h, &opts), -ENOMEM, "size %zu", i);
		cr_assert_eq(h.task, NULL);
		struct afe_coro c;
		cr_assert_eq(afe_coro_init(&c, returns_zero, NULL, &opts), 0);
		cr_assert_eq(test_block_on(rt, &c), -ENOMEM, "size %zu", i);
	}
	cr_assert_eq(afe_coro_spawn(rt, returns_zero, NULL, NULL, NULL), 0, "spawns still work");
	test_runtime_destroy(rt);
}

Test(coro, init_of_a_null_coroutine_is_einval)
{
	cr_assert_eq(afe_coro_init(NULL, returns_zero, NULL, NULL), -EINVAL);
}

/* Spawning with no runtime given, off any task, has none to use. */
Test(coro, spawn_with_no_runtime_outside_a_task_is_einval)
{
	struct afe_join_handle h = {0};
	cr_assert_eq(afe_coro_spawn(NULL, returns_zero, NULL, &h, NULL), -EINVAL);
	cr_assert_eq(h.task, NULL);
}

/* A shared stack of the one size it has is fine; spawn refuses others as
 * init does. */
Test(coro, spawn_on_a_shared_stack_of_another_size_is_einval)
{
	struct afe_runtime *rt = test_runtime(1);
	struct afe_coro_opts odd = {.shared_stack = true, .stack_size = 64 * 1024};
	cr_assert_eq(afe_coro_spawn(rt, returns_zero, NULL, NULL, &odd), -EINVAL);
	struct afe_coro_opts right = {.shared_stack = true, .stack_size = AFE_CORO_STACK_DEFAULT};
	struct afe_coro c;
	cr_assert_eq(afe_coro_init(&c, returns_zero, NULL, &right), 0);
	cr_assert_eq(test_block_on(rt, &c), 0);
	test_runtime_destroy(rt);
}

/* Sleeps until the runtime shuts down, then spawns another coroutine. */
static _Atomic intptr_t late_spawn = 1;
static intptr_t spawn_once_shutting_down(void *arg)
{
	(void)arg;
	while (afe_co_sleep(1000000) == 0)
		;
	atomic_store(&late_spawn, afe_coro_spawn(NULL, returns_zero, NULL, NULL, NULL));
	return 0;
}

Test(coro, spawn_once_the_runtime_shuts_down_is_eshutdown)
{
	struct afe_runtime *rt = test_runtime(1);
	cr_assert_eq(afe_coro_spawn(rt, spawn_once_shutting_down, NULL, NULL, NULL), 0);
	cr_assert_eq(afe_runtime_destroy(rt), 0, "the spawner returned");
	cr_assert_eq(atomic_load(&late_spawn), -ESHUTDOWN);
}

/* How many stacks of size bytes the process has mapped: read-write
 * mappings of that size right above a PROT_NONE one, their guard page.
 * (Counting every mapping would count the sanitizers' own too.) */
static int guarded_stacks(size_t size)
{
	FILE *maps = fopen("/proc/self/maps", "r");
	cr_assert_not_null(maps);
	char line[512], perms[8], below_perms[8] = "";
	unsigned long lo, hi, below_hi = 0;
	int stacks = 0;
	while (fgets(line, sizeof(line), maps)) {
		if (sscanf(line, "%lx-%lx %7s", &lo, &hi, perms) != 3)
			continue;
		stacks += hi - lo == size && strcmp(perms, "rw-p") == 0 &&
			  strcmp(below_perms, "---p") == 0 && below_hi == lo;
		below_hi = hi;
		strcpy(below_perms, perms);
	}
	fclose(maps);
	return stacks;
}

static intptr_t sleep_a_millisecond(void *arg)
{
	(void)arg;
	return afe_co_sleep(1000000);
}

enum { RUNTIMES = 100, LIVE = 64 };

/* Spawns LIVE coroutines fn(arg) on rt into h (each takes its stack at
 * its spawn); join_live joins them, each returning 0. */
static void spawn_live(struct afe_runtime *rt, afe_coro_fn *fn, void *arg,
		       struct afe_join_handle *h)
{
	for (int i = 0; i < LIVE; i++)
		cr_assert_eq(afe_coro_spawn(rt, fn, arg, &h[i], NULL), 0);
}

static void join_live(struct afe_runtime *rt, struct afe_join_handle *h)
{
	for (int i = 0; i < LIVE; i++) {
		struct afe_join join;
		afe_join_init(&join, &h[i]);
		cr_assert_eq(test_block_on(rt, &join), 0);
	}
}

/* Each worker keeps its last stacks without a lock, and gives them back
 * to the shared pool when it exits: runtime after runtime, the stacks
 * mapped stay within the pool's bound (and this thread's magazine)
 * instead of growing by each dead worker's stacks. */
Test(coro, worker_threads_give_their_stacks_back_when_they_exit, .timeout = 60)
{
	int before = guarded_stacks(AFE_CORO_STACK_DEFAULT);
	for (int round = 0; round < RUNTIMES; round++) {
		struct afe_runtime *rt = test_runtime(2);
		struct afe_join_handle h[LIVE];
		spawn_live(rt, sleep_a_millisecond, NULL, h);
		join_live(rt, h);
		test_runtime_destroy(rt);
	}
	int grown = guarded_stacks(AFE_CORO_STACK_DEFAULT) - before;
	cr_assert_lt(grown, 1024 + 2 * 32 + 32, "%d more stacks", grown);
}

/* A runtime of `workers` whose coroutines get stacks of size bytes. */
static struct afe_runtime *runtime_with_stack_size(unsigned workers, size_t size)
{
	struct afe_runtime_config config;
	afe_runtime_config_default(&config);
	config.workers = workers;
	config.coro_stack_size = size;
	struct afe_runtime *rt = NULL;
	cr_assert_eq(afe_runtime_create(&rt, &config), 0);
	return rt;
}

static intptr_t wait_for_token(void *t)
{
	return afe_co_token_wait(t);
}

/* Not only the default size: the stacks of the size a runtime sets stay
 * mapped when their coroutines end, and later coroutines reuse them. The
 * spawns come from this thread and the stacks go back on the two
 * workers, which keep up to 32 each: so however the rounds fall, at most
 * LIVE + 2 * 32 stacks are ever mapped (without reuse, each round would
 * map LIVE more). 96 KiB: no other mapping of the process has that size
 * (a worker's signal stack has 64). */
Test(coro, stacks_of_the_size_a_runtime_sets_are_kept_for_the_next_coroutines)
{
	enum { SIZE = 96 * 1024, ROUNDS = 9 };
	struct afe_runtime *rt = runtime_with_stack_size(2, SIZE);
	int before = guarded_stacks(SIZE), most = 0;
	for (int round = 0; round < ROUNDS; round++) {
		struct afe_token *t;
		cr_assert_eq(afe_token_new(&t), 0);
		struct afe_join_handle h[LIVE];
		spawn_live(rt, wait_for_token, t, h);
		int live = guarded_stacks(SIZE) - before; /* every LIVE stack taken */
		cr_assert_geq(live, LIVE, "round %d: %d stacks", round, live);
		cr_assert_eq(afe_token_cancel(t), 0);
		join_live(rt, h);
		afe_token_release(t);
		int kept = guarded_stacks(SIZE) - before;
		cr_assert_eq(kept, live, "round %d: %d stacks of %d kept", round, kept, live);
		most = kept > most ? kept : most;
	}
	cr_assert_leq(most, LIVE + 2 * 32, "%d stacks mapped in %d rounds", most, ROUNDS);
	test_runtime_destroy(rt);
}

static intptr_t trim_stacks(void *arg)
{
	(void)arg;
	return (intptr_t)afe_coro_stacks_trim();
}

/* Trimming unmaps the pooled stacks: after 4 x LIVE coroutines of one
 * size ended on one worker, a coroutine there trims, and only its own
 * stack is left (the worker's magazine went too: it called from there),
 * as many gone as it says; coroutines of that size still run after.
 * 80 KiB: no other mapping of the process has that size. */
Test(coro, trimming_unmaps_the_pooled_stacks)
{
	enum { SIZE = 80 * 1024, BATCHES = 4 };
	struct afe_runtime *rt = runtime_with_stack_size(1, SIZE);
	int before = guarded_stacks(SIZE);
	struct afe_token *t;
	cr_assert_eq(afe_token_new(&t), 0);
	struct afe_join_handle h[BATCHES][LIVE];
	for (int b = 0; b < BATCHES; b++)
		spawn_live(rt, wait_for_token, t, h[b]);
	cr_assert_eq(afe_token_cancel(t), 0);
	for (int b = 0; b < BATCHES; b++)
		join_live(rt, h[b]);
	afe_token_release(t);
	int kept = guarded_stacks(SIZE) - before;
	cr_assert_geq(kept, BATCHES * LIVE, "%d stacks kept", kept);
	struct afe_coro trim;
	cr_assert_eq(afe_coro_init(&trim, trim_stacks, NULL, NULL), 0);
	intptr_t trimmed = test_block_on(rt, &trim);
	int left = guarded_stacks(SIZE) - before;
	cr_assert_eq(left, 1, "%d stacks left", left);
	cr_assert_eq(trimmed, kept - left, "trimmed %ld of %d", (long)trimmed, kept);
	cr_assert_eq(afe_token_new(&t), 0);
	spawn_live(rt, wait_for_token, t, h[0]);
	cr_assert_eq(afe_token_cancel(t), 0);
	join_live(rt, h[0]);
	afe_token_release(t);
	test_runtime_destroy(rt);
}

/* The first four sizes a process uses get pools; a fifth does not: its
 * stacks are unmapped when their coroutines end, and it still runs. */
Test(coro, a_fifth_stack_size_is_mapped_each_time)
{
	struct afe_runtime *rt = test_runtime(1);
	static const size_t sizes[] = {32 * 1024, 48 * 1024, 80 * 1024, 112 * 1024, 144 * 1024};
	for (int i = 0; i < 5; i++) {
		int before = guarded_stacks(sizes[i]);
		struct afe_coro_opts opts = {.stack_size = sizes[i]};
		struct afe_join_handle h;
		cr_assert_eq(afe_coro_spawn(rt, returns_zero, NULL, &h, &opts), 0);
		struct afe_join join;
		afe_join_init(&join, &h);
		cr_assert_eq(test_block_on(rt, &join), 0);
		int kept = guarded_stacks(sizes[i]) - before;
		cr_assert_eq(kept, i < 4 ? 1 : 0, "size %zu: %d stacks kept", sizes[i], kept);
	}
	test_runtime_destroy(rt);
}

/* Recurses `depth` times, 512 bytes a frame: far past a 32 KiB stack. */
static int deep(volatile char *from, int depth)
{
	volatile char frame[512];
	frame[0] = (char)depth;
	frame[511] = from ? from[0] : 0;
	if (depth == 0)
		return frame[0];
	return deep(frame, depth - 1) + frame[511];
}

static intptr_t overflow(void *arg)
{
	(void)arg;
	return deep(NULL, 1 << 20);
}

/* A runtime of one worker, in a child that exits 2 without one. */
static struct afe_runtime *one_worker_or_exit(void)
{
	struct afe_runtime_config config;
	afe_runtime_config_default(&config);
	config.workers = 1;
	struct afe_runtime *rt;
	if (afe_runtime_create(&rt, &config) < 0)
		_exit(2);
	return rt;
}

static void overflow_a_small_stack(void)
{
	struct afe_runtime *rt = one_worker_or_exit();
	struct afe_coro c;
	struct afe_coro_opts opts = {.stack_size = 32 * 1024};
	afe_coro_init(&c, overflow, NULL, &opts);
	intptr_t r;
	afe_block_on(rt, &c, &r);
}

/* The same on a default-sized stack that an earlier coroutine used and
 * left in the stack pool: a reused stack keeps its guard page. */
static void overflow_a_reused_stack(void)
{
	struct afe_runtime *rt = one_worker_or_exit();
	struct afe_coro first, second;
	intptr_t r;
	afe_coro_init(&first, returns_zero, NULL, NULL);
	if (afe_block_on(rt, &first, &r) < 0 || r != 0)
		_exit(2);
	afe_coro_init(&second, overflow, NULL, NULL);
	afe_block_on(rt, &second, &r);
}

/* Runs child in a process, which must die reporting `report`. */
static void expect_overflow_report(void (*child)(void), const char *report)
{
	char said[4096];
	int status = test_child_stderr(child, said, sizeof(said));
	cr_assert(WIFSIGNALED(status), "status %#x, said: %s", status, said);
	cr_assert_not_null(strstr(said, report), "said: %s", said);
}

Test(coro, a_stack_overflow_is_reported_and_kills)
{
	expect_overflow_report(overflow_a_small_stack,
			       "afe: coroutine stack overflow, 32768-byte stack");
}

Test(coro, a_stack_reused_from_the_pool_still_reports_an_overflow)
{
	expect_overflow_report(overflow_a_reused_stack,
			       "afe: coroutine stack overflow, 262144-byte stack");
}

/* Runs a coroutine (which installs the overflow report's SIGSEGV handler),
 * then writes to a page it may not: a fault on no coroutine's stack. */
static void fault_after_a_coroutine(void)
{
	struct afe_runtime *rt;
	if (afe_runtime_create(&rt, NULL) < 0)
		_exit(2);
	struct afe_coro c;
	afe_coro_init(&c, returns_zero, NULL, NULL);
	intptr_t r;
	if (afe_block_on(rt, &c, &r) < 0 || afe_runtime_destroy(rt) != 0)
		_exit(2);
	volatile char *page = mmap(NULL, 4096, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (page == MAP_FAILED)
		_exit(2);
	page[0] = 1;
}

enum { PASSED_ON = 42 };

static void exit_passed_on(int sig, siginfo_t *info, void *context)
{
	(void)sig;
	(void)info;
	(void)context;
	_exit(PASSED_ON);
}

static void fault_with_a_handler_before(void)
{
	struct sigaction sa;
	memset(&sa, 0, sizeof(sa));
	sa.sa_sigaction = exit_passed_on;
	sa.sa_flags = SA_SIGINFO;
	sigemptyset(&sa.sa_mask);
	if (sigaction(SIGSEGV, &sa, NULL) < 0)
		_exit(2);
	fault_after_a_coroutine();
}

Test(coro, a_fault_off_every_coroutine_stack_goes_to_the_handler_before)
{
	char said[4096];
	int status = test_child_stderr(fault_with_a_handler_before, said, sizeof(said));
	cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == PASSED_ON, "status %#x, said: %s",
		  status, said);
}

Test(coro, a_fault_off_every_coroutine_stack_still_kills)
{
	char said[4096];
	int status = test_child_stderr(fault_after_a_coroutine, said, sizeof(said));
	cr_assert_null(strstr(said, "stack overflow"), "said: %s", said);
	/* A sanitizer's handler before ours reports and exits; else the
	 * default action kills. */
	if (WIFSIGNALED(status))
		cr_assert_eq(WTERMSIG(status), SIGSEGV);
	else
		cr_assert(WEXITSTATUS(status) != 3 && strstr(said, "SEGV"), "status %#x, said: %s",
			  status, said);
}

/* ---- shared stacks --------------------------------------------------------- */

#if defined(__has_feature)
#if __has_feature(address_sanitizer)
#define AFE_TEST_CLANG_ASAN 1
#endif
#endif
#ifndef AFE_TEST_CLANG_ASAN
#define AFE_TEST_CLANG_ASAN 0
#endif

static const struct afe_coro_opts shared = {.shared_stack = true};

enum { SHARERS = 1000 };

Test(coro, coroutines_on_shared_stacks_keep_their_frames_across_swaps)
{
	struct afe_runtime *rt = test_runtime(2);
	static struct afe_join_handle h[SHARERS];
	for (int i = 0; i < SHARERS; i++)
		cr_assert_eq(afe_coro_spawn(rt, sum_across_suspends, (void *)(intptr_t)(i + 1),
					    &h[i], &shared),
			     0);
	for (int i = 0; i < SHARERS; i++) {
		struct afe_join join;
		afe_join_init(&join, &h[i]);
		cr_assert_eq(test_block_on(rt, &join), (i + 1) * 120, "coroutine %d", i);
	}
	test_runtime_destroy(rt);
}

/* Hands the kernel, then a future, memory on its own (shared) stack. */
static intptr_t uses_its_stack(void *arg)
{
	int fd = (int)(intptr_t)arg;
	char buf[16];
	if (afe_co_recv(fd, buf, sizeof(buf), 0) != -EFAULT)
		return 1;
	struct afe_sleep nap;
	afe_sleep_init(&nap, 1000);
	if (afe_co_await(&nap.base) != -EFAULT)
		return 2;
	if (afe_co_send(fd, "x", 1, 0) != 1) /* not on the stack: fine */
		return 3;
	if (afe_co_send_recv(fd, "x", 1, buf, sizeof(buf)) != -EFAULT)
		return 4;
	return 0;
}

Test(coro, a_shared_stack_coroutine_handing_out_its_stack_gets_efault)
{
#if defined(__SANITIZE_ADDRESS__) || AFE_TEST_CLANG_ASAN
	cr_skip_test("AddressSanitizer builds give shared-stack coroutines private stacks");
#endif
	struct afe_runtime *rt = test_runtime(1);
	int sv[2];
	cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
	struct afe_coro c;
	cr_assert_eq(afe_coro_init(&c, uses_its_stack, (void *)(intptr_t)sv[1], &shared), 0);
	cr_assert_eq(test_block_on(rt, &c), 0);
	close(sv[0]);
	close(sv[1]);
	test_runtime_destroy(rt);
}

Test(coro, a_shared_stack_of_another_size_gets_einval)
{
	struct afe_coro_opts odd = {.shared_stack = true, .stack_size = 64 * 1024};
	struct afe_coro c;
	cr_assert_eq(afe_coro_init(&c, returns_zero, NULL, &odd), -EINVAL);
}

/* ---- sockets --------------------------------------------------------------- */

/* Answers one datagram to its sender, then half-closes a stream. */
static intptr_t udp_echo_once(void *arg)
{
	int *fds = arg;
	char buf[32];
	struct sockaddr_storage from;
	unsigned fromlen = sizeof(from);
	ssize_t n = afe_co_recvfrom(fds[0], buf, sizeof(buf), 0, (struct sockaddr *)&from, &fromlen);
	if (n <= 0 || afe_co_sendto(fds[0], buf, (size_t)n, 0, (struct sockaddr *)&from, fromlen) != n)
		return -1;
	return afe_co_shutdown(fds[1], SHUT_WR);
}

Test(coro, a_coroutine_answers_a_datagram_and_half_closes_a_stream)
{
	struct afe_runtime *rt = test_runtime(1);
	int fds[2] = {afe_udp_bind(NULL, 0), -1}, sv[2];
	cr_assert_geq(fds[0], 0);
	cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
	fds[1] = sv[0];
	struct afe_join_handle h;
	cr_assert_eq(afe_coro_spawn(rt, udp_echo_once, fds, &h, NULL), 0);
	int client = afe_udp_bind(NULL, 0);
	struct sockaddr_storage to;
	socklen_t tolen;
	cr_assert_eq(afe_sockaddr_ip(NULL, (uint16_t)afe_tcp_local_port(fds[0]), &to, &tolen), 0);
	cr_assert_eq(sendto(client, "hey", 3, 0, (struct sockaddr *)&to, tolen), 3);
	char back[8];
	cr_assert_eq(recv(client, back, sizeof(back), 0), 3);
	cr_assert_eq(memcmp(back, "hey", 3), 0);
	cr_assert_eq(recv(sv[1], back, sizeof(back), 0), 0, "half-closed");
	struct afe_join join;
	afe_join_init(&join, &h);
	cr_assert_eq(test_block_on(rt, &join), 0);
	close(client);
	close(fds[0]);
	close(sv[0]);
	close(sv[1]);
	test_runtime_destroy(rt);
}

static atomic_bool yielding;

static intptr_t yield_until_cancelled(void *arg)
{
	(void)arg;
	atomic_store(&yielding, true);
	int err;
	while ((err = afe_co_yield()) == 0)
		;
	return err == -ECANCELED && afe_co_yield() == -ECANCELED ? 7 : -1;
}

Test(coro, a_yielding_coroutine_sees_its_cancel)
{
	struct afe_runtime *rt = test_runtime(2);
	struct afe_coro c;
	afe_coro_init(&c, yield_until_cancelled, NULL, NULL);
	cr_assert_eq(test_spawn_then_cancel(rt, &c, &yielding), 7);
	test_runtime_destroy(rt);
}

/* Awaits a 10 s sleep until *arg fires: -ECANCELED when it does; and a
 * 1 ms sleep under it first, which finishes: its 0. */
static intptr_t sleep_until_fired(void *arg)
{
	struct afe_token *t = arg;
	struct afe_sleep quick, long_one;
	afe_sleep_init(&quick, 1000000u);
	intptr_t first = afe_co_await_until(&quick.base, t);
	if (first != 0)
		return 100 + first;
	afe_sleep_init(&long_one, 10000000000u);
	return afe_co_await_until(&long_one.base, t);
}

Test(coro, await_until_gives_the_result_or_ecanceled_when_the_token_fires, .timeout = 10)
{
	struct afe_runtime *rt = test_runtime(2);
	struct afe_token *t;
	cr_assert_eq(afe_token_new(&t), 0);
	struct afe_join_handle h;
	cr_assert_eq(afe_coro_spawn(rt, sleep_until_fired, t, &h, NULL), 0);
	usleep(20000); /* past the quick sleep, into the long one */
	cr_assert_eq(afe_token_cancel(t), 0);
	struct afe_join j;
	afe_join_init(&j, &h);
	cr_assert_eq(test_block_on(rt, &j), -ECANCELED);
	cr_assert_eq(afe_co_await_until(NULL, t), -EPERM); /* not in a coroutine */
	afe_token_release(t);
	test_runtime_destroy(rt);
}

/* The size of the memory mapping that holds this frame: the
 * coroutine's stack (its guard page is a mapping of its own). */
static intptr_t own_stack_size(void *arg)
{
	(void)arg;
	uintptr_t here = (uintptr_t)__builtin_frame_address(0); /* not a fake stack of ASan */
	FILE *maps = fopen("/proc/self/maps", "r");
	if (!maps)
		return -1;
	unsigned long lo, hi;
	char line[512];
	intptr_t size = -2;
	while (fgets(line, sizeof(line), maps))
		if (sscanf(line, "%lx-%lx", &lo, &hi) == 2 && here >= lo && here < hi)
			size = (intptr_t)(hi - lo);
	fclose(maps);
	return size;
}

/* Spawns own_stack_size on rt with opts and returns what it measured. */
static intptr_t measured_stack(struct afe_runtime *rt, const struct afe_coro_opts *opts)
{
	struct afe_join_handle h;
	cr_assert_eq(afe_coro_spawn(rt, own_stack_size, NULL, &h, opts), 0);
	struct afe_join j;
	afe_join_init(&j, &h);
	return test_block_on(rt, &j);
}

Test(coro, the_runtime_sets_the_stack_size_a_spawn_does_not_name)
{
	struct afe_runtime *rt = runtime_with_stack_size(1, 64 * 1024);
	cr_assert_eq(measured_stack(rt, NULL), 64 * 1024);
	struct afe_coro_opts own = {.stack_size = 32 * 1024};
	cr_assert_eq(measured_stack(rt, &own), 32 * 1024, "the spawn's own size wins");
	struct afe_coro c; /* a coroutine future polled on rt gets rt's size too */
	cr_assert_eq(afe_coro_init(&c, own_stack_size, NULL, NULL), 0);
	cr_assert_eq(test_block_on(rt, &c), 64 * 1024);
	test_runtime_destroy(rt);

	rt = test_runtime(1); /* no size set: the default */
	cr_assert_eq(measured_stack(rt, NULL), (intptr_t)AFE_CORO_STACK_DEFAULT);
	test_runtime_destroy(rt);

	struct afe_runtime_config config;
	afe_runtime_config_default(&config);
	config.coro_stack_size = AFE_CORO_STACK_MIN - 1;
	cr_assert_eq(afe_runtime_create(&rt, &config), -EINVAL);
}
