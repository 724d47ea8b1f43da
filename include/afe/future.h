/* SPDX-License-Identifier: MIT */
/*
 * Futures, wakers and the async-function macros.
 *
 * A future is a state machine: its poll function advances it and returns
 * AFE_READY (its result is in future->result) or AFE_PENDING, in which case
 * it has registered the context's waker somewhere that will wake it.
 *
 * Every future struct embeds `struct afe_future base` and recovers its own
 * state with afe_container_of. A future must not keep pointers into itself
 * before its first poll: spawning copies it into the task's memory.
 *
 * Cancellation: a context with cancel set asks the future to wind down. It
 * cancels whatever it waits on, and returns AFE_READY (result -ECANCELED by
 * convention) once nothing it started is still in flight, or AFE_PENDING
 * with the waker registered while it waits for that.
 *
 * Errors: a result below zero is a negative errno. Every init that makes a
 * future (afe_<thing>_init) leaves it ready to poll whatever its
 * arguments: bad ones (a null pointer, an empty handle, a size of 0) are
 * the future's result at its first poll, usually -EINVAL, and nothing is
 * started. The few inits that can tell at once also return that error
 * (afe_join_init, afe_cancel_init, afe_join_all_init, afe_select_init,
 * afe_coro_init), so a caller may check there or at the await. Inits of
 * objects that are not futures (channels, barriers, intervals) return 0
 * or a negative errno and leave nothing to poll.
 */
#ifndef AFE_FUTURE_H
#define AFE_FUTURE_H

#include <errno.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "common.h"

enum afe_poll {
	AFE_PENDING = 0,
	AFE_READY = 1,
};

struct afe_future;
struct afe_context;
struct afe_task;

typedef int afe_poll_fn(struct afe_future *self, struct afe_context *cx);

/* Flags of struct afe_future. */
#define AFE_FUTURE_DONE 1u	   /* returned AFE_READY; polls again are no-ops */
#define AFE_FUTURE_CLEANING 2u /* an async function is in its cleanup section */
/* The bits from here up: with AFE_CHECK_AWAITS, a hash (never 0) of the
 * task that awaits the future; 0 before its first await in a task. */
#define AFE__FUTURE_AWAITER_SHIFT 8

struct afe_future {
	afe_poll_fn *poll;
	intptr_t result; /* the output, once ready */
	/* Private: the async macros' and the executor's. */
	int resume; /* where to continue (0 = start) */
	unsigned flags;
};

/*
 * A waker: how to make a task (or a thread) poll its future again.
 * An empty waker has vtable == NULL. Wakers are clone/drop counted.
 */
struct afe_waker_vtable {
	void (*clone)(void *data);
	void (*wake)(void *data); /* consumes the reference */
	void (*wake_by_ref)(void *data);
	void (*drop)(void *data);
};

struct afe_waker {
	const struct afe_waker_vtable *vtable;
	void *data;
};

/*
 * A race: how a select makes sure at most one of its branches happens.
 * The select owns it and points the context at it while it polls child
 * `index` (`polling`). Futures that complete from elsewhere (a channel
 * operation finished by the other side, a lock handed over) claim the
 * race for their index before they complete, and leave it alone when
 * another branch already claimed it: so a losing send delivered nothing
 * and a losing receive took nothing. A future polled by someone else (a
 * grandchild of the select) sees polling != itself and ignores the race.
 * winner: AFE_RACE_OPEN until claimed; then the index of the winner, or a
 * value past the children (the default branch, cancellation). A claim
 * that its own branch's poll could not use is given back (the race is
 * open again): a select is committed only to what has happened.
 * withdrawing: the child is polled with cancel because another branch
 * (or the default) won, not because the select itself is cancelled.
 */
#define AFE_RACE_OPEN ((intptr_t)-1)
struct afe_race {
	_Atomic intptr_t winner;
	/* Private: written and read by the select's poll only. */
	const struct afe_future *polling;
	intptr_t index;
	bool withdrawing;
};

/* What a poll receives. cancel asks the future to wind down; race is set
 * by a select around the polls of its own children (see struct afe_race).
 * owned_fd, when set, names an fd that whoever polls the future owns and
 * will close through the runtime (afe_io_close), never by close(2): the
 * TCP server sets it to the connection's fd, so that the epoll backend
 * may keep that fd's registration from one wait to the next. */
struct afe_context {
	const struct afe_waker *waker;
	struct afe_task *task; /* the task being polled, NULL outside one */
	bool cancel;
	struct afe_race *race;
	const int *owned_fd; /* NULL: none */
};

