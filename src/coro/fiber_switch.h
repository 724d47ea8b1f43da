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
 * switches and the first contexts.
 */
#ifndef AFE_CORO_FIBER_SWITCH_H
#define AFE_CORO_FIBER_SWITCH_H

#include <stdbool.h>
#include <stddef.h>

#include <afe/coro_inline.h>

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

/*
 * The switch itself: afe__fiber_switch(from, to) saves this side's context
 * in *from and resumes the context to; afe__fiber_first_context(hi, size)
 * makes the first context of a fiber whose stack ends at hi, which, when
 * resumed by the switch in afe__fiber_enter, calls afe__fiber_start with
 * that switch's `from` (the fiber's caller slot) on the fiber's stack.
 *
 * - x86-64: our own, as inline assembly (afe__co_switch, in
 *   afe/coro_inline.h: afe_co_yield's inline form switches with it in the
 *   caller's code). Inline, the switch is no call:
 *   a called switch (Boost's jump_fcontext) leaves its return address in
 *   the processor's return predictions on the stack it leaves, and the
 *   other side's returns are mispredicted one deeper. It also leaves the
 *   floating-point control words to the thread (Boost saves and loads
 *   them at every switch, a third of its cost on the AMD VMs): see
 *   afe/coro.h on the floating-point environment. coro_yield went from
 *   71-76 to 56-62 ns a yield on one worker (CORO.md).
 * - Elsewhere, with shadow stacks (-fcf-protection=return, which a stack
 *   switch of our own would break), or built with -DAFE_FIBER_BOOST=ON
 *   (the test pass of run-all.sh that keeps this path honest):
 *   Boost.Context's jump_fcontext, ported to every architecture Debian
 *   builds.
 */
#if defined(AFE__CO_OWN_SWITCH) && !defined(AFE_FIBER_BOOST)
#define AFE_FIBER_OWN_SWITCH 1
#endif

#ifdef AFE_FIBER_OWN_SWITCH

/* The switch pushes two words below the stack pointer, where a leaf
 * function may keep locals (the x86-64 ABI's red zone): CMakeLists.txt
 * builds the files that include this one with -mno-red-zone. Skipping the
 * red zone instead would make every suspended shared-stack coroutine
 * save 128 bytes more (8 MB for 100,000 sleepers). */
#ifndef AFE_FIBER_NO_RED_ZONE
#error "src/coro/fiber_switch.h: build with -mno-red-zone -DAFE_FIBER_NO_RED_ZONE"
#endif

/* afe/coro_inline.h has the switch, for afe_co_yield's inline form too. */
static inline __attribute__((always_inline)) void afe__fiber_switch(void **from, void *to)
{
	afe__co_switch(from, to);
}

#else /* Boost.Context */

/* Boost.Context's C ABI (boost/context/detail/fcontext.hpp, which is C++). */
struct fcontext_transfer {
	void *fctx;
	void *data;
};
extern struct fcontext_transfer jump_fcontext(void *to, void *vp);
extern void *make_fcontext(void *sp, size_t size, void (*fn)(struct fcontext_transfer));

/* jump_fcontext hands the side it resumes the context it left: the side
 * that resumes saves it where the one that left asked. */
static inline void afe__fiber_switch(void **from, void *to)
{
	struct fcontext_transfer t = jump_fcontext(to, from);
	*(void **)t.data = t.fctx;
}

#endif

void *afe__fiber_first_context(char *hi, size_t size);

/* A fiber's first C code, on its stack; entered through its first context
 * with the caller slot the entering switch saved into. Hidden, not
 * static: the x86-64 trampoline (fiber.c) calls it by name. */
__attribute__((visibility("hidden"))) _Noreturn void afe__fiber_start(void **caller_slot);

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
	afe__fiber_switch(&f->caller, f->ctx);
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
	afe__fiber_switch(&f->ctx, f->caller);
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
