/* SPDX-License-Identifier: MIT */
/* Size-class allocator for tasks: see task_alloc.h. */
#include "task_alloc.h"

#include <pthread.h>
#include <stdalign.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

/* ---- blocks from malloc, listed ------------------------------------------ */

/* What precedes a block from malloc: its links in the list of such blocks
 * handed out, so that afe__task_alloc_walk finds them. A multiple of
 * max_align_t's alignment, so the block after it keeps that alignment. */
struct listed_head {
	alignas(max_align_t) struct listed_head *prev, *next;
};

static struct {
	pthread_mutex_t lock;
	struct listed_head *first;
} listed = {.lock = PTHREAD_MUTEX_INITIALIZER};

static void *listed_alloc(size_t size)
{
	struct listed_head *h = malloc(sizeof(*h) + size);
	if (!h)
		return NULL;
	/* What malloc left there could pass for a live task's state word to
	 * a walk, which would then count a reference the spawn's store of
	 * the state erases. Zeroed before the block is listed, under the
	 * lock the walks hold. */
	if (size >= sizeof(uint64_t))
		memset(h + 1, 0, sizeof(uint64_t));
	pthread_mutex_lock(&listed.lock);
	h->prev = NULL;
	h->next = listed.first;
	if (h->next)
		h->next->prev = h;
	listed.first = h;
	pthread_mutex_unlock(&listed.lock);
	return h + 1;
}

static void listed_free(void *block)
{
	struct listed_head *h = (struct listed_head *)block - 1;
	pthread_mutex_lock(&listed.lock);
	if (h->prev)
		h->prev->next = h->next;
	else
		listed.first = h->next;
	if (h->next)
		h->next->prev = h->prev;
	pthread_mutex_unlock(&listed.lock);
	free(h);
}

static void listed_walk(void (*visit)(void *block, void *arg), void *arg)
{
	pthread_mutex_lock(&listed.lock);
	for (struct listed_head *h = listed.first; h; h = h->next)
		visit(h + 1, arg);
	pthread_mutex_unlock(&listed.lock);
}

#ifdef AFE_TASK_ALLOC_USES_MALLOC

void *afe__task_alloc(size_t size)
{
	return listed_alloc(size);
}

void afe__task_free(void *block, size_t size)
{
	(void)size;
	listed_free(block);
}

void afe__task_alloc_walk(void (*visit)(void *block, void *arg), void *arg)
{
	listed_walk(visit, arg);
}

#else

/* ---- blocks of size classes, carved from chunks --------------------------- */

enum {
	CLASS_SIZE = 16, /* the alignment of max_align_t */
	CLASS_COUNT = AFE_TASK_ALLOC_MAX / CLASS_SIZE,
	BATCH = 64,			 /* blocks traded with the global pool at once */
	CHUNK = 2 * 1024 * 1024,	 /* one transparent huge page */
	RUNS_PER_BOOK = 1023,
};

/* A free block. Batches in the global pool are chained through their first
 * block, which also holds the batch's length. owner_word is never written
 * here: it is the task's state word (see task_alloc.h). */
struct free_block {
	uint64_t owner_word;
	struct free_block *next;
	struct free_block *next_batch;
	unsigned batch_count;
};

/* The smallest block: room for struct free_block. */
#define MIN_BLOCK ((sizeof(struct free_block) + CLASS_SIZE - 1) / CLASS_SIZE * CLASS_SIZE)

struct block_list {
	struct free_block *head;
	unsigned count;
};

/* A thread's cache per class: the list it allocates from and frees to, and
 * one full batch in reserve, so it trades with the pool at most once per
 * BATCH operations. */
struct thread_cache {
	struct block_list active[CLASS_COUNT];
	struct block_list reserve[CLASS_COUNT];
	bool registered;
};

/* A run: BATCH blocks of one size carved together, what a walk visits. */
struct run {
	char *start;
	size_t size;
};

/* Runs are recorded in books, never freed; the newest book first. A book
 * is filled under pool.lock; walkers read without it: used is stored
 * (release) after the run it counts, and a book is published (release)
 * after it is set up; both read with acquire. */
struct run_book {
	struct run_book *next;
	_Atomic uint32_t used;
	struct run runs[RUNS_PER_BOOK];
};

static struct {
	pthread_mutex_t lock;
	struct free_block *batches[CLASS_COUNT];
	char *bump, *bump_end; /* the chunk blocks are carved from */
	_Atomic(struct run_book *) books;
} pool = {.lock = PTHREAD_MUTEX_INITIALIZER};

static _Thread_local struct thread_cache cache;
static pthread_key_t exit_key;
static pthread_once_t exit_key_once = PTHREAD_ONCE_INIT;

static inline unsigned class_of(size_t size)
{
	if (size < MIN_BLOCK)
		size = MIN_BLOCK;
	return (unsigned)((size + CLASS_SIZE - 1) / CLASS_SIZE) - 1;
}

/* A fresh 2 MiB-aligned chunk (so a kernel with transparent huge pages
 * always on may back it with one), asking for nothing more: see
 * TASK_ALLOC.md for why not MADV_HUGEPAGE. Called with pool.lock held. */
