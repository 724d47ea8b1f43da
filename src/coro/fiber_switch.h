/* SPDX-License-Identifier: MIT */
/*
 * The fiber switches (fiber.h), inline: the coroutine layer's poll and
 * its yield and await call them, and every call level between a switch
 * and the code it returns to costs a mispredicted return there (the
 * switch leaves the processor's return predictions behind on the other
 * stack). Out of line, in fiber.c, coro_yield ran at 129 ns a yield on
 * one worker, inline at 105 ns: CORO.md, beside this file.
 *
 * Private to src/coro: coro.c includes it, and fiber.c for the sanitizer
 * switches and Boost.Context's declarations.
 */
#ifndef AFE_CORO_FIBER_SWITCH_H
#define AFE_CORO_FIBER_SWITCH_H

#include <stdbool.h>
#include <stddef.h>

#include "fiber.h"

#if defined(__SANITIZE_ADDRESS__)
#define AFE_FIBER_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define AFE_FIBER_ASAN 1
#endif
#endif
#if defined(__SANITIZE_THREAD__)
#define AFE_FIBER_TSAN 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define AFE_FIBER_TSAN 1
#endif
#endif
#ifdef AFE_FIBER_ASAN
#include <sanitizer/asan_interface.h>
#include <sanitizer/common_interface_defs.h>
#define ASAN_BUILD 1
#else
#define ASAN_BUILD 0
#endif
#ifdef AFE_FIBER_TSAN
#include <sanitizer/tsan_interface.h>
#endif

/* Boost.Context's C ABI (boost/context/detail/fcontext.hpp, which is C++). */
struct fcontext_transfer {
	void *fctx;
	void *data;
};
extern struct fcontext_transfer jump_fcontext(void *to, void *vp);
extern void *make_fcontext(void *sp, size_t size, void (*fn)(struct fcontext_transfer));


/* The fiber this thread runs (the SIGSEGV handler reads it), and whether
 * this thread has its alternate signal stack (fiber.c). */
extern _Thread_local struct afe__fiber *afe__fiber_running;
extern _Thread_local bool afe__fiber_has_alt_stack;

/* Gives this thread its alternate signal stack; once per thread. */
void afe__fiber_make_alt_stack(void);

/* Takes f's shared stack and puts f's frames on it (making its context
 * on first entry); false when another fiber runs on it, or its frames
 * cannot be saved. */
bool afe__fiber_claim_shared(struct afe__fiber *f);

/* Gives f's shared stack back, its frames left on it. */
void afe__fiber_release_shared(struct afe__fiber *f);

static inline bool afe__fiber_enter(struct afe__fiber *f)
{
	if (f->shared && !afe__fiber_claim_shared(f))
		return false;
	if (!afe__fiber_has_alt_stack)
		afe__fiber_make_alt_stack();
	struct afe__fiber *outer = afe__fiber_running;
	afe__fiber_running = f;
#ifdef AFE_FIBER_ASAN
	__sanitizer_start_switch_fiber(&f->asan_fake_caller, f->stack_lo, f->stack_size);
#endif
#ifdef AFE_FIBER_TSAN
	f->tsan_caller = __tsan_get_current_fiber();
	__tsan_switch_to_fiber(f->tsan_fiber, 0);
#endif
	struct fcontext_transfer t = jump_fcontext(f->ctx, f);
	f->ctx = t.fctx;
#ifdef AFE_FIBER_ASAN
	__sanitizer_finish_switch_fiber(f->asan_fake_caller, NULL, NULL);
#endif
	afe__fiber_running = outer;
	if (f->shared)
		afe__fiber_release_shared(f);
	return true;
}

/* Back to the caller; fake is where ASan keeps this fiber's fake stack
 * (NULL: the fiber is done, ASan may free it). */
static inline void afe__fiber_leave(struct afe__fiber *f, void **fake)
{
#ifdef AFE_FIBER_ASAN
	__sanitizer_start_switch_fiber(fake, f->caller_stack_lo, f->caller_stack_size);
#else
	(void)fake;
#endif
#ifdef AFE_FIBER_TSAN
	__tsan_switch_to_fiber(f->tsan_caller, 0);
#endif
	struct fcontext_transfer t = jump_fcontext(f->caller, NULL);
	f->caller = t.fctx;
#ifdef AFE_FIBER_ASAN
	__sanitizer_finish_switch_fiber(f->asan_fake_fiber, &f->caller_stack_lo,
					&f->caller_stack_size);
#endif
}

static inline void afe__fiber_suspend(struct afe__fiber *f)
{
	afe__fiber_leave(f, &f->asan_fake_fiber);
}

static inline _Noreturn void afe__fiber_exit(struct afe__fiber *f)
{
	f->exited = true;
	afe__fiber_leave(f, NULL);
	__builtin_unreachable(); /* nobody enters a fiber that exited */
}

#endif /* AFE_CORO_FIBER_SWITCH_H */
