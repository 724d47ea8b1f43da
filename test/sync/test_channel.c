/* SPDX-License-Identifier: MIT */
/* Channels: bounded, unbounded and rendezvous; waiting, closing, handles,
 * cancellation and bad input, mostly polled by hand with a counting waker. */
#include "helpers.h"

#define POLL(fut, cx) afe_future_poll(&(fut)->base, (cx))

Test(channel, bounded_buffers_in_order_and_try_ops_do_not_wait)
{
	struct afe_chan ch;
	cr_assert_eq(afe_chan_init(&ch, sizeof(int), 2), 0);
	int a = 1, b = 2, c = 3, out = 0;
	cr_assert_eq(afe_chan_try_recv(&ch, &out), -EAGAIN);
	cr_assert_eq(afe_chan_try_send(&ch, &a), 0);
	cr_assert_eq(afe_chan_try_send(&ch, &b), 0);
	cr_assert_eq(afe_chan_try_send(&ch, &c), -EAGAIN, "full");
	cr_assert_eq(afe_chan_len(&ch), 2);
	cr_assert_eq(afe_chan_try_recv(&ch, &out), 0);
	cr_assert_eq(out, 1);
	cr_assert_eq(afe_chan_try_send(&ch, &c), 0, "the ring wraps");
	cr_assert_eq(afe_chan_try_recv(&ch, &out), 0);
	cr_assert_eq(out, 2);
	cr_assert_eq(afe_chan_try_recv(&ch, &out), 0);
	cr_assert_eq(out, 3);
	cr_assert_eq(afe_chan_try_recv(&ch, &out), -EAGAIN);
	cr_assert_not(afe_chan_is_closed(&ch));
	cr_assert_eq(afe_chan_destroy(&ch), 0);
}

Test(channel, a_full_channel_makes_send_wait_and_a_receive_refills_it)
{
	struct counting_waker cw;
	counting_waker_init(&cw);
	struct afe_context cx = counting_context(&cw, false);
	struct afe_chan ch;
	afe_chan_init(&ch, sizeof(int), 1);
	int a = 10, b = 20, out = 0;
	struct afe_chan_send s;
	afe_chan_send_init(&s, &ch, &a);
	cr_assert_eq(POLL(&s, &cx), AFE_READY);
	cr_assert_eq(s.base.result, 0);
	afe_chan_send_init(&s, &ch, &b);
	cr_assert_eq(POLL(&s, &cx), AFE_PENDING, "capacity 1 is full");
	cr_assert_eq(POLL(&s, &cx), AFE_PENDING, "a repeated poll keeps waiting");
	cr_assert_eq(atomic_load(&cw.refs), 1, "one waker kept");
	cr_assert_eq(afe_chan_destroy(&ch), -EBUSY, "a sender waits");
	cr_assert_eq(afe_chan_try_recv(&ch, &out), 0);
	cr_assert_eq(out, 10);
	cr_assert_eq(atomic_load(&cw.wakes), 1, "the waiting sender was woken");
	cr_assert_eq(afe_chan_len(&ch), 1, "its item took the freed slot");
	cr_assert_eq(POLL(&s, &cx), AFE_READY);
	cr_assert_eq(s.base.result, 0);
	cr_assert_eq(afe_chan_try_recv(&ch, &out), 0);
	cr_assert_eq(out, 20);
	cr_assert_eq(atomic_load(&cw.refs), 0);
	cr_assert_eq(afe_chan_destroy(&ch), 0);
}

