/* SPDX-License-Identifier: MIT */
/* cachestat(2) for afe_sendfile: see page_cache.h. */
#define _GNU_SOURCE
#include "page_cache.h"

#include <errno.h>
#include <stdatomic.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "features.h"

/* The kernel's uapi (linux/mman.h, Linux 6.5), which Debian's headers
 * predate; the number is the same on every architecture. */
#define AFE_NR_CACHESTAT 451
struct afe_cachestat_range {
	uint64_t off, len;
};
struct afe_cachestat {
	uint64_t nr_cache, nr_dirty, nr_writeback, nr_evicted, nr_recently_evicted;
};

enum { UNKNOWN, USABLE, MISSING };

/* Whether cachestat may be asked: learned from the first call. Relaxed:
 * every thread that finds it UNKNOWN learns the same answer. */
static _Atomic int usable = UNKNOWN;

bool afe__page_cache_holds(int fd, int64_t offset, size_t len)
{
	int state = atomic_load_explicit(&usable, memory_order_relaxed);
	if (state == MISSING || len == 0)
		return false;
	if (state == UNKNOWN && afe__features_cap() < AFE_LINUX(6, 5)) {
		atomic_store_explicit(&usable, MISSING, memory_order_relaxed);
		return false;
	}
	if (offset < 0 && (offset = lseek(fd, 0, SEEK_CUR)) < 0)
		return false; /* not a file: a pipe, a socket */
	long page = sysconf(_SC_PAGESIZE);
	uint64_t first = (uint64_t)offset / (uint64_t)page;
	uint64_t end = ((uint64_t)offset + len + (uint64_t)page - 1) / (uint64_t)page;
	struct afe_cachestat_range range = {(uint64_t)offset, len};
	struct afe_cachestat cs;
	if (syscall(AFE_NR_CACHESTAT, fd, &range, &cs, 0) < 0) {
		/* ENOSYS: before 6.5; EPERM: a seccomp filter that does not
		 * know it. Either way for good. EBADF and the like say only
		 * that this fd is no file. */
		if (errno == ENOSYS || errno == EPERM)
			atomic_store_explicit(&usable, MISSING, memory_order_relaxed);
		return false;
	}
	atomic_store_explicit(&usable, USABLE, memory_order_relaxed);
	return cs.nr_cache >= end - first;
}
