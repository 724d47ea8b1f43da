/* SPDX-License-Identifier: MIT */
/* The broadcast channel: every receiver sees every item, a lagging one is
 * told how many it missed, close drains then fails, select, and tasks
 * receiving from a sender. */
#include "helpers.h"
#include "huge_malloc_fails.h"

#define POLL(fut, cx) afe_future_poll(&(fut)->base, (cx))

Test(broadcast, init_subscribe_and_bad_input)
{
	struct afe_bcast b;
	struct afe_bcast_rx rx;
	int v = 1, out;
	uint64_t missed;
	cr_assert_eq(afe_bcast_init(NULL, sizeof(int), 4), -EINVAL);
	cr_assert_eq(afe_bcast_init(&b, 0, 4), -EINVAL);
	cr_assert_eq(afe_bcast_init(&b, sizeof(int), 0), -EINVAL);
	cr_assert_eq(afe_bcast_init(&b, SIZE_MAX / 2, 4), -EINVAL, "ring too large");
	cr_assert_eq(afe_bcast_init(&b, sizeof(int), 4), 0);
	cr_assert_eq(afe_bcast_subscribe(NULL, &rx), -EINVAL);
	cr_assert_eq(afe_bcast_subscribe(&b, NULL), -EINVAL);
	cr_assert_eq(afe_bcast_send(NULL, &v), -EINVAL);
	cr_assert_eq(afe_bcast_send(&b, NULL), -EINVAL);
	cr_assert_eq(afe_bcast_try_recv(NULL, &out, &missed), -EINVAL);
	cr_assert_eq(afe_bcast_close(NULL), -EINVAL);
	cr_assert_eq(afe_bcast_destroy(NULL), -EINVAL);
	cr_assert_eq(afe_bcast_send(&b, &v), 0, "nobody listens: fine");
	cr_assert_eq(afe_bcast_subscribe(&b, &rx), 0);
	cr_assert_eq(afe_bcast_try_recv(&rx, NULL, &missed), -EINVAL);
	cr_assert_eq(afe_bcast_try_recv(&rx, &out, &missed), -EAGAIN,
		     "a receiver starts with the next item sent");
	struct counting_waker cw;
	counting_waker_init(&cw);
	struct afe_context cx = counting_context(&cw, false);
	struct afe_bcast_recv r;
	afe_bcast_recv_init(&r, NULL, &out);
	cr_assert_eq(POLL(&r, &cx), AFE_READY);
	cr_assert_eq(r.base.result, -EINVAL);
	afe_bcast_recv_init(&r, &rx, NULL);
	cr_assert_eq(POLL(&r, &cx), AFE_READY);
	cr_assert_eq(r.base.result, -EINVAL);
	struct afe_bcast_rx unsubscribed = {0};
	cr_assert_eq(afe_bcast_try_recv(&unsubscribed, &out, &missed), -EINVAL);
	afe_bcast_recv_init(&r, &unsubscribed, &out);
	cr_assert_eq(POLL(&r, &cx), AFE_READY);
	cr_assert_eq(r.base.result, -EINVAL);
	cr_assert_eq(atomic_load(&cw.refs), 0, "bad input keeps no waker");
	cr_assert_eq(afe_bcast_destroy(&b), 0);
}


Test(broadcast, a_ring_that_cannot_be_allocated_is_enomem)
{
	struct afe_bcast b;
	cr_assert_eq(afe_bcast_init(&b, 1, SIZE_MAX / 2), -ENOMEM);
}

Test(broadcast, every_receiver_sees_every_item)
{
	struct afe_bcast b;
	cr_assert_eq(afe_bcast_init(&b, sizeof(int), 8), 0);
	struct afe_bcast_rx rx[3];
	for (int i = 0; i < 3; i++)
		afe_bcast_subscribe(&b, &rx[i]);
	for (int v = 0; v < 5; v++)
		cr_assert_eq(afe_bcast_send(&b, &v), 0);
	for (int i = 0; i < 3; i++) {
		for (int v = 0; v < 5; v++) {
			int out = -1;
			uint64_t missed = 99;
			cr_assert_eq(afe_bcast_try_recv(&rx[i], &out, &missed), 0);
			cr_assert_eq(out, v, "in order");
			cr_assert_eq(missed, 0);
		}
		int out;
		cr_assert_eq(afe_bcast_try_recv(&rx[i], &out, NULL), -EAGAIN);
	}
	cr_assert_eq(afe_bcast_destroy(&b), 0);
}

