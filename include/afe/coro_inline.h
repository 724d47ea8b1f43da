/* SPDX-License-Identifier: MIT */
/*
 * afe_co_yield, inline in the caller where it can be (x86-64 without
 * shadow stacks; afe/coro.h includes this file: include that one).
 *
 * Why: a coroutine's yield switches to the worker and back. Called out of
 * line, the coroutine's return from afe_co_yield and the worker's return
 * to its loop each follow a switch, and the processor predicts each
 * against the other stack's return address: two mispredicted returns a
 * yield, about 15 ns on the machines we measure (src/coro/CORO.md). With
 * the switch inline in the coroutine's own code, the coroutine returns
 * from nothing after it resumes, and the worker's return is predicted.
 *
 * The library does the bookkeeping (afe__co_yield_begin, afe__co_yield_end);
 * only the stack switch is here, and only when the library says its own
 * switch is in use (AFE__CO_SWITCH_HERE): a library built with
 * Boost.Context or a sanitizer yields out of line inside begin.
 *
 * `afe_co_yield()` is a macro for the inline form; `(afe_co_yield)()` and
 * a pointer to afe_co_yield reach the library's function.
 */
#ifndef AFE_CORO_INLINE_H
#define AFE_CORO_INLINE_H

#include "common.h"

/* Internal: where the inline switch saves this side and what it resumes. */
struct afe__co_switch {
	void **save;
	void *resume;
};

/* begin's value when the caller is to switch with *s and then call end. */
#define AFE__CO_SWITCH_HERE 1

/* The context format afe__co_switch below saves and resumes, which a
 * program compiled against this header passes to begin: a library whose
 * format is another (a later one, say) yields out of line for it. Bump it
 * with any change to the switch. */
#define AFE__CO_SWITCH_FORMAT 1

/* Internal: the first half of a yield (the task queued again): -EPERM,
 * -ECANCELED, or AFE__CO_SWITCH_HERE; or, when the library switches out
 * of line (Boost.Context, a sanitizer, another format), the yield's whole
 * result (0, -ECANCELED). */
AFE_EXPORT int afe__co_yield_begin(struct afe__co_switch *s, unsigned format);
/* Internal: the second half, once resumed: 0 or -ECANCELED. */
AFE_EXPORT int afe__co_yield_end(void);

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__)) &&                        \
	!(defined(__CET__) && (__CET__ & 2))

#if defined(__CET__) && (__CET__ & 1)
#define AFE__CO_ENDBR "endbr64\n\t" /* an indirect jump lands here */
#else
#define AFE__CO_ENDBR ""
#endif

/* AVX-512's extra registers are the caller's too: a build that has them
 * may keep values there, so they are clobbered as well. */
#ifdef __AVX512F__
#define AFE__CO_CLOBBER_AVX512                                                                     \
	, "xmm16", "xmm17", "xmm18", "xmm19", "xmm20", "xmm21", "xmm22", "xmm23", "xmm24",        \
		"xmm25", "xmm26", "xmm27", "xmm28", "xmm29", "xmm30", "xmm31", "k0", "k1", "k2", \
		"k3", "k4", "k5", "k6", "k7"
#else
#define AFE__CO_CLOBBER_AVX512
#endif

/* Internal: the stack switch, our own on x86-64; src/coro/fiber_switch.h
 * uses it for every switch. Saves this side's context in *save and
 * resumes the context resume: a context is the stack pointer of the side
 * that left, pointing at its frame pointer and then the address it
 * resumes at. Every other register is declared clobbered: the compiler
 * keeps nothing in them across the switch. The two pushes go below the
 * stack pointer, where a function that calls nothing may keep locals
 * (the ABI's red zone): the library's files are built with -mno-red-zone,
 * and the function the inline yield below lands in calls begin and end,
 * so no compiler keeps locals there. */
#define AFE__CO_OWN_SWITCH 1
static inline __attribute__((always_inline)) void afe__co_switch(void **save, void *resume)
{
	__asm__ volatile("leaq 1f(%%rip), %%rax\n\t"
			 "pushq %%rax\n\t"
			 "pushq %%rbp\n\t"
			 "movq %%rsp, (%%rdi)\n\t"
			 "movq %%rsi, %%rsp\n\t"
			 "popq %%rbp\n\t"
			 "popq %%rax\n\t"
			 "jmp *%%rax\n"
			 "1:\n\t" AFE__CO_ENDBR
			 : "+D"(save), "+S"(resume)
			 :
			 : "rax", "rbx", "rcx", "rdx", "r8", "r9", "r10", "r11", "r12", "r13", "r14",
			   "r15", "memory", "cc", "xmm0", "xmm1", "xmm2", "xmm3", "xmm4", "xmm5",
			   "xmm6", "xmm7", "xmm8", "xmm9", "xmm10", "xmm11", "xmm12", "xmm13",
			   "xmm14", "xmm15", "st", "st(1)", "st(2)", "st(3)", "st(4)", "st(5)",
			   "st(6)", "st(7)" AFE__CO_CLOBBER_AVX512);
}

static inline __attribute__((always_inline)) int afe__co_yield_inline(void)
{
	struct afe__co_switch s;
	int rc = afe__co_yield_begin(&s, AFE__CO_SWITCH_FORMAT);
	if (rc != AFE__CO_SWITCH_HERE)
		return rc;
	afe__co_switch(s.save, s.resume);
	return afe__co_yield_end();
}

#define afe_co_yield() afe__co_yield_inline()

#endif

#endif /* AFE_CORO_INLINE_H */