/* Makes f a fresh, not yet polled future with the given poll function. */
static inline void afe_future_init(struct afe_future *f, afe_poll_fn *poll)
{
	f->poll = poll;
	f->result = 0;
	f->resume = 0;
	f->flags = 0;
}

/*
 * Polls f once. Fused: once f has returned AFE_READY, further polls return
 * AFE_READY at once without calling its poll function.
 */
static inline int afe_future_poll(struct afe_future *f, struct afe_context *cx)
{
	if (f->flags & AFE_FUTURE_DONE)
		return AFE_READY;
	if (f->poll(f, cx) == AFE_PENDING)
		return AFE_PENDING;
	f->flags |= AFE_FUTURE_DONE;
	return AFE_READY;
}

static inline bool afe_future_is_done(const struct afe_future *f)
{
	return (f->flags & AFE_FUTURE_DONE) != 0;
}

/* Waker operations. None of them may be called on an empty waker except
 * afe_waker_drop and afe_waker_is_set. */
static inline bool afe_waker_is_set(const struct afe_waker *w)
{
	return w->vtable != NULL;
}

static inline void afe_waker_clone(struct afe_waker *dst, const struct afe_waker *src)
{
	src->vtable->clone(src->data);
	*dst = *src;
}

/* Wakes and empties w. */
static inline void afe_waker_wake(struct afe_waker *w)
{
	const struct afe_waker_vtable *vt = w->vtable;
	w->vtable = NULL;
	vt->wake(w->data);
}

static inline void afe_waker_wake_by_ref(const struct afe_waker *w)
{
	w->vtable->wake_by_ref(w->data);
}

static inline void afe_waker_drop(struct afe_waker *w)
{
	if (w->vtable) {
		const struct afe_waker_vtable *vt = w->vtable;
		w->vtable = NULL;
		vt->drop(w->data);
	}
}

static inline bool afe_waker_will_wake(const struct afe_waker *a, const struct afe_waker *b)
{
	return a->vtable == b->vtable && a->data == b->data;
}

/*
 * Stores the context's waker in slot, replacing what was there unless it
 * already wakes the same task. The caller synchronises access to slot.
 */
static inline void afe_waker_register(struct afe_waker *slot, const struct afe_context *cx)
{
	if (slot->vtable && afe_waker_will_wake(slot, cx->waker))
		return;
	afe_waker_drop(slot);
	afe_waker_clone(slot, cx->waker);
}

/*
 * Yields: the current task is woken at once and queued behind the other
 * runnable tasks. Call it, then return AFE_PENDING.
 */
static inline void afe_context_yield(struct afe_context *cx)
{
	afe_waker_wake_by_ref(cx->waker);
}

/* ------------------------------------------------------------------------
 * Async functions: stackless state machines that read like blocking code.
 *
 *   struct count_down { struct afe_future base; int i; struct afe_join join; };
 *
 *   static int count_down_poll(struct afe_future *f, struct afe_context *cx)
 *   {
 *       AFE_ASYNC_BEGIN_SELF(struct count_down, self, f, cx);
 *       for (self->i = 3; self->i > 0; self->i--)
 *           AFE_YIELD();
 *       AFE_AWAIT(&self->join.base);
 *       AFE_RETURN(self->join.base.result);
 *       AFE_CLEANUP;             // optional: runs after return or on cancel
 *       release_things(self);
 *       AFE_ASYNC_END;
 *   }
 *
 * AFE_ASYNC_BEGIN_SELF declares `self` and begins the body; a body that
 * needs no self begins with AFE_ASYNC_BEGIN(f, cx).
 *
 * Caveats (the protothread technique over a switch statement):
 * - Locals do not survive an await or yield: keep state in the struct.
 * - No await or yield inside a switch statement of your own (the future
 *   aborts with a message at the poll that resumes it).
 * - At most one await or yield per source line.
 * - A future is awaited by one task at a time (debug builds abort when a
 *   second task awaits it before it is initialised again).
 * - The awaited child future lives in the parent's struct, so awaiting
 *   allocates nothing; initialise it before each await (outside the
 *   cleanup section, an await of a child already finished aborts in
 *   debug builds). The macro
 *   argument is evaluated at every poll: pass a plain pointer.
 * - On cancellation the child being awaited is cancelled and awaited
 *   first, then control goes to the cleanup section with result
 *   -ECANCELED. Awaits inside the cleanup section are not cancelled.
 * - AFE_RETURN inside the cleanup section sets the result and finishes.
 * ---------------------------------------------------------------------- */