Test(channel, a_waiting_receiver_gets_the_item_directly)
{
	struct counting_waker cw;
	counting_waker_init(&cw);
	struct afe_context cx = counting_context(&cw, false);
	struct afe_chan ch;
	afe_chan_init(&ch, sizeof(long), 4);
	long out = 0, v = 42;
	struct afe_chan_recv r;
	afe_chan_recv_init(&r, &ch, &out);
	cr_assert_eq(POLL(&r, &cx), AFE_PENDING);
	cr_assert_eq(afe_chan_try_send(&ch, &v), 0);
	cr_assert_eq(afe_chan_len(&ch), 0, "handed over, not buffered");
	cr_assert_eq(out, 42);
	cr_assert_eq(atomic_load(&cw.wakes), 1);
	cr_assert_eq(POLL(&r, &cx), AFE_READY);
	cr_assert_eq(r.base.result, 0);
	cr_assert_eq(afe_chan_destroy(&ch), 0);
}

Test(channel, rendezvous_hands_over_only_to_a_waiting_party)
{
	struct counting_waker cw;
	counting_waker_init(&cw);
	struct afe_context cx = counting_context(&cw, false);
	struct afe_chan ch;
	cr_assert_eq(afe_chan_init(&ch, sizeof(int), 0), 0);
	int v = 5, out = 0;
	cr_assert_eq(afe_chan_try_send(&ch, &v), -EAGAIN, "nobody receives");
	struct afe_chan_send s;
	afe_chan_send_init(&s, &ch, &v);
	cr_assert_eq(POLL(&s, &cx), AFE_PENDING);
	cr_assert_eq(afe_chan_try_recv(&ch, &out), 0);
	cr_assert_eq(out, 5);
	cr_assert_eq(POLL(&s, &cx), AFE_READY);
	cr_assert_eq(s.base.result, 0);
	cr_assert_eq(afe_chan_try_recv(&ch, &out), -EAGAIN, "nobody sends");

	struct afe_chan_recv r;
	afe_chan_recv_init(&r, &ch, &out);
	cr_assert_eq(POLL(&r, &cx), AFE_PENDING);
	v = 6;
	cr_assert_eq(afe_chan_try_send(&ch, &v), 0);
	cr_assert_eq(POLL(&r, &cx), AFE_READY);
	cr_assert_eq(out, 6);
	cr_assert_eq(afe_chan_len(&ch), 0);
	cr_assert_eq(afe_chan_destroy(&ch), 0);
}

Test(channel, unbounded_grows_and_keeps_order)
{
	struct afe_chan ch;
	cr_assert_eq(afe_chan_init(&ch, sizeof(int), AFE_CHAN_UNBOUNDED), 0);
	int next_in = 0, next_out = 0, out;
	/* Interleaved, so growth happens while the ring is wrapped. */
	for (int round = 0; round < 100; round++) {
		for (int i = 0; i < 30; i++, next_in++)
			cr_assert_eq(afe_chan_try_send(&ch, &next_in), 0);
		for (int i = 0; i < 17; i++, next_out++) {
			cr_assert_eq(afe_chan_try_recv(&ch, &out), 0);
			cr_assert_eq(out, next_out);
		}
	}
	cr_assert_eq(afe_chan_len(&ch), (size_t)(next_in - next_out));
	while (afe_chan_try_recv(&ch, &out) == 0)
		cr_assert_eq(out, next_out++);
	cr_assert_eq(next_out, next_in);
	cr_assert_eq(afe_chan_destroy(&ch), 0);
}

