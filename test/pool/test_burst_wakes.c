/* SPDX-License-Identifier: MIT */
/*
 * Burst wakes: in a burst (other tasks queued) sent once the burst ends
 * (merged when held again for the same target), after the polls its
 * holder allows (AFE_BURST_MAX_POLLS at most) at the latest; at once from a
 * lone task and off the workers;
 * their owner is held meanwhile.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <stdatomic.h>
#include <unistd.h>

#include "helpers.h"
#include "pool/burst_wakes.h"

/* What a target saw: how often it was woken, with which bits. */
struct target {
	_Atomic int sent, refs;
	_Atomic uint32_t bits;
	_Atomic int sent_during_poll; /* wakes seen in the holder's first poll */
	_Atomic int sent_after_yields; /* when its second yield returned */
	_Atomic int sent_at_return;   /* and when it returned */
};

static void deliver(void *arg, uint32_t bits)
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

static const struct afe_burst_wake_owner owner = {ref, unref};

/* Waits (5 s at most) until t was sent and let go: the worker sends once
 * it is back in its loop, which may be after the holder's join returned. */
static void wait_sent(struct target *t)
{
	for (int i = 0; i < 5000 && (atomic_load(&t->sent) == 0 || atomic_load(&t->refs)); i++)
		usleep(1000);
	usleep(10 * 1000); /* a second send would come by now */
}

Test(burst_wakes, off_the_workers_a_wake_is_sent_at_once)
{
	struct target t = {0};
	afe_burst_wake_defer(deliver, &t, 5, false, AFE_BURST_MAX_POLLS, &owner, &t);
	cr_assert_eq(atomic_load(&t.sent), 1);
	cr_assert_eq(atomic_load(&t.bits), 5);
	cr_assert_eq(atomic_load(&t.refs), 0, "never held");
}

/* A task that yields n times: company in the run queue. */
struct yielder_task {
	struct afe_future base;
	int n, i;
};

static int yielder_task_poll(struct afe_future *f, struct afe_context *cx)
{
	struct yielder_task *self = afe_container_of(f, struct yielder_task, base);
	AFE_ASYNC_BEGIN(f, cx);
	for (self->i = 0; self->i < self->n; self->i++)
		AFE_YIELD();
	AFE_RETURN(0);
	AFE_ASYNC_END;
}

/* Spawns company (a task yielding `company` times) unless 0, holds
 * wakes to targets[0..n) with bits 1, 2, 4 each (for max_polls, or
 * AFE_BURST_MAX_POLLS when 0), yields `yields` times, then reports what was
 * sent while it ran. */
struct holder {
	struct afe_future base;
	struct target *targets;
	int n, yields, company, i;
	unsigned max_polls;
	struct afe_join_handle company_handle;
	struct afe_join join;
};

static int holder_poll(struct afe_future *f, struct afe_context *cx)
{
	struct holder *self = afe_container_of(f, struct holder, base);
	AFE_ASYNC_BEGIN(f, cx);
	if (self->company) {
		struct yielder_task y = {.n = self->company};
		afe_future_init(&y.base, yielder_task_poll);
		if (afe_spawn(NULL, &y, &self->company_handle) < 0)
			AFE_RETURN(-ENOMEM);
	}
	for (int k = 0; k < self->n; k++)
		for (uint32_t bit = 1; bit <= 4; bit <<= 1)
			afe_burst_wake_defer(deliver, &self->targets[k], bit, false,
					self->max_polls ? self->max_polls : AFE_BURST_MAX_POLLS,
					&owner, &self->targets[k]);
	for (int k = 0; k < self->n; k++)
		atomic_store(&self->targets[k].sent_during_poll, atomic_load(&self->targets[k].sent));
	for (self->i = 0; self->i < self->yields; self->i++) {
		AFE_YIELD();
		if (self->i == 1)
			for (int k = 0; k < self->n; k++)
				atomic_store(&self->targets[k].sent_after_yields,
					     atomic_load(&self->targets[k].sent));
	}
	for (int k = 0; k < self->n; k++)
		atomic_store(&self->targets[k].sent_at_return, atomic_load(&self->targets[k].sent));
	if (self->company) {
		afe_join_init(&self->join, &self->company_handle);
		AFE_AWAIT(&self->join.base);
	}
	AFE_RETURN(0);
	AFE_ASYNC_END;
}

Test(burst_wakes, a_lone_task_sends_at_once)
{
	struct afe_runtime *rt = test_runtime(1);
	struct target t = {0};
	struct holder h = {.targets = &t, .n = 1};
	afe_future_init(&h.base, holder_poll);
	cr_assert_eq(test_block_on(rt, &h), 0);
	cr_assert_eq(atomic_load(&t.sent_during_poll), 3, "nothing queued: no burst to wait for");
	cr_assert_eq(atomic_load(&t.bits), 7);
	cr_assert_eq(atomic_load(&t.refs), 0, "never held");
	test_runtime_destroy(rt);
}

