/* SPDX-License-Identifier: MIT */
/* Select over channel operations, locks, notifications, a cancel token, a
 * oneshot and a sleep: one branch happens, the others are withdrawn with
 * no effect; the default branch. */
#include "helpers.h"

#define POLL(fut, cx) afe_future_poll(&(fut)->base, (cx))

Test(select, only_the_first_of_two_receives_takes_an_item)
{
	struct counting_waker cw;
	counting_waker_init(&cw);
	struct afe_context cx = counting_context(&cw, false);
	struct afe_chan c1, c2;
	afe_chan_init(&c1, sizeof(int), 4);
	afe_chan_init(&c2, sizeof(int), 4);
	int o1 = 0, o2 = 0, v1 = 1, v2 = 2;
	struct afe_chan_recv r1, r2;
	afe_chan_recv_init(&r1, &c1, &o1);
	afe_chan_recv_init(&r2, &c2, &o2);
	struct afe_future *branches[] = {&r1.base, &r2.base};
	struct afe_select s;
	cr_assert_eq(afe_select_init(&s, branches, 2), 0);
	cr_assert_eq(POLL(&s, &cx), AFE_PENDING);
	/* Both senders come before the select runs again: the first wins the
	 * race, the second finds it decided and buffers its item. */
	cr_assert_eq(afe_chan_try_send(&c2, &v2), 0);
	cr_assert_eq(afe_chan_try_send(&c1, &v1), 0);
	cr_assert_eq(afe_chan_len(&c1), 1, "the loser took nothing");
	cr_assert_eq(afe_chan_len(&c2), 0);
	cr_assert_eq(POLL(&s, &cx), AFE_READY);
	cr_assert_eq(s.base.result, 1);
	cr_assert_eq(o2, 2);
	cr_assert_eq(r1.base.result, -ECANCELED);
	cr_assert_eq(atomic_load(&cw.refs), 0);
	cr_assert_eq(afe_chan_destroy(&c1), 0, "the loser is unlinked");
	cr_assert_eq(afe_chan_destroy(&c2), 0);
}

Test(select, a_losing_send_delivered_nothing)
{
	struct counting_waker cw;
	counting_waker_init(&cw);
	struct afe_context cx = counting_context(&cw, false);
	struct afe_chan out, in;
	afe_chan_init(&out, sizeof(int), 0); /* rendezvous: the send waits */
	afe_chan_init(&in, sizeof(int), 1);
	int item = 7, got = 0, v = 3;
	struct afe_chan_send send;
	struct afe_chan_recv recv;
	afe_chan_send_init(&send, &out, &item);
	afe_chan_recv_init(&recv, &in, &got);
	struct afe_future *branches[] = {&send.base, &recv.base};
	struct afe_select s;
	afe_select_init(&s, branches, 2);
	cr_assert_eq(POLL(&s, &cx), AFE_PENDING);
	cr_assert_eq(afe_chan_try_send(&in, &v), 0);
	int taken = 0;
	cr_assert_eq(afe_chan_try_recv(&out, &taken), -EAGAIN,
		     "the send lost the race: a receiver finds nothing");
	cr_assert_eq(POLL(&s, &cx), AFE_READY);
	cr_assert_eq(s.base.result, 1);
	cr_assert_eq(got, 3);
	cr_assert_eq(send.base.result, -ECANCELED);
	cr_assert_eq(afe_chan_destroy(&out), 0);
	cr_assert_eq(afe_chan_destroy(&in), 0);
}

Test(select, ready_at_once_ties_go_to_the_first_argument)
{
	struct counting_waker cw;
	counting_waker_init(&cw);
	struct afe_context cx = counting_context(&cw, false);
	struct afe_chan c1, c2;
	afe_chan_init(&c1, sizeof(int), 4);
	afe_chan_init(&c2, sizeof(int), 4);
	int v = 1, o1 = 0, o2 = 0;
	afe_chan_try_send(&c1, &v);
	afe_chan_try_send(&c2, &v);
	struct afe_chan_recv r1, r2;
	afe_chan_recv_init(&r1, &c1, &o1);
	afe_chan_recv_init(&r2, &c2, &o2);
	struct afe_future *branches[] = {&r2.base, &r1.base};
	struct afe_select s;
	afe_select_init(&s, branches, 2);
	cr_assert_eq(POLL(&s, &cx), AFE_READY);
	cr_assert_eq(s.base.result, 0);
	cr_assert_eq(afe_chan_len(&c2), 0);
	cr_assert_eq(afe_chan_len(&c1), 1, "the second branch was withdrawn untouched");
	afe_chan_destroy(&c1);
	afe_chan_destroy(&c2);
}

