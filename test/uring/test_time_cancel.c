/* SPDX-License-Identifier: MIT */
/* Sleeps, per-operation timeouts, cancelling operations in flight, a
 * hundred thousand sleepers, and a tiny ring under thousands of
 * operations. */
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "io_helpers.h"

#define MS 1000000u

Test(time, sleep_and_sleep_until_wait_at_least_that_long)
{
	struct afe_runtime *rt = test_runtime(2);
	struct afe_sleep nap;
	uint64_t start = afe_now_ns();
	afe_sleep_init(&nap, 20 * MS);
	cr_assert_eq(test_block_on(rt, &nap), 0);
	cr_assert_geq(afe_now_ns() - start, 20 * MS);
	start = afe_now_ns();
	afe_sleep_until_init(&nap, start + 15 * MS);
	cr_assert_eq(test_block_on(rt, &nap), 0);
	cr_assert_geq(afe_now_ns(), start + 15 * MS);
	afe_sleep_until_init(&nap, 0); /* in the past: at once */
	cr_assert_eq(test_block_on(rt, &nap), 0);
	afe_sleep_init(&nap, 0);
	cr_assert_eq(test_block_on(rt, &nap), 0);
	test_runtime_destroy(rt);
}

Test(time, timeout_fires_then_the_socket_still_works)
{
	struct afe_runtime *rt = test_runtime(2);
	int sv[2];
	cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
	char buf[8] = {0};
	struct afe_io io;
	afe_io_recv_init(&io, sv[1], buf, sizeof(buf), 0);
	cr_assert_eq(afe_io_set_timeout(&io, 10 * MS), 0);
	uint64_t start = afe_now_ns();
	cr_assert_eq(run_io(rt, &io), -ETIMEDOUT);
	cr_assert_geq(afe_now_ns() - start, 10 * MS);
	/* Not firing: the data is there before the limit. */
	cr_assert_eq(write(sv[0], "abc", 3), 3);
	afe_io_recv_init(&io, sv[1], buf, sizeof(buf), 0);
	cr_assert_eq(afe_io_set_timeout(&io, 5000 * MS), 0);
	cr_assert_eq(run_io(rt, &io), 3);
	cr_assert_eq(memcmp(buf, "abc", 3), 0);
	close(sv[0]);
	close(sv[1]);
	test_runtime_destroy(rt);
}

/* Cancelling a task parked in recv cancels the recv through the ring. */
Test(cancel, cancelled_recv_completes_and_the_socket_is_reusable)
{
	struct afe_runtime *rt = test_runtime(2);
	int sv[2];
	cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
	static char buf[8];
	struct afe_io io;
	afe_io_recv_init(&io, sv[1], buf, sizeof(buf), 0);
	struct one_op op = one_op_of(&io);
	struct afe_join_handle h;
	cr_assert_eq(afe_spawn(rt, &op, &h), 0);
	usleep(20000); /* let it reach the kernel; the test holds either way */
	struct afe_cancel c;
	cr_assert_eq(afe_cancel_init(&c, &h), 0);
	cr_assert_eq(test_block_on(rt, &c), -ECANCELED);
	cr_assert_eq(write(sv[0], "xyz", 3), 3);
	afe_io_recv_init(&io, sv[1], buf, sizeof(buf), 0);
	cr_assert_eq(run_io(rt, &io), 3, "the cancelled recv took no data");
	cr_assert_eq(memcmp(buf, "xyz", 3), 0);
	close(sv[0]);
	close(sv[1]);
	test_runtime_destroy(rt);
}

/* Destroying a runtime cancels what is still in flight. */
Test(cancel, destroy_cancels_operations_in_flight)
{
	struct afe_runtime *rt = test_runtime(2);
	int sv[2];
	cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
	char byte;
	struct afe_io io;
	afe_io_recv_init(&io, sv[0], &byte, 1, 0);
	struct one_op op = one_op_of(&io);
	struct afe_sleep nap;
	afe_sleep_init(&nap, 3600000 * (uint64_t)MS);
	for (int i = 0; i < 100; i++) {
		cr_assert_eq(afe_spawn(rt, &op, NULL), 0);
		cr_assert_eq(afe_spawn(rt, &nap, NULL), 0);
	}
	usleep(20000);
	uint64_t start = afe_now_ns();
	test_runtime_destroy(rt); /* no task left: each saw -ECANCELED */
	cr_assert_lt(afe_now_ns() - start, 5000 * (uint64_t)MS);
	close(sv[0]);
	close(sv[1]);
}

