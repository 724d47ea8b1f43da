/* SPDX-License-Identifier: MIT */
/* The I/O gauges of afe_runtime_metrics: operations in flight and the
 * submission backlog, on whichever backend runs (CMakeLists.txt runs them
 * again on epoll and on a 5.15 kernel's paths). */
#include <stdint.h>
#include <sys/socket.h>
#include <unistd.h>

#include "io_helpers.h"

#define RECEIVES 8

/* A one-byte receive on fd as a task, which counts its first poll in
 * *polled: from then on, its request is queued for the ring thread. */
struct counted_recv {
	struct afe_future base;
	struct afe_io io;
	int fd;
	char byte;
	bool counted;
	atomic_int *polled;
};

static int counted_recv_poll(struct afe_future *f, struct afe_context *cx)
{
	struct counted_recv *self = afe_container_of(f, struct counted_recv, base);
	if (!self->counted) /* here: the buffer is in the task's copy */
		afe_io_recv_init(&self->io, self->fd, &self->byte, 1, 0);
	int state = afe_future_poll(&self->io.base, cx);
	if (!self->counted) {
		self->counted = true;
		atomic_fetch_add(self->polled, 1);
	}
	if (state == AFE_READY) /* else the ring thread may be writing it */
		f->result = self->io.base.result;
	return state;
}

/* Spawns a counted_recv on each of the n fds and waits for their first
 * polls. */
static void spawn_receives(struct afe_runtime *rt, const int *fds, int n,
			   struct afe_join_handle *handles)
{
	atomic_int polled;
	atomic_init(&polled, 0);
	for (int i = 0; i < n; i++) {
		struct counted_recv r = {.fd = fds[i], .polled = &polled};
		afe_future_init(&r.base, counted_recv_poll);
		cr_assert_eq(afe_spawn(rt, &r, &handles[i]), 0);
	}
	for (int ms = 0; atomic_load(&polled) < n; ms++) {
		cr_assert_lt(ms, 10000, "the receives never ran");
		usleep(1000);
	}
}

static struct afe_metrics metrics(struct afe_runtime *rt)
{
	struct afe_metrics m;
	cr_assert_eq(afe_runtime_metrics(rt, &m), 0);
	return m;
}

/* Polls the metrics of rt until the gauges read in_flight and backlog. */
static void wait_for_gauges(struct afe_runtime *rt, uint64_t in_flight, uint64_t backlog)
{
	struct afe_metrics m = metrics(rt);
	for (int ms = 0; m.io_in_flight != in_flight || m.io_backlog != backlog; ms++) {
		cr_assert_lt(ms, 10000, "in flight %ju (want %ju), backlog %ju (want %ju)",
			     (uintmax_t)m.io_in_flight, (uintmax_t)in_flight,
			     (uintmax_t)m.io_backlog, (uintmax_t)backlog);
		usleep(1000);
		m = metrics(rt);
	}
}

static void assert_no_io(struct afe_runtime *rt)
{
	struct afe_metrics m = metrics(rt);
	cr_assert_eq(m.io_in_flight, 0, "in flight: %ju", (uintmax_t)m.io_in_flight);
	cr_assert_eq(m.io_backlog, 0, "backlog: %ju", (uintmax_t)m.io_backlog);
}

static void cancel_all(struct afe_runtime *rt, struct afe_join_handle *handles, int n)
{
	for (int i = 0; i < n; i++) {
		struct afe_cancel c;
		cr_assert_eq(afe_cancel_init(&c, &handles[i]), 0);
		cr_assert_eq(test_block_on(rt, &c), -ECANCELED);
	}
}

Test(io_gauges, no_io_reads_zero)
{
	struct afe_runtime *rt = test_runtime(2);
	assert_no_io(rt);
	struct afe_io io;
	afe_io_nop_init(&io);
	cr_assert_eq(run_io(rt, &io), 0);
	assert_no_io(rt); /* its finish came before its result */
	test_runtime_destroy(rt);
}

Test(io_gauges, waiting_receives_are_in_flight_until_data_comes_or_they_are_cancelled)
{
	struct afe_runtime *rt = test_runtime(2);
	int pairs[RECEIVES][2], fds[RECEIVES];
	for (int i = 0; i < RECEIVES; i++) {
		cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM, 0, pairs[i]), 0);
		fds[i] = pairs[i][0];
	}
	struct afe_join_handle h[RECEIVES];
	spawn_receives(rt, fds, RECEIVES, h);
	wait_for_gauges(rt, RECEIVES, 0);
	for (int i = 0; i < RECEIVES / 2; i++)
		cr_assert_eq(write(pairs[i][1], "x", 1), 1);
	for (int i = 0; i < RECEIVES / 2; i++) {
		struct afe_join j;
		cr_assert_eq(afe_join_init(&j, &h[i]), 0);
		cr_assert_eq(test_block_on(rt, &j), 1);
	}
	/* Exact: the finishes came before the joins' results. */
	struct afe_metrics m = metrics(rt);
	cr_assert_eq(m.io_in_flight, RECEIVES - RECEIVES / 2, "in flight: %ju",
		     (uintmax_t)m.io_in_flight);
	cr_assert_eq(m.io_backlog, 0);
	cancel_all(rt, h + RECEIVES / 2, RECEIVES - RECEIVES / 2);
	assert_no_io(rt);
	for (int i = 0; i < RECEIVES; i++) {
		close(pairs[i][0]);
		close(pairs[i][1]);
	}
	test_runtime_destroy(rt);
}