Test(select, the_default_branch_when_nothing_is_ready)
{
	struct counting_waker cw;
	counting_waker_init(&cw);
	struct afe_context cx = counting_context(&cw, false);
	struct afe_chan ch;
	afe_chan_init(&ch, sizeof(int), 1);
	int out = 0, v = 4;
	struct afe_chan_recv r;
	afe_chan_recv_init(&r, &ch, &out);
	struct afe_future *branches[] = {&r.base};
	struct afe_select s;
	cr_assert_eq(afe_select_init_default(&s, branches, 1), 0);
	cr_assert_eq(POLL(&s, &cx), AFE_READY);
	cr_assert_eq(s.base.result, -EAGAIN);
	cr_assert_eq(s.winner, -1);
	cr_assert_eq(afe_chan_destroy(&ch), 0, "the receive was withdrawn");

	afe_chan_init(&ch, sizeof(int), 1);
	afe_chan_try_send(&ch, &v);
	afe_chan_recv_init(&r, &ch, &out);
	afe_select_init_default(&s, branches, 1);
	cr_assert_eq(POLL(&s, &cx), AFE_READY);
	cr_assert_eq(s.base.result, 0, "ready: no default");
	cr_assert_eq(out, 4);

	cr_assert_eq(afe_select_init_default(&s, NULL, 0), 0, "just a default");
	cr_assert_eq(POLL(&s, &cx), AFE_READY);
	cr_assert_eq(s.base.result, -EAGAIN);
	cr_assert_eq(afe_select_init_default(&s, NULL, 1), -EINVAL);
	cr_assert_eq(atomic_load(&cw.refs), 0);
	afe_chan_destroy(&ch);
}

Test(select, locks_permits_and_notifications_are_not_lost_by_a_losing_branch)
{
	struct counting_waker cw;
	counting_waker_init(&cw);
	struct afe_context cx = counting_context(&cw, false);
	struct afe_mutex m;
	struct afe_semaphore sem;
	struct afe_notify n;
	struct afe_cancel_token token;
	afe_mutex_init(&m);
	afe_sem_init(&sem, 0);
	afe_notify_init(&n);
	afe_cancel_token_init(&token);
	afe_mutex_try_lock(&m);
	struct afe_mutex_lock lock;
	struct afe_sem_acquire acq;
	struct afe_notified notified;
	struct afe_cancel_token_wait stop;
	afe_mutex_lock_init(&lock, &m);
	afe_sem_acquire_init(&acq, &sem, 1);
	afe_notified_init(&notified, &n);
	afe_cancel_token_wait_init(&stop, &token);
	struct afe_future *branches[] = {&lock.base, &acq.base, &notified.base, &stop.base};
	struct afe_select s;
	afe_select_init(&s, branches, 4);
	cr_assert_eq(POLL(&s, &cx), AFE_PENDING);
	cr_assert_eq(afe_cancel_token_cancel(&token), 0);
	cr_assert_eq(afe_notify_one(&n), 0, "the notified branch lost: a permit is left");
	cr_assert_eq(afe_sem_release(&sem, 1), 0);
	cr_assert_eq(afe_sem_available(&sem), 1, "the permit was not taken");
	cr_assert_eq(afe_mutex_unlock(&m), 0);
	cr_assert_eq(afe_mutex_try_lock(&m), 0, "the lock was not handed to the loser");
	cr_assert_eq(POLL(&s, &cx), AFE_READY);
	cr_assert_eq(s.base.result, 3, "the token won");
	cr_assert_eq(atomic_load(&cw.refs), 0);
	cr_assert_eq(afe_mutex_unlock(&m), 0);
	cr_assert_eq(afe_mutex_destroy(&m), 0);
	cr_assert_eq(afe_sem_destroy(&sem), 0);
	cr_assert_eq(afe_notify_destroy(&n), 0);
	cr_assert_eq(afe_cancel_token_destroy(&token), 0);
}

Test(select, a_withdrawn_oneshot_receive_keeps_the_value)
{
	struct counting_waker cw;
	counting_waker_init(&cw);
	struct afe_context cx = counting_context(&cw, false);
	struct afe_oneshot o;
	afe_oneshot_init(&o);
	struct afe_notify n;
	afe_notify_init(&n);
	struct afe_oneshot_recv r;
	struct afe_notified w;
	afe_oneshot_recv_init(&r, &o);
	afe_notified_init(&w, &n);
	struct afe_future *branches[] = {&r.base, &w.base};
	struct afe_select s;
	afe_select_init(&s, branches, 2);
	cr_assert_eq(POLL(&s, &cx), AFE_PENDING);
	afe_notify_one(&n);
	cr_assert_eq(afe_oneshot_send(&o, 55), 0);
	cr_assert_eq(POLL(&s, &cx), AFE_READY);
	cr_assert_eq(s.base.result, 1);
	afe_oneshot_recv_init(&r, &o);
	cr_assert_eq(POLL(&r, &cx), AFE_READY, "the value is still there");
	cr_assert_eq(r.base.result, 55);
	cr_assert_eq(afe_notify_destroy(&n), 0);
}