#define SLEEPERS 100000

struct sleepers {
	struct afe_future base;
	long i, sum;
	struct afe_join_handle *handles;
	struct afe_join join;
};

static int sleepers_poll(struct afe_future *f, struct afe_context *cx)
{
	struct sleepers *s = afe_container_of(f, struct sleepers, base);
	AFE_ASYNC_BEGIN(f, cx);
	for (s->i = 0; s->i < SLEEPERS; s->i++) {
		struct afe_sleep nap;
		afe_sleep_init(&nap, 10 * MS);
		if (afe_spawn(NULL, &nap, &s->handles[s->i]) < 0)
			AFE_RETURN(-1);
	}
	for (s->i = 0; s->i < SLEEPERS; s->i++) {
		afe_join_init(&s->join, &s->handles[s->i]);
		AFE_AWAIT(&s->join.base);
		s->sum += s->join.base.result == 0;
	}
	AFE_RETURN(s->sum);
	AFE_ASYNC_END;
}

Test(time, a_hundred_thousand_sleepers, .timeout = 300)
{
	struct afe_runtime *rt = test_runtime(2);
	struct sleepers s = {.handles = calloc(SLEEPERS, sizeof(struct afe_join_handle))};
	afe_future_init(&s.base, sleepers_poll);
	cr_assert_eq(test_block_on(rt, &s), SLEEPERS, "every sleep returned 0");
	free(s.handles);
	test_runtime_destroy(rt);
}

/* A four-entry ring, ten thousand operations at once: none is lost. */
Test(ring, full_submission_queue_applies_back_pressure, .timeout = 300)
{
	struct afe_runtime_config config;
	afe_runtime_config_default(&config);
	config.workers = 2;
	config.ring_entries = 4;
	struct afe_runtime *rt = NULL;
	cr_assert_eq(afe_runtime_create(&rt, &config), 0);
	enum { OPS = 10000 };
	static struct afe_join_handle handles[OPS];
	for (int i = 0; i < OPS; i++) {
		struct afe_io io;
		afe_io_nop_init(&io);
		struct one_op op = one_op_of(&io);
		cr_assert_eq(afe_spawn(rt, &op, &handles[i]), 0);
	}
	for (int i = 0; i < OPS; i++) {
		struct afe_join j;
		afe_join_init(&j, &handles[i]);
		cr_assert_eq(test_block_on(rt, &j), 0);
	}
	test_runtime_destroy(rt);
}

/* afe_timeout over a future that is not a ring operation. */
struct limited {
	struct afe_future base;
	struct afe_oneshot *never;
	struct afe_oneshot_recv recv;
	struct afe_timeout t;
	struct afe_ready quick;
};

static int limited_poll(struct afe_future *f, struct afe_context *cx)
{
	struct limited *self = afe_container_of(f, struct limited, base);
	AFE_ASYNC_BEGIN(f, cx);
	afe_oneshot_recv_init(&self->recv, self->never);
	afe_timeout_init(&self->t, &self->recv.base, 10 * MS);
	AFE_AWAIT(&self->t.base);
	if (self->t.base.result != -ETIMEDOUT)
		AFE_RETURN(-1000);
	afe_ready_init(&self->quick, 5);
	afe_timeout_init(&self->t, &self->quick.base, 1000 * MS);
	AFE_AWAIT(&self->t.base);
	AFE_RETURN(self->t.base.result);
	AFE_ASYNC_END;
}

Test(time, timeout_wrapper_limits_any_future)
{
	struct afe_runtime *rt = test_runtime(2);
	static struct afe_oneshot never;
	afe_oneshot_init(&never);
	struct limited l = {.never = &never};
	afe_future_init(&l.base, limited_poll);
	uint64_t start = afe_now_ns();
	cr_assert_eq(test_block_on(rt, &l), 5, "-ETIMEDOUT, then a quick future keeps its result");
	cr_assert_geq(afe_now_ns() - start, 10 * MS);
	struct afe_timeout bad;
	afe_timeout_init(&bad, NULL, MS);
	cr_assert_eq(test_block_on(rt, &bad), -EINVAL);
	test_runtime_destroy(rt);
}

