/* SPDX-License-Identifier: MIT */
/* The receive stream: bytes whole and in order through a slow reader
 * (the kernel runs out of buffers and the stream re-arms), the end of the
 * stream after the last bytes, errors of bad fds and sockets, bad sizes,
 * and a stop or a cancel while a receive waits. Run on io_uring (with
 * multishot receive where the kernel has it), under the 5.15 mask and on
 * epoll (one receive per await). */
#include <afe/coro.h>
#include <afe/recv_stream.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "helpers.h"

enum { TOTAL = 1 << 20, BUFFERS = 4, BUFFER_SIZE = 1024 };

static unsigned char pattern[TOTAL];

static void make_pattern(void)
{
	for (size_t i = 0; i < TOTAL; i++)
		pattern[i] = (unsigned char)(i * 131 + (i >> 11));
}

/* Writes the pattern to fd in chunks of varying sizes, then closes it;
 * stops early when the reader's end closes. */
static void *write_pattern(void *arg)
{
	int fd = (int)(intptr_t)arg;
	size_t at = 0, chunk = 1;
	while (at < TOTAL) {
		size_t len = chunk < TOTAL - at ? chunk : TOTAL - at;
		ssize_t n = send(fd, pattern + at, len, MSG_NOSIGNAL);
		if (n <= 0)
			break;
		at += (size_t)n;
		chunk = chunk * 7 % 5003 + 1;
	}
	close(fd);
	return NULL;
}

struct reading {
	int fd;
	size_t got;
	bool mismatch;
	intptr_t end, after_end;
	unsigned parts;
	const char *first_data;
	bool other_buffers; /* some bytes came in a buffer but the first */
};

/* Reads everything, sleeping a millisecond every 16 parts so that the
 * writer fills every buffer meanwhile. */
static intptr_t read_all(void *arg)
{
	struct reading *r = arg;
	struct afe_recv_stream s;
	if (afe_recv_stream_init(&s, r->fd, BUFFERS, BUFFER_SIZE) < 0)
		return -1;
	intptr_t n;
	while ((n = afe_co_await(afe_recv_stream_next(&s))) > 0) {
		if (n > BUFFER_SIZE || r->got + (size_t)n > TOTAL ||
		    memcmp(s.data, pattern + r->got, (size_t)n) != 0)
			r->mismatch = true;
		if (!r->first_data)
			r->first_data = s.data;
		r->other_buffers |= s.data != r->first_data;
		r->got += (size_t)n;
		if (++r->parts % 16 == 0 && afe_co_sleep(1000000) < 0)
			return -1;
	}
	r->end = n;
	r->after_end = afe_co_await(afe_recv_stream_next(&s));
	if (afe_co_await(afe_recv_stream_stop(&s)) != 0)
		return -1;
	afe_recv_stream_destroy(&s);
	return 0;
}

Test(recv_stream, a_slow_reader_gets_every_byte_in_order_then_the_end)
{
	make_pattern();
	struct afe_runtime *rt = test_runtime(2);
	int sv[2];
	cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
	pthread_t writer;
	cr_assert_eq(pthread_create(&writer, NULL, write_pattern, (void *)(intptr_t)sv[1]), 0);
	struct reading r = {.fd = sv[0]};
	intptr_t ran = test_block_on_coro(rt, read_all, &r);
	close(sv[0]); /* a writer still writing (a reader that failed) stops */
	pthread_join(writer, NULL);
	cr_assert_eq(ran, 0);
	cr_assert_eq(r.got, (size_t)TOTAL);
	cr_assert_not(r.mismatch, "bytes whole and in order");
	cr_assert_eq(r.end, 0, "the peer closed");
	cr_assert_eq(r.after_end, 0, "and stays closed");
	/* With multishot receive the kernel picks among the buffers; one
	 * receive per await uses the first only. */
	bool multishot = afe_runtime_uring_features(rt) & AFE_URING_RECV_MULTISHOT;
	cr_assert_eq(r.other_buffers, multishot);
	test_runtime_destroy(rt);
}

Test(recv_stream, the_bytes_sent_before_a_close_come_before_its_end)
{
	make_pattern();
	struct afe_runtime *rt = test_runtime(1);
	int sv[2];
	cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
	cr_assert_eq(write(sv[1], pattern, 100), 100);
	cr_assert_eq(write(sv[1], pattern + 100, 50), 50);
	close(sv[1]);
	struct reading r = {.fd = sv[0]};
	cr_assert_eq(test_block_on_coro(rt, read_all, &r), 0);
	cr_assert_eq(r.got, 150);
	cr_assert_not(r.mismatch);
	cr_assert_eq(r.end, 0);
	cr_assert_eq(r.after_end, 0);
	close(sv[0]);
	test_runtime_destroy(rt);
}

Test(recv_stream, a_bad_fd_or_a_pipe_ends_the_stream_with_its_error)
{
	struct afe_runtime *rt = test_runtime(1);
	struct reading bad = {.fd = -1};
	cr_assert_eq(test_block_on_coro(rt, read_all, &bad), 0);
	cr_assert_eq(bad.end, -EBADF);
	cr_assert_eq(bad.after_end, -EBADF, "the error stays");
	int p[2];
	cr_assert_eq(pipe(p), 0);
	struct reading piped = {.fd = p[0]};
	cr_assert_eq(test_block_on_coro(rt, read_all, &piped), 0);
	cr_assert_eq(piped.end, -ENOTSOCK);
	close(p[0]);
	close(p[1]);
	test_runtime_destroy(rt);
}

