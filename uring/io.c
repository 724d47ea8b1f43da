/* SPDX-License-Identifier: MIT */
/* Operation futures: preparing SQEs, polling, cancelling. */
#define _GNU_SOURCE /* preadv2, pwritev2, RWF_NOWAIT */
#include <errno.h>
#include <netinet/in.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <time.h>

#include "../pool/give_way.h"
#include "../pool/spinlock.h"
#include "../pool/wake_batch.h"
#include "../pool/worker.h"
#include "afe/runtime.h"
#include "compat.h"
#include "io_internal.h"
#include "ring.h"

_Static_assert(sizeof(struct io_uring_sqe) == sizeof(((struct afe_io *)0)->sqe),
	       "afe_io holds one SQE");
_Static_assert(sizeof(struct afe_io_timespec) == sizeof(struct __kernel_timespec),
	       "afe_io_timespec is the kernel's timespec");
_Static_assert(AFE_FUTEX_PRIVATE == AFE_FUTEX2_PRIVATE, "the public flag is futex2's");

/* ---- polling --------------------------------------------------------------- */

static int io_poll(struct afe_future *f, struct afe_context *cx);

static void io_init(struct afe_io *io)
{
	memset(io, 0, sizeof(*io));
	afe_future_init(&io->base, io_poll);
	atomic_flag_clear(&io->lock);
}

static struct io_uring_sqe *sqe_of(struct afe_io *io)
{
	return (struct io_uring_sqe *)(void *)io->sqe;
}

/* The result the poller sees, from the CQEs the ring thread stored. */
static intptr_t result_of(const struct afe_io *io)
{
	if (io->has_timeout && io->res == -ECANCELED && io->timeout_res == -ETIME &&
	    !io->cancel_requested)
		return -ETIMEDOUT;
	return io->res;
}

/* Publishes result and takes the waker out, with io->lock held. Once the
 * lock is released the poller may free io: wake the waker after that. */
static struct afe_waker mark_done_locked(struct afe_io *io, intptr_t result)
{
	io->base.result = result;
	io->done = true;
	return afe_waker_take(&io->waker);
}

/* Publishes the second result of a linked pair, before the first's: the
 * poller may free both once the first is done. */
static void finish_follower(struct afe_io *then, int32_t res)
{
	afe_spin_lock(&then->lock);
	struct afe_waker waker = mark_done_locked(then, res);
	afe_spin_unlock(&then->lock);
	afe_waker_wake_if_set(&waker);
}

bool afe__io_finish(struct afe_io *io)
{
	afe_spin_lock(&io->lock);
	if (io->cancel_requested && !io->cancel_taken) {
		afe_spin_unlock(&io->lock);
		return false;
	}
	if (io->linked)
		finish_follower(io->linked, io->linked->res);
	struct afe_waker waker = mark_done_locked(io, result_of(io));
	/* The unlock is our last touch of io: the poller reads done only
	 * under the lock, so it cannot free io before this. */
	afe_spin_unlock(&io->lock);
	afe_waker_wake_if_set(&waker);
	return true;
}

/* Where an operation tried on the polling thread went. */
enum done_here {
	TO_THE_RING, /* not done: submit it */
	DONE_HERE,   /* its result is set */
	TO_A_WORKER, /* not done: its task should move to a worker first */
};

/*
 * A file write the kernel cannot start without waiting (RWF_NOWAIT gave
 * EOPNOTSUPP, as ext4 does for every buffered write, or EAGAIN), made by
 * a worker with no other task queued: written here, waiting, as write(2)
 * in a plain loop would. The ring would hand it to an io-wq thread and
 * wake this task back through the ring thread, two thread wake-ups per
 * write that cost more than most buffered writes (a depth-1 file copy
 * ran at 3.4x dd's time; pool/HANDOFF.md). A worker that has work waiting
 * sends the write to the ring instead. The ring thread, running woken
 * tasks itself, must not wait: the task gives way and goes to a worker,
 * one thread wake-up once instead of two per write (TO_A_WORKER below).
 * EINTR goes to the ring; any other error is the result.
 */
