/* SPDX-License-Identifier: MIT */
/* The io_uring backend of the ring thread: see ring.h and backend.h.
 * Every operation's CQEs are counted, and the operation goes back to its
 * poller (afe__io_finish) once the last one arrived and any cancel
 * request the poller sent was taken. */
#define _GNU_SOURCE
#include <errno.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "../pool/worker.h"
#include "afe/io.h"
#include "afe/runtime.h"
#include "afe/sleep.h"
#include "backend.h"
#include "compat.h"
#include "features.h"
#include "io_internal.h"
#include "sleeps.h"

/* The low bits of user_data tell which of an operation's CQEs this is. */
enum cqe_tag {
	TAG_OP = 0,
	TAG_LINK_TIMEOUT = 1,
	TAG_CANCEL = 2,
	TAG_DOORBELL = 3, /* user_data == TAG_DOORBELL: the doorbell's wait */
	TAG_SECOND = 4,	  /* the second operation of a linked pair */
	TAG_MASK = 7,	  /* struct afe_io is 8-byte aligned */
};

/* io->waitall: see "MSG_WAITALL before Linux 5.18" below. */
enum waitall_stage {
	WAITALL_NONE,	/* not emulated */
	WAITALL_MOVING, /* parts go on while short */
	WAITALL_ENDED,	/* ended before moving everything */
	WAITALL_THEN,	/* moved everything; the linked operation is in flight */
};

_Static_assert(_Alignof(struct afe_io) >= 8, "three tag bits in an operation's address");

/* How often the stop cancels everything again (see cancel_everything). */
#define CANCEL_AGAIN_NS 100000000L

/* A completion queue deep enough that bursts rarely overflow (the kernel
 * keeps overflowed CQEs, but slowly). */
#define MIN_CQ_ENTRIES 16384u

/* The backend's state (ring->impl); ring thread only. */
struct afe_uring {
	struct afe_ring *ring;
	struct io_uring uring;
	uint64_t cqes_due; /* all operations' */
	bool doorbell_armed, cancel_all_sent;
	uint64_t cancel_all_at; /* when the stop's cancel of everything went */
	uint64_t bell_count; /* where the doorbell's eventfd read lands */
	/* Without AFE_URING_CANCEL_ANY: operations in flight, those the stop
	 * has not cancelled yet and those it has. */
	struct afe_io *in_flight, *stop_cancelled;
	int enter_error;	 /* of the last io_uring_enter, if it failed */
	unsigned enter_failures; /* in a row */
	bool cqes_dropped;	 /* -EBADR was said: once for the ring's life */
	uint16_t next_group;	 /* the provided-buffer group id to try next */
};

/* ---- operations in flight (without AFE_URING_CANCEL_ANY) ---------------- */

static void list_add(struct afe_io **head, struct afe_io *io)
{
	io->ring_next = *head;
	if (*head)
		(*head)->ring_pprev = &io->ring_next;
	io->ring_pprev = head;
	*head = io;
}

/* Unlinks io from whichever list holds it. */
static void list_remove(struct afe_io *io)
{
	*io->ring_pprev = io->ring_next;
	if (io->ring_next)
		io->ring_next->ring_pprev = io->ring_pprev;
	io->ring_next = NULL;
	io->ring_pprev = NULL;
}

static bool tracks_in_flight(const struct afe_uring *r)
{
	return !(r->ring->features & AFE_URING_CANCEL_ANY);
}

/* ---- completions --------------------------------------------------------- */

static void *tagged(const void *p, enum cqe_tag tag)
{
	return (void *)((uintptr_t)p | (uintptr_t)tag);
}

static int32_t waitall_part(struct afe_io *io, int32_t res);
static bool waitall_goes_on(struct afe_uring *r, struct afe_io *io);

