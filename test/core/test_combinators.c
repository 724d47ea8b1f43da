/* SPDX-License-Identifier: MIT */
/* ready, pending, yield_now, join_all and select. */
#include "helpers.h"

Test(combinators, ready_pending_and_yield_now_by_hand)
{
	struct counting_waker cw;
	counting_waker_init(&cw);
	struct afe_context cx = counting_context(&cw, false);
	struct afe_ready r;
	afe_ready_init(&r, -7);
	cr_assert_eq(afe_future_poll(&r.base, &cx), AFE_READY);
	cr_assert_eq(r.base.result, -7);

	struct afe_pending p;
	afe_pending_init(&p);
	cr_assert_eq(afe_future_poll(&p.base, &cx), AFE_PENDING);
	cr_assert_eq(afe_future_poll(&p.base, &cx), AFE_PENDING);
	struct afe_context cancel = counting_context(&cw, true);
	cr_assert_eq(afe_future_poll(&p.base, &cancel), AFE_READY);
	cr_assert_eq(p.base.result, -ECANCELED);

	struct afe_yield_now y;
	afe_yield_now_init(&y);
	cr_assert_eq(afe_future_poll(&y.base, &cx), AFE_PENDING);
	cr_assert_eq(atomic_load(&cw.wakes), 1, "yield wakes its own task");
	cr_assert_eq(afe_future_poll(&y.base, &cx), AFE_READY);
	cr_assert_eq(y.base.result, 0);
}

/* join_all of yielders of different lengths, on a runtime. */
struct joiner {
	struct afe_future base;
	struct yielder y[4];
	struct afe_future *list[4];
	struct afe_join_all all;
	intptr_t sum;
};

static int joiner_poll(struct afe_future *f, struct afe_context *cx)
{
	struct joiner *self = afe_container_of(f, struct joiner, base);
	AFE_ASYNC_BEGIN(f, cx);
	for (int i = 0; i < 4; i++) {
		self->y[i] = yielder_make(i * 3, 10 + i);
		self->list[i] = &self->y[i].base;
	}
	afe_join_all_init(&self->all, self->list, 4);
	AFE_AWAIT(&self->all.base);
	for (int i = 0; i < 4; i++)
		self->sum += self->list[i]->result;
	AFE_RETURN(self->sum + self->all.base.result);
	AFE_ASYNC_END;
}

Test(combinators, join_all_waits_for_every_child)
{
	struct afe_runtime *rt = test_runtime(2);
	struct joiner j = {0};
	afe_future_init(&j.base, joiner_poll);
	cr_assert_eq(test_block_on(rt, &j), 10 + 11 + 12 + 13);
	test_runtime_destroy(rt);
}

Test(combinators, join_all_of_nothing_is_ready_and_null_is_einval)
{
	struct counting_waker cw;
	counting_waker_init(&cw);
	struct afe_context cx = counting_context(&cw, false);
	struct afe_join_all all;
	cr_assert_eq(afe_join_all_init(&all, NULL, 0), 0);
	cr_assert_eq(afe_future_poll(&all.base, &cx), AFE_READY);
	cr_assert_eq(all.base.result, 0);
	cr_assert_eq(afe_join_all_init(&all, NULL, 3), -EINVAL);
	cr_assert_eq(afe_future_poll(&all.base, &cx), AFE_READY);
	cr_assert_eq(all.base.result, -EINVAL);
}

Test(combinators, join_all_cancel_cancels_children)
{
	struct counting_waker cw;
	counting_waker_init(&cw);
	struct afe_context cx = counting_context(&cw, false);
	struct afe_pending p[2];
	afe_pending_init(&p[0]);
	afe_pending_init(&p[1]);
	struct afe_future *list[] = {&p[0].base, &p[1].base};
	struct afe_join_all all;
	afe_join_all_init(&all, list, 2);
	cr_assert_eq(afe_future_poll(&all.base, &cx), AFE_PENDING);
	cx.cancel = true;
	cr_assert_eq(afe_future_poll(&all.base, &cx), AFE_READY);
	cr_assert_eq(all.base.result, -ECANCELED);
	cr_assert_eq(p[0].base.result, -ECANCELED);
	cr_assert_eq(p[1].base.result, -ECANCELED);
}

Test(combinators, select_first_ready_wins_ties_in_argument_order)
{
	struct counting_waker cw;
	counting_waker_init(&cw);
	struct afe_context cx = counting_context(&cw, false);
	struct afe_pending never;
	struct afe_ready a, b;
	afe_pending_init(&never);
	afe_ready_init(&a, 1);
	afe_ready_init(&b, 2);
	struct afe_future *list[] = {&never.base, &a.base, &b.base};
	struct afe_select s;
	cr_assert_eq(afe_select_init(&s, list, 3), 0);
	cr_assert_eq(afe_future_poll(&s.base, &cx), AFE_READY);
	cr_assert_eq(s.base.result, 1, "a and b are both ready: a comes first");
	cr_assert_eq(a.base.result, 1);
	cr_assert_eq(never.base.result, -ECANCELED, "the loser was cancelled");
	cr_assert(afe_future_is_done(&b.base), "b was dropped too (polled with cancel)");
}

