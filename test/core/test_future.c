/* SPDX-License-Identifier: MIT */
/* The async-function macros and waker helpers, polled by hand. */
#include <signal.h>
#include <string.h>
#include <time.h>

/* The await checks on in every build, NDEBUG or not. */
#define AFE_CHECK_AWAITS 1
#include "helpers.h"

/* A child that stays pending `pending_polls` times (waking itself each
 * time), counts how often it was asked to cancel, and returns 5. */
struct child {
	struct afe_future base;
	int pending_polls, cancels, cancel_polls_needed;
};

static int child_poll(struct afe_future *f, struct afe_context *cx)
{
	struct child *c = afe_container_of(f, struct child, base);
	if (cx->cancel) {
		c->cancels++;
		if (c->cancel_polls_needed-- > 0)
			return AFE_PENDING; /* still winding down */
		f->result = -ECANCELED;
		return AFE_READY;
	}
	if (c->pending_polls-- > 0) {
		afe_waker_wake_by_ref(cx->waker);
		return AFE_PENDING;
	}
	f->result = 5;
	return AFE_READY;
}

struct parent {
	struct afe_future base;
	struct child child, cleanup_child;
	int body_done, cleanups, got;
};

static int parent_poll(struct afe_future *f, struct afe_context *cx)
{
	struct parent *p = afe_container_of(f, struct parent, base);
	AFE_ASYNC_BEGIN(f, cx);
	AFE_AWAIT_INTO(p->got, &p->child.base);
	p->body_done = 1;
	AFE_RETURN(p->got * 2);
	AFE_CLEANUP;
	p->cleanups++;
	/* An await in cleanup runs to completion even when cancelling. */
	AFE_AWAIT(&p->cleanup_child.base);
	AFE_ASYNC_END;
}

static void parent_init(struct parent *p, int child_pending)
{
	*p = (struct parent){0};
	afe_future_init(&p->base, parent_poll);
	afe_future_init(&p->child.base, child_poll);
	afe_future_init(&p->cleanup_child.base, child_poll);
	p->child.pending_polls = child_pending;
	p->cleanup_child.pending_polls = 1;
}

Test(future, await_returns_child_result_then_runs_cleanup)
{
	struct counting_waker cw;
	counting_waker_init(&cw);
	struct afe_context cx = counting_context(&cw, false);
	struct parent p;
	parent_init(&p, 2);
	int polls = 0;
	while (afe_future_poll(&p.base, &cx) == AFE_PENDING)
		polls++;
	cr_assert_eq(polls, 3, "2 pending child polls + 1 in cleanup");
	cr_assert_eq(p.base.result, 10);
	cr_assert_eq(p.body_done, 1);
	cr_assert_eq(p.cleanups, 1);
	cr_assert_eq(atomic_load(&cw.wakes), 3);
	cr_assert(afe_future_is_done(&p.base));
	/* Fused: polling again changes nothing. */
	cr_assert_eq(afe_future_poll(&p.base, &cx), AFE_READY);
	cr_assert_eq(p.cleanups, 1);
}

Test(future, cancel_winds_down_child_then_cleanup)
{
	struct counting_waker cw;
	counting_waker_init(&cw);
	struct afe_context cx = counting_context(&cw, false);
	struct parent p;
	parent_init(&p, 100);
	p.child.cancel_polls_needed = 2;
	cr_assert_eq(afe_future_poll(&p.base, &cx), AFE_PENDING);
	cx.cancel = true;
	/* The child needs two more polls to wind down; then the cleanup's
	 * own await needs one. */
	cr_assert_eq(afe_future_poll(&p.base, &cx), AFE_PENDING);
	cr_assert_eq(afe_future_poll(&p.base, &cx), AFE_PENDING);
	cr_assert_eq(afe_future_poll(&p.base, &cx), AFE_PENDING);
	cr_assert_eq(afe_future_poll(&p.base, &cx), AFE_READY);
	cr_assert_eq(p.child.cancels, 3);
	cr_assert_eq(p.cleanup_child.cancels, 0, "cleanup awaits are not cancelled");
	cr_assert_eq(p.body_done, 0);
	cr_assert_eq(p.cleanups, 1);
	cr_assert_eq(p.base.result, -ECANCELED);
}