static bool file_written_waiting(struct afe_io *io, const struct iovec *iov)
{
	const struct io_uring_sqe *sqe = sqe_of(io);
	ssize_t n = pwritev2(sqe->fd, iov, 1, (off_t)sqe->off, 0);
	if (n < 0 && errno == EINTR)
		return false;
	io->base.result = n < 0 ? -errno : n;
	return true;
}

/*
 * A read or write of a file at an offset, tried here first with RWF_NOWAIT:
 * when the pages are cached (a read) or the write needs no wait, it is
 * done in one system call on this thread, where the ring would cost a
 * round trip through the ring thread (1.3 us against pread's 0.8 for a
 * cached 4 KiB read; pool/HANDOFF.md). A read counts only when whole: a
 * short one has changed nothing and goes to the ring, which reads a file
 * whole. A write counts from its first byte (it has changed the file), as
 * a short write from the ring would. Anything else (EAGAIN: not cached;
 * ESPIPE: not a file; EOPNOTSUPP) goes to the ring. Not for linked or
 * timed operations, or at the file position (-1), whose order the ring
 * keeps.
 */
static enum done_here file_done_here(struct afe_io *io)
{
	const struct io_uring_sqe *sqe = sqe_of(io);
	bool read = sqe->opcode == IORING_OP_READ;
	if ((!read && sqe->opcode != IORING_OP_WRITE) || sqe->off == (uint64_t)-1 || sqe->flags ||
	    sqe->rw_flags || io->linked || io->follows || io->has_timeout || sqe->len == 0)
		return TO_THE_RING;
	struct iovec iov = {.iov_base = (void *)(uintptr_t)sqe->addr, .iov_len = sqe->len};
	ssize_t n = read ? preadv2(sqe->fd, &iov, 1, (off_t)sqe->off, RWF_NOWAIT)
			 : pwritev2(sqe->fd, &iov, 1, (off_t)sqe->off, RWF_NOWAIT);
	if (!read && n < 0 && (errno == EOPNOTSUPP || errno == EAGAIN)) {
		if (afe_worker_has_nothing_queued())
			return file_written_waiting(io, &iov) ? DONE_HERE : TO_THE_RING;
		return afe__io_on_the_ring_thread() ? TO_A_WORKER : TO_THE_RING;
	}
	if (read ? n != (ssize_t)sqe->len : n <= 0)
		return TO_THE_RING;
	io->base.result = n;
	return DONE_HERE;
}

/*
 * A sendmsg (afe_sendto, afe_io_sendmsg), tried here first with
 * MSG_DONTWAIT when this poll has already ended an operation at once (a
 * datagram stream's queued datagram): then the task works through a
 * batch, and a socket with room (a datagram socket nearly always has)
 * takes it in one system call, where the ring would cost an enter per
 * send. A task that the ring woke sends through the ring instead, where
 * the send rides on the enter that arms its next receive: tried there
 * too, it cost an extra system call per datagram (pool/HANDOFF.md). A
 * stream socket may take part of it, as the ring's sendmsg would. An
 * error is the result here: a socket's pending error (ECONNREFUSED after
 * an ICMP reply) is reported once, by the call that takes it. EAGAIN (no
 * room) or EINTR goes to the ring. Not with MSG_WAITALL, nor for linked
 * or timed operations.
 */
static bool message_sent_here(struct afe_io *io)
{
	const struct io_uring_sqe *sqe = sqe_of(io);
	if (sqe->opcode != IORING_OP_SENDMSG || !afe__poll_ended_at_once() || sqe->flags ||
	    io->linked || io->follows || io->has_timeout || (sqe->msg_flags & MSG_WAITALL))
		return false;
	const struct msghdr *msg = (const struct msghdr *)(uintptr_t)sqe->addr;
	int flags = (int)sqe->msg_flags | MSG_DONTWAIT | MSG_NOSIGNAL;
	/* One buffer and no ancillary data (afe_sendto): sendto(2), which
	 * copies no header or iovec in. */
	ssize_t n = msg->msg_iovlen == 1 && !msg->msg_controllen
			    ? sendto(sqe->fd, msg->msg_iov[0].iov_base, msg->msg_iov[0].iov_len, flags,
				     (const struct sockaddr *)msg->msg_name, msg->msg_namelen)
			    : sendmsg(sqe->fd, msg, flags);
	if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
		return false;
	io->base.result = n < 0 ? -errno : n;
	return true;
}