static void handle_cqe(struct afe_uring *r, const struct io_uring_cqe *cqe)
{
	enum cqe_tag tag = (enum cqe_tag)(cqe->user_data & TAG_MASK);
	struct afe_io *io = (struct afe_io *)(uintptr_t)(cqe->user_data & ~(uint64_t)TAG_MASK);
	if (tag == TAG_DOORBELL) {
		r->doorbell_armed = false;
		return;
	}
	if (tag == TAG_OP && (cqe->flags & IORING_CQE_F_MORE) && io->on_more) {
		io->on_more(io, cqe->res, cqe->flags); /* a multishot result; more to come */
		return;
	}
	r->cqes_due--;
	if (!io)
		return; /* the stop's cancel-everything */
	if (cqe->flags & IORING_CQE_F_NOTIF) {
		/* A zero-copy send's last CQE: the kernel let go of its
		 * buffer. Its res is 0; the result came before. */
	} else if (tag == TAG_OP) {
		io->res = io->waitall == WAITALL_MOVING ? waitall_part(io, cqe->res) : cqe->res;
		io->cqe_flags = cqe->flags;
	} else if (tag == TAG_SECOND) {
		io->linked->res = cqe->res;
	} else if (tag == TAG_LINK_TIMEOUT) {
		io->timeout_res = cqe->res;
	}
	if ((cqe->flags & IORING_CQE_F_MORE) && (tag == TAG_OP || tag == TAG_SECOND)) {
		/* A zero-copy send's result (on_more is for multishot ones):
		 * its notification follows, even after an error or cancel. */
		io->cqes_due++;
		r->cqes_due++;
	}
	if (--io->cqes_due == 0) {
		if (io->waitall && waitall_goes_on(r, io))
			return;
		if (tracks_in_flight(r))
			list_remove(io);
		afe__ring_count(&r->ring->io_counts.finished, 1);
		io->completed = true;
		afe__io_finish(io); /* or, when its cancel request arrives */
	}
}

/* Handles the CQEs in the completion queue; returns how many. */
static unsigned reap_queue(struct afe_uring *r)
{
	struct io_uring_cqe *cqe;
	unsigned head, seen = 0;
	io_uring_for_each_cqe(&r->uring, head, cqe)
	{
		handle_cqe(r, cqe);
		seen++;
	}
	io_uring_cq_advance(&r->uring, seen);
	return seen;
}

/*
 * Reaps the completion queue, then the kernel's overflow list: with more
 * completions pending than the queue holds, the kernel keeps the rest in
 * a FIFO list and moves a queue's worth in per enter, so reaping one
 * queue per round left a new completion behind every older one, a few a
 * round (issue 23). Bounded by the CQEs the operations in flight owe and
 * a queue's worth of multishot ones (the kernel ends a multishot
 * operation rather than overflow it).
 */
static void reap(struct afe_uring *r)
{
	uint64_t budget = r->cqes_due + r->uring.cq.ring_entries;
	uint64_t seen = reap_queue(r);
	while (io_uring_cq_has_overflow(&r->uring) && seen < budget) {
		if (io_uring_get_events(&r->uring) < 0)
			return; /* -EINTR and the like: the next round goes on */
		unsigned n = reap_queue(r);
		if (n == 0)
			return;
		seen += n;
	}
}

/* ---- submissions --------------------------------------------------------- */

static struct io_uring_sqe *next_sqe(struct afe_uring *r)
{
	struct io_uring_sqe *sqe = io_uring_get_sqe(&r->uring);
	if (!sqe)
		abort(); /* the caller checked the room */
	return sqe;
}

/* An operation the kernel's io_uring (or the mask) lacks: the futex ones
 * without AFE_URING_FUTEX. */
static bool unsupported(const struct afe_uring *r, const unsigned char *sqe)
{
	unsigned opcode = ((const struct io_uring_sqe *)(const void *)sqe)->opcode;
	return !(r->ring->features & AFE_URING_FUTEX) &&
	       (opcode == AFE_IORING_OP_FUTEX_WAIT || opcode == AFE_IORING_OP_FUTEX_WAKE ||
		opcode == AFE_IORING_OP_FUTEX_WAITV);
}

/* Queues the cancels of io, each matched by user_data: cancels is 2 for a
 * linked pair, else 1. The caller checked the room. */
static void queue_cancels(struct afe_uring *r, struct afe_io *io, unsigned cancels)
{
	static const enum cqe_tag targets[] = {TAG_OP, TAG_SECOND};
	for (unsigned i = 0; i < cancels; i++) {
		struct io_uring_sqe *sqe = next_sqe(r);
		io_uring_prep_cancel(sqe, tagged(io, targets[i]), 0);
		io_uring_sqe_set_data(sqe, tagged(io, TAG_CANCEL));
	}
	io->cqes_due = (uint8_t)(io->cqes_due + cancels);
	r->cqes_due += cancels;
}

