/* SPDX-License-Identifier: MIT */
/* Fibers: making and freeing them, shared stacks and the overflow
 * report; the switches are in fiber_switch.h, the stacks in stacks.c.
 * See fiber.h. */
#define _GNU_SOURCE
#include "fiber.h"
#include "fiber_switch.h"
#include "stacks.h"
#include "../../pool/fault_pass_on.h"

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

enum { ALT_STACK_SIZE = 64 * 1024 };

/* Under valgrind (memcheck), a stack it was not told of reads as a jump
 * into unknown memory at every switch: each fiber's stack is registered
 * while the fiber lives (shared stacks for good). Where valgrind's header
 * is missing, or not under valgrind, the requests do nothing (a few
 * instructions each, per fiber, not per switch). */
#if defined(__has_include)
#if __has_include(<valgrind/valgrind.h>)
#include <valgrind/valgrind.h>
#define AFE_FIBER_VALGRIND 1
#endif
#endif

static unsigned valgrind_register(const char *lo, size_t size)
{
#ifdef AFE_FIBER_VALGRIND
	return VALGRIND_STACK_REGISTER(lo, lo + size);
#else
	(void)lo;
	(void)size;
	return 0;
#endif
}

static void valgrind_deregister(unsigned id)
{
#ifdef AFE_FIBER_VALGRIND
	VALGRIND_STACK_DEREGISTER(id);
#else
	(void)id;
#endif
}

/* ---- the overflow report -------------------------------------------------- */

_Thread_local struct afe__fiber *afe__fiber_running;
_Thread_local bool afe__fiber_has_alt_stack;
static pthread_key_t alt_stack_key;
static struct sigaction previous_segv;

/* Formats n in decimal into buf (async-signal-safe); returns its length. */
static size_t decimal(char *buf, size_t n)
{
	char digits[24];
	size_t len = 0;
	do
		digits[len++] = (char)('0' + n % 10);
	while ((n /= 10) != 0);
	for (size_t i = 0; i < len; i++)
		buf[i] = digits[len - 1 - i];
	return len;
}

static void on_segv(int sig, siginfo_t *info, void *context)
{
	struct afe__fiber *f = afe__fiber_running;
	uintptr_t at = (uintptr_t)info->si_addr, lo = (uintptr_t)(f ? f->stack_lo : NULL);
	if (f && at < lo && lo - at <= afe__page_size()) {
		char msg[96] = "afe: coroutine stack overflow, ";
		size_t len = strlen(msg);
		len += decimal(msg + len, f->stack_size);
		memcpy(msg + len, "-byte stack\n", 12);
		ssize_t ignored = write(STDERR_FILENO, msg, len + 12);
		(void)ignored;
		signal(sig, SIG_DFL); /* the access faults again, and kills us */
		return;
	}
	afe_fault_pass_on(&previous_segv, sig, info, context);
}

static void alt_stack_free(void *stack)
{
	stack_t off = {.ss_flags = SS_DISABLE};
	sigaltstack(&off, NULL);
	munmap(stack, ALT_STACK_SIZE);
}

static pthread_once_t handler_once = PTHREAD_ONCE_INIT;

static void install_handler(void)
{
	pthread_key_create(&alt_stack_key, alt_stack_free);
	struct sigaction sa;
	memset(&sa, 0, sizeof(sa));
	sa.sa_sigaction = on_segv;
	sa.sa_flags = SA_SIGINFO | SA_ONSTACK;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGSEGV, &sa, &previous_segv);
}

/* The handler runs on an alternate stack: the faulting one has no room.
 * Each thread that enters fibers gets one (unless it has one already),
 * freed when the thread exits. Called once per thread. */
