/* SPDX-License-Identifier: MIT */
/*
 * A fiber: a stack of its own and a saved machine context, entered and
 * left by explicit switches. The coroutine layer (coro.c) runs one per
 * coroutine; this file knows nothing of tasks.
 *
 * The switch (fiber_switch.h): on x86-64 our own inline assembly, which
 * keeps the processor's return predictions and leaves the FPU control
 * words to the thread; elsewhere Boost.Context's fcontext
 * (make_fcontext/jump_fcontext, Debian's libboost-context-dev, linked
 * statically), ported to every architecture Debian builds and kept up to
 * date with their ABIs (shadow stacks, aarch64 BTI). Not ucontext:
 * swapcontext makes a sigprocmask syscall per switch (about 50 times the
 * cost: README, Dependencies).
 *
 * Stacks are mmap'ed with a PROT_NONE guard page below them: an overflow
 * faults there, and a SIGSEGV handler on an alternate signal stack says
 * so on stderr ("afe: coroutine stack overflow, N-byte stack") before the
 * process dies of the fault, never silent corruption.
 *
 * Shared stacks (in the spirit of libaco): a shared fiber runs on one of
 * AFE__SHARED_STACKS stacks that many fibers share, and keeps only the
 * bytes of stack it uses while it is suspended. Its frames must always be
 * at the same addresses, so it always runs on the same shared stack. On
 * entering, a fiber whose stack holds another fiber's frames copies them
 * out to that fiber's save buffer and copies its own back in; a fiber
 * finding its stack busy (another of its fibers runs on another thread)
 * is refused, and its caller tries again later. Suspending copies
 * nothing: the frames stay until another fiber needs the stack. Under
 * AddressSanitizer shared fibers get private stacks instead: ASan's shadow
 * of a stack's frames cannot be copied with them.
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
/* How many shared stacks there are (each AFE__FIBER_DEFAULT_STACK). */
#define AFE__SHARED_STACKS 16u

struct afe__shared_stack;

struct afe__fiber {
	void *ctx;	 /* the fiber's saved context while it is suspended */
	void *caller;	 /* the context that entered it, while it runs */
	char *stack_lo;	 /* the lowest usable byte (above the guard page) */
	size_t stack_size;
	unsigned valgrind_stack; /* private stacks: its id with valgrind (fiber.c) */
	void (*entry)(struct afe__fiber *f);
	bool exited;
	/* Shared stacks only: the stack, and the fiber's frames while
	 * another fiber's are on it. */
	struct afe__shared_stack *shared;
	char *saved;
	size_t saved_len, saved_cap;
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

/* The same, on a shared stack (see above). 0, -ENOMEM. */
int afe__fiber_init_shared(struct afe__fiber *f, void (*entry)(struct afe__fiber *f));

/* Frees f's stack (to its size's pool for reuse: stacks.h) or its save
 * buffer; after it exited, or before it was ever entered. */
void afe__fiber_destroy(struct afe__fiber *f);

/* The switches, inline (fiber_switch.h):
 * - afe__fiber_enter(f) runs f until it suspends or exits. Returns false,
 *   having run nothing, when f's shared stack is busy with another fiber
 *   running elsewhere, or no memory could hold that fiber's frames: try
 *   again later.
 * - afe__fiber_suspend(f), from f: back to whoever entered it; returns
 *   when it is entered again (maybe on another thread).
 * - afe__fiber_exit(f), from f, last: back to whoever entered it, for
 *   good. */

#endif /* AFE_CORO_FIBER_H */