Test(select, cancelled_after_a_branch_won_reports_the_winner)
{
	struct counting_waker cw;
	counting_waker_init(&cw);
	struct afe_context cx = counting_context(&cw, false);
	struct afe_context cancel = counting_context(&cw, true);
	struct afe_chan ch;
	afe_chan_init(&ch, sizeof(int), 1);
	int out = 0, v = 8;
	struct afe_chan_recv r;
	struct afe_pending never;
	afe_chan_recv_init(&r, &ch, &out);
	afe_pending_init(&never);
	struct afe_future *branches[] = {&never.base, &r.base};
	struct afe_select s;
	afe_select_init(&s, branches, 2);
	cr_assert_eq(POLL(&s, &cx), AFE_PENDING);
	afe_chan_try_send(&ch, &v);
	cr_assert_eq(POLL(&s, &cancel), AFE_READY);
	cr_assert_eq(s.base.result, 1, "the item was received: not lost in the cancel");
	cr_assert_eq(out, 8);

	/* A lock handed over, then the select cancelled: passed on. */
	struct afe_mutex m;
	afe_mutex_init(&m);
	afe_mutex_try_lock(&m);
	struct afe_mutex_lock lock;
	afe_mutex_lock_init(&lock, &m);
	afe_pending_init(&never);
	struct afe_future *b2[] = {&lock.base, &never.base};
	afe_select_init(&s, b2, 2);
	cr_assert_eq(POLL(&s, &cx), AFE_PENDING);
	afe_mutex_unlock(&m);
	cr_assert_eq(POLL(&s, &cancel), AFE_READY);
	cr_assert_eq(s.base.result, -ECANCELED);
	cr_assert_eq(afe_mutex_try_lock(&m), 0, "the lock is free again");
	afe_mutex_unlock(&m);
	cr_assert_eq(afe_mutex_destroy(&m), 0);
	cr_assert_eq(afe_chan_destroy(&ch), 0);
}

/* In a task: a receive on a channel nobody sends on, raced against a sleep
 * and a cancel token; then against a sender that shows up. */
struct racer {
	struct afe_future base;
	struct afe_chan *ch;
	struct afe_cancel_token *token;
	uint64_t sleep_ns;
	int out;
	struct afe_chan_recv recv;
	struct afe_sleep sleep;
	struct afe_cancel_token_wait stop;
	struct afe_future *branches[3];
	struct afe_select sel;
};

static int racer_poll(struct afe_future *f, struct afe_context *cx)
{
	struct racer *self = afe_container_of(f, struct racer, base);
	AFE_ASYNC_BEGIN(f, cx);
	afe_chan_recv_init(&self->recv, self->ch, &self->out);
	afe_sleep_init(&self->sleep, self->sleep_ns);
	afe_cancel_token_wait_init(&self->stop, self->token);
	self->branches[0] = &self->recv.base;
	self->branches[1] = &self->sleep.base;
	self->branches[2] = &self->stop.base;
	afe_select_init(&self->sel, self->branches, 3);
	AFE_AWAIT(&self->sel.base);
	AFE_RETURN(self->sel.base.result);
	AFE_ASYNC_END;
}

Test(select, a_sleep_or_a_token_against_a_silent_channel)
{
	struct afe_runtime *rt = test_runtime(2);
	struct afe_chan ch;
	afe_chan_init(&ch, sizeof(int), 0);
	struct afe_cancel_token token;
	afe_cancel_token_init(&token);

	struct racer r = {.ch = &ch, .token = &token, .sleep_ns = 5 * 1000 * 1000};
	afe_future_init(&r.base, racer_poll);
	cr_assert_eq(test_block_on(rt, &r), 1, "the sleep won");

	r = (struct racer){.ch = &ch, .token = &token, .sleep_ns = 60ull * 1000 * 1000 * 1000};
	afe_future_init(&r.base, racer_poll);
	struct afe_join_handle h;
	cr_assert_eq(afe_spawn(rt, &r, &h), 0);
	afe_cancel_token_cancel(&token);
	struct afe_join j;
	afe_join_init(&j, &h);
	cr_assert_eq(test_block_on(rt, &j), 2, "the token won");

	afe_cancel_token_init(&token);
	r = (struct racer){.ch = &ch, .token = &token, .sleep_ns = 60ull * 1000 * 1000 * 1000};
	afe_future_init(&r.base, racer_poll);
	cr_assert_eq(afe_spawn(rt, &r, &h), 0);
	int v = 77;
	struct afe_chan_send send;
	afe_chan_send_init(&send, &ch, &v);
	cr_assert_eq(test_block_on(rt, &send), 0, "handed to the racer");
	afe_join_init(&j, &h);
	cr_assert_eq(test_block_on(rt, &j), 0, "the receive won");
	cr_assert_eq(afe_chan_destroy(&ch), 0);
	cr_assert_eq(afe_cancel_token_destroy(&token), 0);
	test_runtime_destroy(rt);
}
