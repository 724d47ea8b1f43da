/* SPDX-License-Identifier: MIT */
/*
 * Whether a range of a file is in the page cache, so that a splice out of
 * it will not wait for the disk: cachestat(2), Linux 6.5. A splice from a
 * file waits for the pages it reads whatever its flags, so afe_sendfile
 * makes one on a worker only when this says yes (uring/fs.c).
 */
#ifndef AFE_URING_PAGE_CACHE_H
#define AFE_URING_PAGE_CACHE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Whether every page of [offset, offset + len) of fd is cached now (offset
 * -1: from fd's position). False when the kernel has no cachestat (before
 * 6.5, refused by a seccomp filter, or $AFE_URING_FEATURES below 6.5), for
 * an fd that is not a file, and for a range past the file's end: a
 * no that only sends the caller the slower way. */
bool afe__page_cache_holds(int fd, int64_t offset, size_t len);

#endif /* AFE_URING_PAGE_CACHE_H */
