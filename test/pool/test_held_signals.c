/* SPDX-License-Identifier: MIT */
/*
 * Held signals: sent once a worker's burst of tasks ends (merged when
 * held again for the same target), after AFE_HOLD_MAX_POLLS polls at the
 * latest, at once off the workers; their owner is held meanwhile.
 */
#include <criterion/criterion.h>
#include <stdatomic.h>
#include <unistd.h>

#include "helpers.h"
#include "pool/held_signals.h"

/* What a target saw: how often it was signalled, with which bits. */
struct target {
	_Atomic int sent, refs;
	_Atomic uint32_t bits;
	_Atomic int sent_during_poll; /* signals seen in the holder's first poll */
	_Atomic int sent_at_return;   /* and when it returned */
};

static void send(void *arg, uint32_t bits)
{
	struct target *t = arg;
	atomic_fetch_or(&t->bits, bits);
	atomic_fetch_add(&t->sent, 1);
}

static void ref(void *obj)
{
	atomic_fetch_add(&((struct target *)obj)->refs, 1);
}

static void unref(void *obj)
{
	atomic_fetch_sub(&((struct target *)obj)->refs, 1);
}

static const struct afe_signal_owner owner = {ref, unref};

/* Waits (5 s at most) until t was sent and let go: the worker sends once
 * it is back in its loop, which may be after the holder's join returned. */
static void wait_sent(struct target *t)
{
	for (int i = 0; i < 5000 && (atomic_load(&t->sent) == 0 || atomic_load(&t->refs)); i++)
		usleep(1000);
	usleep(10 * 1000); /* a second send would come by now */
}

Test(held_signals, off_the_workers_a_signal_is_sent_at_once)
{
	struct target t = {0};
	afe_hold_signal(send, &t, 5, &owner, &t);
	cr_assert_eq(atomic_load(&t.sent), 1);
	cr_assert_eq(atomic_load(&t.bits), 5);
	cr_assert_eq(atomic_load(&t.refs), 0, "never held");
}

/* Holds signals to targets[0..n) with bits 1, 2, 4 each, yields `yields`
 * times, then reports what was sent while it ran. */
struct holder {
	struct afe_future base;
	struct target *targets;
	int n, yields, i;
};

static int holder_poll(struct afe_future *f, struct afe_context *cx)
{
	struct holder *self = afe_container_of(f, struct holder, base);
	AFE_ASYNC_BEGIN(f, cx);
	for (int k = 0; k < self->n; k++)
		for (uint32_t bit = 1; bit <= 4; bit <<= 1)
			afe_hold_signal(send, &self->targets[k], bit, &owner, &self->targets[k]);
	for (int k = 0; k < self->n; k++)
		atomic_store(&self->targets[k].sent_during_poll, atomic_load(&self->targets[k].sent));
	for (self->i = 0; self->i < self->yields; self->i++)
		AFE_YIELD();
	for (int k = 0; k < self->n; k++)
		atomic_store(&self->targets[k].sent_at_return, atomic_load(&self->targets[k].sent));
	AFE_RETURN(0);
	AFE_ASYNC_END;
}

Test(held_signals, a_worker_sends_once_per_target_when_its_burst_ends)
{
	struct afe_runtime *rt = test_runtime(1);
	struct target targets[3] = {0};
	struct holder h = {.targets = targets, .n = 3};
	afe_future_init(&h.base, holder_poll);
	cr_assert_eq(test_block_on(rt, &h), 0);
	for (int k = 0; k < 3; k++) {
		wait_sent(&targets[k]);
		cr_assert_eq(atomic_load(&targets[k].sent_during_poll), 0, "held while it ran");
		cr_assert_eq(atomic_load(&targets[k].sent), 1, "one signal for three holds");
		cr_assert_eq(atomic_load(&targets[k].bits), 7);
		cr_assert_eq(atomic_load(&targets[k].refs), 0, "the owner was let go");
	}
	test_runtime_destroy(rt);
}

Test(held_signals, a_worker_that_stays_busy_sends_within_the_poll_bound)
{
	struct afe_runtime *rt = test_runtime(1);
	struct target t = {0};
	/* It yields for ever as far as the bound goes: the queue never
	 * empties while it runs, so only the bound sends the signal. */
	struct holder h = {.targets = &t, .n = 1, .yields = 4 * AFE_HOLD_MAX_POLLS};
	afe_future_init(&h.base, holder_poll);
	struct afe_join_handle handle;
	cr_assert_eq(afe_spawn(rt, &h, &handle), 0);
	/* A second task that yields as long keeps the worker's queue full. */
	struct holder busy = {.targets = &(struct target){0}, .n = 0,
			      .yields = 4 * AFE_HOLD_MAX_POLLS};
	afe_future_init(&busy.base, holder_poll);
	struct afe_join_handle busy_handle;
	cr_assert_eq(afe_spawn(rt, &busy, &busy_handle), 0);
	struct afe_join join;
	afe_join_init(&join, &handle);
	cr_assert_eq(test_block_on(rt, &join), 0);
	afe_join_init(&join, &busy_handle);
	cr_assert_eq(test_block_on(rt, &join), 0);
	cr_assert_eq(atomic_load(&t.sent_at_return), 1, "sent while both tasks kept it busy");
	wait_sent(&t);
	cr_assert_eq(atomic_load(&t.sent), 1);
	cr_assert_eq(atomic_load(&t.bits), 7);
	cr_assert_eq(atomic_load(&t.refs), 0);
	test_runtime_destroy(rt);
}

Test(held_signals, more_targets_than_it_holds_sends_the_earlier_ones_first)
{
	struct afe_runtime *rt = test_runtime(1);
	enum { N = AFE_HOLD_MAX_SIGNALS + 3 };
	struct target targets[N] = {0};
	struct holder h = {.targets = targets, .n = N};
	afe_future_init(&h.base, holder_poll);
	cr_assert_eq(test_block_on(rt, &h), 0);
	int early = 0;
	for (int k = 0; k < N; k++) {
		wait_sent(&targets[k]);
		early += atomic_load(&targets[k].sent_during_poll);
		cr_assert_geq(atomic_load(&targets[k].sent), 1, "target %d", k);
		cr_assert_eq(atomic_load(&targets[k].bits), 7, "target %d", k);
		cr_assert_eq(atomic_load(&targets[k].refs), 0, "target %d", k);
	}
	cr_assert_gt(early, 0, "a full hold sent some while the task ran");
	test_runtime_destroy(rt);
}
