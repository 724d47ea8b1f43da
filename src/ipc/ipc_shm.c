/* SPDX-License-Identifier: MIT */
/* Creating, opening and checking the shared-memory object: see ipc_shm.h. */
#define _GNU_SOURCE
#include "ipc_shm.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "ipc_guard.h"

int afe_ipc_shm_path(char *path, size_t size, const char *name)
{
	if (!name || !*name || strlen(name) > AFE_IPC_NAME_MAX)
		return -EINVAL;
	for (const char *c = name; *c; c++) {
		bool ok = (*c >= 'a' && *c <= 'z') || (*c >= 'A' && *c <= 'Z') ||
			  (*c >= '0' && *c <= '9') || *c == '.' || *c == '_' || *c == '-';
		if (!ok)
			return -EINVAL;
	}
	if (!strcmp(name, ".") || !strcmp(name, ".."))
		return -EINVAL;
	snprintf(path, size, "/%s", name);
	return 0;
}

int afe_ipc_pidfd_open(pid_t pid)
{
	if (pid <= 0)
		return -ESRCH;
	int fd = (int)syscall(SYS_pidfd_open, pid, 0);
	return fd < 0 ? -errno : fd;
}

bool afe_ipc_pidfd_ended(int pidfd)
{
	struct pollfd pfd = {.fd = pidfd, .events = POLLIN};
	return poll(&pfd, 1, 0) == 1;
}

bool afe_ipc_pidfd_missing(int err)
{
	return err == -ENOSYS || err == -EPERM;
}

/* Reads process pid's state letter and start time from /proc/<pid>/stat:
 * 0, -ESRCH (no such process, or no /proc), or -errno. */
static int read_proc_stat(pid_t pid, char *state, uint64_t *start)
{
	char path[32], buf[512];
	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return errno == ENOENT ? -ESRCH : -errno;
	ssize_t n = read(fd, buf, sizeof(buf) - 1);
	int err = n < 0 ? -errno : 0;
	close(fd);
	if (err) /* -ESRCH: it went meanwhile */
		return err;
	buf[n] = '\0';
	/* "pid (comm) state ..." where comm may hold ')' and spaces: the
	 * fields start after the last ')'. start time is the 22nd field. */
	char *at = strrchr(buf, ')');
	if (!at || at[1] != ' ' || !at[2])
		return -EPROTO;
	at += 2; /* field 3 */
	*state = *at;
	for (int field = 3; field < 22 && at; field++)
		if ((at = strchr(at, ' ')))
			at++;
	*start = at ? strtoull(at, NULL, 10) : 0;
	return 0;
}

uint64_t afe_ipc_process_start(pid_t pid)
{
	char state;
	uint64_t start;
	return read_proc_stat(pid, &state, &start) == 0 ? start : 0;
}

bool afe_ipc_process_ended(pid_t pid, uint64_t start)
{
	if (pid <= 0)
		return true;
	char state;
	uint64_t now_start;
	int err = read_proc_stat(pid, &state, &now_start);
	if (err == 0) /* Z: a zombie; X: dead, being reaped */
		return state == 'Z' || state == 'X' || (start && now_start != start);
	return kill(pid, 0) < 0 && errno == ESRCH;
}

/* After the guard grew a shrunk object back (in its signal handler): the
 * sleepers of every side look again, and find the object zeroed. Only
 * addresses are computed here: the object is written through fd. */
static void wake_all_bells(void *addr, int fd)
{
	struct afe_ipc_header *h = addr;
	uint32_t word = afe_ipc_bell_wiped_word();
	afe_ipc_bell_wake_wiped(&h->bell, fd, (long)offsetof(struct afe_ipc_header, bell), word);
	for (unsigned i = 0; i < AFE_IPC_MAX_PRODUCERS; i++) {
		struct afe_ipc_bell *b = &h->entries[i].bell;
		afe_ipc_bell_wake_wiped(b, fd, (long)((char *)b - (char *)h), word);
	}
}

