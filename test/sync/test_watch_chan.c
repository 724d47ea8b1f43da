/* SPDX-License-Identifier: MIT */
/* The watch channel: the latest value, versions seen per receiver, the
 * changed future, close, select, and a task watching a sender. */
#include "helpers.h"
#include "huge_malloc_fails.h"

#define POLL(fut, cx) afe_future_poll(&(fut)->base, (cx))

Test(watch_chan, init_copy_send_and_bad_input)
{
	struct afe_wchan w;
	int v = 7, out = 0;
	cr_assert_eq(afe_wchan_init(NULL, sizeof(int), &v), -EINVAL);
	cr_assert_eq(afe_wchan_init(&w, 0, &v), -EINVAL);
	cr_assert_eq(afe_wchan_init(&w, sizeof(int), NULL), 0, "NULL: zeros");
	cr_assert_eq(afe_wchan_copy(&w, &out), 0);
	cr_assert_eq(out, 0);
	cr_assert_eq(afe_wchan_destroy(&w), 0);
	cr_assert_eq(afe_wchan_init(&w, sizeof(int), &v), 0);
	cr_assert_eq(afe_wchan_copy(&w, &out), 0);
	cr_assert_eq(out, 7);
	v = 8;
	cr_assert_eq(afe_wchan_send(&w, &v), 0);
	cr_assert_eq(afe_wchan_copy(&w, &out), 0);
	cr_assert_eq(out, 8);
	cr_assert_eq(afe_wchan_send(NULL, &v), -EINVAL);
	cr_assert_eq(afe_wchan_send(&w, NULL), -EINVAL);
	cr_assert_eq(afe_wchan_copy(NULL, &out), -EINVAL);
	cr_assert(afe_wchan_is_closed(NULL), "nothing can be sent on it");
	cr_assert_eq(afe_wchan_copy(&w, NULL), -EINVAL);
	struct afe_wchan_rx rx, unsubscribed = {0};
	cr_assert_eq(afe_wchan_subscribe(NULL, NULL), -EINVAL);
	cr_assert_eq(afe_wchan_subscribe(NULL, &rx), -EINVAL);
	cr_assert_eq(afe_wchan_subscribe(&w, NULL), -EINVAL);
	cr_assert_eq(afe_wchan_read(&unsubscribed, &out), -EINVAL);
	cr_assert_eq(afe_wchan_has_changed(&unsubscribed), -EINVAL);
	cr_assert_eq(afe_wchan_read(NULL, &out), -EINVAL);
	cr_assert_eq(afe_wchan_has_changed(NULL), -EINVAL);
	cr_assert_eq(afe_wchan_close(NULL), -EINVAL);
	cr_assert_eq(afe_wchan_destroy(NULL), -EINVAL);
	cr_assert(!afe_wchan_is_closed(&w));
	cr_assert_eq(afe_wchan_subscribe(&w, &rx), 0);
	cr_assert_eq(afe_wchan_close(&w), 0);
	cr_assert(afe_wchan_is_closed(&w));
	cr_assert_eq(afe_wchan_close(&w), -EALREADY);
	v = 9;
	cr_assert_eq(afe_wchan_send(&w, &v), -EPIPE);
	cr_assert_eq(afe_wchan_copy(&w, &out), 0, "the last value stays readable");
	cr_assert_eq(out, 8, "the refused send changed nothing");
	cr_assert_eq(afe_wchan_has_changed(&rx), -EPIPE, "no new version either");
	cr_assert_eq(afe_wchan_destroy(&w), 0);
	struct counting_waker cw;
	counting_waker_init(&cw);
	struct afe_context cx = counting_context(&cw, false);
	struct afe_wchan_changed c;
	afe_wchan_changed_init(&c, NULL, &out);
	cr_assert_eq(POLL(&c, &cx), AFE_READY);
	cr_assert_eq(c.base.result, -EINVAL);
	afe_wchan_changed_init(&c, &unsubscribed, &out);
	cr_assert_eq(POLL(&c, &cx), AFE_READY);
	cr_assert_eq(c.base.result, -EINVAL);
	cr_assert_eq(atomic_load(&cw.refs), 0, "bad input keeps no waker");
}


