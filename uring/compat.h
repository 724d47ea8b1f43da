/* SPDX-License-Identifier: MIT */
/*
 * What Debian's liburing 2.3 predates: opcodes and flags of newer kernels
 * (values from the kernel's include/uapi/linux/io_uring.h and futex.h), and
 * the SQE layouts liburing has no helper for. The kernel is probed at
 * start-up (ring.c) before any of these is used.
 */
#ifndef AFE_URING_COMPAT_H
#define AFE_URING_COMPAT_H

#include <liburing.h>
#include <stdint.h>
#include <string.h>

/* Opcodes past the end of 2.3's enum (Linux 6.7). The ring uses the
 * futex ones only when its probe found them (AFE_URING_FUTEX). */
#define AFE_IORING_OP_READ_MULTISHOT 49
#define AFE_IORING_OP_WAITID 50
#define AFE_IORING_OP_FUTEX_WAIT 51
#define AFE_IORING_OP_FUTEX_WAKE 52
#define AFE_IORING_OP_FUTEX_WAITV 53
/* Linux 6.9; used only when the probe found it (AFE_URING_FTRUNCATE). */
#define AFE_IORING_OP_FTRUNCATE 55

/* futex2 flags: the word's size, and process-private. */
#define AFE_FUTEX2_SIZE_U32 2u
#define AFE_FUTEX2_PRIVATE 128u
#define AFE_FUTEX_BITSET_MATCH_ANY 0xffffffffu

/*
 * Requests that are no kernel operation: the ring thread carries them out
 * itself, because a SINGLE_ISSUER ring takes io_uring_register only from
 * the thread that submits (ring.h). Opcodes far past the kernel's own.
 * - AFE_OP_BUF_RING_REGISTER: registers the provided-buffer ring at addr
 *   with len entries (a power of two, page-aligned memory) under a group
 *   id of the ring thread's choosing; the result is that id, or -errno.
 * - AFE_OP_BUF_RING_UNREGISTER: unregisters group buf_index; 0 or -errno.
 * The epoll backend refuses both (-EOPNOTSUPP).
 */
#define AFE_OP_BUF_RING_REGISTER 0xf0
#define AFE_OP_BUF_RING_UNREGISTER 0xf1

static inline void afe_prep_buf_ring_register(struct io_uring_sqe *sqe, void *ring,
					      unsigned entries)
{
	memset(sqe, 0, sizeof(*sqe));
	sqe->opcode = AFE_OP_BUF_RING_REGISTER;
	sqe->fd = -1;
	sqe->addr = (uint64_t)(uintptr_t)ring;
	sqe->len = entries;
}

static inline void afe_prep_buf_ring_unregister(struct io_uring_sqe *sqe, uint16_t group)
{
	memset(sqe, 0, sizeof(*sqe));
	sqe->opcode = AFE_OP_BUF_RING_UNREGISTER;
	sqe->fd = -1;
	sqe->buf_index = group;
}

#define AFE_IORING_TIMEOUT_MULTISHOT (1u << 6)
#define AFE_IORING_ASYNC_CANCEL_USERDATA (1u << 4)

/*
 * FUTEX_WAIT through the ring: completes (0) when the 32-bit word at addr
 * is woken, or at once with -EAGAIN when it no longer holds expected.
 * The SQE: fd = futex2 flags, addr = word, addr2 = expected value,
 * addr3 = wake mask, the rw_flags slot = 0.
 */
static inline void afe_prep_futex_wait(struct io_uring_sqe *sqe, const uint32_t *addr,
				       uint32_t expected, unsigned futex2_flags)
{
	memset(sqe, 0, sizeof(*sqe));
	sqe->opcode = AFE_IORING_OP_FUTEX_WAIT;
	sqe->fd = (int)(futex2_flags | AFE_FUTEX2_SIZE_U32);
	sqe->addr = (uint64_t)(uintptr_t)addr;
	sqe->addr2 = expected;
	sqe->addr3 = AFE_FUTEX_BITSET_MATCH_ANY;
}

/* FUTEX_WAKE through the ring: wakes up to nr waiters of the word; the
 * result is how many woke. The SQE as for the wait, with addr2 = nr. */
static inline void afe_prep_futex_wake(struct io_uring_sqe *sqe, const uint32_t *addr,
				       uint32_t nr, unsigned futex2_flags)
{
	afe_prep_futex_wait(sqe, addr, nr, futex2_flags);
	sqe->opcode = AFE_IORING_OP_FUTEX_WAKE;
}

/* ftruncate(2) through the ring: fd's file gets length bytes. The SQE:
 * fd, off = length; every other field 0. */
static inline void afe_prep_ftruncate(struct io_uring_sqe *sqe, int fd, int64_t length)
{
	memset(sqe, 0, sizeof(*sqe));
	sqe->opcode = AFE_IORING_OP_FTRUNCATE;
	sqe->fd = fd;
	sqe->off = (uint64_t)length;
}

#endif /* AFE_URING_COMPAT_H */