/* Whether the kernel sends on fd without copying: io_uring's SEND_ZC
 * (AFE_URING_SEND_ZC), on a TCP or UDP socket, the only ones it takes. */
static bool sends_zero_copy(struct afe_runtime *rt, int fd)
{
	if (!(afe_ring_features(afe__runtime_ring(rt)) & AFE_URING_SEND_ZC))
		return false;
	int domain = 0, protocol = 0;
	socklen_t len = sizeof(int);
	if (getsockopt(fd, SOL_SOCKET, SO_DOMAIN, &domain, &len) < 0 ||
	    (domain != AF_INET && domain != AF_INET6))
		return false;
	len = sizeof(int);
	return getsockopt(fd, SOL_SOCKET, SO_PROTOCOL, &protocol, &len) == 0 &&
	       (protocol == IPPROTO_TCP || protocol == IPPROTO_UDP);
}

/* A zero-copy send that cannot be one becomes a plain send (its flags
 * have MSG_NOSIGNAL already): a bad fd then fails there. */
static void settle_send_zc(struct afe_io *io, struct afe_runtime *rt)
{
	struct io_uring_sqe *sqe = sqe_of(io);
	if (sqe->opcode != IORING_OP_SEND_ZC || sends_zero_copy(rt, sqe->fd))
		return;
	sqe->opcode = IORING_OP_SEND;
	sqe->ioprio = 0; /* SEND_ZC's own flags */
}

static int first_poll(struct afe_io *io, struct afe_context *cx)
{
	struct afe_runtime *rt = afe_runtime_current();
	if (cx->cancel || !rt) {
		io->base.result = cx->cancel ? -ECANCELED : -EINVAL;
		if (io->linked)
			finish_follower(io->linked, (int32_t)io->base.result);
		return AFE_READY;
	}
	enum done_here file = file_done_here(io);
	if (file == TO_A_WORKER)
		return afe__give_way(cx); /* polled again there, from the start */
	io->rt = rt;
	io->submitted = true;
	io->fd_owned = cx->owned_fd && *cx->owned_fd == sqe_of(io)->fd;
	settle_send_zc(io, rt);
	if (io->linked)
		settle_send_zc(io->linked, rt);
	if (file == DONE_HERE || message_sent_here(io)) {
		io->done = true; /* the ring never saw io: no lock needed */
		return afe__poll_budget_spend() ? afe__give_way(cx) : AFE_READY;
	}
	afe__poll_budget_reset();
	afe_waker_clone(&io->waker, cx->waker);
	int err = afe_ring_submit(afe__runtime_ring(rt), io);
	if (err < 0) { /* -ESHUTDOWN: the ring thread has ended */
		afe_waker_drop(&io->waker);
		io->base.result = err;
		if (io->linked)
			finish_follower(io->linked, err);
		io->done = true; /* the ring never saw io: no lock needed */
		return afe__give_way(cx);
	}
	return AFE_PENDING;
}

static int io_poll(struct afe_future *f, struct afe_context *cx)
{
	struct afe_io *io = afe_container_of(f, struct afe_io, base);
	if (!io->submitted)
		return first_poll(io, cx);
	afe_spin_lock(&io->lock);
	if (io->done) {
		afe_spin_unlock(&io->lock);
		return AFE_READY; /* result set by afe__io_finish */
	}
	afe_waker_register(&io->waker, cx);
	/* The second of a pair is cancelled through the first. */
	bool send_cancel = cx->cancel && !io->cancel_requested && !io->follows;
	if (send_cancel)
		io->cancel_requested = true;
	afe_spin_unlock(&io->lock);
	if (send_cancel && !afe_ring_cancel(afe__runtime_ring(io->rt), io)) {
		/* The ring thread ended between our check and the push. */
		io->cancel_taken = true;
		afe__io_finish(io);
		return io_poll(f, cx);
	}
	return AFE_PENDING;
}