/* ---- MSG_WAITALL before Linux 5.18 (without AFE_URING_WAITALL) -----------
 *
 * Those kernels complete a MSG_WAITALL send or recv short when their first
 * try, made without waiting, moved part of it. So the ring thread submits
 * it without the flag and, after each short part, the rest (the SQE in io
 * advanced past what moved), keeping the count moved so far in io->res,
 * until all moved, as 5.18 does in the kernel: the end of the stream, an
 * error, a cancel or the timeout (whose deadline counts from the first
 * submission) ends it with what moved, or with the error when nothing did;
 * so does a submission queue that stays full (io_uring_enter refusing).
 * Only on stream sockets (SOCK_STREAM, SOCK_SEQPACKET, as the kernel). An
 * operation linked to it (afe_io_link) is submitted only once it moved
 * everything, else it ends -ECANCELED: the kernel's link would go on after
 * a short part without the flag. Not for SENDMSG/RECVMSG, nor for the
 * second of a linked pair: those keep the flag and the old kernel's short
 * results. */

static struct io_uring_sqe *sqe_of(struct afe_io *io)
{
	return (struct io_uring_sqe *)(void *)io->sqe;
}

static bool emulates_waitall(const struct afe_uring *r, struct afe_io *io)
{
	const struct io_uring_sqe *sqe = sqe_of(io);
	return !(r->ring->features & AFE_URING_WAITALL) && (sqe->msg_flags & MSG_WAITALL) &&
	       (sqe->opcode == IORING_OP_SEND || sqe->opcode == IORING_OP_RECV) && sqe->len > 0;
}

static bool is_stream(int fd)
{
	int type = 0;
	socklen_t len = sizeof(type);
	return getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &len) == 0 &&
	       (type == SOCK_STREAM || type == SOCK_SEQPACKET);
}

/* Adds one part's result to what io moved so far, which it returns, and
 * advances io's SQE past it. */
static int32_t waitall_part(struct afe_io *io, int32_t res)
{
	struct io_uring_sqe *sqe = sqe_of(io);
	if (res <= 0) {
		io->waitall = WAITALL_ENDED;
		return io->res > 0 ? io->res : res;
	}
	sqe->addr += (uint64_t)res;
	sqe->len -= (uint32_t)res;
	if (sqe->len > 0 && !is_stream(sqe->fd))
		io->waitall = WAITALL_ENDED; /* a datagram: as long as it is */
	return io->res + res;
}

/* Room for need SQEs, submitting the queued ones if it takes that. */
static bool room_for(struct afe_uring *r, unsigned need)
{
	if (io_uring_sq_space_left(&r->uring) < need)
		io_uring_submit(&r->uring);
	return io_uring_sq_space_left(&r->uring) >= need;
}

/* The SQEs queue_op takes for io. */
static unsigned need_of(const struct afe_io *io)
{
	return 1u + io->has_timeout + (io->linked && !io->waitall);
}

/* Queues the SQE of the operation linked to io, its CQE tagged as the
 * pair's second. */
static void queue_second(struct afe_uring *r, struct afe_io *io)
{
	struct io_uring_sqe *second = next_sqe(r);
	memcpy(second, io->linked->sqe, sizeof(*second));
	io_uring_sqe_set_data(second, tagged(io, TAG_SECOND));
}

/* Queues io's SQE (without MSG_WAITALL when emulated), the operation
 * linked to it unless that waits for the emulation, and its timeout. The
 * caller made the room (need_of). */
static void queue_op(struct afe_uring *r, struct afe_io *io)
{
	struct io_uring_sqe *sqe = next_sqe(r);
	memcpy(sqe, io->sqe, sizeof(*sqe));
	io_uring_sqe_set_data(sqe, tagged(io, TAG_OP));
	if (io->waitall)
		sqe->msg_flags &= ~(unsigned)MSG_WAITALL;
	if (io->linked && !io->waitall) { /* afe_io_link refuses timeouts on a pair */
		sqe->flags |= IOSQE_IO_LINK;
		queue_second(r, io);
	}
	if (io->has_timeout) {
		sqe->flags |= IOSQE_IO_LINK;
		struct io_uring_sqe *link = next_sqe(r);
		io_uring_prep_link_timeout(link, (struct __kernel_timespec *)&io->timeout,
					   io->waitall ? IORING_TIMEOUT_ABS : 0);
		io_uring_sqe_set_data(link, tagged(io, TAG_LINK_TIMEOUT));
	}
	unsigned need = need_of(io);
	io->cqes_due = (uint8_t)need;
	r->cqes_due += need;
}

