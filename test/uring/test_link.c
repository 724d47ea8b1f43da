/* SPDX-License-Identifier: MIT */
/* Linked pairs (afe_io_link): both results, a failed first cancels the
 * second, cancelling the pair mid-way, and the arguments refused. */
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "helpers.h"

#define MS 1000000u

/* Sends `out`, then receives into `in`, as one linked pair; optionally
 * under a time limit. Returns the first's result (or the limit's). */
struct send_then_recv {
	struct afe_future base;
	int send_fd, recv_fd;
	uint64_t limit_ns;
	char out[8], in[8];
	struct afe_io send, recv;
	struct afe_timeout limited;
};

static int send_then_recv_poll(struct afe_future *f, struct afe_context *cx)
{
	struct send_then_recv *self = afe_container_of(f, struct send_then_recv, base);
	AFE_ASYNC_BEGIN(f, cx);
	afe_io_send_init(&self->send, self->send_fd, self->out, 4, MSG_WAITALL | MSG_NOSIGNAL);
	afe_io_recv_init(&self->recv, self->recv_fd, self->in, sizeof(self->in), 0);
	if (afe_io_link(&self->send, &self->recv) < 0)
		AFE_RETURN(-1000);
	if (!self->limit_ns) {
		AFE_AWAIT(&self->send.base);
		AFE_RETURN(self->send.base.result);
	}
	afe_timeout_init(&self->limited, &self->send.base, self->limit_ns);
	AFE_AWAIT(&self->limited.base);
	AFE_RETURN(self->limited.base.result);
	AFE_ASYNC_END;
}

static struct send_then_recv pair_of(int send_fd, int recv_fd, uint64_t limit_ns)
{
	struct send_then_recv p = {.send_fd = send_fd, .recv_fd = recv_fd, .limit_ns = limit_ns};
	memcpy(p.out, "ping", 4);
	afe_future_init(&p.base, send_then_recv_poll);
	return p;
}

/* The result of the task's pair: run it and keep the future's final
 * state (afe_block_on copies the future, so the task reports both). */
struct pair_results {
	intptr_t first, second;
	char in[8];
};

struct report {
	struct afe_future base;
	struct send_then_recv pair;
	struct pair_results *out;
};

static int report_poll(struct afe_future *f, struct afe_context *cx)
{
	struct report *self = afe_container_of(f, struct report, base);
	AFE_ASYNC_BEGIN(f, cx);
	AFE_AWAIT(&self->pair.base);
	self->out->first = self->pair.base.result;
	self->out->second = self->pair.recv.base.result;
	memcpy(self->out->in, self->pair.in, sizeof(self->out->in));
	AFE_ASYNC_END;
}

static struct pair_results run_pair(struct afe_runtime *rt, struct send_then_recv pair)
{
	struct pair_results out = {0};
	struct report r = {.pair = pair, .out = &out};
	afe_future_init(&r.base, report_poll);
	test_block_on(rt, &r);
	return out;
}

Test(link, both_results_come_back_with_one_await)
{
	struct afe_runtime *rt = test_runtime(2);
	int sv[2];
	cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
	cr_assert_eq(write(sv[1], "pong", 4), 4); /* the reply, already waiting */
	struct pair_results r = run_pair(rt, pair_of(sv[0], sv[0], 0));
	cr_assert_eq(r.first, 4);
	cr_assert_eq(r.second, 4);
	cr_assert_eq(memcmp(r.in, "pong", 4), 0);
	char got[8];
	cr_assert_eq(read(sv[1], got, sizeof(got)), 4);
	cr_assert_eq(memcmp(got, "ping", 4), 0);
	close(sv[0]);
	close(sv[1]);
	test_runtime_destroy(rt);
}

Test(link, a_failed_first_cancels_the_second)
{
	struct afe_runtime *rt = test_runtime(2);
	int sv[2];
	cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
	struct pair_results r = run_pair(rt, pair_of(-1, sv[0], 0));
	cr_assert_eq(r.first, -EBADF);
	cr_assert_eq(r.second, -ECANCELED);
	close(sv[0]);
	close(sv[1]);
	test_runtime_destroy(rt);
}

Test(link, cancelling_the_pair_cancels_the_waiting_second_and_the_socket_stays_usable)
{
	struct afe_runtime *rt = test_runtime(2);
	int sv[2];
	cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
	/* The send goes through; the recv waits for a reply that never comes. */
	struct pair_results r = run_pair(rt, pair_of(sv[0], sv[0], 20 * MS));
	cr_assert_eq(r.first, -ETIMEDOUT);
	cr_assert_eq(r.second, -ECANCELED);
	char got[8];
	cr_assert_eq(read(sv[1], got, sizeof(got)), 4, "the send took effect");
	cr_assert_eq(write(sv[1], "pong", 4), 4);
	r = run_pair(rt, pair_of(sv[0], sv[0], 0));
	cr_assert_eq(r.first, 4);
	cr_assert_eq(r.second, 4, "nothing was lost to the cancelled recv");
	close(sv[0]);
	close(sv[1]);
	test_runtime_destroy(rt);
}

Test(link, bad_pairs_are_refused)
{
	struct afe_io a, b, c;
	afe_io_nop_init(&a);
	afe_io_nop_init(&b);
	afe_io_nop_init(&c);
	cr_assert_eq(afe_io_link(NULL, &b), -EINVAL);
	cr_assert_eq(afe_io_link(&a, NULL), -EINVAL);
	cr_assert_eq(afe_io_link(&a, &a), -EINVAL);
	cr_assert_eq(afe_io_set_timeout(&c, MS), 0);
	cr_assert_eq(afe_io_link(&a, &c), -EINVAL, "a timeout and a link do not mix");
	cr_assert_eq(afe_io_link(&c, &a), -EINVAL);
	cr_assert_eq(afe_io_link(&a, &b), 0);
	cr_assert_eq(afe_io_link(&a, &b), -EINVAL, "already linked");
	cr_assert_eq(afe_io_set_timeout(&a, MS), -EINVAL);
	cr_assert_eq(afe_io_set_timeout(&b, MS), -EINVAL);
}
