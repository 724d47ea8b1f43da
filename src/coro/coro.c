/* SPDX-License-Identifier: MIT */
/*
 * Coroutines as tasks: a coroutine future's poll enters the coroutine's
 * fiber, which runs until it awaits a future that is not ready, or
 * returns. See afe/coro.h.
 *
 * An await polls the future on the coroutine's own stack first: a future
 * ready at once costs no switch. One that is pending is left in
 * `awaiting`, and the fiber suspends; the task's later polls poll that
 * future from the worker's stack, and enter the fiber again only once it
 * is ready. So a coroutine waiting costs what the future it awaits costs,
 * plus one switch in and out when it completes.
 *
 * Cancellation: a poll with cancel set marks the coroutine cancelled for
 * good, and polls the awaited future with cancel until it winds down (an
 * I/O operation lets go of its buffer, which may be on the coroutine's
 * stack); the await then returns -ECANCELED, and so do later ones at once.
 */
#include <afe/coro.h>

#include <errno.h>
#include <string.h>

#include "coro_internal.h"
#include "../core/runtime_internal.h"
#include "fiber_switch.h"

struct afe__coro {
	struct afe__fiber fiber; /* first: the fiber's entry finds us by it */
	afe_coro_fn *fn;
	void *arg;
	intptr_t ret;
	bool finished;
	bool cancelled;
	struct afe_future *awaiting; /* pending, polled by the task's polls */
	intptr_t await_result;
	struct afe_context *cx; /* the task poll that entered the fiber */
	union afe__co_slot slot;
};

_Static_assert(sizeof(struct afe__coro) <= AFE__CORO_STORAGE &&
		       _Alignof(struct afe__coro) <= 16,
	       "struct afe_coro's storage holds the control block");

static struct afe__coro *coro_of(struct afe_coro *c)
{
	return (struct afe__coro *)(void *)c->storage;
}

/* The coroutine running on this thread, if any. After a coroutine
 * resumes it may be on another thread: a function that reads this after
 * a switch must find its address afresh (afe__co_yield_end). */
static _Thread_local struct afe__coro *current;

static void coro_main(struct afe__fiber *f)
{
	struct afe__coro *co = (struct afe__coro *)f;
	co->ret = co->fn(co->arg);
	co->finished = true;
	afe__fiber_exit(f);
}

/* The stack size of c on rt (NULL: none known): its own, else rt's. */
static size_t stack_size_on(const struct afe_coro *c, const struct afe_runtime *rt)
{
	if (c->stack_size)
		return c->stack_size;
	return rt && rt->config.coro_stack_size ? rt->config.coro_stack_size
						: AFE_CORO_STACK_DEFAULT;
}

/* Sets up c's control block and makes its stack, for a run on rt. It
 * holds no pointer to itself until its first run, so c may still be
 * copied (spawn does). */
static int coro_make(struct afe_coro *c, const struct afe_runtime *rt)
{
	struct afe__coro *co = coro_of(c);
	memset(co, 0, sizeof(*co));
	int err = c->shared_stack
			  ? afe__fiber_init_shared(&co->fiber, coro_main)
			  : afe__fiber_init(&co->fiber, stack_size_on(c, rt), coro_main);
	if (err < 0)
		return err;
	co->fn = c->fn;
	co->arg = c->arg;
	c->made = true;
	return 0;
}

static void coro_free(struct afe_coro *c)
{
	afe__fiber_destroy(&coro_of(c)->fiber);
	c->made = false;
}

/* False when the coroutine's shared stack is busy (see fiber.h). */
static bool enter(struct afe__coro *co, struct afe_context *cx)
{
	struct afe__coro *outer = current; /* a coroutine awaiting another one */
	current = co;
	co->cx = cx;
	bool entered = afe__fiber_enter(&co->fiber);
	co->cx = NULL;
	current = outer;
	return entered;
}

static int coro_poll(struct afe_future *f, struct afe_context *cx)
{
	struct afe_coro *c = afe_container_of(f, struct afe_coro, base);
	if (!c->made) {
		int err = c->fn ? coro_make(c, afe_runtime_current()) : -EINVAL;
		if (err < 0) {
			f->result = err;
			return AFE_READY;
		}
	}
	struct afe__coro *co = coro_of(c);
	if (cx->cancel)
		co->cancelled = true;
	if (co->awaiting) {
		if (afe_future_poll(co->awaiting, cx) == AFE_PENDING)
			return AFE_PENDING;
		co->await_result = co->cancelled ? -ECANCELED : co->awaiting->result;
		co->awaiting = NULL;
	}
	if (!enter(co, cx)) { /* its shared stack is busy: soon free */
		afe_context_yield(cx);
		return AFE_PENDING;
	}
	if (!co->finished)
		return AFE_PENDING;
	f->result = co->ret;
	coro_free(c);
	return AFE_READY;
}