Test(burst_wakes, a_burst_sends_once_per_target_when_it_ends)
{
	struct afe_runtime *rt = test_runtime(1);
	struct target targets[3] = {0};
	struct holder h = {.targets = targets, .n = 3, .company = 2};
	afe_future_init(&h.base, holder_poll);
	cr_assert_eq(test_block_on(rt, &h), 0);
	for (int k = 0; k < 3; k++) {
		wait_sent(&targets[k]);
		cr_assert_eq(atomic_load(&targets[k].sent_during_poll), 0, "held while it ran");
		cr_assert_eq(atomic_load(&targets[k].sent), 1, "one wake for three holds");
		cr_assert_eq(atomic_load(&targets[k].bits), 7);
		cr_assert_eq(atomic_load(&targets[k].refs), 0, "the owner was let go");
	}
	test_runtime_destroy(rt);
}

Test(burst_wakes, a_worker_that_stays_busy_sends_within_the_poll_bound)
{
	struct afe_runtime *rt = test_runtime(1);
	struct target t = {0};
	/* It and its company yield for ever as far as the bound goes: the
	 * queue never empties while it runs, so only the bound sends. */
	struct holder h = {.targets = &t, .n = 1, .yields = 4 * AFE_BURST_MAX_POLLS,
			   .company = 4 * AFE_BURST_MAX_POLLS};
	afe_future_init(&h.base, holder_poll);
	cr_assert_eq(test_block_on(rt, &h), 0);
	cr_assert_eq(atomic_load(&t.sent_at_return), 1, "sent while both tasks kept it busy");
	wait_sent(&t);
	cr_assert_eq(atomic_load(&t.sent), 1);
	cr_assert_eq(atomic_load(&t.bits), 7);
	cr_assert_eq(atomic_load(&t.refs), 0);
	test_runtime_destroy(rt);
}

/* Held for 4 polls, a wake goes once the holder and its company have
 * each been polled twice; held for the most, it outlasts them. */
static int sent_after_two_yields(unsigned max_polls)
{
	struct afe_runtime *rt = test_runtime(1);
	struct target t = {0};
	struct holder h = {.targets = &t, .n = 1, .yields = 4, .company = AFE_BURST_MAX_POLLS,
			   .max_polls = max_polls};
	afe_future_init(&h.base, holder_poll);
	cr_assert_eq(test_block_on(rt, &h), 0);
	wait_sent(&t);
	cr_assert_eq(atomic_load(&t.sent_during_poll), 0, "held while it ran");
	cr_assert_eq(atomic_load(&t.bits), 7);
	cr_assert_eq(atomic_load(&t.refs), 0);
	test_runtime_destroy(rt);
	return atomic_load(&t.sent_after_yields);
}

Test(burst_wakes, a_holder_may_allow_fewer_polls)
{
	cr_assert_eq(sent_after_two_yields(4), 1, "sent after four polls");
	cr_assert_eq(sent_after_two_yields(0), 0, "held longer by default");
}

Test(burst_wakes, more_targets_than_it_holds_sends_the_earlier_ones_first)
{
	struct afe_runtime *rt = test_runtime(1);
	enum { N = AFE_BURST_MAX_WAKES + 3 };
	struct target targets[N] = {0};
	struct holder h = {.targets = targets, .n = N, .company = 2};
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

/* Holds `holds` wakes to one target, all in a burst its caller declares,
 * and reports what was sent while it ran. */
struct burst_holder {
	struct afe_future base;
	struct target *t;
	int holds;
};

static int burst_holder_poll(struct afe_future *f, struct afe_context *cx)
{
	struct burst_holder *self = afe_container_of(f, struct burst_holder, base);
	(void)cx;
	for (int i = 0; i < self->holds; i++)
		afe_burst_wake_defer(deliver, self->t, 1u << (i % 3), true, AFE_BURST_MAX_POLLS, &owner,
				self->t);
	atomic_store(&self->t->sent_during_poll, atomic_load(&self->t->sent));
	f->result = 0;
	return AFE_READY;
}

Test(burst_wakes, a_declared_burst_is_held_even_with_nothing_queued)
{
	struct afe_runtime *rt = test_runtime(1);
	struct target t = {0};
	struct burst_holder h = {.t = &t, .holds = 3};
	afe_future_init(&h.base, burst_holder_poll);
	cr_assert_eq(test_block_on(rt, &h), 0);
	wait_sent(&t);
	cr_assert_eq(atomic_load(&t.sent_during_poll), 0, "held while the burst ran");
	cr_assert_eq(atomic_load(&t.sent), 1);
	cr_assert_eq(atomic_load(&t.bits), 7);
	cr_assert_eq(atomic_load(&t.refs), 0);
	test_runtime_destroy(rt);
}

Test(burst_wakes, a_long_burst_in_one_poll_sends_within_the_bound)
{
	struct afe_runtime *rt = test_runtime(1);
	struct target t = {0};
	struct burst_holder h = {.t = &t, .holds = 4 * AFE_BURST_MAX_POLLS};
	afe_future_init(&h.base, burst_holder_poll);
	cr_assert_eq(test_block_on(rt, &h), 0);
	cr_assert_geq(atomic_load(&t.sent_during_poll), 3, "sent every %d holds in the poll",
		      AFE_BURST_MAX_POLLS);
	wait_sent(&t);
	cr_assert_eq(atomic_load(&t.refs), 0);
	test_runtime_destroy(rt);
}