Test(watch_chan, a_value_that_cannot_be_allocated_is_enomem)
{
	struct afe_wchan w;
	cr_assert_eq(afe_wchan_init(&w, SIZE_MAX / 2, NULL), -ENOMEM);
}

Test(watch_chan, a_receiver_sees_the_latest_value_once)
{
	struct afe_wchan w;
	int v = 1, out = 0;
	cr_assert_eq(afe_wchan_init(&w, sizeof(int), &v), 0);
	struct afe_wchan_rx rx;
	cr_assert_eq(afe_wchan_subscribe(&w, &rx), 0);
	cr_assert_eq(afe_wchan_has_changed(&rx), 0, "the current value counts as seen");
	v = 2;
	afe_wchan_send(&w, &v);
	v = 3;
	afe_wchan_send(&w, &v);
	cr_assert_eq(afe_wchan_has_changed(&rx), 1);
	cr_assert_eq(afe_wchan_read(&rx, &out), 1, "new to rx");
	cr_assert_eq(out, 3, "only the latest");
	cr_assert_eq(afe_wchan_has_changed(&rx), 0);
	cr_assert_eq(afe_wchan_read(&rx, &out), 0, "seen already");
	cr_assert_eq(afe_wchan_read(&rx, NULL), 0);
	afe_wchan_close(&w);
	cr_assert_eq(afe_wchan_has_changed(&rx), -EPIPE, "closed, nothing new");
	cr_assert_eq(afe_wchan_destroy(&w), 0);
}

Test(watch_chan, changed_waits_for_a_send_and_copies_the_value)
{
	struct counting_waker cw[3];
	struct afe_context cx[3];
	struct afe_wchan w;
	int v = 0, out[3] = {0};
	cr_assert_eq(afe_wchan_init(&w, sizeof(int), &v), 0);
	struct afe_wchan_rx rx[3];
	struct afe_wchan_changed c[3];
	for (int i = 0; i < 3; i++) {
		counting_waker_init(&cw[i]);
		cx[i] = counting_context(&cw[i], false);
		afe_wchan_subscribe(&w, &rx[i]);
		afe_wchan_changed_init(&c[i], &rx[i], &out[i]);
		cr_assert_eq(POLL(&c[i], &cx[i]), AFE_PENDING);
	}
	cr_assert_eq(afe_wchan_destroy(&w), -EBUSY);
	v = 5;
	cr_assert_eq(afe_wchan_send(&w, &v), 0);
	v = 6;
	cr_assert_eq(afe_wchan_send(&w, &v), 0, "before they ran again");
	for (int i = 0; i < 3; i++) {
		cr_assert_eq(atomic_load(&cw[i].wakes), 1, "every receiver woken once");
		cr_assert_eq(POLL(&c[i], &cx[i]), AFE_READY);
		cr_assert_eq(c[i].base.result, 0);
		cr_assert_eq(out[i], 5, "the value of the send that woke it");
		cr_assert_eq(afe_wchan_has_changed(&rx[i]), 1, "6 is still new");
	}
	/* Unseen at the first poll: ready at once, with the latest value. */
	afe_wchan_changed_init(&c[0], &rx[0], &out[0]);
	cr_assert_eq(POLL(&c[0], &cx[0]), AFE_READY);
	cr_assert_eq(out[0], 6);
	afe_wchan_changed_init(&c[0], &rx[0], NULL);
	cr_assert_eq(POLL(&c[0], &cx[0]), AFE_PENDING);
	struct afe_context cancel = counting_context(&cw[0], true);
	cr_assert_eq(POLL(&c[0], &cancel), AFE_READY);
	cr_assert_eq(c[0].base.result, -ECANCELED);
	for (int i = 0; i < 3; i++)
		cr_assert_eq(atomic_load(&cw[i].refs), 0);
	cr_assert_eq(afe_wchan_destroy(&w), 0);
}