Test(channel, close_wakes_every_waiter_and_receivers_drain_first)
{
	struct counting_waker cw;
	counting_waker_init(&cw);
	struct afe_context cx = counting_context(&cw, false);
	struct afe_chan full, empty;
	afe_chan_init(&full, sizeof(int), 1);
	afe_chan_init(&empty, sizeof(int), 1);
	int v = 1, out = 0;
	cr_assert_eq(afe_chan_try_send(&full, &v), 0);
	struct afe_chan_send s[3];
	struct afe_chan_recv r[3];
	for (int i = 0; i < 3; i++) {
		afe_chan_send_init(&s[i], &full, &v);
		afe_chan_recv_init(&r[i], &empty, &out);
		cr_assert_eq(POLL(&s[i], &cx), AFE_PENDING);
		cr_assert_eq(POLL(&r[i], &cx), AFE_PENDING);
	}
	cr_assert_eq(afe_chan_close(&full), 0);
	cr_assert_eq(afe_chan_close(&empty), 0);
	cr_assert_eq(afe_chan_close(&empty), -EALREADY);
	cr_assert_eq(atomic_load(&cw.wakes), 6, "every waiter woken");
	cr_assert_eq(afe_chan_destroy(&empty), 0, "no waiter is linked any more");
	for (int i = 0; i < 3; i++) {
		cr_assert_eq(POLL(&s[i], &cx), AFE_READY);
		cr_assert_eq(s[i].base.result, -EPIPE, "not delivered");
		/* The channel was destroyed: a finished wait does not touch it. */
		cr_assert_eq(POLL(&r[i], &cx), AFE_READY);
		cr_assert_eq(r[i].base.result, -EPIPE);
	}
	cr_assert_eq(afe_chan_try_send(&full, &v), -EPIPE);
	afe_chan_send_init(&s[0], &full, &v);
	cr_assert_eq(POLL(&s[0], &cx), AFE_READY);
	cr_assert_eq(s[0].base.result, -EPIPE, "send on a closed channel fails");
	afe_chan_recv_init(&r[0], &full, &out);
	cr_assert_eq(POLL(&r[0], &cx), AFE_READY);
	cr_assert_eq(r[0].base.result, 0, "what was buffered is still received");
	cr_assert_eq(out, 1);
	afe_chan_recv_init(&r[0], &full, &out);
	cr_assert_eq(POLL(&r[0], &cx), AFE_READY);
	cr_assert_eq(r[0].base.result, -EPIPE, "then closed");
	cr_assert_eq(afe_chan_try_recv(&full, &out), -EPIPE);
	cr_assert(afe_chan_is_closed(&full));
	cr_assert_eq(atomic_load(&cw.refs), 0);
	cr_assert_eq(afe_chan_destroy(&full), 0);
}

/* close completes waiting senders in batches, releasing the lock between
 * them; a receive in such a window takes what is buffered but delivers no
 * waiting sender's item: every one of them fails with -EPIPE. */
struct closing {
	struct afe_chan ch;
	int got, got_result;
};

static void closing_on_wake(void *arg, int nth)
{
	struct closing *c = arg;
	if (nth == 1) /* meanwhile, on another thread: */
		c->got_result = afe_chan_try_recv(&c->ch, &c->got);
}

Test(channel, close_fails_every_waiting_sender_even_between_batches)
{
	enum { N = 17 }; /* one more than a wake batch */
	struct closing c = {.got = 0, .got_result = 1};
	struct hook_waker hw;
	hook_waker_init(&hw, closing_on_wake, &c);
	struct afe_context cx = counting_context(&hw.cw, false);
	afe_chan_init(&c.ch, sizeof(int), 1);
	int buffered = -1, items[N];
	cr_assert_eq(afe_chan_try_send(&c.ch, &buffered), 0);
	struct afe_chan_send s[N];
	for (int i = 0; i < N; i++) {
		items[i] = i;
		afe_chan_send_init(&s[i], &c.ch, &items[i]);
		cr_assert_eq(POLL(&s[i], &cx), AFE_PENDING);
	}
	cr_assert_eq(afe_chan_close(&c.ch), 0);
	cr_assert_eq(c.got_result, 0, "the buffered item is still received");
	cr_assert_eq(c.got, -1);
	for (int i = 0; i < N; i++) {
		cr_assert_eq(POLL(&s[i], &cx), AFE_READY);
		cr_assert_eq(s[i].base.result, -EPIPE, "sender %d", i);
	}
	int x = 0;
	cr_assert_eq(afe_chan_try_recv(&c.ch, &x), -EPIPE, "no sender's item was delivered");
	cr_assert_eq(atomic_load(&hw.cw.refs), 0);
	cr_assert_eq(afe_chan_destroy(&c.ch), 0);
}