/* Aborts, naming the poll function (fn, ending at file:line) of f, which
 * was resumed at a line that has no await: an AFE_AWAIT or AFE_YIELD
 * inside a switch statement of the caller's own, whose case label bound to
 * that switch. Silently, the future would finish with a stale result and
 * skip its cleanup. */
AFE_EXPORT _Noreturn void afe__resume_lost(const struct afe_future *f, const char *fn,
					   const char *file, int line);

/* Aborts, naming the poll function (fn, at file:line) of parent, which
 * began an AFE_AWAIT of child although child had already finished: awaited
 * again without being initialised again, it would return its old result at
 * once, and a loop written that way spins. */
AFE_EXPORT _Noreturn void afe__await_finished(const struct afe_future *parent,
					      const struct afe_future *child, const char *fn,
					      const char *file, int line);

/*
 * AFE_CHECK_AWAITS: 1 makes AFE_AWAIT check two misuses and abort with a
 * message naming the awaiting function and line:
 * - as an await begins, that its child has not already finished (see
 *   afe__await_finished): one flag test per await. The cleanup section is
 *   not checked: it runs after the body returned or was cancelled, so it
 *   awaits what may still run, which the body may have awaited to its end
 *   already (a scope's end, say);
 * - at each poll of the child from a task, that no other task awaited it
 *   since its init (see afe__awaited_by_two_tasks): a hash and a compare.
 * Defaults to 1 unless NDEBUG is defined; define it before including afe
 * headers to choose. It changes no struct (the awaiting task's hash lives
 * in spare bits of flags), so code built either way links together.
 */
#ifndef AFE_CHECK_AWAITS
#ifdef NDEBUG
#define AFE_CHECK_AWAITS 0
#else
#define AFE_CHECK_AWAITS 1
#endif
#endif

/* Aborts, naming future f, which the function fn (at file:line) awaits in
 * the task polled with cx, although another task awaited f since its
 * init: one future awaited by two tasks at once, each of which would keep
 * only its own waker and might find the other's result taken. */
AFE_EXPORT _Noreturn void afe__awaited_by_two_tasks(const struct afe_future *f,
						    const struct afe_context *cx, const char *fn,
						    const char *file, int line);

#if AFE_CHECK_AWAITS
/* Records the task awaiting f in f's spare flag bits, or aborts when
 * another task did. A hash of the task's address: two tasks may share one
 * (then the check misses), never a false alarm. */
static inline void afe__check_awaiter(struct afe_future *f, const struct afe_context *cx,
				      const char *fn, const char *file, int line)
{
	if (!cx->task || (f->flags & AFE_FUTURE_DONE))
		return; /* polled by a thread, not a task; or fused */
	unsigned mine = (unsigned)(((uintptr_t)cx->task >> 4) % 0xffffffu) + 1;
	unsigned seen = f->flags >> AFE__FUTURE_AWAITER_SHIFT;
	if (seen == 0)
		f->flags |= mine << AFE__FUTURE_AWAITER_SHIFT;
	else if (seen != mine)
		afe__awaited_by_two_tasks(f, cx, fn, file, line);
}

#define AFE__AWAIT_POLLS(child) \
	afe__check_awaiter((child), afe__cx, __func__, __FILE__, __LINE__)
#else
#define AFE__AWAIT_POLLS(child) ((void)0)
#endif

#if AFE_CHECK_AWAITS
#define AFE__AWAIT_BEGINS(child)                                                   \
	do {                                                                       \
		if (afe_future_is_done(child) &&                                   \
		    !(afe__self->flags & AFE_FUTURE_CLEANING))                     \
			afe__await_finished(afe__self, (child), __func__, __FILE__, \
					    __LINE__);                             \
	} while (0)
#else
#define AFE__AWAIT_BEGINS(child) ((void)0)
#endif

#define AFE__RESUME_CLEANUP (-1)
#define AFE__RESUME_FINISHED (-2)

#if defined(__GNUC__) && __GNUC__ >= 7
#define AFE__FALLTHROUGH __attribute__((fallthrough))
#else
#define AFE__FALLTHROUGH ((void)0)
#endif

/* Polls child on behalf of parent: in the cleanup section the cancel
 * request is not passed on, so cleanup awaits complete normally. */
static inline int afe__poll_child(struct afe_future *parent, struct afe_future *child,
				  struct afe_context *cx)
{
	if ((parent->flags & AFE_FUTURE_CLEANING) && cx->cancel) {
		struct afe_context calm = *cx;
		calm.cancel = false;
		return afe_future_poll(child, &calm);
	}
	return afe_future_poll(child, cx);
}

