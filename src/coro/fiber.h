/* SPDX-License-Identifier: MIT */
/*
 * A fiber: a stack of its own and a saved machine context, entered and
 * left by explicit switches. The coroutine layer (coro.c) runs one per
 * coroutine; this file knows nothing of tasks.
 *
 * The switch is Boost.Context's fcontext (make_fcontext/jump_fcontext,
 * Debian's libboost-context-dev, linked statically: a few dozen lines of
 * assembly per architecture, C-callable). Chosen over writing our own
 * assembly because it is ported to every architecture Debian builds and
 * kept up to date with their ABIs (x86-64 shadow stacks, aarch64 BTI);
 * over ucontext because swapcontext makes a sigprocmask syscall per
 * switch.
 *
 * Stacks are mmap'ed with a PROT_NONE guard page below them: an overflow
 * faults there, and a SIGSEGV handler on an alternate signal stack says
 * so on stderr ("afe: coroutine stack overflow, N-byte stack") before the
 * process dies of the fault, never silent corruption.
 *
 * Under AddressSanitizer and ThreadSanitizer every switch is announced to
 * the sanitizer (__sanitizer_start/finish_switch_fiber, __tsan_*_fiber),
 * so both follow the stack a thread is on.
 */
#ifndef AFE_CORO_FIBER_H
#define AFE_CORO_FIBER_H

#include <stdbool.h>
#include <stddef.h>

/* The smallest stack a fiber may ask for, and the default. */
#define AFE__FIBER_MIN_STACK ((size_t)16 * 1024)
#define AFE__FIBER_DEFAULT_STACK ((size_t)256 * 1024)

struct afe__fiber {
	void *ctx;	 /* the fiber's saved context while it is suspended */
	void *caller;	 /* the context that entered it, while it runs */
	char *stack_lo;	 /* the lowest usable byte (above the guard page) */
	size_t stack_size;
	void (*entry)(struct afe__fiber *f);
	/* Sanitizer bookkeeping (unused in plain builds). */
	void *asan_fake_fiber, *asan_fake_caller;
	const void *caller_stack_lo;
	size_t caller_stack_size;
	void *tsan_fiber, *tsan_caller;
};

/* Makes f a fiber that runs entry(f) on a fresh stack of stack_size bytes
 * (rounded up to pages) when first entered; entry must end with
 * afe__fiber_exit, never return. 0, -EINVAL (below AFE__FIBER_MIN_STACK),
 * -ENOMEM. */
int afe__fiber_init(struct afe__fiber *f, size_t stack_size, void (*entry)(struct afe__fiber *f));

/* Frees f's stack (to a small pool for reuse); after it exited, or
 * before it was ever entered. */
void afe__fiber_destroy(struct afe__fiber *f);

/* Runs f until it suspends or exits; from the thread's own stack. */
void afe__fiber_enter(struct afe__fiber *f);

/* From f: back to whoever entered it; returns when it is entered again
 * (maybe on another thread). */
void afe__fiber_suspend(struct afe__fiber *f);

/* From f, last: back to whoever entered it, for good. */
_Noreturn void afe__fiber_exit(struct afe__fiber *f);

#endif /* AFE_CORO_FIBER_H */