Test(channel, a_cancelled_wait_unlinks_and_moves_nothing)
{
	struct counting_waker cw;
	counting_waker_init(&cw);
	struct afe_context cx = counting_context(&cw, false);
	struct afe_context cancel = counting_context(&cw, true);
	struct afe_chan ch;
	afe_chan_init(&ch, sizeof(int), 0);
	int v = 9, out = -1;
	struct afe_chan_send s;
	afe_chan_send_init(&s, &ch, &v);
	cr_assert_eq(POLL(&s, &cx), AFE_PENDING);
	cr_assert_eq(POLL(&s, &cancel), AFE_READY);
	cr_assert_eq(s.base.result, -ECANCELED);
	cr_assert_eq(afe_chan_try_recv(&ch, &out), -EAGAIN, "the dropped send delivered nothing");

	struct afe_chan_recv r;
	afe_chan_recv_init(&r, &ch, &out);
	cr_assert_eq(POLL(&r, &cx), AFE_PENDING);
	cr_assert_eq(POLL(&r, &cancel), AFE_READY);
	cr_assert_eq(r.base.result, -ECANCELED);
	cr_assert_eq(afe_chan_try_send(&ch, &v), -EAGAIN, "the dropped receive took nothing");
	cr_assert_eq(out, -1);

	/* Completed before the cancel: the result says what happened. */
	afe_chan_recv_init(&r, &ch, &out);
	cr_assert_eq(POLL(&r, &cx), AFE_PENDING);
	cr_assert_eq(afe_chan_try_send(&ch, &v), 0);
	cr_assert_eq(POLL(&r, &cancel), AFE_READY);
	cr_assert_eq(r.base.result, 0);
	cr_assert_eq(out, 9);

	/* Never polled: cancelling does nothing but finish it. */
	afe_chan_send_init(&s, &ch, &v);
	cr_assert_eq(POLL(&s, &cancel), AFE_READY);
	cr_assert_eq(s.base.result, -ECANCELED);
	cr_assert_eq(atomic_load(&cw.refs), 0, "every waker dropped");
	cr_assert_eq(afe_chan_destroy(&ch), 0);
}

Test(channel, the_last_handle_dropped_closes_it)
{
	struct counting_waker cw;
	counting_waker_init(&cw);
	struct afe_context cx = counting_context(&cw, false);
	struct afe_chan ch;
	afe_chan_init(&ch, sizeof(int), 8);
	int v = 3, out;
	cr_assert_eq(afe_chan_add_sender(&ch), 0);
	cr_assert_eq(afe_chan_try_send(&ch, &v), 0);
	struct afe_chan_recv r;
	afe_chan_recv_init(&r, &ch, &out);
	cr_assert_eq(POLL(&r, &cx), AFE_READY);
	afe_chan_recv_init(&r, &ch, &out);
	cr_assert_eq(POLL(&r, &cx), AFE_PENDING);
	cr_assert_eq(afe_chan_drop_sender(&ch), 0);
	cr_assert_eq(POLL(&r, &cx), AFE_PENDING, "one sender is left");
	cr_assert_eq(afe_chan_drop_sender(&ch), 0);
	cr_assert_eq(POLL(&r, &cx), AFE_READY, "nobody can send: the receive ends");
	cr_assert_eq(r.base.result, -EPIPE);
	cr_assert_eq(afe_chan_drop_sender(&ch), -EINVAL, "no sender handle left");
	cr_assert_eq(afe_chan_add_sender(&ch), -EPIPE, "closed");
	cr_assert_eq(afe_chan_add_receiver(&ch), -EPIPE);
	cr_assert_eq(afe_chan_destroy(&ch), 0);

	afe_chan_init(&ch, sizeof(int), 8);
	cr_assert_eq(afe_chan_add_receiver(&ch), 0);
	cr_assert_eq(afe_chan_drop_receiver(&ch), 0);
	cr_assert_eq(afe_chan_try_send(&ch, &v), 0);
	cr_assert_eq(afe_chan_drop_receiver(&ch), 0);
	cr_assert_eq(afe_chan_try_send(&ch, &v), -EPIPE, "nobody can receive");
	cr_assert_eq(afe_chan_drop_receiver(&ch), -EINVAL);
	cr_assert_eq(afe_chan_destroy(&ch), 0);
}