Test(future, cancel_before_first_poll_runs_only_cleanup)
{
	struct counting_waker cw;
	counting_waker_init(&cw);
	struct afe_context cx = counting_context(&cw, true);
	struct parent p;
	parent_init(&p, 0);
	p.cleanup_child.pending_polls = 0;
	cr_assert_eq(afe_future_poll(&p.base, &cx), AFE_READY);
	cr_assert_eq(p.child.cancels, 0);
	cr_assert_eq(p.cleanups, 1);
	cr_assert_eq(p.base.result, -ECANCELED);
}

struct looper {
	struct afe_future base;
	int i, sum;
	struct child c;
};

static int looper_poll(struct afe_future *f, struct afe_context *cx)
{
	struct looper *l = afe_container_of(f, struct looper, base);
	AFE_ASYNC_BEGIN(f, cx);
	/* Each macro is a single statement: a loop body without braces. */
	for (l->i = 0; l->i < 4; l->i++)
		AFE_YIELD();
	afe_future_init(&l->c.base, child_poll);
	for (l->i = 0; l->i < 3; l->i++, afe_future_init(&l->c.base, child_poll))
		AFE_AWAIT_INTO(l->sum, &l->c.base);
	AFE_RETURN(l->sum + l->i);
	AFE_ASYNC_END;
}

Test(future, macros_work_as_unbraced_loop_bodies)
{
	struct counting_waker cw;
	counting_waker_init(&cw);
	struct afe_context cx = counting_context(&cw, false);
	struct looper l = {0};
	afe_future_init(&l.base, looper_poll);
	int polls = 1;
	while (afe_future_poll(&l.base, &cx) == AFE_PENDING)
		polls++;
	cr_assert_eq(polls, 5, "four yields, then the awaits are ready at once");
	cr_assert_eq(atomic_load(&cw.wakes), 4, "each yield wakes its own task");
	cr_assert_eq(l.base.result, 8);
}

Test(future, waker_register_keeps_the_same_waker_and_replaces_another)
{
	struct counting_waker a, b;
	counting_waker_init(&a);
	counting_waker_init(&b);
	struct afe_context ca = counting_context(&a, false), cb = counting_context(&b, false);
	struct afe_waker slot = {0};
	cr_assert_not(afe_waker_is_set(&slot));
	afe_waker_register(&slot, &ca);
	afe_waker_register(&slot, &ca);
	cr_assert_eq(atomic_load(&a.refs), 1, "the same waker is not cloned twice");
	afe_waker_register(&slot, &cb);
	cr_assert_eq(atomic_load(&a.refs), 0, "the old waker was dropped");
	cr_assert_eq(atomic_load(&b.refs), 1);
	cr_assert(afe_waker_will_wake(&slot, &b.waker));
	afe_waker_wake_by_ref(&slot);
	cr_assert_eq(atomic_load(&b.wakes), 1);
	afe_waker_wake(&slot);
	cr_assert_not(afe_waker_is_set(&slot), "wake empties the slot");
	cr_assert_eq(atomic_load(&b.refs), 0);
	afe_waker_drop(&slot); /* dropping an empty waker is a no-op */
}

Test(future, init_resets_a_finished_future)
{
	struct counting_waker cw;
	counting_waker_init(&cw);
	struct afe_context cx = counting_context(&cw, false);
	struct child c = {0};
	afe_future_init(&c.base, child_poll);
	cr_assert_eq(afe_future_poll(&c.base, &cx), AFE_READY);
	afe_future_init(&c.base, child_poll);
	cr_assert_not(afe_future_is_done(&c.base));
	cr_assert_eq(c.base.result, 0);
}

/* A yield inside a switch of the body's own: its case label binds to that
 * switch, so the resume point is lost. Polled twice, it must abort with a
 * message naming it, not finish with a stale result and no cleanup. */