/* A stream that init refused gives its error to an await; stop and
 * destroy are harmless on it. */
static intptr_t await_refused(void *arg)
{
	unsigned *shape = arg;
	struct afe_recv_stream s;
	int err = afe_recv_stream_init(&s, 0, shape[0], shape[1]);
	intptr_t got = afe_co_await(afe_recv_stream_next(&s));
	intptr_t stopped = afe_co_await(afe_recv_stream_stop(&s));
	afe_recv_stream_destroy(&s);
	return err == -EINVAL && got == -EINVAL && stopped == 0 ? 1 : 0;
}

Test(recv_stream, bad_counts_and_sizes_are_refused)
{
	struct afe_runtime *rt = test_runtime(1);
	static unsigned shapes[][2] = {{0, 1024}, {3, 1024}, {65536, 1024}, {4, 0},
				       {4, (1u << 20) + 1}};
	for (size_t i = 0; i < sizeof(shapes) / sizeof(shapes[0]); i++) {
		cr_assert_eq(test_block_on_coro(rt, await_refused, shapes[i]), 1, "shape %zu", i);
	}
	test_runtime_destroy(rt);
}

/* The limits themselves are fine, for both kinds of stream; one past
 * them, a null stream, and the datagram stream's bad shapes are not. */
Test(recv_stream, the_extreme_counts_and_sizes_are_taken_and_a_null_stream_is_einval)
{
	static const unsigned fine[][2] = {{1, 1}, {32768, 16}, {1, 1u << 20}};
	for (size_t i = 0; i < sizeof(fine) / sizeof(fine[0]); i++) {
		struct afe_recv_stream s;
		cr_assert_eq(afe_recv_stream_init(&s, 0, fine[i][0], fine[i][1]), 0, "shape %zu", i);
		afe_recv_stream_destroy(&s);
		cr_assert_eq(afe_recv_stream_init_datagrams(&s, 0, fine[i][0], fine[i][1]), 0,
			     "datagrams, shape %zu", i);
		afe_recv_stream_destroy(&s);
	}
	static const unsigned bad[][2] = {{0, 64}, {6, 64}, {65536, 64}, {4, 0}};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		struct afe_recv_stream s;
		cr_assert_eq(afe_recv_stream_init_datagrams(&s, 0, bad[i][0], bad[i][1]), -EINVAL,
			     "shape %zu", i);
		cr_assert_eq(s.memory, NULL);
		afe_recv_stream_destroy(&s);
	}
	cr_assert_eq(afe_recv_stream_init(NULL, 0, 2, 64), -EINVAL);
	cr_assert_eq(afe_recv_stream_init_datagrams(NULL, 0, 2, 64), -EINVAL);
}

/* Waits for bytes that never come, until cancelled or stopped. */
struct waiting {
	int fd;
	atomic_bool started;
	intptr_t got;
	bool stop_instead; /* stop through afe_recv_stream_stop from a token */
	struct afe_token *token;
};

static intptr_t wait_for_bytes(void *arg)
{
	struct waiting *w = arg;
	struct afe_recv_stream s;
	if (afe_recv_stream_init(&s, w->fd, 2, 64) < 0)
		return -1;
	atomic_store(&w->started, true);
	if (w->stop_instead) {
		w->got = afe_co_await_until(afe_recv_stream_next(&s), w->token);
		if (afe_co_await(afe_recv_stream_stop(&s)) != 0)
			return -1;
	} else {
		w->got = afe_co_await(afe_recv_stream_next(&s));
	}
	/* Cancelled, the await stopped the stream; stopped, later awaits end. */
	intptr_t later = w->stop_instead ? afe_co_await(afe_recv_stream_next(&s)) : -ECANCELED;
	afe_recv_stream_destroy(&s);
	return later == -ECANCELED ? 0 : -2;
}

Test(recv_stream, cancelling_a_waiting_await_stops_the_stream)
{
	struct afe_runtime *rt = test_runtime(2);
	int sv[2];
	cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
	struct waiting w = {.fd = sv[0]};
	struct afe_join_handle h;
	cr_assert_eq(afe_coro_spawn(rt, wait_for_bytes, &w, &h, NULL), 0);
	while (!atomic_load(&w.started))
		sched_yield();
	usleep(20000); /* its receive in the ring */
	struct afe_cancel c;
	cr_assert_eq(afe_cancel_init(&c, &h), 0);
	test_block_on(rt, &c);
	cr_assert_eq(w.got, -ECANCELED);
	close(sv[0]);
	close(sv[1]);
	test_runtime_destroy(rt);
}

Test(recv_stream, a_stop_withdraws_a_waiting_receive)
{
	struct afe_runtime *rt = test_runtime(2);
	int sv[2];
	cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
	struct afe_token *token;
	cr_assert_eq(afe_token_new(&token), 0);
	struct waiting w = {.fd = sv[0], .stop_instead = true, .token = token};
	struct afe_join_handle h;
	cr_assert_eq(afe_coro_spawn(rt, wait_for_bytes, &w, &h, NULL), 0);
	while (!atomic_load(&w.started))
		sched_yield();
	usleep(20000);
	afe_token_cancel(token);
	struct afe_join join;
	afe_join_init(&join, &h);
	cr_assert_eq(test_block_on(rt, &join), 0);
	cr_assert_eq(w.got, -ECANCELED);
	afe_token_release(token);
	close(sv[0]);
	close(sv[1]);
	test_runtime_destroy(rt);
}