/* Every CQE of io's emulated part arrived: submits the rest, or the
 * operation linked to it, and returns true; false when io is finished. */
static bool waitall_goes_on(struct afe_uring *r, struct afe_io *io)
{
	if (io->waitall == WAITALL_THEN)
		return false;
	bool go = io->waitall == WAITALL_MOVING && !io->cancel_taken &&
		  io->timeout_res != -ETIME &&
		  !atomic_load_explicit(&r->ring->stopping, memory_order_relaxed);
	if (go && sqe_of(io)->len > 0 && room_for(r, need_of(io))) {
		queue_op(r, io);
		return true;
	}
	if (go && sqe_of(io)->len == 0 && io->linked && room_for(r, 1)) {
		queue_second(r, io);
		io->cqes_due = 1;
		r->cqes_due++;
		io->waitall = WAITALL_THEN;
		return true;
	}
	if (io->linked) /* it ended short, or was cancelled: the link broke */
		io->linked->res = -ECANCELED;
	return false;
}

/* Carries out a request that is no kernel operation (compat.h): a
 * provided-buffer ring registered under the first free group id from
 * next_group (ids wrap; a stream's is freed when it stops), or
 * unregistered. The result or -errno. */
static int32_t buffer_ring_request(struct afe_uring *r, const struct io_uring_sqe *sqe)
{
	if (sqe->opcode == AFE_OP_BUF_RING_UNREGISTER)
		return io_uring_unregister_buf_ring(&r->uring, sqe->buf_index);
	struct io_uring_buf_reg reg = {.ring_addr = sqe->addr, .ring_entries = sqe->len};
	int err = -EEXIST;
	for (unsigned tries = 0; tries < 64 && err == -EEXIST; tries++) {
		reg.bgid = r->next_group++;
		err = io_uring_register_buf_ring(&r->uring, &reg, 0);
	}
	return err < 0 ? err : reg.bgid;
}

static bool is_ring_request(const struct afe_io *io)
{
	unsigned opcode = ((const struct io_uring_sqe *)(const void *)io->sqe)->opcode;
	return opcode == AFE_OP_BUF_RING_REGISTER || opcode == AFE_OP_BUF_RING_UNREGISTER;
}

/* Turns one request into SQEs, or finishes it at once. Returns false when
 * the submission queue has no room for it. */
static bool issue(struct afe_uring *r, struct afe_io_request *req)
{
	struct afe_io *io = req->io;
	if (req == &io->cancel) {
		/* Taken only once it cannot be refused for room: a completion
		 * that arrives meanwhile must leave io to this request. */
		bool send = !io->completed &&
			    !atomic_load_explicit(&r->ring->stopping, memory_order_relaxed);
		unsigned cancels = io->linked ? 2 : 1; /* a pair: each by its user_data */
		if (send && io_uring_sq_space_left(&r->uring) < cancels)
			return false;
		io->cancel_taken = true;
		if (io->completed) {
			afe__io_finish(io);
		} else if (send) {
			queue_cancels(r, io, cancels);
		}
		return true;
	}
	if (atomic_load_explicit(&r->ring->stopping, memory_order_relaxed)) {
		afe__ring_refuse(r->ring, req);
		return true;
	}
	if (unsupported(r, io->sqe) || (io->linked && unsupported(r, io->linked->sqe))) {
		afe__ring_finish_now(r->ring, io, -EOPNOTSUPP);
		return true;
	}
	if (is_ring_request(io)) {
		afe__ring_finish_now(r->ring, io, buffer_ring_request(r, sqe_of(io)));
		return true;
	}
	io->waitall = emulates_waitall(r, io) ? WAITALL_MOVING : WAITALL_NONE;
	if (io_uring_sq_space_left(&r->uring) < need_of(io))
		return false;
	if (io->waitall && io->has_timeout) { /* the deadline, for every part */
		uint64_t at = afe_now_ns() + (uint64_t)io->timeout.tv_sec * 1000000000u +
			      (uint64_t)io->timeout.tv_nsec;
		io->timeout.tv_sec = (int64_t)(at / 1000000000u);
		io->timeout.tv_nsec = (long long)(at % 1000000000u);
	}
	queue_op(r, io);
	afe__ring_count(&r->ring->io_counts.issued, 1);
	if (tracks_in_flight(r))
		list_add(&r->in_flight, io);
	return true;
}