struct switch_awaiter {
	struct afe_future base;
	int mode, cleanups;
};

static int switch_awaiter_poll(struct afe_future *f, struct afe_context *cx)
{
	struct switch_awaiter *self = afe_container_of(f, struct switch_awaiter, base);
	AFE_ASYNC_BEGIN(f, cx);
	switch (self->mode) {
	case 1:
		AFE_YIELD();
		break;
	default:
		break;
	}
	AFE_RETURN(7);
	AFE_CLEANUP;
	self->cleanups++;
	AFE_ASYNC_END;
}

static void poll_twice_across_the_switch(void)
{
	struct switch_awaiter s = {.mode = 1};
	afe_future_init(&s.base, switch_awaiter_poll);
	struct counting_waker cw;
	counting_waker_init(&cw);
	struct afe_context cx = counting_context(&cw, false);
	if (afe_future_poll(&s.base, &cx) != AFE_PENDING)
		_exit(2);
	afe_future_poll(&s.base, &cx); /* resumes at the lost line */
}

Test(future, an_await_inside_a_switch_of_its_own_aborts_naming_the_future)
{
	char said[512];
	int status = test_child_stderr(poll_twice_across_the_switch, said, sizeof(said));
	cr_assert(WIFSIGNALED(status) && WTERMSIG(status) == SIGABRT, "status %#x", status);
	cr_assert_not_null(strstr(said, "switch_awaiter_poll"), "said: %s", said);
	cr_assert_not_null(strstr(said, "inside a switch"), "said: %s", said);
}

/* The same future, not yielding inside its switch: no false alarm, and
 * a future polled again once finished stays ready. */
Test(future, a_switch_without_an_await_inside_runs_to_its_end)
{
	struct switch_awaiter s = {.mode = 0};
	afe_future_init(&s.base, switch_awaiter_poll);
	struct counting_waker cw;
	counting_waker_init(&cw);
	struct afe_context cx = counting_context(&cw, false);
	cr_assert_eq(afe_future_poll(&s.base, &cx), AFE_READY);
	cr_assert_eq(s.base.result, 7);
	cr_assert_eq(s.cleanups, 1);
	cr_assert_eq(s.base.poll(&s.base, &cx), AFE_READY);
	cr_assert_eq(s.cleanups, 1);
}

/* Awaits its child `times` times, initialising it again before each
 * await unless `forgets` is set: then the second await would return the
 * first result at once (a loop waiting for a change would spin). */
struct re_awaiter {
	struct afe_future base;
	struct child child;
	int i, times, forgets, sum;
};

static int re_awaiter_poll(struct afe_future *f, struct afe_context *cx)
{
	AFE_ASYNC_BEGIN_SELF(struct re_awaiter, self, f, cx);
	for (self->i = 0; self->i < self->times; self->i++) {
		if (!self->forgets || self->i == 0) {
			afe_future_init(&self->child.base, child_poll);
			self->child.pending_polls = 1;
		}
		AFE_AWAIT(&self->child.base);
		self->sum += (int)self->child.base.result;
	}
	AFE_RETURN(self->sum);
	AFE_ASYNC_END;
}

static void await_a_finished_child_again(void)
{
	struct re_awaiter r = {.times = 3, .forgets = 1};
	afe_future_init(&r.base, re_awaiter_poll);
	struct counting_waker cw;
	counting_waker_init(&cw);
	struct afe_context cx = counting_context(&cw, false);
	for (int polls = 0; polls < 10; polls++)
		if (afe_future_poll(&r.base, &cx) == AFE_READY)
			_exit(0); /* finished silently with a stale sum */
	_exit(2);
}

Test(future, awaiting_a_finished_child_again_aborts_naming_the_parent)
{
	char said[512];
	int status = test_child_stderr(await_a_finished_child_again, said, sizeof(said));
	cr_assert(WIFSIGNALED(status) && WTERMSIG(status) == SIGABRT, "status %#x", status);
	cr_assert_not_null(strstr(said, "re_awaiter_poll"), "said: %s", said);
	cr_assert_not_null(strstr(said, "test_future.c:"), "said: %s", said);
	cr_assert_not_null(strstr(said, "already finished"), "said: %s", said);
}

