/* SPDX-License-Identifier: MIT */
/*
 * Survives another process shrinking a shared-memory object we have
 * mapped. Any process of the same user can ftruncate the object; our next
 * access past its new end would raise SIGBUS and kill us. A guarded
 * mapping has a SIGBUS handler standing by: on a fault inside it, the
 * handler grows the object back to the mapping's size through the fd it
 * keeps, so the access goes on and reads zeros, which every reader of
 * shared memory must cope with anyway (it is untrusted). The handler then
 * wakes every bell of the object, giving each word a value no sleeper
 * holds (see afe_ipc_bell_wiped_word), so the sleepers on both sides look
 * again and see what happened, and counts a repair. It writes the object
 * through the kept fd only, never through the mapping: the access that
 * faulted may be ThreadSanitizer's, holding its lock of the word.
 *
 * The same holds for a page the filesystem cannot supply: on a full
 * size-limited tmpfs (Docker's /dev/shm is 64 MiB) the first access to a
 * page faults with the size right. The handler allocates that page; when
 * it cannot, the mapping is replaced by zeros of this process's own, as
 * when the object cannot grow back: the process lives on and the link
 * through that mapping is dead. Pages that must be there are reserved up
 * front instead (afe_ipc_shm_create, the producer's claim), so this is
 * left to a peer that punches holes in a full filesystem.
 *
 * Faults outside every guarded mapping go to the handler that was there
 * before. A program that replaces the SIGBUS handler afterwards loses this
 * protection.
 *
 * A side asleep on a bell when the object shrinks stays asleep (the
 * shrink ends no futex wait) until something rings it; a producer that
 * tries to connect to the short object grows it back and rings every
 * bell (ipc_shm.c), so an idle consumer repairs its header then. A worker
 * that parks with a watch on a bell of the shrunk object gets EFAULT from
 * futex_waitv, then reads the word to see whether it changed: that read
 * faults, and the guard repairs the object.
 */
#ifndef AFE_IPC_GUARD_H
#define AFE_IPC_GUARD_H

#include <stddef.h>
#include <stdint.h>

/* How many mappings one process can guard at a time. */
#define AFE_IPC_GUARD_MAX 256

/* Guards the mapping [addr, addr + len) of the object open as fd (the
 * guard takes fd, and closes it on removal). wake_bells(addr, fd) runs in
 * the signal handler after a repair: it may only do async-signal-safe
 * things, and must write the object through fd, never through the
 * mapping (see afe_ipc_bell_wake_wiped in ipc_bell.h for why).
 * 0, or -EMFILE when AFE_IPC_GUARD_MAX mappings are guarded already (fd
 * is then the caller's still), or -errno from installing the handler. */
int afe_ipc_guard_add(void *addr, size_t len, int fd, void (*wake_bells)(void *addr, int fd));

/* Stops guarding the mapping at addr and closes its fd; call before
 * unmapping it. */
void afe_ipc_guard_remove(void *addr);

/* The fd of the object mapped at addr, the guard's own (never close it),
 * or -1 when addr is not guarded. */
int afe_ipc_guard_fd(const void *addr);

/* How many times the mapping at addr was repaired so far. */
uint32_t afe_ipc_guard_repairs(const void *addr);

#endif /* AFE_IPC_GUARD_H */