/* ---- operations ------------------------------------------------------------ */

/* io_uring takes -1 as "the file position" in the 64-bit offset field. */
static uint64_t offset_of(int64_t offset)
{
	return offset < 0 ? (uint64_t)-1 : (uint64_t)offset;
}

void afe_io_nop_init(struct afe_io *io)
{
	io_init(io);
	io_uring_prep_nop(sqe_of(io));
}

void afe_io_read_init(struct afe_io *io, int fd, void *buf, unsigned len, int64_t offset)
{
	io_init(io);
	io_uring_prep_read(sqe_of(io), fd, buf, len, offset_of(offset));
}

void afe_io_write_init(struct afe_io *io, int fd, const void *buf, unsigned len,
		       int64_t offset)
{
	io_init(io);
	io_uring_prep_write(sqe_of(io), fd, buf, len, offset_of(offset));
}

void afe_io_readv_init(struct afe_io *io, int fd, const struct iovec *iov, unsigned count,
		       int64_t offset)
{
	io_init(io);
	io_uring_prep_readv(sqe_of(io), fd, iov, count, offset_of(offset));
}

void afe_io_writev_init(struct afe_io *io, int fd, const struct iovec *iov, unsigned count,
			int64_t offset)
{
	io_init(io);
	io_uring_prep_writev(sqe_of(io), fd, iov, count, offset_of(offset));
}

void afe_io_recv_init(struct afe_io *io, int fd, void *buf, unsigned len, int flags)
{
	io_init(io);
	io_uring_prep_recv(sqe_of(io), fd, buf, len, flags);
}

void afe_io_send_init(struct afe_io *io, int fd, const void *buf, unsigned len, int flags)
{
	io_init(io);
	io_uring_prep_send(sqe_of(io), fd, buf, len, flags);
}

void afe_io_send_zc_init(struct afe_io *io, int fd, const void *buf, unsigned len, int flags)
{
	io_init(io);
	io_uring_prep_send_zc(sqe_of(io), fd, buf, len, flags | MSG_NOSIGNAL, 0);
}

void afe_io_accept_init(struct afe_io *io, int fd, struct sockaddr *addr, unsigned *addrlen,
			int flags)
{
	io_init(io);
	io_uring_prep_accept(sqe_of(io), fd, addr, addrlen, flags);
}

void afe_io_connect_init(struct afe_io *io, int fd, const struct sockaddr *addr,
			 unsigned addrlen)
{
	io_init(io);
	io_uring_prep_connect(sqe_of(io), fd, addr, addrlen);
}

void afe_io_close_init(struct afe_io *io, int fd)
{
	io_init(io);
	io_uring_prep_close(sqe_of(io), fd);
}

void afe_io_openat_init(struct afe_io *io, int dirfd, const char *path, int flags,
			unsigned mode)
{
	io_init(io);
	io_uring_prep_openat(sqe_of(io), dirfd, path, flags, mode);
}

void afe_io_fsync_init(struct afe_io *io, int fd, bool datasync)
{
	io_init(io);
	io_uring_prep_fsync(sqe_of(io), fd, datasync ? IORING_FSYNC_DATASYNC : 0);
}

void afe_io_poll_init(struct afe_io *io, int fd, unsigned events)
{
	io_init(io);
	io_uring_prep_poll_add(sqe_of(io), fd, events);
}

void afe_io_sendmsg_init(struct afe_io *io, int fd, const struct msghdr *msg, int flags)
{
	io_init(io);
	io_uring_prep_sendmsg(sqe_of(io), fd, msg, (unsigned)flags);
}

void afe_io_recvmsg_init(struct afe_io *io, int fd, struct msghdr *msg, int flags)
{
	io_init(io);
	io_uring_prep_recvmsg(sqe_of(io), fd, msg, (unsigned)flags);
}