/* Issues backlog requests while the submission queue has room. */
static void issue_backlog(struct afe_uring *r)
{
	while (r->ring->backlog) {
		struct afe_io_request *req = r->ring->backlog;
		struct afe_io_request *next = req->next;
		if (!issue(r, req)) {
			/* Full: submit what we have, reap what that completed
			 * (a full completion queue would end multishot
			 * operations, such as the accept stream, and overflow),
			 * and try once more. */
			if (io_uring_submit(&r->uring) <= 0)
				return;
			reap(r);
			if (!issue(r, req))
				return;
		}
		r->ring->backlog = next;
		if (!next)
			r->ring->backlog_tail = &r->ring->backlog;
	}
}

/* Makes sure a wait on the doorbell is armed (a FUTEX_WAIT, or a read of
 * its eventfd), so a request pushed while we sleep wakes us. Returns false
 * when it could not be queued (the submission queue full even after
 * submitting): then we must not sleep. */
static bool arm_doorbell(struct afe_uring *r)
{
	if (r->doorbell_armed)
		return true;
	if (io_uring_sq_space_left(&r->uring) < 1 && io_uring_submit(&r->uring) < 0)
		return false;
	if (io_uring_sq_space_left(&r->uring) < 1)
		return false;
	struct io_uring_sqe *sqe = next_sqe(r);
	if (r->ring->bell_fd >= 0)
		io_uring_prep_read(sqe, r->ring->bell_fd, &r->bell_count, sizeof(r->bell_count),
				   (uint64_t)-1);
	else
		afe_prep_futex_wait(sqe, (const uint32_t *)&r->ring->doorbell,
				    atomic_load(&r->ring->doorbell), AFE_FUTEX2_PRIVATE);
	io_uring_sqe_set_data(sqe, tagged(NULL, TAG_DOORBELL));
	r->doorbell_armed = true;
	return true;
}

/* The longest pause between retries of a refused io_uring_enter. */
#define ENTER_RETRY_MAX_NS 100000000L

/*
 * io_uring_enter failed with something other than a signal or a full
 * queue: -ENOMEM, a seccomp filter installed after start-up... Said on
 * stderr once per errno in a row (-EBADR once); the loop retries after a
 * pause doubling from 1 ms to 100 ms, so a lasting refusal costs no CPU
 * and a passing one heals. SQEs not yet taken stay in the queue.
 * -EBADR: the kernel dropped CQEs it had no memory to keep (the
 * operations they belonged to never finish), and from then on fails every
 * wait at once, after running the completions' task work; enters that do
 * not wait still work. So the ring thread polls: it reaps and retries
 * every 1 ms.
 */
static void enter_failed(struct afe_uring *r, int err)
{
	bool said = err == -EBADR ? r->cqes_dropped : err == r->enter_error;
	if (!said)
		afe__ring_report_error("io_uring_enter", err,
			     err == -EBADR ? "the kernel dropped completions; operations "
					     "waiting for them will not finish; polling every 1 ms"
					   : "retrying");
	r->enter_error = err;
	r->cqes_dropped |= err == -EBADR;
	unsigned shift = err == -EBADR ? 0 : r->enter_failures < 7 ? r->enter_failures : 7;
	long ns = 1000000L << shift;
	struct timespec pause = {.tv_sec = 0,
				 .tv_nsec = ns < ENTER_RETRY_MAX_NS ? ns : ENTER_RETRY_MAX_NS};
	nanosleep(&pause, NULL);
	r->enter_failures++;
}

/* Submits and, when wait is true, sleeps until a CQE arrives. Transient
 * errors are retried by the loop; -EBUSY (completions pending in the
 * overflow list) is resolved by the reap that follows; any other error
 * is retried after a pause (enter_failed). */
