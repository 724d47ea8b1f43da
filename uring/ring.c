/* SPDX-License-Identifier: MIT */
/* The ring thread's common part (backend.h): requests, the doorbell, the
 * thread, start and stop. The backend does the rest. */
#define _GNU_SOURCE /* pthread_setname_np, strerrorname_np */
#include "ring.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "../pool/futex.h"
#include "../pool/worker.h"
#include "afe/runtime.h"
#include "backend.h"
#include "io_internal.h"

/* The request stack's head once the ring thread has ended. */
#define REQUESTS_CLOSED ((struct afe_io_request *)(uintptr_t)1)

/* ---- requests ---------------------------------------------------------- */

static void ring_doorbell(struct afe_ring *r)
{
	/* Seq_cst: either the ring thread sees our request before it sleeps,
	 * or we see it asleep (see the store before its final check, in
	 * each backend's loop). */
	if (!atomic_load(&r->sleeping) || !atomic_exchange(&r->sleeping, false))
		return;
	if (r->bell_fd >= 0) {
		eventfd_write(r->bell_fd, 1); /* cannot fail below 2^64 - 1 */
		return;
	}
	atomic_fetch_add(&r->doorbell, 1);
	afe_futex_wake(&r->doorbell, 1);
}

/* Pushes req; false once the ring thread has ended. */
static bool push_request(struct afe_ring *r, struct afe_io_request *req)
{
	/* Acquire: a push refused because the thread ended sees everything
	 * the thread did (see afe_ring_cancel). */
	struct afe_io_request *head = atomic_load_explicit(&r->requests, memory_order_acquire);
	do {
		if (head == REQUESTS_CLOSED)
			return false;
		req->next = head;
		/* Release: the operation's prepared SQE is visible to the ring
		 * thread's acquire exchange. */
	} while (!atomic_compare_exchange_weak_explicit(&r->requests, &head, req,
							 memory_order_seq_cst,
							 memory_order_acquire));
	ring_doorbell(r);
	return true;
}

int afe_ring_submit(struct afe_ring *r, struct afe_io *io)
{
	io->submit.io = io;
	return push_request(r, &io->submit) ? 0 : -ESHUTDOWN;
}

bool afe_ring_cancel(struct afe_ring *r, struct afe_io *io)
{
	io->cancel.io = io;
	return push_request(r, &io->cancel);
}

void afe__ring_take_requests(struct afe_ring *r)
{
	/* Acquire: pairs with push_request's exchange. */
	struct afe_io_request *stack = atomic_exchange_explicit(&r->requests, NULL,
								memory_order_acquire);
	struct afe_io_request *fifo = NULL;
	uint64_t operations = 0;
	while (stack) {
		struct afe_io_request *next = stack->next;
		operations += stack == &stack->io->submit;
		stack->next = fifo;
		fifo = stack;
		stack = next;
	}
	if (operations)
		afe__ring_count(&r->io_counts.taken, operations);
	*r->backlog_tail = fifo;
	while (*r->backlog_tail)
		r->backlog_tail = &(*r->backlog_tail)->next;
}

void afe__ring_finish_now(struct afe_ring *r, struct afe_io *io, int err)
{
	if (io->linked)
		io->linked->res = err;
	io->res = err;
	afe__ring_count(&r->io_counts.issued, 1);
	afe__ring_count(&r->io_counts.finished, 1);
	io->completed = true;
	afe__io_finish(io);
}

void afe__ring_refuse(struct afe_ring *r, struct afe_io_request *req)
{
	struct afe_io *io = req->io;
	if (req == &io->submit) {
		afe__ring_finish_now(r, io, -ESHUTDOWN);
		return;
	}
	io->cancel_taken = true;
	if (io->completed)
		afe__io_finish(io);
}

void afe__ring_report_error(const char *call, int err, const char *hint)
{
	const char *name = strerrorname_np(-err);
	fprintf(stderr, "afe: %s failed: %s (%s)%s%s\n", call, name ? name : "unknown errno",
		strerror(-err), hint ? "; " : "", hint ? hint : "");
}