/* Polls on one pipe that all complete at once: more completions than the
 * completion queue holds. The kernel keeps the excess in its overflow list
 * (io_uring_enter then says -EBUSY); the ring thread must reap every one.
 * Once with the default queue (16384 entries; the kernel may post in
 * batches), once with the smallest (AFE_MIN_CQ_ENTRIES), which overflows
 * for certain. */
static void fire_pollers_at_once(unsigned cq_entries, int pollers)
{
	struct afe_runtime_config config;
	afe_runtime_config_default(&config);
	config.workers = 2;
	config.ring_entries = 8;
	config.cq_entries = cq_entries;
	struct afe_runtime *rt = NULL;
	cr_assert_eq(afe_runtime_create(&rt, &config), 0);
	struct afe_join_handle *handles = calloc((size_t)pollers, sizeof(*handles));
	int fds[2];
	cr_assert_eq(pipe(fds), 0);
	for (int i = 0; i < pollers; i++) {
		struct afe_io io;
		afe_io_poll_init(&io, fds[0], POLLIN);
		struct one_op op = one_op_of(&io);
		cr_assert_eq(afe_spawn(rt, &op, &handles[i]), 0);
	}
	/* Let the polls reach the kernel, then fire them all. */
	struct afe_sleep nap;
	afe_sleep_init(&nap, 200 * MS);
	test_block_on(rt, &nap);
	cr_assert_eq(write(fds[1], "x", 1), 1);
	for (int i = 0; i < pollers; i++) {
		struct afe_join j;
		afe_join_init(&j, &handles[i]);
		cr_assert(test_block_on(rt, &j) & POLLIN, "poll %d", i);
	}
	close(fds[0]);
	close(fds[1]);
	free(handles);
	test_runtime_destroy(rt);
}

Test(ring, completion_queue_overflow_loses_nothing, .timeout = 300)
{
	fire_pollers_at_once(0, 20000);
	fire_pollers_at_once(AFE_MIN_CQ_ENTRIES, 2000);
}

Test(ring, completion_queue_sizes_out_of_range_are_refused)
{
	struct afe_runtime_config config;
	afe_runtime_config_default(&config);
	struct afe_runtime *rt = NULL;
	config.cq_entries = 128; /* below the 256 submission entries */
	cr_assert_eq(afe_runtime_create(&rt, &config), -EINVAL);
	config.cq_entries = 65536 * 2;
	cr_assert_eq(afe_runtime_create(&rt, &config), -EINVAL);
	cr_assert_null(rt);
}

/* Keeps timing out a recv that never gets data: a stream of cancels, some
 * of which reach the ring thread while the runtime is being destroyed. */
struct recv_retimer {
	struct afe_future base;
	int fd, i;
	char byte;
	struct afe_io recv;
	struct afe_timeout limited;
};

static int recv_retimer_poll(struct afe_future *f, struct afe_context *cx)
{
	struct recv_retimer *self = afe_container_of(f, struct recv_retimer, base);
	AFE_ASYNC_BEGIN(f, cx);
	for (;;) {
		afe_io_recv_init(&self->recv, self->fd, &self->byte, 1, 0);
		afe_timeout_init(&self->limited, &self->recv.base, (uint64_t)(self->i++ % 3) * MS);
		AFE_AWAIT(&self->limited.base);
		if (self->limited.base.result != -ETIMEDOUT)
			AFE_RETURN(self->limited.base.result);
	}
	AFE_ASYNC_END;
}

/* Destroy while cancels and submissions stream through a four-entry ring,
 * at varying moments (400 rounds: the race window is narrow):
 * every operation is finished exactly once (ASan catches a second finish
 * of freed memory), and a full submission queue at stop does not hang. */
Test(cancel, destroy_races_cancels_through_a_tiny_ring, .timeout = 300)
{
	for (int round = 0; round < 400; round++) {
		struct afe_runtime_config config;
		afe_runtime_config_default(&config);
		config.workers = 2;
		config.ring_entries = 4;
		struct afe_runtime *rt = NULL;
		cr_assert_eq(afe_runtime_create(&rt, &config), 0);
		int sv[2];
		cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
		for (int i = 0; i < 64; i++) {
			struct recv_retimer t = {.fd = sv[0], .i = i};
			afe_future_init(&t.base, recv_retimer_poll);
			cr_assert_eq(afe_spawn(rt, &t, NULL), 0);
		}
		usleep((useconds_t)(round % 7) * 300);
		test_runtime_destroy(rt);
		close(sv[0]);
		close(sv[1]);
	}
}