Test(broadcast, a_lagging_receiver_is_told_how_many_it_missed)
{
	struct counting_waker cw;
	counting_waker_init(&cw);
	struct afe_context cx = counting_context(&cw, false);
	struct afe_bcast b;
	cr_assert_eq(afe_bcast_init(&b, sizeof(int), 4), 0);
	struct afe_bcast_rx slow, slow2;
	afe_bcast_subscribe(&b, &slow);
	afe_bcast_subscribe(&b, &slow2);
	for (int v = 0; v < 10; v++)
		cr_assert_eq(afe_bcast_send(&b, &v), 0, "never waits, never full");
	int out = -1;
	uint64_t missed = 0;
	cr_assert_eq(afe_bcast_try_recv(&slow, &out, &missed), 0);
	cr_assert_eq(missed, 6, "items 0..5 were overwritten");
	cr_assert_eq(out, 6, "on from the oldest kept");
	cr_assert_eq(afe_bcast_try_recv(&slow, &out, &missed), 0);
	cr_assert_eq(missed, 0);
	cr_assert_eq(out, 7);
	struct afe_bcast_recv r;
	afe_bcast_recv_init(&r, &slow2, &out);
	cr_assert_eq(POLL(&r, &cx), AFE_READY);
	cr_assert_eq(r.base.result, 0);
	cr_assert_eq(r.missed, 6, "the future reports it too");
	cr_assert_eq(out, 6);
	cr_assert_eq(afe_bcast_destroy(&b), 0);
}

Test(broadcast, waiting_receivers_get_the_next_item_and_cancel_cleanly)
{
	struct counting_waker cw[3];
	struct afe_context cx[3];
	struct afe_bcast b;
	cr_assert_eq(afe_bcast_init(&b, sizeof(int), 2), 0);
	struct afe_bcast_rx rx[3];
	struct afe_bcast_recv r[3];
	int out[3] = {-1, -1, -1};
	for (int i = 0; i < 3; i++) {
		counting_waker_init(&cw[i]);
		cx[i] = counting_context(&cw[i], false);
		afe_bcast_subscribe(&b, &rx[i]);
		afe_bcast_recv_init(&r[i], &rx[i], &out[i]);
		cr_assert_eq(POLL(&r[i], &cx[i]), AFE_PENDING);
	}
	cr_assert_eq(afe_bcast_destroy(&b), -EBUSY);
	struct afe_context cancel = counting_context(&cw[2], true);
	cr_assert_eq(POLL(&r[2], &cancel), AFE_READY);
	cr_assert_eq(r[2].base.result, -ECANCELED);
	int v = 42;
	cr_assert_eq(afe_bcast_send(&b, &v), 0);
	for (int i = 0; i < 2; i++) {
		cr_assert_eq(atomic_load(&cw[i].wakes), 1);
		cr_assert_eq(POLL(&r[i], &cx[i]), AFE_READY);
		cr_assert_eq(r[i].base.result, 0);
		cr_assert_eq(out[i], 42);
		cr_assert_eq(r[i].missed, 0);
	}
	cr_assert_eq(out[2], -1, "the cancelled receive took nothing");
	cr_assert_eq(afe_bcast_try_recv(&rx[2], &out[2], NULL), 0, "the item is still its");
	cr_assert_eq(out[2], 42);
	for (int i = 0; i < 3; i++)
		cr_assert_eq(atomic_load(&cw[i].refs), 0);
	cr_assert_eq(afe_bcast_destroy(&b), 0);
}