static void enter(struct afe_uring *r, bool wait)
{
	struct __kernel_timespec ts;
	struct io_uring_cqe *cqe;
	int err;
	afe_defer_wakes_flush(); /* the tasks woken since the last enter */
	if (!wait) {
		err = io_uring_submit_and_get_events(&r->uring);
	} else if (r->cancel_all_sent && !tracks_in_flight(r)) {
		/* Stopping: look again after a while (see cancel_everything). */
		ts = (struct __kernel_timespec){.tv_sec = 0, .tv_nsec = CANCEL_AGAIN_NS};
		err = io_uring_submit_and_wait_timeout(&r->uring, &cqe, 1, &ts, NULL);
	} else if (afe__sleeps_plan_wait(&r->ring->sleeps, &ts))
		err = io_uring_submit_and_wait_timeout(&r->uring, &cqe, 1, &ts, NULL);
	else
		err = io_uring_submit_and_wait(&r->uring, 1);
	if (err < 0 && err != -EINTR && err != -EAGAIN && err != -EBUSY && err != -ETIME) {
		/* A refused wait may have left SQEs unsent: send them and take
		 * what completed without waiting, which may still work. */
		if (wait)
			io_uring_submit_and_get_events(&r->uring);
		enter_failed(r, err);
		return;
	}
	r->enter_error = 0;
	r->enter_failures = 0;
}

/* Before 5.19: a cancel for each operation in flight, as far as the
 * submission queue has room; the loop comes back for the rest. */
static void cancel_each(struct afe_uring *r)
{
	while (r->in_flight) {
		struct afe_io *io = r->in_flight;
		unsigned cancels = io->linked ? 2 : 1;
		if (io_uring_sq_space_left(&r->uring) < cancels)
			return;
		queue_cancels(r, io, cancels);
		list_remove(io);
		list_add(&r->stop_cancelled, io);
	}
	r->cancel_all_sent = true;
}

/*
 * The stop: cancels every operation in flight. With one cancel matching
 * everything (5.19), sent again every CANCEL_AGAIN_NS while completions
 * are still due: an operation the kernel was re-arming (a poll that fired
 * and found nothing, say) when the cancel went by may have been missed by
 * it, and the stop would wait for it for ever.
 */
static void cancel_everything(struct afe_uring *r)
{
	afe__sleeps_close(&r->ring->sleeps);
	if (r->cancel_all_sent && !tracks_in_flight(r) &&
	    afe_now_ns() - r->cancel_all_at >= CANCEL_AGAIN_NS)
		r->cancel_all_sent = false;
	if (r->cancel_all_sent)
		return;
	if (tracks_in_flight(r)) {
		cancel_each(r);
		return;
	}
	if (io_uring_sq_space_left(&r->uring) < 1)
		return;
	struct io_uring_sqe *sqe = next_sqe(r);
	io_uring_prep_cancel(sqe, NULL, IORING_ASYNC_CANCEL_ANY);
	io_uring_sqe_set_data(sqe, tagged(NULL, TAG_CANCEL));
	r->cqes_due++;
	r->cancel_all_sent = true;
	r->cancel_all_at = afe_now_ns();
}

static void run(struct afe_uring *r)
{
	for (;;) {
		afe__ring_take_requests(r->ring);
		issue_backlog(r);
		reap(r);
		afe__sleeps_expire(&r->ring->sleeps);
		if (afe_defer_wakes_deliver())
			continue; /* polled here: take what they submitted */
		bool stopping = atomic_load_explicit(&r->ring->stopping, memory_order_acquire);
		if (stopping) {
			cancel_everything(r);
			if (r->cqes_due == 0 && !r->ring->backlog)
				return;
			if (!r->cancel_all_sent) { /* no SQ room: submit, retry */
				enter(r, false);
				continue;
			}
		}
		if (r->ring->backlog || atomic_load(&r->ring->requests)) {
			enter(r, false);
			continue;
		}
		if (!stopping && !arm_doorbell(r)) {
			enter(r, false);
			continue;
		}
		/* Seq_cst store, then the final check: pairs with ring_doorbell.
		 * A stop that came since we read stopping rang the doorbell,
		 * perhaps before arm_doorbell read it: the wait armed then
		 * would never end, so look at stopping again. */
		atomic_store(&r->ring->sleeping, true);
		if (atomic_load(&r->ring->requests) || (!stopping && atomic_load(&r->ring->stopping)) ||
		    (stopping && r->cqes_due == 0)) {
			atomic_store(&r->ring->sleeping, false);
			enter(r, false);
			continue;
		}
		enter(r, true);
		atomic_store(&r->ring->sleeping, false);
		afe__sleeps_awake(&r->ring->sleeps);
	}
}

/* ---- start and stop ------------------------------------------------------ */

