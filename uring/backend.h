/* SPDX-License-Identifier: MIT */
/*
 * Between the ring thread's common part (ring.c) and its backends, one
 * file each: io_uring (backend_uring.c) and epoll (backend_epoll.c).
 *
 * ring.c owns what every backend shares: the thread, the lock-free stack
 * of requests workers push, the doorbell that wakes the thread (a futex
 * word, or the eventfd bell_fd), the runtime's sleeps, and the refusal of
 * requests once the thread ended. A backend sets itself up on the ring
 * thread, then runs its loop there: it takes the pushed requests
 * (afe__ring_take_requests), issues them, finishes each operation through
 * afe__io_finish, counting what it issues and finishes (struct
 * afe_ring_io_counts), advances the sleeps, and sleeps itself with the
 * sleeping flag set (see ring_doorbell in ring.c for the handshake) until
 * stopping is set and nothing it issued is in flight.
 */
#ifndef AFE_URING_BACKEND_H
#define AFE_URING_BACKEND_H

#include <pthread.h>
#include <semaphore.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "../pool/run_queue.h" /* AFE_CACHE_LINE */
#include "afe/io.h"
#include "ring.h"
#include "sleeps.h"

struct afe_ring_backend {
	const char *name;
	/* Ring thread: prepares the backend (r->impl, r->features, perhaps
	 * r->bell_fd, which ring.c closes). Returns 0, or a negative errno
	 * with the failed call said on stderr unless quiet, everything it
	 * made undone but bell_fd. */
	int (*setup)(struct afe_ring *r, bool quiet);
	/* Ring thread: the loop, until stopping and nothing in flight. */
	void (*run)(struct afe_ring *r);
	/* Ring thread, after the request stack closed: frees r->impl. */
	void (*teardown)(struct afe_ring *r);
};

extern const struct afe_ring_backend afe__backend_uring, afe__backend_epoll;

/*
 * The operations (struct afe_io; a linked pair is one, a cancel request
 * none) the ring thread took from the request stack, issued, and
 * finished, since it started: the gauges of afe_ring_io_load are their
 * differences. One taken and answered without being issued (refused
 * while stopping, unsupported) counts as issued and finished at once.
 * Only the ring thread writes them, with afe__ring_count, and they have
 * a cache line of their own: counting costs it a load and a store to a
 * line workers never touch.
 */
struct afe_ring_io_counts {
	_Atomic uint64_t taken, issued, finished;
};

/* Ring thread: adds n to c. Relaxed: no ordering to give, only the count
 * (afe_ring_io_load says what a reader makes of that); a load and a
 * store, as no other thread writes c. */
static inline void afe__ring_count(_Atomic uint64_t *c, uint64_t n)
{
	atomic_store_explicit(c, atomic_load_explicit(c, memory_order_relaxed) + n,
			      memory_order_relaxed);
}

struct afe_ring {
	_Atomic(struct afe_io_request *) requests; /* pushed by any thread */
	_Atomic uint32_t doorbell;		   /* futex word, when bell_fd < 0 */
	int bell_fd;				   /* the doorbell's eventfd, or -1 */
	_Atomic bool sleeping;			   /* the ring thread may be asleep */
	_Atomic bool stopping;
	pthread_t thread;
	sem_t started;
	int start_error;
	struct afe_ring_options options;
	const struct afe_ring_backend *backend;
	unsigned features; /* AFE_URING_*, set before the ring thread runs */
	struct afe_sleeps sleeps;

	/* Ring thread only. */
	void *impl;					 /* the backend's state */
	struct afe_io_request *backlog, **backlog_tail; /* taken, not issued */

	_Alignas(AFE_CACHE_LINE) struct afe_ring_io_counts io_counts; /* written by the ring thread */
};

/* Ring thread: moves the pushed requests, oldest first, to the end of
 * the backlog. */
void afe__ring_take_requests(struct afe_ring *r);

/* Ring thread: finishes io, taken and not issued, at once with err, and
 * the operation linked to it; it counts as issued and finished. */
void afe__ring_finish_now(struct afe_ring *r, struct afe_io *io, int err);

/* Ring thread, stopping: answers req without issuing it. A submit
 * finishes with -ESHUTDOWN; a cancel is taken, and finishes its
 * operation if that completed meanwhile (else the stop cancels it). */
void afe__ring_refuse(struct afe_ring *r, struct afe_io_request *req);

/* "afe: CALL failed: EPERM (Operation not permitted); HINT" on stderr. */
void afe__ring_report_error(const char *call, int err, const char *hint);

#endif /* AFE_URING_BACKEND_H */
