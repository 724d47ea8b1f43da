/* SPDX-License-Identifier: MIT */
/* For the I/O tests: run one prepared operation as a task; a task that
 * notes it ran; temporary files. */
#ifndef AFE_TEST_IO_HELPERS_H
#define AFE_TEST_IO_HELPERS_H

#include <stdatomic.h>
#include <stdlib.h>
#include <sys/prctl.h>
#include <unistd.h>

#include "helpers.h"

/* A future that awaits one operation and returns its result. */
struct one_op {
	struct afe_future base;
	struct afe_io io;
};

static int one_op_poll(struct afe_future *f, struct afe_context *cx)
{
	struct one_op *self = afe_container_of(f, struct one_op, base);
	AFE_ASYNC_BEGIN(f, cx);
	AFE_AWAIT(&self->io.base);
	AFE_RETURN(self->io.base.result);
	AFE_ASYNC_END;
}

/* Wraps a prepared operation (copied: it was not polled yet). */
static inline struct one_op one_op_of(const struct afe_io *io)
{
	struct one_op op = {.io = *io};
	afe_future_init(&op.base, one_op_poll);
	return op;
}

/* Operations a poll ends at once before its task gives way: pool/give_way.h's
 * AFE_POLL_BUDGET. */
#define TEST_POLL_BUDGET 128

/* Notes that it ran (a task queued behind one that should give way). */
struct mark_ran {
	struct afe_future base;
	atomic_bool *ran;
};

static inline int mark_ran_poll(struct afe_future *f, struct afe_context *cx)
{
	(void)cx;
	atomic_store(afe_container_of(f, struct mark_ran, base)->ran, true);
	f->result = 0;
	return AFE_READY;
}

/* Sleeps 20 ms (the ring wakes it: with every worker parked, the ring
 * thread runs it itself), names the thread it woke on, then awaits then
 * and names the thread that polled it when then ended; its result is
 * then's. then lives outside it: afe_block_on runs a copy. */
struct after_nap {
	struct afe_future base;
	struct afe_future *then;
	char *woken_on, *ended_on; /* the test's, 16 bytes each */
	struct afe_sleep nap;
};

static inline int after_nap_poll(struct afe_future *f, struct afe_context *cx)
{
	struct after_nap *self = afe_container_of(f, struct after_nap, base);
	AFE_ASYNC_BEGIN(f, cx);
	afe_sleep_init(&self->nap, 20 * 1000000ull);
	AFE_AWAIT(&self->nap.base);
	prctl(PR_GET_NAME, self->woken_on); /* this thread's name, 16 bytes */
	AFE_AWAIT(self->then);
	prctl(PR_GET_NAME, self->ended_on);
	AFE_RETURN(self->then->result);
	AFE_ASYNC_END;
}

static inline struct after_nap after_nap_make(struct afe_future *then, char *woken_on,
					      char *ended_on)
{
	struct after_nap a = {.then = then, .woken_on = woken_on, .ended_on = ended_on};
	afe_future_init(&a.base, after_nap_poll);
	return a;
}

/* A temporary file, already unlinked: its fd. */
static inline int test_unlinked_file(void)
{
	char path[] = "/tmp/afe-test-XXXXXX";
	int fd = mkstemp(path);
	cr_assert_geq(fd, 0);
	unlink(path);
	return fd;
}

/* Runs the prepared operation io on rt and returns its result. */
#define run_io(rt, io)                                      \
	__extension__({                                     \
		struct one_op test__op = one_op_of(io);     \
		test_block_on((rt), &test__op);             \
	})

#endif /* AFE_TEST_IO_HELPERS_H */