Test(watch_chan, close_gives_an_unseen_value_then_epipe)
{
	struct counting_waker cw;
	counting_waker_init(&cw);
	struct afe_context cx = counting_context(&cw, false);
	struct afe_wchan w;
	int v = 0, out = 0;
	cr_assert_eq(afe_wchan_init(&w, sizeof(int), &v), 0);
	struct afe_wchan_rx rx;
	afe_wchan_subscribe(&w, &rx);
	struct afe_wchan_changed c;
	afe_wchan_changed_init(&c, &rx, &out);
	cr_assert_eq(POLL(&c, &cx), AFE_PENDING);
	cr_assert_eq(afe_wchan_close(&w), 0);
	cr_assert_eq(atomic_load(&cw.wakes), 1);
	cr_assert_eq(POLL(&c, &cx), AFE_READY);
	cr_assert_eq(c.base.result, -EPIPE);
	cr_assert_eq(afe_wchan_destroy(&w), 0);

	cr_assert_eq(afe_wchan_init(&w, sizeof(int), &v), 0);
	afe_wchan_subscribe(&w, &rx);
	v = 9;
	afe_wchan_send(&w, &v);
	afe_wchan_close(&w);
	afe_wchan_changed_init(&c, &rx, &out);
	cr_assert_eq(POLL(&c, &cx), AFE_READY);
	cr_assert_eq(c.base.result, 0, "the last value before the close");
	cr_assert_eq(out, 9);
	afe_wchan_changed_init(&c, &rx, &out);
	cr_assert_eq(POLL(&c, &cx), AFE_READY);
	cr_assert_eq(c.base.result, -EPIPE);
	cr_assert_eq(atomic_load(&cw.refs), 0);
	cr_assert_eq(afe_wchan_destroy(&w), 0);
}

/* A send wakes more waiters than one batch: while it wakes the first
 * batch (lock released), the channel is closed. The waiters the send had
 * not reached yet still get the new value, not -EPIPE. */
enum { MANY = 40 };

static void close_on_first_wake(void *arg, int nth)
{
	if (nth == 1)
		cr_assert_eq(afe_wchan_close(arg), 0);
}

Test(watch_chan, a_close_during_a_send_still_delivers_the_value)
{
	struct afe_wchan w;
	int v = 0, out[MANY];
	cr_assert_eq(afe_wchan_init(&w, sizeof(int), &v), 0);
	struct hook_waker first;
	hook_waker_init(&first, close_on_first_wake, &w);
	struct counting_waker cw;
	counting_waker_init(&cw);
	struct afe_wchan_rx rx[MANY];
	struct afe_wchan_changed c[MANY];
	for (int i = 0; i < MANY; i++) {
		struct afe_context cx = counting_context(i ? &cw : &first.cw, false);
		afe_wchan_subscribe(&w, &rx[i]);
		afe_wchan_changed_init(&c[i], &rx[i], &out[i]);
		cr_assert_eq(POLL(&c[i], &cx), AFE_PENDING);
	}
	v = 1;
	cr_assert_eq(afe_wchan_send(&w, &v), 0);
	cr_assert(afe_wchan_is_closed(&w));
	for (int i = 0; i < MANY; i++) {
		struct afe_context cx = counting_context(i ? &cw : &first.cw, false);
		cr_assert_eq(POLL(&c[i], &cx), AFE_READY);
		cr_assert_eq(c[i].base.result, 0, "waiter %d got the value", i);
		cr_assert_eq(out[i], 1);
	}
	cr_assert_eq(atomic_load(&cw.refs) + atomic_load(&first.cw.refs), 0);
	cr_assert_eq(afe_wchan_destroy(&w), 0);
}