/*
 * Fails every request still queued, and refuses new ones. The stack closes
 * only once it is empty: a poller whose cancel is refused finishes its
 * operation itself, so by then no request of that operation may still be
 * in our hands. Oldest first, so an operation's submit precedes its cancel.
 */
static void close_requests(struct afe_ring *r)
{
	for (;;) {
		afe__ring_take_requests(r);
		while (r->backlog) {
			struct afe_io_request *req = r->backlog;
			r->backlog = req->next;
			afe__ring_refuse(r, req);
		}
		r->backlog_tail = &r->backlog;
		struct afe_io_request *empty = NULL;
		if (atomic_compare_exchange_strong(&r->requests, &empty, REQUESTS_CLOSED))
			return;
	}
}

/* ---- start and stop ------------------------------------------------------ */

/*
 * Whether this process runs under valgrind, which does not model io_uring:
 * 3.19 runs io_uring_enter as a call that never blocks, so it keeps the
 * lock that lets one thread of the program run at a time while the ring
 * thread sleeps there, and every other thread (workers, signals) stops;
 * and memcheck cannot see what the kernel writes into buffers later, so
 * data read through the ring looks uninitialised. Valgrind loads its
 * preload objects (vgpreload_*.so) through LD_PRELOAD, and takes them out
 * again for the programs it does not trace.
 */
static bool under_valgrind(void)
{
	const char *preload = getenv("LD_PRELOAD");
	return preload && strstr(preload, "/vgpreload_");
}

/* The backend o asks for, or $AFE_BACKEND ("epoll", "io_uring") picks;
 * under valgrind, epoll (said like a fallback); NULL: io_uring, falling
 * back to epoll (setup_auto). */
static const struct afe_ring_backend *chosen_backend(const struct afe_ring_options *o)
{
	if (o->backend == AFE_BACKEND_EPOLL)
		return &afe__backend_epoll;
	if (o->backend == AFE_BACKEND_URING)
		return &afe__backend_uring;
	const char *env = getenv("AFE_BACKEND");
	if (env && strcmp(env, "epoll") == 0)
		return &afe__backend_epoll;
	if (env && strcmp(env, "io_uring") == 0)
		return &afe__backend_uring;
	if (env)
		fprintf(stderr, "afe: ignoring AFE_BACKEND=%s (want epoll or io_uring)\n", env);
	if (under_valgrind()) {
		if (!o->quiet_fallback)
			fprintf(stderr, "afe: io_uring not modelled by valgrind; using epoll\n");
		return &afe__backend_epoll;
	}
	return NULL;
}

/* Why io_uring could not be set up, for the fallback's notice. */
static const char *refusal(int err)
{
	switch (err) {
	case -EPERM:
		return "io_uring not permitted (seccomp? sysctl kernel.io_uring_disabled?)";
	case -ENOSYS:
		return "io_uring not in this kernel, or an opcode AFE needs missing";
	default:
		return "io_uring_setup out of memory (RLIMIT_MEMLOCK?)";
	}
}

/* The SQ size of the retry after -ENOMEM: the kernel may lack the memory
 * (or, before Linux 5.12, the locked-memory allowance) for the first. */
#define SMALL_RING_ENTRIES 64u

/*
 * io_uring, and epoll when io_uring is refused (-EPERM), absent (-ENOSYS)
 * or short of memory (-ENOMEM, again with a small ring): said in one line
 * on stderr unless o->quiet_fallback. Other errors fail the start.
 */
static int setup_auto(struct afe_ring *r)
{
	r->backend = &afe__backend_uring;
	int err = r->backend->setup(r, true);
	if (err == -ENOMEM && r->options.entries > SMALL_RING_ENTRIES) {
		r->options.entries = SMALL_RING_ENTRIES;
		r->options.cq_entries = 2 * SMALL_RING_ENTRIES;
		err = r->backend->setup(r, true);
	}
	if (err != -EPERM && err != -ENOSYS && err != -ENOMEM)
		return err;
	if (r->bell_fd >= 0) { /* the io_uring setup's, before it failed */
		close(r->bell_fd);
		r->bell_fd = -1;
	}
	r->features = 0;
	r->backend = &afe__backend_epoll;
	if (!r->options.quiet_fallback)
		fprintf(stderr, "afe: %s; using epoll\n", refusal(err));
	return r->backend->setup(r, false);
}