/* Initialised again before each await: no false alarm, whether the child
 * finishes at its first poll or after pending ones. */
Test(future, awaiting_a_child_initialised_again_each_time_runs_to_its_end)
{
	struct re_awaiter r = {.times = 3};
	afe_future_init(&r.base, re_awaiter_poll);
	struct counting_waker cw;
	counting_waker_init(&cw);
	struct afe_context cx = counting_context(&cw, false);
	int polls = 0;
	while (afe_future_poll(&r.base, &cx) == AFE_PENDING)
		polls++;
	cr_assert_eq(polls, 3);
	cr_assert_eq(r.base.result, 15);
}

/* The cleanup section awaits what may still run: a child the body already
 * awaited to its end is no alarm there. */
struct cleanup_re_awaiter {
	struct afe_future base;
	struct child child;
};

static int cleanup_re_awaiter_poll(struct afe_future *f, struct afe_context *cx)
{
	AFE_ASYNC_BEGIN_SELF(struct cleanup_re_awaiter, self, f, cx);
	AFE_AWAIT(&self->child.base);
	AFE_CLEANUP;
	AFE_AWAIT(&self->child.base);
	AFE_RETURN(self->child.base.result);
	AFE_ASYNC_END;
}

Test(future, awaiting_a_finished_child_in_cleanup_is_no_alarm)
{
	struct cleanup_re_awaiter r = {0};
	afe_future_init(&r.base, cleanup_re_awaiter_poll);
	afe_future_init(&r.child.base, child_poll);
	struct counting_waker cw;
	counting_waker_init(&cw);
	struct afe_context cx = counting_context(&cw, false);
	cr_assert_eq(afe_future_poll(&r.base, &cx), AFE_READY);
	cr_assert_eq(r.base.result, 5);
}

/* Two tasks await one shared future, which yields forever: the second
 * task's poll must abort naming the future, not leave two tasks taking
 * turns with one future's state (each keeping only its own waker). */
struct shared_yielder {
	struct afe_future base;
};

static int shared_yielder_poll(struct afe_future *f, struct afe_context *cx)
{
	(void)f;
	afe_context_yield(cx);
	return AFE_PENDING;
}

struct shared_awaiter {
	struct afe_future base;
	struct afe_future *shared;
};

static int shared_awaiter_poll(struct afe_future *f, struct afe_context *cx)
{
	AFE_ASYNC_BEGIN_SELF(struct shared_awaiter, self, f, cx);
	AFE_AWAIT(self->shared);
	AFE_ASYNC_END;
}

static void await_one_future_from_two_tasks(void)
{
	struct afe_runtime *rt = test_runtime(2);
	static struct shared_yielder shared;
	afe_future_init(&shared.base, shared_yielder_poll);
	struct afe_spawn_options opts = {.name = "second"};
	struct shared_awaiter a = {.shared = &shared.base};
	afe_future_init(&a.base, shared_awaiter_poll);
	if (afe_spawn(rt, &a, NULL) != 0 || afe_spawn_with(rt, &a, NULL, &opts) != 0)
		_exit(3);
	struct timespec ms100 = {.tv_sec = 0, .tv_nsec = 100 * 1000 * 1000};
	nanosleep(&ms100, NULL);
	_exit(0); /* both still taking turns */
}

Test(future, one_future_awaited_by_two_tasks_aborts_naming_it)
{
	/* Room for ThreadSanitizer's report of the race, which comes first. */
	char said[16384];
	int status = test_child_stderr(await_one_future_from_two_tasks, said, sizeof(said));
	cr_assert(WIFSIGNALED(status) && WTERMSIG(status) == SIGABRT, "status %#x", status);
	cr_assert_not_null(strstr(said, "shared_awaiter_poll"), "said: %s", said);
	cr_assert_not_null(strstr(said, "two tasks"), "said: %s", said);
}