static inline bool afe__should_unwind(const struct afe_future *self, const struct afe_context *cx)
{
	return cx->cancel && !(self->flags & AFE_FUTURE_CLEANING);
}

#define AFE__UNWIND()                                        \
	do {                                                 \
		afe__self->result = -ECANCELED;              \
		afe__self->resume = AFE__RESUME_CLEANUP;     \
		goto afe__dispatch;                          \
	} while (0)

#define AFE_ASYNC_BEGIN(fut, cx)                             \
	struct afe_future *afe__self = (fut);                \
	struct afe_context *afe__cx = (cx);                  \
	afe__dispatch:                                       \
	switch (afe__self->resume) {                         \
	case 0:                                              \
		if (afe__should_unwind(afe__self, afe__cx))  \
			AFE__UNWIND()

/*
 * AFE_ASYNC_BEGIN for a future of struct type (its struct afe_future
 * member named base, as everywhere): declares `type *self` pointing at the
 * future being polled, then begins the body. fut is evaluated once.
 *     AFE_ASYNC_BEGIN_SELF(struct x, self, f, cx);
 * is
 *     struct x *self = afe_container_of(f, struct x, base);
 *     AFE_ASYNC_BEGIN(&self->base, cx);
 */
#define AFE_ASYNC_BEGIN_SELF(type, self, fut, cx)                 \
	type *self = afe_container_of((fut), type, base);         \
	AFE_ASYNC_BEGIN(&(self)->base, cx)

/* Awaits child (a struct afe_future *); its result is then child->result.
 * Outside the cleanup section child must not have finished when the await
 * begins (checked, see AFE_CHECK_AWAITS): initialise it again before
 * awaiting it again.
 * Each of these macros is one statement: usable as the body of a loop. */
#define AFE_AWAIT(child)                                                           \
	do {                                                                       \
		afe__self->resume = __LINE__;                                      \
		AFE__AWAIT_BEGINS(child);                                          \
		AFE__FALLTHROUGH;                                                  \
	case __LINE__:                                                             \
		AFE__AWAIT_POLLS(child);                                           \
		if (afe__poll_child(afe__self, (child), afe__cx) == AFE_PENDING)   \
			return AFE_PENDING;                                        \
		if (afe__should_unwind(afe__self, afe__cx))                        \
			AFE__UNWIND();                                             \
	} while (0)

/* Awaits child and stores its result in lvalue. */
#define AFE_AWAIT_INTO(lvalue, child)         \
	do {                                  \
		AFE_AWAIT(child);             \
		(lvalue) = (child)->result;   \
	} while (0)

/* Lets the other runnable tasks run, then continues. */
#define AFE_YIELD()                                                 \
	do {                                                        \
		afe__self->resume = __LINE__;                       \
		afe_context_yield(afe__cx);                         \
		return AFE_PENDING;                                 \
	case __LINE__:                                              \
		if (afe__should_unwind(afe__self, afe__cx))         \
			AFE__UNWIND();                              \
	} while (0)

/* Finishes with value as the result, running the cleanup section first. */
#define AFE_RETURN(value)                                         \
	do {                                                      \
		afe__self->result = (intptr_t)(value);            \
		if (afe__self->flags & AFE_FUTURE_CLEANING)       \
			goto afe__finish;                         \
		afe__self->resume = AFE__RESUME_CLEANUP;          \
		goto afe__dispatch;                               \
	} while (0)

/* Starts the cleanup section: it runs after AFE_RETURN, after falling off
 * the end of the body, and on cancellation. */
#define AFE_CLEANUP                                          \
	AFE__FALLTHROUGH;                                    \
	case AFE__RESUME_CLEANUP:                            \
		afe__self->flags |= AFE_FUTURE_CLEANING

/* Ends the body. Reached only by falling off it, or by a resume point no
 * case matches: a finished future polled again (ready with its result),
 * an AFE_RETURN with no cleanup section, or an await whose case label
 * bound to a switch of the caller's own, which is a bug: it aborts with
 * a message naming the poll function (see afe__resume_lost). */
#define AFE_ASYNC_END                                                        \
	goto afe__finish;                                                    \
	default:                                                             \
		if (afe__self->resume > 0)                                   \
			afe__resume_lost(afe__self, __func__, __FILE__, __LINE__); \
		break;                                                       \
	}                                                                    \
	goto afe__finish;                                                    \
	afe__finish:                                                         \
	afe__self->resume = AFE__RESUME_FINISHED;                            \
	return AFE_READY

#endif /* AFE_FUTURE_H */
