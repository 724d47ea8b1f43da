/* SPDX-License-Identifier: MIT */
/*
 * Whether a range of a file can be read now without waiting for the
 * disk, so that a splice out of it will not wait either: a splice from a
 * file waits for the pages it reads whatever its flags, so afe_sendfile
 * makes one on a worker only when this says yes (uring/fs.c).
 */
#ifndef AFE_URING_PAGE_CACHE_H
#define AFE_URING_PAGE_CACHE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/*
 * Whether the first and the last page of [offset, offset + len) of fd
 * (offset -1: from fd's position) are in the page cache and read already:
 * a byte of each read with RWF_NOWAIT (two system calls). A page whose
 * read is still in flight (readahead) says no. A page in between that was
 * evicted alone is not seen: the splice then waits for its read, once.
 * False for an fd that is no file, a file opened O_DIRECT (read from the
 * disk whatever the cache holds), a range past the file's end, len 0, and
 * a file system without non-blocking reads: a no only sends the caller
 * the slower way.
 */
bool afe__page_cache_ready(int fd, int64_t offset, size_t len);

#endif /* AFE_URING_PAGE_CACHE_H */