Test(channel, bad_input)
{
	struct counting_waker cw;
	counting_waker_init(&cw);
	struct afe_context cx = counting_context(&cw, false);
	struct afe_chan ch;
	int v = 0;
	cr_assert_eq(afe_chan_init(NULL, 4, 1), -EINVAL);
	cr_assert_eq(afe_chan_init(&ch, 0, 1), -EINVAL);
	cr_assert_eq(afe_chan_init(&ch, SIZE_MAX / 2, 4), -ENOMEM);
	cr_assert_eq(afe_chan_init(&ch, sizeof(int), 1), 0);
	cr_assert_eq(afe_chan_try_send(NULL, &v), -EINVAL);
	cr_assert_eq(afe_chan_try_send(&ch, NULL), -EINVAL);
	cr_assert_eq(afe_chan_try_recv(NULL, &v), -EINVAL);
	cr_assert_eq(afe_chan_try_recv(&ch, NULL), -EINVAL);
	cr_assert_eq(afe_chan_close(NULL), -EINVAL);
	cr_assert_eq(afe_chan_destroy(NULL), -EINVAL);
	cr_assert_eq(afe_chan_add_sender(NULL), -EINVAL);
	cr_assert_eq(afe_chan_drop_sender(NULL), -EINVAL);
	cr_assert_eq(afe_chan_add_receiver(NULL), -EINVAL);
	cr_assert_eq(afe_chan_drop_receiver(NULL), -EINVAL);
	cr_assert(afe_chan_is_closed(NULL));
	cr_assert_eq(afe_chan_len(NULL), 0);
	struct afe_chan_send s;
	afe_chan_send_init(&s, &ch, NULL);
	cr_assert_eq(POLL(&s, &cx), AFE_READY);
	cr_assert_eq(s.base.result, -EINVAL);
	afe_chan_send_init(&s, NULL, &v);
	cr_assert_eq(POLL(&s, &cx), AFE_READY);
	cr_assert_eq(s.base.result, -EINVAL);
	struct afe_chan_recv r;
	afe_chan_recv_init(&r, &ch, NULL);
	cr_assert_eq(POLL(&r, &cx), AFE_READY);
	cr_assert_eq(r.base.result, -EINVAL);
	afe_chan_recv_init(&r, NULL, &v);
	cr_assert_eq(POLL(&r, &cx), AFE_READY);
	cr_assert_eq(r.base.result, -EINVAL);
	cr_assert_eq(atomic_load(&cw.refs), 0, "bad input keeps no waker");
	cr_assert_eq(afe_chan_destroy(&ch), 0);
}

/* A destroy refused for a waiting receiver changes nothing, on every kind
 * of channel: the receiver still gets the next item. A waiting sender on a
 * rendezvous channel likewise still hands its item over. */