Test(broadcast, close_lets_receivers_drain_then_fails)
{
	struct counting_waker cw;
	counting_waker_init(&cw);
	struct afe_context cx = counting_context(&cw, false);
	struct afe_bcast b;
	cr_assert_eq(afe_bcast_init(&b, sizeof(int), 4), 0);
	struct afe_bcast_rx waiting, behind;
	afe_bcast_subscribe(&b, &waiting);
	afe_bcast_subscribe(&b, &behind);
	int out = -1, v = 1;
	struct afe_bcast_recv r;
	afe_bcast_recv_init(&r, &waiting, &out);
	cr_assert_eq(POLL(&r, &cx), AFE_PENDING);
	cr_assert_eq(afe_bcast_close(&b), 0);
	cr_assert_eq(afe_bcast_close(&b), -EALREADY);
	cr_assert_eq(atomic_load(&cw.wakes), 1);
	cr_assert_eq(POLL(&r, &cx), AFE_READY);
	cr_assert_eq(r.base.result, -EPIPE);
	cr_assert_eq(afe_bcast_send(&b, &v), -EPIPE);
	cr_assert_eq(afe_bcast_try_recv(&behind, &out, NULL), -EPIPE, "the refused item was not sent");
	cr_assert_eq(afe_bcast_destroy(&b), 0);

	cr_assert_eq(afe_bcast_init(&b, sizeof(int), 4), 0);
	afe_bcast_subscribe(&b, &behind);
	afe_bcast_send(&b, &v);
	afe_bcast_close(&b);
	afe_bcast_recv_init(&r, &behind, &out);
	cr_assert_eq(POLL(&r, &cx), AFE_READY);
	cr_assert_eq(r.base.result, 0, "what was sent before the close");
	cr_assert_eq(out, 1);
	afe_bcast_recv_init(&r, &behind, &out);
	cr_assert_eq(POLL(&r, &cx), AFE_READY);
	cr_assert_eq(r.base.result, -EPIPE);
	cr_assert_eq(afe_bcast_try_recv(&behind, &out, NULL), -EPIPE);
	cr_assert_eq(atomic_load(&cw.refs), 0);
	cr_assert_eq(afe_bcast_destroy(&b), 0);
}

/* A send wakes more receivers than one batch: while it wakes the first
 * batch (lock released), the channel is closed. The receivers the send
 * had not reached yet still get the item, not -EPIPE. */
enum { MANY = 40 };

static void close_on_first_wake(void *arg, int nth)
{
	if (nth == 1)
		cr_assert_eq(afe_bcast_close(arg), 0);
}

Test(broadcast, a_close_during_a_send_still_delivers_the_item)
{
	struct afe_bcast b;
	cr_assert_eq(afe_bcast_init(&b, sizeof(int), 4), 0);
	struct hook_waker first;
	hook_waker_init(&first, close_on_first_wake, &b);
	struct counting_waker cw;
	counting_waker_init(&cw);
	struct afe_bcast_rx rx[MANY];
	struct afe_bcast_recv r[MANY];
	int out[MANY];
	for (int i = 0; i < MANY; i++) {
		struct afe_context cx = counting_context(i ? &cw : &first.cw, false);
		afe_bcast_subscribe(&b, &rx[i]);
		afe_bcast_recv_init(&r[i], &rx[i], &out[i]);
		cr_assert_eq(POLL(&r[i], &cx), AFE_PENDING);
	}
	int v = 5;
	cr_assert_eq(afe_bcast_send(&b, &v), 0);
	for (int i = 0; i < MANY; i++) {
		struct afe_context cx = counting_context(i ? &cw : &first.cw, false);
		cr_assert_eq(POLL(&r[i], &cx), AFE_READY);
		cr_assert_eq(r[i].base.result, 0, "receiver %d got the item", i);
		cr_assert_eq(out[i], 5);
		cr_assert_eq(afe_bcast_try_recv(&rx[i], &out[i], NULL), -EPIPE);
	}
	cr_assert_eq(atomic_load(&cw.refs) + atomic_load(&first.cw.refs), 0);
	cr_assert_eq(afe_bcast_destroy(&b), 0);
}