void afe_io_shutdown_init(struct afe_io *io, int fd, int how)
{
	io_init(io);
	io_uring_prep_shutdown(sqe_of(io), fd, how);
}

void afe_io_futex_wait_init(struct afe_io *io, const _Atomic uint32_t *word, uint32_t expected,
			    unsigned flags)
{
	io_init(io);
	afe_prep_futex_wait(sqe_of(io), (const uint32_t *)word, expected,
			    flags & AFE_FUTEX2_PRIVATE);
}

void afe_io_futex_wake_init(struct afe_io *io, const _Atomic uint32_t *word, uint32_t nr,
			    unsigned flags)
{
	io_init(io);
	afe_prep_futex_wake(sqe_of(io), (const uint32_t *)word, nr, flags & AFE_FUTEX2_PRIVATE);
}

static void set_timespec(struct afe_io_timespec *ts, uint64_t ns)
{
	ts->tv_sec = (int64_t)(ns / 1000000000u);
	ts->tv_nsec = (long long)(ns % 1000000000u);
}

int afe_io_set_timeout(struct afe_io *io, uint64_t ns)
{
	if (!io || io->submitted || io->linked || io->base.poll != io_poll)
		return -EINVAL;
	io->has_timeout = true;
	set_timespec(&io->timeout, ns);
	return 0;
}

int afe_io_link(struct afe_io *io, struct afe_io *then)
{
	if (!io || !then || io == then || io->base.poll != io_poll || then->base.poll != io_poll ||
	    io->submitted || then->submitted || io->linked || then->linked || io->has_timeout ||
	    then->has_timeout)
		return -EINVAL;
	io->linked = then;
	then->follows = true;
	then->submitted = true; /* it goes to the ring with io */
	return 0;
}

/* ---- files ----------------------------------------------------------------- */

void afe_io_statx_init(struct afe_io *io, int dirfd, const char *path, int flags,
		       unsigned mask, struct statx *out)
{
	io_init(io);
	io_uring_prep_statx(sqe_of(io), dirfd, path, flags, mask, out);
}

void afe_io_unlinkat_init(struct afe_io *io, int dirfd, const char *path, int flags)
{
	io_init(io);
	io_uring_prep_unlinkat(sqe_of(io), dirfd, path, flags);
}

void afe_io_renameat_init(struct afe_io *io, int old_dirfd, const char *old_path,
			  int new_dirfd, const char *new_path, unsigned flags)
{
	io_init(io);
	io_uring_prep_renameat(sqe_of(io), old_dirfd, old_path, new_dirfd, new_path, flags);
}

void afe_io_mkdirat_init(struct afe_io *io, int dirfd, const char *path, unsigned mode)
{
	io_init(io);
	io_uring_prep_mkdirat(sqe_of(io), dirfd, path, (mode_t)mode);
}

void afe_io_fallocate_init(struct afe_io *io, int fd, int mode, int64_t offset, int64_t len)
{
	io_init(io);
	io_uring_prep_fallocate(sqe_of(io), fd, mode, (off_t)offset, (off_t)len);
}

void afe_io_splice_init(struct afe_io *io, int fd_in, int64_t off_in, int fd_out,
			int64_t off_out, unsigned len, unsigned flags)
{
	io_init(io);
	io_uring_prep_splice(sqe_of(io), fd_in, off_in < 0 ? -1 : off_in, fd_out,
			     off_out < 0 ? -1 : off_out, len, flags & ~SPLICE_F_FD_IN_FIXED);
}

void afe_io_tee_init(struct afe_io *io, int fd_in, int fd_out, unsigned len, unsigned flags)
{
	io_init(io);
	io_uring_prep_tee(sqe_of(io), fd_in, fd_out, len, flags & ~SPLICE_F_FD_IN_FIXED);
}

void afe__io_ftruncate_init(struct afe_io *io, int fd, int64_t length)
{
	io_init(io);
	afe_prep_ftruncate(sqe_of(io), fd, length);
}