/*
 * The backlog lasts only part of a ring thread's round: once the queue
 * is full it submits, and goes on. So the test looks from inside the
 * round, with wakers the ring thread calls itself when it finishes an
 * operation: one holds the ring thread while the receives are queued, so
 * that it takes them all in its next round; the other, of a NOP queued
 * before them, reads the gauges as the ring thread finishes the NOP
 * (io_uring: at the first reap, when the submission queue filled; epoll:
 * as it starts the NOP, before the receives).
 */
static atomic_bool ring_held, release_ring, gauges_seen;
static _Atomic uint64_t seen_in_flight, seen_backlog;
static struct afe_runtime *gauged_rt;

static void hold_ring_thread(void *arg, int nth)
{
	(void)arg;
	(void)nth;
	atomic_store(&ring_held, true);
	for (int ms = 0; !atomic_load(&release_ring) && ms < 10000; ms++)
		usleep(1000); /* the test fails on its own timeout */
}

static void see_gauges(void *arg, int nth)
{
	(void)arg;
	(void)nth;
	struct afe_metrics m;
	if (afe_runtime_metrics(gauged_rt, &m) == 0) {
		atomic_store(&seen_in_flight, m.io_in_flight);
		atomic_store(&seen_backlog, m.io_backlog);
	}
	atomic_store(&gauges_seen, true);
}

/* Polls io once with waker, returning the poll's answer. */
struct submit_with {
	struct afe_future base;
	struct afe_io *io;
	const struct afe_waker *waker;
};

static int submit_with_poll(struct afe_future *f, struct afe_context *cx)
{
	struct submit_with *self = afe_container_of(f, struct submit_with, base);
	struct afe_context with = *cx;
	with.waker = self->waker;
	f->result = afe_future_poll(&self->io->base, &with);
	return AFE_READY;
}

static void submit_with(struct afe_runtime *rt, struct afe_io *io, struct hook_waker *hook)
{
	struct submit_with s = {.io = io, .waker = &hook->cw.waker};
	afe_future_init(&s.base, submit_with_poll);
	cr_assert_eq(test_block_on(rt, &s), AFE_PENDING);
}

static void wait_for(atomic_bool *flag, const char *what)
{
	for (int ms = 0; !atomic_load(flag); ms++) {
		cr_assert_lt(ms, 10000, "%s never came", what);
		usleep(1000);
	}
}

Test(io_gauges, receives_beyond_the_submission_queue_wait_in_the_backlog)
{
	struct afe_runtime_config config;
	afe_runtime_config_default(&config);
	config.workers = 2;
	config.ring_entries = 2; /* the smallest the runtime takes */
	cr_assert_eq(afe_runtime_create(&gauged_rt, &config), 0);
	int pairs[RECEIVES][2], fds[RECEIVES];
	for (int i = 0; i < RECEIVES; i++) {
		cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM, 0, pairs[i]), 0);
		fds[i] = pairs[i][0];
	}
	static struct hook_waker holder, seer; /* called after the test's frame, perhaps */
	static struct afe_io held_nop, seen_nop;
	hook_waker_init(&holder, hold_ring_thread, NULL);
	hook_waker_init(&seer, see_gauges, NULL);
	afe_io_nop_init(&held_nop);
	afe_io_nop_init(&seen_nop);
	submit_with(gauged_rt, &held_nop, &holder);
	wait_for(&ring_held, "the ring thread's hold");
	submit_with(gauged_rt, &seen_nop, &seer);
	struct afe_join_handle h[RECEIVES];
	spawn_receives(gauged_rt, fds, RECEIVES, h);
	atomic_store(&release_ring, true);
	wait_for(&gauges_seen, "the NOP's finish");
	cr_assert_eq(atomic_load(&seen_in_flight), RECEIVES, "in flight: %ju",
		     (uintmax_t)atomic_load(&seen_in_flight));
	cr_assert_gt(atomic_load(&seen_backlog), 0, "the receives beyond the queue wait");
	cr_assert_leq(atomic_load(&seen_backlog), RECEIVES);
	wait_for_gauges(gauged_rt, RECEIVES, 0); /* then they go in */
	cancel_all(gauged_rt, h, RECEIVES);
	assert_no_io(gauged_rt);
	for (int i = 0; i < RECEIVES; i++) {
		close(pairs[i][0]);
		close(pairs[i][1]);
	}
	test_runtime_destroy(gauged_rt);
}