static bool grow_pool(void)
{
	size_t span = 2 * (size_t)CHUNK;
	char *raw = mmap(NULL, span, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (raw == MAP_FAILED)
		return false;
	char *chunk = (char *)(((uintptr_t)raw + CHUNK - 1) & ~((uintptr_t)CHUNK - 1));
	if (chunk > raw)
		munmap(raw, (size_t)(chunk - raw));
	munmap(chunk + CHUNK, (size_t)(raw + span - (chunk + CHUNK)));
	pool.bump = chunk;
	pool.bump_end = chunk + CHUNK;
	return true;
}

/* Records a run about to be carved, so walks find its blocks. Called with
 * pool.lock held; false when a new book cannot be had. */
static bool record_run(char *start, size_t size)
{
	struct run_book *book = atomic_load_explicit(&pool.books, memory_order_relaxed);
	uint32_t used = book ? atomic_load_explicit(&book->used, memory_order_relaxed) : 0;
	if (!book || used == RUNS_PER_BOOK) {
		struct run_book *fresh = malloc(sizeof(*fresh));
		if (!fresh)
			return false;
		fresh->next = book;
		atomic_init(&fresh->used, 0);
		/* Release: a walker that finds the book sees it set up. */
		atomic_store_explicit(&pool.books, fresh, memory_order_release);
		book = fresh;
		used = 0;
	}
	book->runs[used] = (struct run){start, size};
	/* Release: pairs with the walker's acquire load of used. */
	atomic_store_explicit(&book->used, used + 1, memory_order_release);
	return true;
}

/* Fills an empty list with a batch of class c: a freed batch if the pool
 * has one, else blocks carved from the chunk. */
static bool refill(struct block_list *list, unsigned c)
{
	size_t size = (size_t)(c + 1) * CLASS_SIZE;
	pthread_mutex_lock(&pool.lock);
	struct free_block *batch = pool.batches[c];
	if (batch) {
		pool.batches[c] = batch->next_batch;
		pthread_mutex_unlock(&pool.lock);
		list->head = batch;
		list->count = batch->batch_count;
		return true;
	}
	if (((size_t)(pool.bump_end - pool.bump) < BATCH * size && !grow_pool()) ||
	    !record_run(pool.bump, size)) {
		pthread_mutex_unlock(&pool.lock);
		return false;
	}
	char *start = pool.bump;
	pool.bump += BATCH * size;
	pthread_mutex_unlock(&pool.lock);
	for (unsigned i = 0; i < BATCH; i++) {
		struct free_block *b = (struct free_block *)(void *)(start + i * size);
		b->next = i + 1 < BATCH ? (struct free_block *)(void *)(start + (i + 1) * size) : NULL;
	}
	list->head = (struct free_block *)(void *)start;
	list->count = BATCH;
	return true;
}

/* Hands a list to the pool as one batch (shorter than BATCH only when a
 * thread exits). */
static void give_batch(struct block_list *list, unsigned c)
{
	if (!list->head)
		return;
	list->head->batch_count = list->count;
	pthread_mutex_lock(&pool.lock);
	list->head->next_batch = pool.batches[c];
	pool.batches[c] = list->head;
	pthread_mutex_unlock(&pool.lock);
	list->head = NULL;
	list->count = 0;
}

static void thread_exit(void *unused)
{
	(void)unused;
	for (unsigned c = 0; c < CLASS_COUNT; c++) {
		give_batch(&cache.reserve[c], c);
		give_batch(&cache.active[c], c);
	}
	cache.registered = false;
}

static void create_exit_key(void)
{
	pthread_key_create(&exit_key, thread_exit);
}

/* Arranges for thread_exit to run when this thread ends, so its cached
 * blocks go back to the pool. */
static void register_thread(void)
{
	pthread_once(&exit_key_once, create_exit_key);
	pthread_setspecific(exit_key, &cache);
	cache.registered = true;
}

void *afe__task_alloc(size_t size)
{
	if (size == 0 || size > AFE_TASK_ALLOC_MAX)
		return listed_alloc(size);
	if (!cache.registered)
		register_thread();
	unsigned c = class_of(size);
	struct block_list *active = &cache.active[c];
	if (!active->head) {
		if (cache.reserve[c].head) {
			*active = cache.reserve[c];
			cache.reserve[c] = (struct block_list){0};
		} else if (!refill(active, c)) {
			return NULL;
		}
	}
	struct free_block *b = active->head;
	active->head = b->next;
	active->count--;
	return b;
}

void afe__task_free(void *block, size_t size)
{
	if (size == 0 || size > AFE_TASK_ALLOC_MAX) {
		listed_free(block);
		return;
	}
	if (!cache.registered)
		register_thread();
	unsigned c = class_of(size);
	struct block_list *active = &cache.active[c];
	if (active->count == BATCH) {
		/* active is a full batch: it becomes the reserve, and the old
		 * reserve goes to the pool. */
		give_batch(&cache.reserve[c], c);
		cache.reserve[c] = *active;
		*active = (struct block_list){0};
	}
	struct free_block *b = block;
	b->next = active->head;
	active->head = b;
	active->count++;
}

void afe__task_alloc_walk(void (*visit)(void *block, void *arg), void *arg)
{
	for (struct run_book *book = atomic_load_explicit(&pool.books, memory_order_acquire); book;
	     book = book->next) {
		uint32_t used = atomic_load_explicit(&book->used, memory_order_acquire);
		for (uint32_t r = 0; r < used; r++)
			for (unsigned i = 0; i < BATCH; i++)
				visit(book->runs[r].start + i * book->runs[r].size, arg);
	}
	listed_walk(visit, arg);
}

#endif /* AFE_TASK_ALLOC_USES_MALLOC */