Test(channel, destroy_refused_for_a_waiting_receiver_changes_nothing)
{
	size_t capacities[] = {2, AFE_CHAN_UNBOUNDED, 0};
	for (int i = 0; i < 3; i++) {
		struct counting_waker cw;
		counting_waker_init(&cw);
		struct afe_context cx = counting_context(&cw, false);
		struct afe_chan ch;
		cr_assert_eq(afe_chan_init(&ch, sizeof(int), capacities[i]), 0);
		int out = 0, v = 7 + i;
		struct afe_chan_recv r;
		afe_chan_recv_init(&r, &ch, &out);
		cr_assert_eq(POLL(&r, &cx), AFE_PENDING);
		cr_assert_eq(afe_chan_destroy(&ch), -EBUSY, "capacity #%d: a receiver waits", i);
		cr_assert_not(afe_chan_is_closed(&ch));
		cr_assert_eq(afe_chan_try_send(&ch, &v), 0, "capacity #%d: still open", i);
		cr_assert_eq(atomic_load(&cw.wakes), 1);
		cr_assert_eq(POLL(&r, &cx), AFE_READY);
		cr_assert_eq(r.base.result, 0);
		cr_assert_eq(out, 7 + i);
		cr_assert_eq(afe_chan_destroy(&ch), 0);
	}
	struct counting_waker cw;
	counting_waker_init(&cw);
	struct afe_context cx = counting_context(&cw, false);
	struct afe_chan ch;
	cr_assert_eq(afe_chan_init(&ch, sizeof(int), 0), 0);
	int v = 5, out = 0;
	struct afe_chan_send s;
	afe_chan_send_init(&s, &ch, &v);
	cr_assert_eq(POLL(&s, &cx), AFE_PENDING);
	cr_assert_eq(afe_chan_destroy(&ch), -EBUSY, "a sender waits");
	cr_assert_eq(afe_chan_try_recv(&ch, &out), 0, "its item is still offered");
	cr_assert_eq(out, 5);
	cr_assert_eq(POLL(&s, &cx), AFE_READY);
	cr_assert_eq(s.base.result, 0);
	cr_assert_eq(afe_chan_destroy(&ch), 0);
}

/* Two tasks bounce a counter through two capacity-1 channels. */
struct bouncer {
	struct afe_future base;
	struct afe_chan *in, *out;
	long i, rounds, value;
	struct afe_chan_send send;
	struct afe_chan_recv recv;
};

static int bouncer_poll(struct afe_future *f, struct afe_context *cx)
{
	struct bouncer *b = afe_container_of(f, struct bouncer, base);
	AFE_ASYNC_BEGIN(f, cx);
	for (b->i = 0; b->i < b->rounds; b->i++) {
		if (b->i || !b->value) { /* the one holding 1 serves first */
			afe_chan_recv_init(&b->recv, b->in, &b->value);
			AFE_AWAIT(&b->recv.base);
			if (b->recv.base.result)
				AFE_RETURN(b->recv.base.result);
		}
		b->value++;
		afe_chan_send_init(&b->send, b->out, &b->value);
		AFE_AWAIT(&b->send.base);
	}
	AFE_RETURN(b->value);
	AFE_ASYNC_END;
}

Test(channel, ping_pong_between_tasks)
{
	struct afe_runtime *rt = test_runtime(2);
	struct afe_chan ab, ba;
	afe_chan_init(&ab, sizeof(long), 1);
	afe_chan_init(&ba, sizeof(long), 1);
	struct bouncer a = {.in = &ba, .out = &ab, .rounds = 20000, .value = 1};
	struct bouncer b = {.in = &ab, .out = &ba, .rounds = 20000, .value = 0};
	afe_future_init(&a.base, bouncer_poll);
	afe_future_init(&b.base, bouncer_poll);
	struct afe_join_handle hb;
	cr_assert_eq(afe_spawn(rt, &b, &hb), 0);
	intptr_t ra = test_block_on(rt, &a);
	struct afe_join jb;
	afe_join_init(&jb, &hb);
	intptr_t rb = test_block_on(rt, &jb);
	cr_assert_eq(ra, 40000);
	cr_assert_eq(rb, 40001);
	long last;
	cr_assert_eq(afe_chan_try_recv(&ba, &last), 0);
	cr_assert_eq(last, 40001);
	cr_assert_eq(afe_chan_destroy(&ab), 0);
	cr_assert_eq(afe_chan_destroy(&ba), 0);
	test_runtime_destroy(rt);
}
