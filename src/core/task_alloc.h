/* SPDX-License-Identifier: MIT */
/*
 * Memory for tasks: one block holds a task's header and its future.
 *
 * Spawning a million tasks through malloc spends most of its time growing
 * the heap page by page. Blocks here come in 16-byte size classes up to
 * AFE_TASK_ALLOC_MAX, carved from 2 MiB chunks, and recycled through per-thread caches that trade whole
 * batches with a global pool, so allocating and freeing take no lock in
 * the common case even when tasks die on another thread than they were
 * born on. Larger tasks, and every task under AddressSanitizer (so it
 * checks each block), use malloc, behind a small header that links them
 * in a list under a lock, so that a dump can find them too. Chunks are
 * kept for the life of the process: memory freed by tasks is reused by
 * later tasks.
 */
#ifndef AFE_TASK_ALLOC_H
#define AFE_TASK_ALLOC_H

#include <stddef.h>

#define AFE_TASK_ALLOC_MAX 1024

#if defined(__SANITIZE_ADDRESS__)
#define AFE_TASK_ALLOC_USES_MALLOC 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define AFE_TASK_ALLOC_USES_MALLOC 1
#endif
#endif

/* A block of at least size bytes, aligned for any type; NULL when out of
 * memory. */
void *afe__task_alloc(size_t size);

/* Returns a block from afe__task_alloc(size), on any thread. */
void afe__task_free(void *block, size_t size);

/*
 * For the task dump (task.c), which has no list of its own: calls
 * visit(block, arg) for every block handed out and not returned, and for
 * some returned ones (a block of a size class stays walkable once carved).
 * The allocator never writes a block's first 8 bytes (a task's state
 * word): a returned block keeps what its last owner left there, a fresh
 * one holds zero; so visit tells a live block by that word, read
 * atomically, and it must take a reference before reading more (see
 * task.c's pin). visit must neither allocate nor free blocks: a lock may
 * be held around it.
 */
void afe__task_alloc_walk(void (*visit)(void *block, void *arg), void *arg);

#endif /* AFE_TASK_ALLOC_H */
