/* SPDX-License-Identifier: MIT */
/*
 * Guarded stacks for fibers (fiber.c), kept for reuse by size: mapping a
 * stack costs two syscalls and its first page faults, unmapping one a TLB
 * shootdown on every thread of the process. See stacks.c.
 */
#ifndef AFE_CORO_STACKS_H
#define AFE_CORO_STACKS_H

#include <stddef.h>

/* The page size (sysconf, read once). */
size_t afe__page_size(void);

/* A stack of size bytes (a multiple of the page size) above a PROT_NONE
 * guard page: returns its lowest usable byte, or NULL (out of memory). */
char *afe__stack_take(size_t size);

/* Gives back a stack from afe__stack_take(size), on any thread. */
void afe__stack_give(char *lo, size_t size);

#endif /* AFE_CORO_STACKS_H */
