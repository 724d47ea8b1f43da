/* SPDX-License-Identifier: MIT */
/*
 * Stacks, pooled by size (stacks.h).
 *
 * The first POOLED_SIZES stack sizes a process asks for each get a pool;
 * stacks of any later size are mapped and unmapped each time. Each thread
 * keeps up to MAGAZINE stacks of each pooled size in its own magazine, no
 * lock; it trades HALF at a time with the size's shared pool (one lock
 * per HALF stacks, a spinlock held to copy HALF pointers), which keeps up
 * to POOLED_PER_SIZE and unmaps the rest. So a worker that runs what
 * another spawned passes its stacks back through the pool, and a burst of
 * coroutines is served from memory the last burst touched. A thread's
 * magazines go back to the pools when it exits. The pools keep what their
 * stacks' coroutines touched (a page or two each, typically) until
 * reused, or until afe_coro_stacks_trim unmaps them. Figures: CORO.md.
 */
#define _GNU_SOURCE
#include "stacks.h"

#include <afe/coro.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "../../pool/spinlock.h"

enum { MAGAZINE = 32, HALF = MAGAZINE / 2, POOLED_PER_SIZE = 1024, POOLED_SIZES = 4 };

struct stack_pool {
	/* 0 while free; set once, by the CAS that claims the pool for a
	 * size. Relaxed: it is the only thing published; what the pool
	 * holds is under lock. */
	_Atomic size_t size;
	atomic_flag lock;
	unsigned n;
	char *lo[POOLED_PER_SIZE];
};

static struct stack_pool pools[POOLED_SIZES];

struct stack_magazine {
	unsigned n;
	char *lo[MAGAZINE];
};

/* This thread's magazines, one per pool (same index). */
struct thread_stacks {
	bool registered; /* given back to the pools when the thread exits */
	struct stack_magazine of[POOLED_SIZES];
};

static _Thread_local struct thread_stacks mine;
static pthread_key_t exit_key;
static pthread_once_t exit_key_once = PTHREAD_ONCE_INIT;

size_t afe__page_size(void)
{
	static size_t size;
	if (!size)
		size = (size_t)sysconf(_SC_PAGESIZE);
	return size;
}

static char *stack_map(size_t size)
{
	size_t guard = afe__page_size();
	char *base = mmap(NULL, guard + size, PROT_READ | PROT_WRITE,
			  MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE | MAP_STACK, -1, 0);
	if (base == MAP_FAILED)
		return NULL;
	if (mprotect(base, guard, PROT_NONE) < 0) {
		munmap(base, guard + size);
		return NULL;
	}
	return base + guard;
}

static void stack_unmap(char *lo, size_t size)
{
	munmap(lo - afe__page_size(), afe__page_size() + size);
}

/* The index of size's pool, claiming a free one for it; -1 when every
 * pool has another size. */
static int pool_of(size_t size)
{
	for (int i = 0; i < POOLED_SIZES; i++) {
		size_t held = atomic_load_explicit(&pools[i].size, memory_order_relaxed);
		if (held == 0 &&
		    atomic_compare_exchange_strong_explicit(&pools[i].size, &held, size,
							    memory_order_relaxed, memory_order_relaxed))
			return i; /* claimed; else held is the size that claimed it */
		if (held == size)
			return i;
	}
	return -1;
}

/* Moves up to n stacks from pool p into m; returns how many. */
static unsigned pool_take(struct stack_pool *p, struct stack_magazine *m, unsigned n)
{
	afe_spin_lock(&p->lock);
	unsigned got = n < p->n ? n : p->n;
	p->n -= got;
	memcpy(&m->lo[m->n], &p->lo[p->n], got * sizeof(p->lo[0]));
	afe_spin_unlock(&p->lock);
	m->n += got;
	return got;
}

/* Moves the last n stacks of m into pool p, unmapping those it has no
 * room for. */
static void pool_give(struct stack_pool *p, struct stack_magazine *m, unsigned n)
{
	m->n -= n;
	afe_spin_lock(&p->lock);
	unsigned kept = POOLED_PER_SIZE - p->n < n ? POOLED_PER_SIZE - p->n : n;
	memcpy(&p->lo[p->n], &m->lo[m->n], kept * sizeof(p->lo[0]));
	p->n += kept;
	afe_spin_unlock(&p->lock);
	size_t size = atomic_load_explicit(&p->size, memory_order_relaxed);
	for (unsigned i = kept; i < n; i++)
		stack_unmap(m->lo[m->n + i], size);
}

/* A thread's magazines go back to the pools when the thread exits. */
static void give_back_at_exit(void *unused)
{
	(void)unused;
	for (int i = 0; i < POOLED_SIZES; i++)
		pool_give(&pools[i], &mine.of[i], mine.of[i].n);
}

static void make_exit_key(void)
{
	pthread_key_create(&exit_key, give_back_at_exit);
}

/* This thread's magazine for pool i, its give-back at exit arranged on
 * first use. */
static struct stack_magazine *my_magazine(int i)
{
	if (!mine.registered) {
		pthread_once(&exit_key_once, make_exit_key);
		pthread_setspecific(exit_key, &mine); /* non-NULL: the destructor runs */
		mine.registered = true;
	}
	return &mine.of[i];
}

/* Unmaps every stack in m; returns how many. */
static unsigned unmap_all(struct stack_magazine *m, size_t size)
{
	unsigned n = m->n;
	while (m->n)
		stack_unmap(m->lo[--m->n], size);
	return n;
}

unsigned afe_coro_stacks_trim(void)
{
	unsigned unmapped = 0;
	for (int i = 0; i < POOLED_SIZES; i++) {
		size_t size = atomic_load_explicit(&pools[i].size, memory_order_relaxed);
		if (!size)
			continue;
		unmapped += unmap_all(&mine.of[i], size);
		/* A magazine's worth at a time, unmapped outside the lock. */
		struct stack_magazine batch = {.n = 0};
		while (pool_take(&pools[i], &batch, MAGAZINE))
			unmapped += unmap_all(&batch, size);
	}
	return unmapped;
}

char *afe__stack_take(size_t size)
{
	int i = pool_of(size);
	if (i < 0)
		return stack_map(size);
	struct stack_magazine *m = my_magazine(i);
	if (m->n == 0 && pool_take(&pools[i], m, HALF) == 0)
		return stack_map(size);
	return m->lo[--m->n];
}

void afe__stack_give(char *lo, size_t size)
{
	int i = pool_of(size);
	if (i < 0) {
		stack_unmap(lo, size);
		return;
	}
	struct stack_magazine *m = my_magazine(i);
	if (m->n == MAGAZINE)
		pool_give(&pools[i], m, HALF);
	m->lo[m->n++] = lo;
}