/* An object shorter than ours: one being created (its consumer sizes it
 * next), or one shrunk under an idle consumer, which sleeps on a bell the
 * shrink did not ring and would never learn of it. Grown back and every
 * bell rung, its consumer finds its header wiped and writes it again (a
 * consumer being created writes it anyway): the connect after next finds
 * the object whole. No access goes through the mapping, which may be
 * shrunk again meanwhile; it only names the bells' futexes. */
static void heal(int fd)
{
	if (ftruncate(fd, (off_t)AFE_IPC_OBJECT_SIZE) < 0)
		return;
	void *p = mmap(NULL, AFE_IPC_OBJECT_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	if (p == MAP_FAILED)
		return;
	wake_all_bells(p, fd);
	munmap(p, AFE_IPC_OBJECT_SIZE);
}

/* Maps the object open as fd, guarded against its shrinking (see
 * ipc_guard.h); NULL with errno set on failure. */
static void *map_fd(int fd)
{
	void *p = mmap(NULL, AFE_IPC_OBJECT_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	if (p == MAP_FAILED)
		return NULL;
	int kept = fcntl(fd, F_DUPFD_CLOEXEC, 0);
	int err = kept < 0 ? -errno : afe_ipc_guard_add(p, AFE_IPC_OBJECT_SIZE, kept, wake_all_bells);
	if (err < 0) {
		if (kept >= 0)
			close(kept);
		munmap(p, AFE_IPC_OBJECT_SIZE);
		errno = -err;
		return NULL;
	}
	return p;
}

int afe_ipc_shm_check(uint64_t size, const struct afe_ipc_header *h)
{
	if (size == 0)
		return -ECONNREFUSED; /* created, not sized yet */
	if (size != AFE_IPC_OBJECT_SIZE)
		return -EPROTO;
	uint64_t magic = atomic_load_explicit(&h->magic, memory_order_acquire);
	if (magic == 0)
		return -ECONNREFUSED; /* sized, header not written yet */
	if (magic != AFE_IPC_MAGIC || h->version != AFE_IPC_VERSION ||
	    h->slot_size != AFE_IPC_SLOT_SIZE || h->ring_slots != AFE_IPC_RING_SLOTS ||
	    h->max_producers != AFE_IPC_MAX_PRODUCERS || h->size != AFE_IPC_OBJECT_SIZE)
		return -EPROTO;
	return 0;
}

/* An existing object at path: -EADDRINUSE if its consumer lives, else it
 * is removed (a dead consumer's, or garbage) and 0 returned. */
static int replace_stale(const char *path)
{
	int fd = shm_open(path, O_RDWR, 0);
	if (fd < 0)
		return errno == ENOENT ? 0 : -errno;
	struct stat st;
	bool live = false;
	if (fstat(fd, &st) == 0 && (size_t)st.st_size == AFE_IPC_OBJECT_SIZE) {
		struct afe_ipc_header *h = map_fd(fd);
		if (!h) { /* unknown: never remove a live consumer's object */
			int err = -errno;
			close(fd);
			return err;
		}
		/* A zombie consumer counts as ended (its pidfd would still
		 * open): one that died unreaped must not keep its name from
		 * its restarted successor. */
		live = afe_ipc_shm_check((uint64_t)st.st_size, h) == 0 &&
		       !afe_ipc_process_ended(h->consumer_pid, 0);
		afe_ipc_shm_unmap(h);
	}
	close(fd);
	if (live)
		return -EADDRINUSE;
	if (shm_unlink(path) < 0 && errno != ENOENT)
		return -errno;
	return 0;
}

/* Allocates the object's pages [offset, offset + len) now, so that a full
 * filesystem answers -ENOSPC here rather than with a fault at the first
 * access (see ipc_guard.h). 0 where the filesystem cannot reserve
 * (EOPNOTSUPP): the guard still keeps such a fault from looping. */
static int reserve(int fd, size_t offset, size_t len)
{
	int err;
	do
		err = fallocate(fd, 0, (off_t)offset, (off_t)len) < 0 ? -errno : 0;
	while (err == -EINTR);
	return err == -EOPNOTSUPP ? 0 : err;
}

int afe_ipc_shm_reserve_entry(struct afe_ipc_header *h, unsigned i)
{
	int fd = afe_ipc_guard_fd(h);
	if (fd < 0)
		return -EBADF;
	size_t at = (size_t)((char *)afe_ipc_requests_of(h, i) - (char *)h);
	return reserve(fd, at, 2 * AFE_IPC_RING_BYTES);
}

int afe_ipc_shm_create(const char *name, struct afe_ipc_header **out)
{
	char path[AFE_IPC_NAME_MAX + 2];
	int err = afe_ipc_shm_path(path, sizeof(path), name);
	if (err < 0)
		return err;
	int fd = -1;
	for (int tries = 0; fd < 0 && tries < 4; tries++) {
		fd = shm_open(path, O_RDWR | O_CREAT | O_EXCL, 0600);
		if (fd < 0 && errno != EEXIST)
			return -errno;
		if (fd < 0 && (err = replace_stale(path)) < 0)
			return err;
	}
	if (fd < 0)
		return -EADDRINUSE;
	struct afe_ipc_header *h = NULL;
	if (ftruncate(fd, (off_t)AFE_IPC_OBJECT_SIZE) < 0)
		err = -errno;
	else if ((err = reserve(fd, 0, AFE_IPC_RINGS_OFFSET)) == 0 && !(h = map_fd(fd)))
		err = -errno;
	if (err < 0) {
		close(fd);
		shm_unlink(path);
		return err;
	}
	close(fd);
	/* The object is fresh (zeroed): entries FREE, bells 0. */
	afe_ipc_shm_write_header(h);
	*out = h;
	return 0;
}

void afe_ipc_shm_write_header(struct afe_ipc_header *h)
{
	h->version = AFE_IPC_VERSION;
	h->slot_size = AFE_IPC_SLOT_SIZE;
	h->ring_slots = AFE_IPC_RING_SLOTS;
	h->max_producers = AFE_IPC_MAX_PRODUCERS;
	h->size = AFE_IPC_OBJECT_SIZE;
	h->consumer_pid = getpid();
	atomic_store_explicit(&h->magic, AFE_IPC_MAGIC, memory_order_release);
}

uint32_t afe_ipc_shm_repairs(const struct afe_ipc_header *h)
{
	return afe_ipc_guard_repairs(h);
}

int afe_ipc_shm_open(const char *name, struct afe_ipc_header **out)
{
	char path[AFE_IPC_NAME_MAX + 2];
	int err = afe_ipc_shm_path(path, sizeof(path), name);
	if (err < 0)
		return err;
	int fd = shm_open(path, O_RDWR, 0);
	if (fd < 0)
		return errno == ENOENT ? -ECONNREFUSED : -errno;
	struct stat st;
	if (fstat(fd, &st) < 0) {
		err = -errno;
		close(fd);
		return err;
	}
	if ((size_t)st.st_size < AFE_IPC_OBJECT_SIZE) {
		heal(fd);
		close(fd);
		return -ECONNREFUSED;
	}
	/* Mapped only when whole: past the end of a shorter object, a read
	 * would fault (SIGBUS). */
	struct afe_ipc_header *h = NULL;
	if ((size_t)st.st_size == AFE_IPC_OBJECT_SIZE && !(h = map_fd(fd))) {
		err = -errno;
		close(fd);
		return err;
	}
	close(fd);
	if ((err = afe_ipc_shm_check((uint64_t)st.st_size, h)) < 0) {
		if (h)
			afe_ipc_shm_unmap(h);
		return err;
	}
	*out = h;
	return 0;
}

void afe_ipc_shm_unmap(struct afe_ipc_header *h)
{
	afe_ipc_guard_remove(h);
	munmap(h, AFE_IPC_OBJECT_SIZE);
}