int afe_coro_init(struct afe_coro *c, afe_coro_fn *fn, void *arg,
		  const struct afe_coro_opts *opts)
{
	if (!c)
		return -EINVAL;
	afe_future_init(&c->base, coro_poll);
	c->fn = fn;
	c->arg = arg;
	c->stack_size = opts ? opts->stack_size : 0;
	c->shared_stack = opts && opts->shared_stack;
	c->made = false;
	bool size_ok = c->stack_size == 0 ||
		       (c->shared_stack ? c->stack_size == AFE_CORO_STACK_DEFAULT
					: c->stack_size >= AFE_CORO_STACK_MIN);
	if (fn && size_ok)
		return 0;
	c->fn = NULL; /* the first poll completes with -EINVAL */
	return -EINVAL;
}

int afe_coro_spawn(struct afe_runtime *rt, afe_coro_fn *fn, void *arg,
		   struct afe_join_handle *handle, const struct afe_coro_opts *opts)
{
	struct afe_coro c;
	int err = afe_coro_init(&c, fn, arg, opts);
	if (err < 0 || (err = coro_make(&c, rt ? rt : afe_runtime_current())) < 0)
		return err;
	err = afe_spawn(rt, &c, handle); /* the task's copy owns the stack */
	if (err < 0)
		coro_free(&c);
	return err;
}

/* Whether [p, p + len) touches co's stack while co is on a shared one. */
static bool on_shared_stack(const struct afe__coro *co, const void *p, size_t len)
{
	const struct afe__fiber *f = &co->fiber;
	const char *lo = f->stack_lo, *hi = lo + f->stack_size, *at = p;
	return f->shared && at < hi && at + len > lo;
}

union afe__co_slot *afe__co_slot(void)
{
	struct afe__coro *co = current;
	return co ? &co->slot : NULL;
}

bool afe__co_on_shared_stack(const void *buf, size_t len)
{
	struct afe__coro *co = current;
	return co && buf && len && on_shared_stack(co, buf, len);
}

intptr_t afe_co_await(struct afe_future *f)
{
	struct afe__coro *co = current;
	if (!co)
		return -EPERM;
	if (on_shared_stack(co, f, sizeof(*f)))
		return -EFAULT;
	if (co->cancelled)
		return -ECANCELED;
	if (afe_future_poll(f, co->cx) == AFE_READY)
		return f->result;
	co->awaiting = f;
	afe__fiber_suspend(&co->fiber);
	return co->await_result;
}

/* The caller switches (afe/coro_inline.h) only with our own switch, whose
 * context format the header repeats, and without a sanitizer: those
 * annotate each switch around it, and a return between the annotation
 * and the switch would unbalance their shadow call stacks. */
#if defined(AFE_FIBER_OWN_SWITCH) && !defined(AFE_FIBER_ASAN) && !defined(AFE_FIBER_TSAN)
#define CALLER_SWITCHES 1
#endif

/* A yield is not an await of a yield-now future: the task's next poll,
 * whatever woke it, enters the fiber again. Half the polls: 139 ns a
 * yield became 125 ns (one worker, coro_yield). */
int afe__co_yield_begin(struct afe__co_switch *s, unsigned format)
{
	struct afe__coro *co = current;
	if (!co)
		return -EPERM;
	if (co->cancelled)
		return -ECANCELED;
	afe_context_yield(co->cx); /* queued behind the others, then polled */
#ifdef CALLER_SWITCHES
	if (format == AFE__CO_SWITCH_FORMAT) {
		s->save = &co->fiber.ctx;
		s->resume = co->fiber.caller;
		return AFE__CO_SWITCH_HERE;
	}
#endif
	(void)s;
	(void)format;
	afe__fiber_suspend(&co->fiber);
	return co->cancelled ? -ECANCELED : 0;
}

/* Never inline: it reads `current` after a switch that may have moved the
 * coroutine to another thread, and inlined beside begin (clang did, in
 * afe_co_yield below) the compiler may keep the thread-local's address
 * that begin found on the thread the coroutine left. */
__attribute__((noinline)) int afe__co_yield_end(void)
{
	struct afe__coro *co = current; /* set by the poll that resumed us */
	return co->cancelled ? -ECANCELED : 0;
}

/* The parenthesised name: afe/coro.h makes afe_co_yield() a macro for the
 * inline form. This is that form out of line: begin, the switch where the
 * caller switches (else begin yielded whole), end. */
int(afe_co_yield)(void)
{
	struct afe__co_switch s;
	int rc = afe__co_yield_begin(&s, AFE__CO_SWITCH_FORMAT);
#ifdef CALLER_SWITCHES
	if (rc == AFE__CO_SWITCH_HERE) {
		afe__fiber_switch(s.save, s.resume);
		rc = afe__co_yield_end();
	}
#endif
	return rc;
}

bool afe_co_cancelled(void)
{
	struct afe__coro *co = current;
	return co && co->cancelled;
}
