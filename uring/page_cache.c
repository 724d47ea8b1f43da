/* SPDX-License-Identifier: MIT */
/* The page-cache check for afe_sendfile: see page_cache.h. */
#define _GNU_SOURCE /* preadv2, RWF_NOWAIT */
#include "page_cache.h"

#include <sys/uio.h>
#include <unistd.h>

/* Whether the byte at offset can be read now without waiting. On a file
 * opened O_DIRECT a read of one byte is refused (EINVAL): no. */
static bool readable_now(int fd, int64_t offset)
{
	char byte;
	struct iovec iov = {&byte, 1};
	return preadv2(fd, &iov, 1, (off_t)offset, RWF_NOWAIT) == 1;
}

bool afe__page_cache_ready(int fd, int64_t offset, size_t len)
{
	if (len == 0)
		return false;
	if (offset < 0 && (offset = lseek(fd, 0, SEEK_CUR)) < 0)
		return false; /* not a file: a pipe, a socket */
	/* The last page first: a sequential read's readahead fills the
	 * range from its start, so the end is the likelier to be missing. */
	return readable_now(fd, offset + (int64_t)len - 1) && readable_now(fd, offset);
}