Test(broadcast, a_losing_receive_took_nothing)
{
	struct counting_waker cw;
	counting_waker_init(&cw);
	struct afe_context cx = counting_context(&cw, false);
	struct afe_bcast b;
	struct afe_notify n;
	cr_assert_eq(afe_bcast_init(&b, sizeof(int), 4), 0);
	afe_notify_init(&n);
	struct afe_bcast_rx rx;
	afe_bcast_subscribe(&b, &rx);
	int out = -1, v = 3;
	struct afe_bcast_recv r;
	struct afe_notified nd;
	afe_bcast_recv_init(&r, &rx, &out);
	afe_notified_init(&nd, &n);
	struct afe_future *branches[] = {&r.base, &nd.base};
	struct afe_select s;
	cr_assert_eq(afe_select_init(&s, branches, 2), 0);
	cr_assert_eq(POLL(&s, &cx), AFE_PENDING);
	cr_assert_eq(afe_notify_one(&n), 1);
	cr_assert_eq(afe_bcast_send(&b, &v), 0);
	cr_assert_eq(out, -1, "nothing copied to the loser");
	cr_assert_eq(POLL(&s, &cx), AFE_READY);
	cr_assert_eq(s.base.result, 1);
	cr_assert_eq(r.base.result, -ECANCELED);
	cr_assert_eq(afe_bcast_try_recv(&rx, &out, NULL), 0, "the item is still there");
	cr_assert_eq(out, 3);
	cr_assert_eq(atomic_load(&cw.refs), 0);
	cr_assert_eq(afe_bcast_destroy(&b), 0);
	cr_assert_eq(afe_notify_destroy(&n), 0);
}

/* Receiver tasks sum what they receive plus what they missed: each
 * accounts for every item sent, in order. */
enum { ITEMS = 2000 };

struct listener {
	struct afe_future base;
	struct afe_bcast_rx rx;
	int item, expect;
	struct afe_bcast_recv recv;
};

static int listener_poll(struct afe_future *f, struct afe_context *cx)
{
	struct listener *self = afe_container_of(f, struct listener, base);
	AFE_ASYNC_BEGIN(f, cx);
	for (;;) {
		afe_bcast_recv_init(&self->recv, &self->rx, &self->item);
		AFE_AWAIT(&self->recv.base);
		if (self->recv.base.result == -EPIPE)
			break;
		self->expect += (int)self->recv.missed;
		if (self->recv.base.result != 0 || self->item != self->expect)
			AFE_RETURN(-1);
		self->expect++;
	}
	AFE_RETURN(self->expect);
	AFE_ASYNC_END;
}

struct caster {
	struct afe_future base;
	struct afe_bcast *b;
	int i;
};

static int caster_poll(struct afe_future *f, struct afe_context *cx)
{
	struct caster *self = afe_container_of(f, struct caster, base);
	AFE_ASYNC_BEGIN(f, cx);
	for (self->i = 0; self->i < ITEMS; self->i++) {
		if (afe_bcast_send(self->b, &self->i) != 0)
			AFE_RETURN(-1);
		if (self->i % 3 == 0)
			AFE_YIELD();
	}
	AFE_RETURN(afe_bcast_close(self->b));
	AFE_ASYNC_END;
}

Test(broadcast, tasks_account_for_every_item)
{
	struct afe_runtime *rt = test_runtime(2);
	struct afe_bcast b;
	cr_assert_eq(afe_bcast_init(&b, sizeof(int), 8), 0);
	enum { LISTENERS = 6 };
	struct afe_join_handle h[LISTENERS];
	for (int i = 0; i < LISTENERS; i++) {
		struct listener l = {.expect = 0};
		afe_bcast_subscribe(&b, &l.rx);
		afe_future_init(&l.base, listener_poll);
		cr_assert_eq(afe_spawn(rt, &l, &h[i]), 0);
	}
	struct caster c = {.b = &b};
	afe_future_init(&c.base, caster_poll);
	cr_assert_eq(test_block_on(rt, &c), 0);
	for (int i = 0; i < LISTENERS; i++) {
		struct afe_join j;
		afe_join_init(&j, &h[i]);
		cr_assert_eq(test_block_on(rt, &j), ITEMS, "listener %d", i);
	}
	cr_assert_eq(afe_bcast_destroy(&b), 0);
	test_runtime_destroy(rt);
}