void afe__fiber_make_alt_stack(void)
{
	afe__fiber_has_alt_stack = true;
	stack_t old;
	if (sigaltstack(NULL, &old) == 0 && !(old.ss_flags & SS_DISABLE))
		return;
	void *stack = mmap(NULL, ALT_STACK_SIZE, PROT_READ | PROT_WRITE,
			   MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (stack == MAP_FAILED)
		return; /* an overflow then dies unreported, as without us */
	stack_t alt = {.ss_sp = stack, .ss_size = ALT_STACK_SIZE};
	if (sigaltstack(&alt, NULL) < 0) {
		munmap(stack, ALT_STACK_SIZE);
		return;
	}
	pthread_setspecific(alt_stack_key, stack);
}

/* ---- shared stacks ---------------------------------------------------------- */

struct afe__shared_stack {
	/* Taken by the thread that runs a fiber on it: acquire pairs with
	 * the release that gave it back, so the frames left on it (and the
	 * owner below) are seen whole. */
	atomic_bool busy;
	struct afe__fiber *owner; /* whose frames are on it; under busy */
	char *lo;
	size_t size;
};

static struct afe__shared_stack shared_stacks[AFE__SHARED_STACKS];
static pthread_once_t shared_once = PTHREAD_ONCE_INIT;
/* Round robin per thread (a shared counter's cache line would bounce
 * between the workers at every spawn), each thread starting elsewhere. */
static _Thread_local unsigned next_shared;

static void map_shared_stacks(void)
{
	for (unsigned i = 0; i < AFE__SHARED_STACKS; i++) {
		shared_stacks[i].size = AFE__FIBER_DEFAULT_STACK;
		shared_stacks[i].lo = afe__stack_take(AFE__FIBER_DEFAULT_STACK);
		if (shared_stacks[i].lo)
			valgrind_register(shared_stacks[i].lo, AFE__FIBER_DEFAULT_STACK);
	}
}

static char *stack_hi(const struct afe__fiber *f)
{
	return f->stack_lo + f->stack_size;
}

/* Copies the frames of the fiber on s out to its save buffer. They start
 * at its saved context (the lowest address in use) and end at the top. */
static bool save_owner(struct afe__shared_stack *s)
{
	struct afe__fiber *o = s->owner;
	size_t len = (size_t)(stack_hi(o) - (char *)o->ctx);
	if (len > o->saved_cap) {
		char *buf = realloc(o->saved, len);
		if (!buf)
			return false;
		o->saved = buf;
		o->saved_cap = len;
	}
	memcpy(o->saved, o->ctx, len);
	o->saved_len = len;
	s->owner = NULL;
	return true;
}

bool afe__fiber_claim_shared(struct afe__fiber *f)
{
	struct afe__shared_stack *s = f->shared;
	if (atomic_exchange_explicit(&s->busy, true, memory_order_acquire))
		return false;
	if (s->owner == f)
		return true;
	if (s->owner && !save_owner(s)) {
		atomic_store_explicit(&s->busy, false, memory_order_release);
		return false;
	}
	if (f->saved_len) /* suspended before: its frames back where they were */
		memcpy(f->ctx, f->saved, f->saved_len);
	s->owner = f;
	if (!f->ctx) /* first entered: made on the stack, so only once it is ours */
		f->ctx = afe__fiber_first_context(stack_hi(f), f->stack_size);
	return true;
}

void afe__fiber_release_shared(struct afe__fiber *f)
{
	struct afe__shared_stack *s = f->shared;
	if (f->exited)
		s->owner = NULL;
	/* Release: pairs with the acquire in claim_shared. */
	atomic_store_explicit(&s->busy, false, memory_order_release);
}

/* ---- making and freeing fibers ------------------------------------------ */

#ifdef AFE_FIBER_OWN_SWITCH
/* The first context resumes here, with the entering switch's rdi (the
 * fiber's caller slot) still in place; the stack pointer is 16-aligned,
 * as a call needs. The context holds no pointer to the fiber, which may
 * still be copied before its first run (coro.c). */
__asm__(".text\n"
	".p2align 4\n"
	".type afe__fiber_trampoline, @function\n"
	"afe__fiber_trampoline:\n\t"
	".cfi_startproc\n\t"
	".cfi_undefined rip\n\t" /* the end of a debugger's backtrace */
	AFE__CO_ENDBR
	"call afe__fiber_start\n\t"
	"ud2\n\t"
	".cfi_endproc\n"
	".size afe__fiber_trampoline, .-afe__fiber_trampoline\n");
void afe__fiber_trampoline(void);

void *afe__fiber_first_context(char *hi, size_t size)
{
	(void)size;
	void **ctx = (void **)(void *)(hi - 32);
	ctx[0] = NULL; /* popped into rbp: the end of the frame chain */
	void (*entry)(void) = afe__fiber_trampoline;
	memcpy(&ctx[1], &entry, sizeof(entry)); /* jumped to */
	return ctx;
}
#else
static void boost_start(struct fcontext_transfer t)
{
	*(void **)t.data = t.fctx; /* as afe__fiber_switch does */
	afe__fiber_start(t.data);
}

void *afe__fiber_first_context(char *hi, size_t size)
{
	return make_fcontext(hi, size, boost_start);
}
#endif

void afe__fiber_start(void **caller_slot)
{
	struct afe__fiber *f = (struct afe__fiber *)(void *)((char *)caller_slot -
							       offsetof(struct afe__fiber, caller));
#ifdef AFE_FIBER_ASAN
	__sanitizer_finish_switch_fiber(NULL, &f->caller_stack_lo, &f->caller_stack_size);
#endif
	f->entry(f);
	__builtin_unreachable(); /* entry ends with afe__fiber_exit */
}

int afe__fiber_init(struct afe__fiber *f, size_t stack_size, void (*entry)(struct afe__fiber *f))
{
	if (stack_size < AFE__FIBER_MIN_STACK)
		return -EINVAL;
	if (stack_size > SIZE_MAX / 2) /* rounded up, plus its guard: no such mapping */
		return -ENOMEM;
	pthread_once(&handler_once, install_handler);
	size_t size = (stack_size + afe__page_size() - 1) & ~(afe__page_size() - 1);
	memset(f, 0, sizeof(*f));
	f->stack_lo = afe__stack_take(size);
	if (!f->stack_lo)
		return -ENOMEM;
	f->stack_size = size;
	f->valgrind_stack = valgrind_register(f->stack_lo, size);
	f->entry = entry;
	f->ctx = afe__fiber_first_context(f->stack_lo + size, size);
#ifdef AFE_FIBER_TSAN
	f->tsan_fiber = __tsan_create_fiber(0);
#endif
	return 0;
}

int afe__fiber_init_shared(struct afe__fiber *f, void (*entry)(struct afe__fiber *f))
{
	if (ASAN_BUILD) /* see fiber.h */
		return afe__fiber_init(f, AFE__FIBER_DEFAULT_STACK, entry);
	pthread_once(&handler_once, install_handler);
	pthread_once(&shared_once, map_shared_stacks);
	if (!next_shared)
		next_shared = (unsigned)((uintptr_t)&next_shared >> 12) | 1u;
	unsigned i = next_shared++;
	struct afe__shared_stack *s = &shared_stacks[i % AFE__SHARED_STACKS];
	if (!s->lo)
		return -ENOMEM;
	memset(f, 0, sizeof(*f));
	f->shared = s;
	f->stack_lo = s->lo;
	f->stack_size = s->size;
	f->entry = entry;
	/* The context is made when the fiber first has its stack: making
	 * it writes to the top of the stack. */
#ifdef AFE_FIBER_TSAN
	f->tsan_fiber = __tsan_create_fiber(0);
#endif
	return 0;
}

void afe__fiber_destroy(struct afe__fiber *f)
{
#ifdef AFE_FIBER_TSAN
	__tsan_destroy_fiber(f->tsan_fiber);
#endif
#ifdef AFE_FIBER_ASAN
	/* The frames of a fiber that exited never returned: their redzones
	 * stay poisoned, and would fail the next fiber on this stack. */
	if (!f->shared)
		__asan_unpoison_memory_region(f->stack_lo, f->stack_size);
#endif
	if (f->shared) {
		free(f->saved);
	} else {
		valgrind_deregister(f->valgrind_stack);
		afe__stack_give(f->stack_lo, f->stack_size);
	}
	f->stack_lo = NULL;
}
