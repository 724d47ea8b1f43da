/* SPDX-License-Identifier: MIT */
/* The SIGBUS guard of shared mappings: see ipc_guard.h. */
#define _GNU_SOURCE
#include "ipc_guard.h"
#include "../../pool/fault_pass_on.h"

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

struct guarded {
	_Atomic uintptr_t start; /* 0: a free slot; published last */
	_Atomic size_t len;
	_Atomic int fd;
	void (*_Atomic wake_bells)(void *addr, int fd);
	_Atomic uint32_t repairs;
};

/* The handler reads the slots without a lock: a slot's fields are set
 * before its start is published, and cleared after it is withdrawn.
 *
 * The handler makes no access the ThreadSanitizer runtime would lock for:
 * the fault may come from inside that runtime (its atomics access memory
 * while holding their locks), and would then wait for itself forever. So
 * it reads the slots relaxed (the mapping that faulted was handed to the
 * faulting thread after its slot was set: that orders them), and calls
 * the kernel through syscall(), which the sanitizers do not intercept
 * (its arguments are longs: ints are cast). */
static struct guarded guarded[AFE_IPC_GUARD_MAX];
static pthread_mutex_t guard_lock = PTHREAD_MUTEX_INITIALIZER; /* adds, removes */
static bool installed;
static struct sigaction previous; /* written once, before any slot is used */
static long page_size;            /* likewise */

/* The fault at `at` in g's mapping: an access past the object's end (it
 * was shrunk), or to a page the filesystem cannot supply (a size-limited
 * tmpfs is full: /dev/shm in a container). Growing the object back is not
 * enough for the second, whose size is right already: the access would
 * fault again for ever. So the faulting page is also allocated (a no-op
 * for a page a shrink dropped and the growth gave back as a hole). */
static void repair(struct guarded *g, uintptr_t start, uintptr_t at)
{
	int saved = errno;
	int fd = atomic_load_explicit(&g->fd, memory_order_relaxed);
	size_t len = atomic_load_explicit(&g->len, memory_order_relaxed);
	long page = (long)(at - start) & ~(page_size - 1);
	if (syscall(SYS_ftruncate, (long)fd, (long)len) == 0 &&
	    syscall(SYS_fallocate, (long)fd, 0L, page, page_size) == 0) {
		atomic_load_explicit(&g->wake_bells, memory_order_relaxed)((void *)start, fd);
	} else {
		/* The object cannot grow back, or the page cannot be had:
		 * zeros of our own keep this process running; the link
		 * through it is dead. */
		syscall(SYS_mmap, (void *)start, len, (long)(PROT_READ | PROT_WRITE),
			(long)(MAP_FIXED | MAP_PRIVATE | MAP_ANONYMOUS), -1L, 0L);
	}
	atomic_fetch_add_explicit(&g->repairs, 1, memory_order_relaxed);
	errno = saved;
}

static void on_sigbus(int sig, siginfo_t *info, void *context)
{
	/* Only an access the object could not back (past its end, or no
	 * page to be had): another fault (a memory error) would come back
	 * however often we repaired. */
	if (info->si_code == BUS_ADRERR) {
		uintptr_t at = (uintptr_t)info->si_addr;
		for (unsigned i = 0; i < AFE_IPC_GUARD_MAX; i++) {
			struct guarded *g = &guarded[i];
			uintptr_t start = atomic_load_explicit(&g->start, memory_order_relaxed);
			if (start && at >= start &&
			    at - start < atomic_load_explicit(&g->len, memory_order_relaxed)) {
				repair(g, start, at);
				return;
			}
		}
	}
	afe_fault_pass_on(&previous, sig, info, context);
}

static int install(void)
{
	struct sigaction sa;
	memset(&sa, 0, sizeof(sa));
	sa.sa_sigaction = on_sigbus;
	sa.sa_flags = SA_SIGINFO | SA_ONSTACK | SA_RESTART;
	sigemptyset(&sa.sa_mask);
	page_size = sysconf(_SC_PAGESIZE);
	if (sigaction(SIGBUS, &sa, &previous) < 0)
		return -errno;
	installed = true;
	return 0;
}

int afe_ipc_guard_add(void *addr, size_t len, int fd, void (*wake_bells)(void *addr, int fd))
{
	pthread_mutex_lock(&guard_lock);
	int err = installed ? 0 : install();
	struct guarded *g = NULL;
	for (unsigned i = 0; !err && !g && i < AFE_IPC_GUARD_MAX; i++)
		if (!atomic_load_explicit(&guarded[i].start, memory_order_relaxed))
			g = &guarded[i];
	if (!err && !g)
		err = -EMFILE;
	if (!err) {
		atomic_store_explicit(&g->len, len, memory_order_relaxed);
		atomic_store_explicit(&g->fd, fd, memory_order_relaxed);
		atomic_store_explicit(&g->wake_bells, wake_bells, memory_order_relaxed);
		atomic_store_explicit(&g->repairs, 0, memory_order_relaxed);
		atomic_store_explicit(&g->start, (uintptr_t)addr, memory_order_release);
	}
	pthread_mutex_unlock(&guard_lock);
	return err;
}

static struct guarded *find(const void *addr)
{
	for (unsigned i = 0; i < AFE_IPC_GUARD_MAX; i++)
		if (atomic_load_explicit(&guarded[i].start, memory_order_acquire) == (uintptr_t)addr)
			return &guarded[i];
	return NULL;
}

void afe_ipc_guard_remove(void *addr)
{
	pthread_mutex_lock(&guard_lock);
	struct guarded *g = find(addr);
	if (g) {
		atomic_store_explicit(&g->start, 0, memory_order_release);
		close(atomic_load_explicit(&g->fd, memory_order_relaxed));
	}
	pthread_mutex_unlock(&guard_lock);
}

int afe_ipc_guard_fd(const void *addr)
{
	pthread_mutex_lock(&guard_lock);
	struct guarded *g = find(addr);
	int fd = g ? atomic_load_explicit(&g->fd, memory_order_relaxed) : -1;
	pthread_mutex_unlock(&guard_lock);
	return fd;
}

uint32_t afe_ipc_guard_repairs(const void *addr)
{
	struct guarded *g = find(addr);
	return g ? atomic_load_explicit(&g->repairs, memory_order_relaxed) : 0; /* a count */
}
