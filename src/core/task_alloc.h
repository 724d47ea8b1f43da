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
 * checks each block), use malloc. Chunks are kept for the life of the
 * process: memory freed by tasks is reused by later tasks.
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

#endif /* AFE_TASK_ALLOC_H */
