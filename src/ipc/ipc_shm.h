/* SPDX-License-Identifier: MIT */
/*
 * The shared-memory object of a consumer: a header, then for each producer
 * entry its request ring (toward the consumer) and its reply ring (back).
 *
 * Each producer has rings of its own: a producer that dies half-way
 * through writing a slot stalls only its own ring, never the others'.
 *
 * A producer entry's life: FREE, claimed by a connecting producer
 * (CLAIMED, with its pid: afe_ipc_claim; it formats its rings), LIVE once
 * it published its pid and a new generation, GONE when it disconnects.
 * The consumer frees a GONE entry, a LIVE one whose process died (seen
 * through a pidfd), a CLAIMED one whose claimer died or held it too long,
 * and one whose state is none of these (garbage a peer wrote): whatever a
 * dead or scribbling peer leaves in an entry, it is free again.
 */
#ifndef AFE_IPC_SHM_H
#define AFE_IPC_SHM_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "ipc_bell.h"
#include "ipc_slots.h"

#define AFE_IPC_MAGIC 0x31435049454641ull /* "AFEIPC1" */
#define AFE_IPC_VERSION 3u /* 3: a CLAIMED entry names its claimer */
#define AFE_IPC_RING_SLOTS 128u

enum { AFE_IPC_ENTRY_FREE, AFE_IPC_ENTRY_CLAIMED, AFE_IPC_ENTRY_LIVE, AFE_IPC_ENTRY_GONE };

/* A claimed entry's state: AFE_IPC_ENTRY_CLAIMED, the claimer's pid above
 * it (pids stay below 2^22, PID_MAX_LIMIT). The claim and who made it are
 * one word: a claimer that dies at any point of its claim leaves its pid
 * for the consumer to look at. */
#define AFE_IPC_CLAIM_SHIFT 2

static inline uint32_t afe_ipc_claim(pid_t pid)
{
	return AFE_IPC_ENTRY_CLAIMED | (uint32_t)pid << AFE_IPC_CLAIM_SHIFT;
}

/* The claimer a state names, or 0 when it is no claim (another state, or
 * garbage). */
static inline pid_t afe_ipc_claimer(uint32_t state)
{
	if ((state & ((1u << AFE_IPC_CLAIM_SHIFT) - 1)) != AFE_IPC_ENTRY_CLAIMED)
		return 0;
	return (pid_t)(state >> AFE_IPC_CLAIM_SHIFT);
}

struct afe_ipc_entry {
	_Alignas(64) _Atomic uint32_t state;
	_Atomic int32_t pid;
	_Atomic uint32_t generation;
	struct afe_ipc_bell bell; /* the producer sleeps on it */
};

struct afe_ipc_header {
	_Atomic uint64_t magic; /* stored last when the consumer set up */
	uint32_t version;
	uint32_t slot_size;
	uint32_t ring_slots;
	uint32_t max_producers;
	uint64_t size; /* of the whole object */
	int32_t consumer_pid;
	_Alignas(64) struct afe_ipc_bell bell; /* the consumer sleeps on it */
	struct afe_ipc_entry entries[AFE_IPC_MAX_PRODUCERS];
};

/* Where the header ends and entry i's rings begin (page-aligned). */
#define AFE_IPC_RINGS_OFFSET ((sizeof(struct afe_ipc_header) + 4095u) & ~(size_t)4095u)
#define AFE_IPC_RING_BYTES ((size_t)AFE_IPC_RING_SLOTS * AFE_IPC_SLOT_SIZE)
#define AFE_IPC_OBJECT_SIZE (AFE_IPC_RINGS_OFFSET + 2 * AFE_IPC_RING_BYTES * AFE_IPC_MAX_PRODUCERS)

static inline struct afe_ipc_slot *afe_ipc_requests_of(struct afe_ipc_header *h, unsigned i)
{
	return (struct afe_ipc_slot *)(void *)((char *)h + AFE_IPC_RINGS_OFFSET +
					       2 * AFE_IPC_RING_BYTES * i);
}

static inline struct afe_ipc_slot *afe_ipc_replies_of(struct afe_ipc_header *h, unsigned i)
{
	return (struct afe_ipc_slot *)(void *)((char *)afe_ipc_requests_of(h, i) +
					       AFE_IPC_RING_BYTES);
}

/* "/name" into path, after checking name. 0 or -EINVAL. */
int afe_ipc_shm_path(char *path, size_t size, const char *name);

/* The consumer: creates and maps the object, replacing a dead consumer's,
 * and allocates its header's pages (the entries' are their producers' to
 * reserve). 0 or -EADDRINUSE, -ENOSPC (the filesystem is full), -errno. */
int afe_ipc_shm_create(const char *name, struct afe_ipc_header **out);

/* A producer that claimed entry i: allocates the pages of its rings, so
 * that a full filesystem fails the connect rather than the first access.
 * 0, -ENOSPC, -errno. */
int afe_ipc_shm_reserve_entry(struct afe_ipc_header *h, unsigned i);

/* A producer: maps an existing object and checks its header. 0 or
 * -ECONNREFUSED (no object, or one still being set up), -EPROTO, -errno.
 * An object shorter than ours (being set up, or shrunk under its
 * consumer) is grown back and its bells rung, then refused this once.
 * Whether its consumer lives is the caller's to check (it opens a pidfd
 * on consumer_pid anyway). */
int afe_ipc_shm_open(const char *name, struct afe_ipc_header **out);

/*
 * Checks an object another process set up, from its size and its header:
 * 0; -ECONNREFUSED while it is being set up (size, or magic, still 0);
 * -EPROTO when it is not a compatible AFE ring (magic, version, sizes).
 * h is read only when size is AFE_IPC_OBJECT_SIZE (may be NULL otherwise).
 */
int afe_ipc_shm_check(uint64_t size, const struct afe_ipc_header *h);

/* Unmaps an object mapped by afe_ipc_shm_create or afe_ipc_shm_open. */
void afe_ipc_shm_unmap(struct afe_ipc_header *h);

/* The consumer: writes the header, magic last. Also after a repair. */
void afe_ipc_shm_write_header(struct afe_ipc_header *h);

/*
 * How often another process shrank the object under this mapping and the
 * guard grew it back, zeroed (see ipc_guard.h). Mappings of both calls
 * above are guarded.
 */
uint32_t afe_ipc_shm_repairs(const struct afe_ipc_header *h);

/* Opens a pidfd on pid: >= 0, or -errno (-ESRCH: it is gone). */
int afe_ipc_pidfd_open(pid_t pid);

/* Whether the process of pidfd ended: a zombie (dead, not reaped yet)
 * still has a pidfd, which is then readable. */
bool afe_ipc_pidfd_ended(int pidfd);

/* Whether err, from afe_ipc_pidfd_open, says pidfds are missing: -ENOSYS
 * (a kernel before 5.3, valgrind 3.19) or -EPERM (a seccomp filter:
 * pidfd_open has no EPERM of its own). A peer is then watched by pid. */
bool afe_ipc_pidfd_missing(int err);

/* Without pidfds: when process pid started (field 22 of /proc/<pid>/stat,
 * clock ticks since boot), to tell it from a later process given its pid;
 * 0 when /proc cannot say. */
uint64_t afe_ipc_process_start(pid_t pid);

/* Without pidfds: whether process pid ended (gone, or a zombie), or its
 * pid names another process than the one that started at start (0: not
 * known). From /proc; without it, kill(pid, 0), which takes a zombie, or
 * a process that reused the pid, for the one that runs. */
bool afe_ipc_process_ended(pid_t pid, uint64_t start);

#endif /* AFE_IPC_SHM_H */