Test(watch_chan, a_losing_branch_leaves_the_value_unseen)
{
	struct counting_waker cw;
	counting_waker_init(&cw);
	struct afe_context cx = counting_context(&cw, false);
	struct afe_wchan w;
	struct afe_notify n;
	int v = 0, out = -1;
	cr_assert_eq(afe_wchan_init(&w, sizeof(int), &v), 0);
	afe_notify_init(&n);
	struct afe_wchan_rx rx;
	afe_wchan_subscribe(&w, &rx);
	struct afe_wchan_changed c;
	struct afe_notified nd;
	afe_wchan_changed_init(&c, &rx, &out);
	afe_notified_init(&nd, &n);
	struct afe_future *branches[] = {&c.base, &nd.base};
	struct afe_select s;
	cr_assert_eq(afe_select_init(&s, branches, 2), 0);
	cr_assert_eq(POLL(&s, &cx), AFE_PENDING);
	cr_assert_eq(afe_notify_one(&n), 1);
	v = 4;
	cr_assert_eq(afe_wchan_send(&w, &v), 0);
	cr_assert_eq(out, -1, "nothing copied to the loser");
	cr_assert_eq(afe_wchan_has_changed(&rx), 1, "the new value is still unseen");
	cr_assert_eq(POLL(&s, &cx), AFE_READY);
	cr_assert_eq(s.base.result, 1);
	cr_assert_eq(c.base.result, -ECANCELED);
	cr_assert_eq(atomic_load(&cw.refs), 0);
	cr_assert_eq(afe_wchan_destroy(&w), 0);
	cr_assert_eq(afe_notify_destroy(&n), 0);
}

/* A task sends 1..N; a watcher task follows until it sees N: the values
 * it sees only ever grow. */
struct follower {
	struct afe_future base;
	struct afe_wchan_rx rx;
	int value, last, n;
	long views;
	struct afe_wchan_changed changed;
};

static int follower_poll(struct afe_future *f, struct afe_context *cx)
{
	struct follower *self = afe_container_of(f, struct follower, base);
	AFE_ASYNC_BEGIN(f, cx);
	while (self->last < self->n) {
		afe_wchan_changed_init(&self->changed, &self->rx, &self->value);
		AFE_AWAIT(&self->changed.base);
		if (self->changed.base.result != 0 || self->value <= self->last)
			AFE_RETURN(-1);
		self->last = self->value;
		self->views++;
	}
	AFE_RETURN(self->views);
	AFE_ASYNC_END;
}

struct sender {
	struct afe_future base;
	struct afe_wchan *w;
	int i, n;
};

static int sender_poll(struct afe_future *f, struct afe_context *cx)
{
	struct sender *self = afe_container_of(f, struct sender, base);
	AFE_ASYNC_BEGIN(f, cx);
	for (self->i = 1; self->i <= self->n; self->i++) {
		if (afe_wchan_send(self->w, &self->i) != 0)
			AFE_RETURN(-1);
		AFE_YIELD();
	}
	AFE_RETURN(0);
	AFE_ASYNC_END;
}

Test(watch_chan, a_task_follows_a_sender)
{
	struct afe_runtime *rt = test_runtime(2);
	struct afe_wchan w;
	int zero = 0;
	cr_assert_eq(afe_wchan_init(&w, sizeof(int), &zero), 0);
	struct follower fo = {.n = 1000};
	afe_wchan_subscribe(&w, &fo.rx);
	afe_future_init(&fo.base, follower_poll);
	struct afe_join_handle h;
	cr_assert_eq(afe_spawn(rt, &fo, &h), 0);
	struct sender s = {.w = &w, .n = 1000};
	afe_future_init(&s.base, sender_poll);
	cr_assert_eq(test_block_on(rt, &s), 0);
	struct afe_join j;
	afe_join_init(&j, &h);
	intptr_t views = test_block_on(rt, &j);
	cr_assert_gt(views, 0, "saw rising values up to the last");
	cr_assert_leq(views, 1000);
	cr_assert_eq(afe_wchan_destroy(&w), 0);
	test_runtime_destroy(rt);
}
