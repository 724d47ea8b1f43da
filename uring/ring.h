/* SPDX-License-Identifier: MIT */
/*
 * The runtime's io_uring and the thread that owns it. (backend.h: the
 * common part of that thread, ring.c, and its backends; what follows is
 * the io_uring one, backend_uring.c.)
 *
 * One thread (the ring thread) is the ring's only issuer: it creates the
 * ring with SINGLE_ISSUER | DEFER_TASKRUN (before Linux 6.1: COOP_TASKRUN,
 * before 5.19 neither), submits every SQE and reaps every CQE. Workers
 * hand it requests through a lock-free stack and ring a doorbell: a futex
 * word the ring thread watches with a FUTEX_WAIT armed in its own ring
 * (Linux 6.7; before, a read of an eventfd), so it sleeps in one
 * io_uring_enter whether it waits for completions or for new requests,
 * and a worker makes the wake syscall only when the ring thread is
 * asleep. Requests are never dropped: when the submission queue is full
 * they wait for the next round.
 *
 * Why one issuer, not workers entering a shared ring: there every
 * submitter and every completion's task work takes the kernel's
 * uring_lock; here one thread does both, batched. The figures, and what
 * was tried and not kept (a minimum wait, gathering, spinning, pinning):
 * uring/RING.md.
 */
#ifndef AFE_URING_RING_H
#define AFE_URING_RING_H

#include <stdbool.h>
#include <stdint.h>

struct afe_ring;
struct afe_io;
struct afe_blocking_pool;
struct afe_runtime;

/* The ring of rt. Declared here, for the I/O layer, and defined by the
 * runtime (src/core/runtime.c), which owns the ring: the I/O layer finds
 * its ring without knowing the runtime's struct. */
struct afe_ring *afe__runtime_ring(const struct afe_runtime *rt);

/* How the ring starts (from the runtime's config). */
struct afe_ring_options {
	unsigned entries;    /* submission queue size */
	unsigned cq_entries; /* 0: MIN_CQ_ENTRIES or twice entries, whichever is more */
	int backend;	     /* enum afe_backend; AUTO: see afe/runtime.h */
	bool quiet_fallback; /* no line on stderr when falling back to epoll */
	struct afe_blocking_pool *pool; /* the epoll backend's file operations run there */
};

/* Starts the ring thread on o->backend (AUTO: $AFE_BACKEND, else
 * io_uring, falling back to epoll when io_uring_setup is refused with
 * -EPERM, -ENOSYS or -ENOMEM, see setup_auto in ring.c): with io_uring, a ring of o->entries SQEs and o->cq_entries
 * CQEs, checked by submitting a NOP. Returns 0, or the negative errno of
 * the call that failed (io_uring_setup, io_uring_register,
 * io_uring_enter; -ENOSYS for a missing opcode, -ENOMEM; with epoll,
 * epoll_create1 or eventfd), with a message on stderr naming the call and
 * the errno. */
int afe_ring_start(struct afe_ring **out, const struct afe_ring_options *o);

/* Cancels every operation in flight, waits for their completions (their
 * tasks are woken with the results), and ends the ring thread. Operations
 * queued afterwards complete at once with -ESHUTDOWN. */
void afe_ring_stop(struct afe_ring *ring);

/* Frees the ring; after afe_ring_stop. */
void afe_ring_free(struct afe_ring *ring);

/* Queues io for submission. Returns 0, or -ESHUTDOWN once the ring
 * thread has ended. */
int afe_ring_submit(struct afe_ring *ring, struct afe_io *io);

/* Queues a cancel of io, which was submitted and is not finished. Returns
 * false once the ring thread has ended: it ended only after every
 * operation's completions came in, so io is completed and the caller
 * finishes it (afe__io_finish) in the thread's stead. */
bool afe_ring_cancel(struct afe_ring *ring, struct afe_io *io);

/* The runtime's sleeps (sleeps.h), which the ring thread advances. */
struct afe_sleeps *afe_ring_sleeps(struct afe_ring *ring);

/* The I/O gauges of afe_metrics (afe/runtime.h), for any thread: the
 * operations the ring thread took and has not finished (*in_flight), and
 * of those the ones it has not issued yet (*backlog). Requests it has not
 * taken count in neither. */
void afe_ring_io_load(const struct afe_ring *ring, uint64_t *in_flight, uint64_t *backlog);

/* The backend the ring runs on: AFE_BACKEND_URING or _EPOLL. */
int afe_ring_backend(const struct afe_ring *ring);

/* The facilities the ring uses (AFE_URING_*, afe/runtime.h). */
unsigned afe_ring_features(const struct afe_ring *ring);

/* Wakes the ring thread if it is asleep: a sleep became due earlier than
 * the time it sleeps until. */
void afe_ring_wake(struct afe_ring *ring);

#endif /* AFE_URING_RING_H */
