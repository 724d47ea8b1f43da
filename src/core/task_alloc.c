/* SPDX-License-Identifier: MIT */
/* Size-class allocator for tasks: see task_alloc.h. */
#include "task_alloc.h"

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/mman.h>

#ifdef AFE_TASK_ALLOC_USES_MALLOC

void *afe__task_alloc(size_t size)
{
	return malloc(size);
}

void afe__task_free(void *block, size_t size)
{
	(void)size;
	free(block);
}

#else

enum {
	CLASS_SIZE = 16, /* the alignment of max_align_t */
	CLASS_COUNT = AFE_TASK_ALLOC_MAX / CLASS_SIZE,
	BATCH = 64,			 /* blocks traded with the global pool at once */
	CHUNK = 2 * 1024 * 1024,	 /* one transparent huge page */
};

/* A free block. Batches in the global pool are chained through their first
 * block, which also holds the batch's length. */
struct free_block {
	struct free_block *next;
	struct free_block *next_batch;
	unsigned batch_count;
};

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

static struct {
	pthread_mutex_t lock;
	struct free_block *batches[CLASS_COUNT];
	char *bump, *bump_end; /* the chunk blocks are carved from */
} pool = {.lock = PTHREAD_MUTEX_INITIALIZER};

static _Thread_local struct thread_cache cache;
static pthread_key_t exit_key;
static pthread_once_t exit_key_once = PTHREAD_ONCE_INIT;

static inline unsigned class_of(size_t size)
{
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
	if ((size_t)(pool.bump_end - pool.bump) < BATCH * size && !grow_pool()) {
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
		return malloc(size);
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
		free(block);
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

#endif /* AFE_TASK_ALLOC_USES_MALLOC */
