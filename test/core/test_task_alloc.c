/* SPDX-License-Identifier: MIT */
/* The task allocator: blocks are distinct, aligned and writable, survive a
 * free on another thread, and come back after a thread exits. */
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "helpers.h"
#include "src/core/task_alloc.h"

#define BLOCKS 10000

static void fill(unsigned char *p, size_t size, unsigned char v)
{
	memset(p, v, size);
}

static bool holds(const unsigned char *p, size_t size, unsigned char v)
{
	for (size_t i = 0; i < size; i++)
		if (p[i] != v)
			return false;
	return true;
}

Test(task_alloc, blocks_of_every_size_are_distinct_and_aligned)
{
	static void *blocks[BLOCKS];
	for (size_t i = 0; i < BLOCKS; i++) {
		size_t size = 1 + i % (AFE_TASK_ALLOC_MAX + 200); /* some go to malloc */
		blocks[i] = afe__task_alloc(size);
		cr_assert_not_null(blocks[i]);
		cr_assert_eq((uintptr_t)blocks[i] % _Alignof(max_align_t), 0);
		fill(blocks[i], size, (unsigned char)i);
	}
	for (size_t i = 0; i < BLOCKS; i++) {
		size_t size = 1 + i % (AFE_TASK_ALLOC_MAX + 200);
		cr_assert(holds(blocks[i], size, (unsigned char)i), "block %zu was overwritten", i);
		afe__task_free(blocks[i], size);
	}
}

struct handoff {
	void **blocks;
	size_t count, size;
};

static void *free_all(void *arg)
{
	struct handoff *h = arg;
	for (size_t i = 0; i < h->count; i++)
		afe__task_free(h->blocks[i], h->size);
	return NULL; /* the thread exits: its cache goes back to the pool */
}

static void *alloc_all(void *arg)
{
	struct handoff *h = arg;
	for (size_t i = 0; i < h->count; i++) {
		h->blocks[i] = afe__task_alloc(h->size);
		if (h->blocks[i])
			fill(h->blocks[i], h->size, 0xa5);
	}
	return NULL;
}

static int compare_pointers(const void *a, const void *b)
{
	uintptr_t x = (uintptr_t)*(void *const *)a, y = (uintptr_t)*(void *const *)b;
	return (x > y) - (x < y);
}

Test(task_alloc, blocks_freed_on_exiting_threads_are_reused)
{
	static void *blocks[BLOCKS], *first_round[BLOCKS];
	struct handoff h = {.blocks = blocks, .count = BLOCKS, .size = 200};
	for (int round = 0; round < 20; round++) {
		pthread_t t;
		/* Allocated on one thread, freed on another, which exits. */
		pthread_create(&t, NULL, alloc_all, &h);
		pthread_join(t, NULL);
		size_t fresh = 0;
		for (size_t i = 0; i < BLOCKS; i++) {
			cr_assert_not_null(blocks[i]);
			cr_assert(holds(blocks[i], h.size, 0xa5));
			if (round > 0 && !bsearch(&blocks[i], first_round, BLOCKS, sizeof(void *),
						  compare_pointers))
				fresh++;
		}
		if (round == 0) {
			memcpy(first_round, blocks, sizeof(blocks));
			qsort(first_round, BLOCKS, sizeof(void *), compare_pointers);
		}
#ifndef AFE_TASK_ALLOC_USES_MALLOC
		/* The blocks came back: at most the first allocating thread's
		 * partly used batch is new to this round. */
		cr_assert_leq(fresh, 64, "round %d: %zu blocks were not recycled", round, fresh);
#endif
		pthread_create(&t, NULL, free_all, &h);
		pthread_join(t, NULL);
	}
}

Test(task_alloc, zero_and_huge_sizes_go_to_malloc)
{
	void *p = afe__task_alloc(AFE_TASK_ALLOC_MAX + 1);
	cr_assert_not_null(p);
	fill(p, AFE_TASK_ALLOC_MAX + 1, 1);
	afe__task_free(p, AFE_TASK_ALLOC_MAX + 1);
	p = afe__task_alloc(0);
	afe__task_free(p, 0); /* whatever malloc(0) gave */
}