static const struct {
	int opcode;
	const char *name;
} required_ops[] = {
	{IORING_OP_NOP, "NOP"},
	{IORING_OP_READ, "READ"},
	{IORING_OP_WRITE, "WRITE"},
	{IORING_OP_READV, "READV"},
	{IORING_OP_WRITEV, "WRITEV"},
	{IORING_OP_RECV, "RECV"},
	{IORING_OP_SEND, "SEND"},
	{IORING_OP_ACCEPT, "ACCEPT"},
	{IORING_OP_CONNECT, "CONNECT"},
	{IORING_OP_CLOSE, "CLOSE"},
	{IORING_OP_OPENAT, "OPENAT"},
	{IORING_OP_FSYNC, "FSYNC"},
	{IORING_OP_POLL_ADD, "POLL_ADD"},
	{IORING_OP_LINK_TIMEOUT, "LINK_TIMEOUT"},
	{IORING_OP_ASYNC_CANCEL, "ASYNC_CANCEL"},
};

/* Checks the kernel supports every opcode AFE needs, and adds the
 * optional ones it has to r->ring->features, unless newer than cap (a version,
 * features.h). */
static int probe(struct afe_uring *r, unsigned cap)
{
	/* Room for every opcode a probe can report (its op count is a u8). */
	size_t size = sizeof(struct io_uring_probe) + 256 * sizeof(struct io_uring_probe_op);
	struct io_uring_probe *p = calloc(1, size);
	if (!p) {
		afe__ring_report_error("allocating the io_uring probe", -ENOMEM, NULL);
		return -ENOMEM;
	}
	int err = io_uring_register_probe(&r->uring, p, 256);
	if (err < 0) {
		afe__ring_report_error("io_uring_register(IORING_REGISTER_PROBE)", err,
			     err == -EINVAL ? "a kernel older than 5.6 has no probe" : NULL);
		free(p);
		return err;
	}
	for (size_t i = 0; i < sizeof(required_ops) / sizeof(required_ops[0]); i++) {
		if (!io_uring_opcode_supported(p, required_ops[i].opcode)) {
			fprintf(stderr, "afe: this kernel's io_uring lacks %s\n",
				required_ops[i].name);
			err = -ENOSYS;
		}
	}
	if (cap >= AFE_LINUX(6, 7) && io_uring_opcode_supported(p, AFE_IORING_OP_FUTEX_WAIT) &&
	    io_uring_opcode_supported(p, AFE_IORING_OP_FUTEX_WAKE))
		r->ring->features |= AFE_URING_FUTEX;
	/* From 6.1: 6.0 has the opcode but refuses it on accepted TCP
	 * sockets (-EOPNOTSUPP), which no probe shows. */
	if (cap >= AFE_LINUX(6, 1) && afe__kernel_version() >= AFE_LINUX(6, 1) &&
	    io_uring_opcode_supported(p, IORING_OP_SEND_ZC))
		r->ring->features |= AFE_URING_SEND_ZC;
	/* A flag of RECV, which no probe shows; the provided-buffer rings it
	 * takes came in 5.19. */
	if (cap >= AFE_LINUX(6, 0) && afe__kernel_version() >= AFE_LINUX(6, 0))
		r->ring->features |= AFE_URING_RECV_MULTISHOT;
	if (cap >= AFE_LINUX(6, 9) && io_uring_opcode_supported(p, AFE_IORING_OP_FTRUNCATE))
		r->ring->features |= AFE_URING_FTRUNCATE;
	free(p);
	return err;
}

/* Without ring futex waits, the doorbell is an eventfd the ring thread
 * reads through its ring. Returns 0 or -errno. */
static int open_bell(struct afe_uring *r)
{
	if (r->ring->features & AFE_URING_FUTEX)
		return 0;
	r->ring->bell_fd = eventfd(0, EFD_CLOEXEC);
	if (r->ring->bell_fd < 0) {
		int err = -errno;
		afe__ring_report_error("eventfd", err, NULL);
		return err;
	}
	return 0;
}

/* Submits a NOP and waits for it, so that a kernel or filter refusing
 * io_uring_enter fails start-up rather than the ring thread later. */