/* A loser that needs several polls to wind down keeps select pending. */
struct slow_loser {
	struct afe_future base;
	int winding;
};
static int slow_loser_poll(struct afe_future *f, struct afe_context *cx)
{
	struct slow_loser *l = afe_container_of(f, struct slow_loser, base);
	if (!cx->cancel)
		return AFE_PENDING;
	if (l->winding-- > 0)
		return AFE_PENDING;
	f->result = -ECANCELED;
	return AFE_READY;
}

Test(combinators, select_waits_until_losers_wound_down)
{
	struct counting_waker cw;
	counting_waker_init(&cw);
	struct afe_context cx = counting_context(&cw, false);
	struct slow_loser l = {.winding = 2};
	afe_future_init(&l.base, slow_loser_poll);
	struct yielder y = yielder_make(1, 5);
	struct afe_future *list[] = {&l.base, &y.base};
	struct afe_select s;
	afe_select_init(&s, list, 2);
	cr_assert_eq(afe_future_poll(&s.base, &cx), AFE_PENDING);
	cr_assert_eq(afe_future_poll(&s.base, &cx), AFE_PENDING, "y won; l winds down");
	cr_assert_eq(s.winner, 1);
	cr_assert_eq(afe_future_poll(&s.base, &cx), AFE_PENDING);
	cr_assert_eq(afe_future_poll(&s.base, &cx), AFE_READY);
	cr_assert_eq(s.base.result, 1);
	cr_assert_eq(y.base.result, 5);
	cr_assert_eq(l.base.result, -ECANCELED);
}

Test(combinators, select_cancelled_before_a_winner_and_bad_input)
{
	struct counting_waker cw;
	counting_waker_init(&cw);
	struct afe_context cx = counting_context(&cw, true);
	struct afe_pending p;
	afe_pending_init(&p);
	struct afe_future *list[] = {&p.base};
	struct afe_select s;
	afe_select_init(&s, list, 1);
	cr_assert_eq(afe_future_poll(&s.base, &cx), AFE_READY);
	cr_assert_eq(s.base.result, -ECANCELED);
	cr_assert_eq(p.base.result, -ECANCELED);
	cr_assert_eq(afe_select_init(&s, list, 0), -EINVAL);
	cr_assert_eq(afe_future_poll(&s.base, &cx), AFE_READY);
	cr_assert_eq(s.base.result, -EINVAL);
	cr_assert_eq(afe_select_init(&s, NULL, 2), -EINVAL);
}

/* The convention of future.h: a future made from bad arguments gives the
 * error at its first poll (and the inits that can tell return it too). */
Test(combinators, futures_made_from_bad_arguments_give_the_error_at_the_first_poll)
{
	struct counting_waker cw;
	counting_waker_init(&cw);
	struct afe_context cx = counting_context(&cw, false);

	struct afe_join_all all;
	cr_assert_eq(afe_join_all_init(&all, NULL, 2), -EINVAL);
	cr_assert_eq(afe_future_poll(&all.base, &cx), AFE_READY);
	cr_assert_eq(all.base.result, -EINVAL);

	struct afe_select sel;
	cr_assert_eq(afe_select_init(&sel, NULL, 0), -EINVAL);
	cr_assert_eq(afe_future_poll(&sel.base, &cx), AFE_READY);
	cr_assert_eq(sel.base.result, -EINVAL);

	struct afe_join_handle empty = {0};
	struct afe_join join;
	cr_assert_eq(afe_join_init(&join, &empty), -EINVAL);
	cr_assert_eq(afe_future_poll(&join.base, &cx), AFE_READY);
	cr_assert_eq(join.base.result, -EINVAL);
	struct afe_cancel cancel;
	cr_assert_eq(afe_cancel_init(&cancel, NULL), -EINVAL);
	cr_assert_eq(afe_future_poll(&cancel.base, &cx), AFE_READY);
	cr_assert_eq(cancel.base.result, -EINVAL);

	struct afe_timeout limited;
	afe_timeout_init(&limited, NULL, 1000);
	cr_assert_eq(afe_future_poll(&limited.base, &cx), AFE_READY);
	cr_assert_eq(limited.base.result, -EINVAL);

	struct afe_token_wait wait;
	afe_token_wait_init(&wait, NULL);
	cr_assert_eq(afe_future_poll(&wait.base, &cx), AFE_READY);
	cr_assert_eq(wait.base.result, -EINVAL);

	struct afe_token_until until;
	afe_token_until_init(&until, NULL, &all.base);
	cr_assert_eq(afe_future_poll(&until.base, &cx), AFE_READY);
	cr_assert_eq(until.base.result, -EINVAL);

	struct afe_coro co;
	cr_assert_eq(afe_coro_init(&co, NULL, NULL, NULL), -EINVAL);
	cr_assert_eq(afe_future_poll(&co.base, &cx), AFE_READY);
	cr_assert_eq(co.base.result, -EINVAL);

	struct afe_tcp_server server;
	afe_tcp_server_init(&server, NULL);
	cr_assert_eq(afe_future_poll(&server.base, &cx), AFE_READY);
	cr_assert_eq(server.base.result, -EINVAL);
}