static void *ring_main(void *arg)
{
	struct afe_ring *r = arg;
	pthread_setname_np(pthread_self(), "afe-ring");
	r->start_error = r->backend ? r->backend->setup(r, false) : setup_auto(r);
	sem_post(&r->started);
	if (r->start_error)
		return NULL;
	afe_defer_wakes_begin(); /* a reap's wakes go to the workers together */
	r->backend->run(r);
	close_requests(r);
	afe_defer_wakes_flush();
	r->backend->teardown(r);
	return NULL; /* the eventfd stays open for late doorbells: see afe_ring_free */
}

/* Frees what afe_ring_start allocated. */
static void free_ring(struct afe_ring *r)
{
	/* Closed only now: afe_ring_stop and afe_ring_wake may ring it after
	 * the ring thread ended, and a closed fd number may be reused. */
	if (r->bell_fd >= 0)
		close(r->bell_fd);
	sem_destroy(&r->started);
	afe__sleeps_destroy(&r->sleeps);
	free(r);
}

int afe_ring_start(struct afe_ring **out, const struct afe_ring_options *o)
{
	/* Aligned: the I/O counts have a cache line of their own. */
	struct afe_ring *r = aligned_alloc(_Alignof(struct afe_ring), sizeof(*r));
	if (!r)
		return -ENOMEM;
	memset(r, 0, sizeof(*r));
	r->options = *o;
	r->backend = chosen_backend(o);
	r->backlog_tail = &r->backlog;
	r->bell_fd = -1;
	afe__sleeps_init(&r->sleeps);
	sem_init(&r->started, 0, 0);
	int err = -pthread_create(&r->thread, NULL, ring_main, r);
	if (err == 0) {
		while (sem_wait(&r->started) < 0)
			;
		err = r->start_error;
		if (err)
			pthread_join(r->thread, NULL);
	}
	if (err) {
		free_ring(r);
		return err;
	}
	*out = r;
	return 0;
}

void afe_ring_stop(struct afe_ring *r)
{
	atomic_store(&r->stopping, true);
	atomic_store(&r->sleeping, true); /* force the doorbell */
	ring_doorbell(r);
	pthread_join(r->thread, NULL);
}

void afe_ring_free(struct afe_ring *r)
{
	if (r)
		free_ring(r);
}

struct afe_sleeps *afe_ring_sleeps(struct afe_ring *r)
{
	return &r->sleeps;
}

/* larger - smaller, or 0 when that would go below 0: see afe_ring_io_load. */
static uint64_t difference(uint64_t larger, uint64_t smaller)
{
	return larger > smaller ? larger - smaller : 0;
}

void afe_ring_io_load(const struct afe_ring *r, uint64_t *in_flight, uint64_t *backlog)
{
	/* Relaxed: pairs with afe__ring_count's relaxed stores; nothing else
	 * is read through them. A gauge read while the counts move is off by
	 * what moved meanwhile, as any gauge. Each count only grows, and
	 * taken >= issued >= finished at every moment: read smallest first,
	 * a later load sees a count at least as large where loads and stores
	 * keep their order (x86); elsewhere the three may come from moments
	 * in any order, and the clamps keep the gauges in range. */
	uint64_t finished = atomic_load_explicit(&r->io_counts.finished, memory_order_relaxed);
	uint64_t issued = atomic_load_explicit(&r->io_counts.issued, memory_order_relaxed);
	uint64_t taken = atomic_load_explicit(&r->io_counts.taken, memory_order_relaxed);
	*in_flight = difference(taken, finished);
	*backlog = difference(taken, issued);
	if (*backlog > *in_flight)
		*backlog = *in_flight;
}

int afe_ring_backend(const struct afe_ring *r)
{
	return r->backend == &afe__backend_epoll ? AFE_BACKEND_EPOLL : AFE_BACKEND_URING;
}

unsigned afe_ring_features(const struct afe_ring *r)
{
	return r->features;
}

void afe_ring_wake(struct afe_ring *r)
{
	ring_doorbell(r);
}