static int check_enter(struct afe_uring *r)
{
	struct io_uring_sqe *sqe = next_sqe(r); /* the queue is empty */
	io_uring_prep_nop(sqe);
	io_uring_sqe_set_data(sqe, NULL);
	int err;
	do
		err = io_uring_submit_and_wait(&r->uring, 1);
	while (err == -EINTR);
	if (err < 0) {
		afe__ring_report_error("io_uring_enter", err, NULL);
		return err;
	}
	struct io_uring_cqe *cqe;
	if (io_uring_peek_cqe(&r->uring, &cqe) == 0)
		io_uring_cqe_seen(&r->uring, cqe);
	return 0;
}

/* Why io_uring_setup may have failed, beyond its errno. */
static const char *setup_hint(int err)
{
	switch (err) {
	case -EPERM:
		return "io_uring disabled (sysctl kernel.io_uring_disabled) or refused by a "
		       "seccomp filter";
	case -ENOSYS:
		return "io_uring is not in this kernel, or a filter hides it";
	case -EINVAL:
		return "refused even without setup flags: a filter, or ring sizes this kernel "
		       "refuses";
	default:
		return NULL;
	}
}

/* The ring's setup flags, newest first: each is tried when the mask
 * allows it and the one before was refused with -EINVAL (a flag this
 * kernel lacks). This thread is the only submitter with any of them; they
 * let the kernel run completions' task work when we enter, rather than
 * interrupt us for it (COOP_TASKRUN), and batch it (DEFER_TASKRUN). */
static const struct {
	unsigned flags, since, feature;
} setups[] = {
	{IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN, AFE_LINUX(6, 1),
	 AFE_URING_DEFER_TASKRUN},
	{IORING_SETUP_COOP_TASKRUN, AFE_LINUX(5, 19), AFE_URING_COOP_TASKRUN},
	{0, 0, 0},
};

/* Creates the ring with the newest flags the kernel takes (setups). */
static int create_ring(struct afe_uring *r, unsigned cap, bool quiet)
{
	int err = -EINVAL;
	for (size_t i = 0; i < sizeof(setups) / sizeof(setups[0]) && err == -EINVAL; i++) {
		if (setups[i].since > cap)
			continue;
		struct io_uring_params params;
		memset(&params, 0, sizeof(params));
		params.flags = setups[i].flags | IORING_SETUP_CQSIZE;
		unsigned entries = r->ring->options.entries;
		unsigned cq_entries = r->ring->options.cq_entries;
		params.cq_entries = cq_entries		       ? cq_entries
				    : entries * 2 > MIN_CQ_ENTRIES ? entries * 2
								   : MIN_CQ_ENTRIES;
		err = io_uring_queue_init_params(entries, &r->uring, &params);
		if (err == 0)
			r->ring->features |= setups[i].feature;
	}
	if (err < 0 && !quiet)
		afe__ring_report_error("io_uring_setup", err, setup_hint(err));
	return err;
}

/* The ring, its facilities, its doorbell, and a NOP through it; quiet:
 * a refused io_uring_setup is not said (the caller falls back). */
static int setup(struct afe_ring *ring, bool quiet)
{
	struct afe_uring *r = calloc(1, sizeof(*r));
	if (!r)
		return -ENOMEM;
	r->ring = ring;
	unsigned cap = afe__features_cap();
	int err = create_ring(r, cap, quiet);
	if (err < 0) {
		free(r);
		return err;
	}
	/* What no probe shows: from the kernel's version. */
	unsigned version = afe__kernel_version();
	if (version >= AFE_LINUX(5, 19) && cap >= AFE_LINUX(5, 19))
		ring->features |= AFE_URING_MULTISHOT_ACCEPT | AFE_URING_CANCEL_ANY;
	if (version >= AFE_LINUX(5, 18) && cap >= AFE_LINUX(5, 18))
		ring->features |= AFE_URING_WAITALL;
	err = probe(r, cap);
	if (err == 0)
		err = open_bell(r);
	if (err == 0)
		err = check_enter(r);
	if (err < 0) {
		io_uring_queue_exit(&r->uring);
		free(r);
		return err;
	}
	ring->impl = r;
	return 0;
}

static void run_ring(struct afe_ring *ring)
{
	run(ring->impl);
}

static void teardown(struct afe_ring *ring)
{
	struct afe_uring *r = ring->impl;
	io_uring_queue_exit(&r->uring);
	free(r);
	ring->impl = NULL;
}

const struct afe_ring_backend afe__backend_uring = {
	.name = "io_uring",
	.setup = setup,
	.run = run_ring,
	.teardown = teardown,
};
