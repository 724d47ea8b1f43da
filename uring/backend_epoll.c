/* SPDX-License-Identifier: MIT */
/*
 * The epoll backend of the ring thread (backend.h), for where io_uring is
 * refused or absent. It reads each operation's prepared SQE (struct
 * afe_io keeps one whichever backend runs) and makes the call itself:
 *
 * - Sockets, pipes and the like: the call is tried at once where a
 *   non-blocking form exists (MSG_DONTWAIT; RWF_NOWAIT for pipes), else
 *   the operation waits until epoll says its fd is ready, and is tried
 *   again. An fd that operations wait on is registered level triggered
 *   and one-shot, for the union of what they wait for; several operations
 *   may wait on one fd (a read and a write at once), oldest first. See
 *   update_interest for why one-shot.
 * - Regular files, block devices and directories (fstat), openat, fsync,
 *   which epoll cannot wait for: a job each on the runtime's blocking pool
 *   (as libuv does), whose end the job's waker hands back through a
 *   lock-free stack and the doorbell. Such an operation cannot be
 *   withdrawn: its cancel and its timeout wait for the job, and its result
 *   is the job's.
 * - Per-operation timeouts: a min-heap of deadlines, the epoll_wait
 *   timeout the earlier of its top and the runtime's timer wheel.
 * - Cancel: the operation leaves its fd's list and ends -ECANCELED.
 * - Futex waits: epoll cannot wait for a futex, so the ring thread looks
 *   at the words waited on every round, and rounds come at least every
 *   millisecond while any is waited on (a wake is seen as the word's
 *   change, which every user of these waits makes before waking).
 *   Futex wakes: the system call, at once.
 *
 * Everything here but the jobs' calls and their wakers runs on the ring
 * thread; the operation's fields are its own from the submit request on.
 * Fields of struct afe_io this backend gives its own meaning:
 * ring_next/ring_pprev link the operations waiting on one fd (or the
 * futex waits); cqes_due is 1 while the second of a linked pair runs; the
 * timeout's tv_sec holds the deadline (monotonic ns) and tv_nsec the
 * operation's index in the heap, once started.
 */
#define _GNU_SOURCE /* preadv2, accept4, MSG_DONTWAIT */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#include "../pool/blocking.h"
#include "../pool/futex.h"
#include "../pool/worker.h"
#include "backend.h"
#include "compat.h"
#include "io_internal.h"

/* The events an fd is always watched for: they end every waiter's wait. */
#define ALWAYS (EPOLLERR | EPOLLHUP)

/* The operations waiting on one fd, oldest first. */
struct fd_waiters {
	struct afe_io *head, *last;
	uint32_t registered; /* the events of its registration; 0: none */
	bool armed; /* its registration reports the next event (one-shot) */
	/* A receive got an answer from the file registered (see
	 * waited_first); false once the registration is made anew. */
	bool received;
	/* Kept (see keep_registered): registered edge triggered for
	 * KEPT_EVENTS until closed through close_fd. ready: the events epoll
	 * reported since a try last found them wanting. stream: a stream
	 * socket, where a short receive means nothing is left to read. */
	bool kept, stream;
	uint32_t ready;
};

/* A file operation on the blocking pool. */
struct file_job {
	struct afe_blocking job;
	struct afe_io *io;
	struct afe_epoll *e;
	struct file_job *next_done; /* in e->done */
};

struct afe_epoll {
	struct afe_ring *ring;
	_Atomic(struct file_job *) done; /* pushed by the jobs' wakers */
	int epfd;
	struct fd_waiters **fds; /* indexed by fd; each allocated when first used */
	struct fd_waiters futexes; /* the futex waits */
	size_t nfds;
	struct afe_io **timed; /* a min-heap by deadline */
	size_t ntimed, timed_cap;
};

static uint64_t now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* ---- per-operation timeouts: a min-heap --------------------------------- */

static uint64_t deadline_of(const struct afe_io *io)
{
	return (uint64_t)io->timeout.tv_sec;
}

static void heap_set(struct afe_epoll *e, size_t i, struct afe_io *io)
{
	e->timed[i] = io;
	io->timeout.tv_nsec = (long long)i;
}

static void sift_up(struct afe_epoll *e, size_t i)
{
	struct afe_io *io = e->timed[i];
	while (i > 0 && deadline_of(e->timed[(i - 1) / 2]) > deadline_of(io)) {
		heap_set(e, i, e->timed[(i - 1) / 2]);
		i = (i - 1) / 2;
	}
	heap_set(e, i, io);
}

static void sift_down(struct afe_epoll *e, size_t i)
{
	struct afe_io *io = e->timed[i];
	for (;;) {
		size_t c = 2 * i + 1;
		if (c >= e->ntimed)
			break;
		if (c + 1 < e->ntimed && deadline_of(e->timed[c + 1]) < deadline_of(e->timed[c]))
			c++;
		if (deadline_of(e->timed[c]) >= deadline_of(io))
			break;
		heap_set(e, i, e->timed[c]);
		i = c;
	}
	heap_set(e, i, io);
}

/* Returns 0 or -ENOMEM. */
static int heap_push(struct afe_epoll *e, struct afe_io *io)
{
	if (e->ntimed == e->timed_cap) {
		size_t cap = e->timed_cap ? 2 * e->timed_cap : 64;
		struct afe_io **grown = realloc(e->timed, cap * sizeof(*grown));
		if (!grown)
			return -ENOMEM;
		e->timed = grown;
		e->timed_cap = cap;
	}
	e->timed[e->ntimed++] = io;
	sift_up(e, e->ntimed - 1);
	return 0;
}

static void heap_remove(struct afe_epoll *e, struct afe_io *io)
{
	size_t i = (size_t)io->timeout.tv_nsec;
	struct afe_io *last = e->timed[--e->ntimed];
	if (i == e->ntimed)
		return;
	heap_set(e, i, last);
	sift_up(e, i);
	sift_down(e, (size_t)last->timeout.tv_nsec);
}

/* ---- registrations ------------------------------------------------------- */

static const struct io_uring_sqe *sqe_of(const struct afe_io *io)
{
	const unsigned char *raw = io->cqes_due ? io->linked->sqe : io->sqe;
	return (const struct io_uring_sqe *)(const void *)raw;
}

/* What the operation waits for on its fd. */
static uint32_t wanted(const struct io_uring_sqe *sqe)
{
	switch (sqe->opcode) {
	case IORING_OP_POLL_ADD:
		return sqe->poll32_events;
	case IORING_OP_WRITE:
	case IORING_OP_WRITEV:
	case IORING_OP_SEND:
	case IORING_OP_SENDMSG:
	case IORING_OP_CONNECT:
		return EPOLLOUT;
	default:
		return EPOLLIN;
	}
}

/* The waiters of fd, made when first used; NULL without memory. */
static struct fd_waiters *slot(struct afe_epoll *e, int fd)
{
	if ((size_t)fd >= e->nfds) {
		size_t n = e->nfds ? e->nfds : 64;
		while (n <= (size_t)fd)
			n *= 2;
		struct fd_waiters **grown = realloc(e->fds, n * sizeof(*grown));
		if (!grown)
			return NULL;
		memset(grown + e->nfds, 0, (n - e->nfds) * sizeof(*grown));
		e->fds = grown;
		e->nfds = n;
	}
	if (!e->fds[fd])
		e->fds[fd] = calloc(1, sizeof(*e->fds[fd]));
	return e->fds[fd];
}

/*
 * epoll_ctl(2) as a bare system call. ThreadSanitizer's wrapper counts it
 * as a read of fd's state, racing with a signalfd(2) call that changes an
 * existing signalfd's mask in another thread (signals/signal.c does):
 * both are the kernel's to order, as they are with io_uring, where
 * ThreadSanitizer sees neither.
 */
static int ctl(int epfd, int op, int fd, struct epoll_event *ev)
{
	return (int)syscall(SYS_epoll_ctl, epfd, op, fd, ev);
}

/*
 * Makes epoll watch fd for what its waiters want. Returns 0 or the
 * -errno of epoll_ctl (-EPERM: a regular file; -EBADF).
 *
 * Registrations are one-shot: an event disarms its fd's, and only an fd
 * that still has waiters is armed again (EPOLL_CTL_MOD). A disarmed
 * registration is left in the set, so an fd waited on again and again (a
 * connection's receives) costs one epoll_ctl per wait, where adding and
 * deleting it cost two and dearer ones (the echo server at 64 connections
 * spent a fifth of its time in epoll_ctl). Only an armed registration
 * without waiters (they were cancelled or timed out) is deleted. So armed
 * means "operations wait on this fd now", and while they do the caller may
 * not close it: the fd number cannot have moved to another file. A
 * disarmed one may be stale (its file closed, the number reused): MOD
 * then fails with ENOENT, and the fd is added.
 */
static int update_interest(struct afe_epoll *e, int fd)
{
	struct fd_waiters *w = e->fds[fd];
	if (w->kept)
		return 0; /* registered for everything, for as long as it is open */
	uint32_t want = 0;
	for (struct afe_io *io = w->head; io; io = io->ring_next)
		want |= wanted(sqe_of(io));
	if (want == 0 && w->armed) {
		struct epoll_event none = {0};
		ctl(e->epfd, EPOLL_CTL_DEL, fd, &none); /* fails if closed: no matter */
		w->registered = 0;
		w->armed = w->received = false;
	}
	if (want == 0 || (want == w->registered && w->armed))
		return 0;
	struct epoll_event ev = {.events = want | EPOLLONESHOT, .data.fd = fd};
	int op = w->registered ? EPOLL_CTL_MOD : EPOLL_CTL_ADD;
	int rc = ctl(e->epfd, op, fd, &ev);
	if (rc < 0 && (errno == ENOENT || errno == EEXIST)) {
		op = errno == ENOENT ? EPOLL_CTL_ADD : EPOLL_CTL_MOD;
		rc = ctl(e->epfd, op, fd, &ev);
	}
	if (rc < 0)
		return -errno;
	if (op == EPOLL_CTL_ADD)
		w->received = false; /* perhaps another file at the number */
	w->registered = want;
	w->armed = true;
	return 0;
}

#define KEPT_EVENTS (EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET)

/*
 * Makes fd's registration kept, if it is not: registered once, edge
 * triggered, for everything, and never touched again until the fd is
 * closed through close_fd. Only for an fd its owner closes through the
 * ring (the TCP server's connections: io->fd_owned), because a kept
 * registration is not checked again, and a number closed behind the
 * ring's back and reused would go unwatched. What it saves is the
 * epoll_ctl that arms a one-shot registration at every wait (7% of the
 * echo server's time at 64 connections). Without memory, or where epoll
 * refuses the fd, it stays as it was.
 */
static void keep_registered(struct afe_epoll *e, int fd)
{
	struct fd_waiters *w = slot(e, fd);
	if (!w || w->kept)
		return;
	struct epoll_event ev = {.events = KEPT_EVENTS, .data.fd = fd};
	int op = w->registered ? EPOLL_CTL_MOD : EPOLL_CTL_ADD;
	int rc = ctl(e->epfd, op, fd, &ev);
	if (rc < 0 && (errno == ENOENT || errno == EEXIST))
		rc = ctl(e->epfd, errno == ENOENT ? EPOLL_CTL_ADD : EPOLL_CTL_MOD, fd, &ev);
	if (rc < 0)
		return;
	int type = 0;
	socklen_t len = sizeof(type);
	w->stream = getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &len) == 0 && type == SOCK_STREAM;
	w->registered = KEPT_EVENTS;
	w->armed = true;
	w->kept = true;
	/* Nothing reported yet: a first receive waits, and epoll reports
	 * what is already there in the next round (the registration polls
	 * the fd); other operations are tried first, as they always are. */
	w->ready = 0;
}

/* fd's slot if it has one (slot() makes one). */
static struct fd_waiters *slot_if_any(struct afe_epoll *e, int fd)
{
	return fd >= 0 && (size_t)fd < e->nfds ? e->fds[fd] : NULL;
}

static struct fd_waiters *kept_slot(struct afe_epoll *e, int fd)
{
	struct fd_waiters *w = slot_if_any(e, fd);
	return w && w->kept ? w : NULL;
}

/* A recv or recvmsg: the receives a connection waits first for. */
static bool is_socket_receive(const struct io_uring_sqe *sqe)
{
	return sqe->opcode == IORING_OP_RECV || sqe->opcode == IORING_OP_RECVMSG;
}

static bool is_receive(const struct io_uring_sqe *sqe)
{
	return sqe->opcode == IORING_OP_RECV || sqe->opcode == IORING_OP_RECVMSG ||
	       sqe->opcode == IORING_OP_READ || sqe->opcode == IORING_OP_READV;
}

/*
 * After a try of sqe on a kept fd gave res: what it found wanting is no
 * longer ready, until epoll reports it again. A receive on a stream
 * socket that got fewer bytes than it asked for emptied the socket, so it
 * counts as wanting too (the next receive then waits rather than fails
 * once first); bytes that came meanwhile raised an edge epoll reports.
 */
static void note_try(struct fd_waiters *w, const struct io_uring_sqe *sqe, int res)
{
	bool whole_buffer = sqe->opcode == IORING_OP_READ ||
			    (sqe->opcode == IORING_OP_RECV && !(sqe->msg_flags & MSG_PEEK));
	bool drained = w->stream && whole_buffer && res > 0 && (uint32_t)res < sqe->len;
	if (res == -EAGAIN || drained)
		w->ready &= ~wanted(sqe);
}

static bool is_futex_wait(const struct io_uring_sqe *sqe)
{
	return sqe->opcode == AFE_IORING_OP_FUTEX_WAIT;
}

/* Whether the word a futex wait watches no longer holds the value. The
 * word may be in memory another process shares: it is only compared. */
static bool word_moved(const struct io_uring_sqe *sqe)
{
	const _Atomic uint32_t *word = (const _Atomic uint32_t *)(uintptr_t)sqe->addr;
	/* Acquire: pairs with the release (or stronger) store the waker made
	 * before its wake, so the woken task sees what came before. */
	return atomic_load_explicit(word, memory_order_acquire) != (uint32_t)sqe->addr2;
}

/* Appends io to the waiters of its fd (or to the futex waits); -ENOMEM,
 * or 0. */
static int link_waiter(struct afe_epoll *e, struct afe_io *io)
{
	const struct io_uring_sqe *sqe = sqe_of(io);
	struct fd_waiters *w = is_futex_wait(sqe) ? &e->futexes : slot(e, sqe->fd);
	if (!w)
		return -ENOMEM;
	io->ring_next = NULL;
	io->ring_pprev = w->last ? &w->last->ring_next : &w->head;
	*io->ring_pprev = io;
	w->last = io;
	return 0;
}

static void unlink_waiter(struct afe_epoll *e, struct afe_io *io)
{
	const struct io_uring_sqe *sqe = sqe_of(io);
	struct fd_waiters *w = is_futex_wait(sqe) ? &e->futexes : e->fds[sqe->fd];
	*io->ring_pprev = io->ring_next;
	if (io->ring_next)
		io->ring_next->ring_pprev = io->ring_pprev;
	else
		w->last = io->ring_pprev == &w->head
				  ? NULL
				  : afe_container_of(io->ring_pprev, struct afe_io, ring_next);
	io->ring_next = NULL;
	io->ring_pprev = NULL;
}

/* Takes io out of the waiters, and its fd's registration along. */
static void unwait(struct afe_epoll *e, struct afe_io *io)
{
	const struct io_uring_sqe *sqe = sqe_of(io);
	unlink_waiter(e, io);
	if (!is_futex_wait(sqe))
		update_interest(e, sqe->fd);
}

/* ---- the calls ----------------------------------------------------------- */

/* The -errno of a call that returned rc (negative: errno tells). */
static int result(long rc)
{
	return rc < 0 ? -errno : (int)rc;
}

/* The events of fd, of those asked, that poll(2) finds now: right before
 * a call that has no non-blocking form, whether fd is still ready, so
 * that the call does not block the thread. */
static uint32_t ready_now(int fd, uint32_t events)
{
	struct pollfd p = {.fd = fd, .events = (short)events};
	return poll(&p, 1, 0) > 0 ? (uint32_t)(unsigned short)p.revents : 0;
}

static bool is_nonblocking(int fd)
{
	int flags = fcntl(fd, F_GETFL);
	return flags >= 0 && (flags & O_NONBLOCK);
}

/* Reads or writes of the SQE as an iovec array. */
static void rw_iov(const struct io_uring_sqe *sqe, struct iovec *one, const struct iovec **iov,
		   int *count)
{
	if (sqe->opcode == IORING_OP_READV || sqe->opcode == IORING_OP_WRITEV) {
		*iov = (const struct iovec *)(uintptr_t)sqe->addr;
		*count = (int)sqe->len;
		return;
	}
	one->iov_base = (void *)(uintptr_t)sqe->addr;
	one->iov_len = sqe->len;
	*iov = one;
	*count = 1;
}

static bool is_write(const struct io_uring_sqe *sqe)
{
	return sqe->opcode == IORING_OP_WRITE || sqe->opcode == IORING_OP_WRITEV;
}

/* attempt's answer for a call epoll cannot wait for: a job for the pool. */
#define TO_POOL INT_MIN

/* A read or write of a file epoll cannot wait for, on a blocking thread. */
static int file_rw(const struct io_uring_sqe *sqe, const struct iovec *iov, int count)
{
	off_t off = sqe->off == (uint64_t)-1 ? -1 : (off_t)sqe->off;
	if (is_write(sqe))
		return result(off < 0 ? writev(sqe->fd, iov, count)
				      : pwritev(sqe->fd, iov, count, off));
	return result(off < 0 ? readv(sqe->fd, iov, count) : preadv(sqe->fd, iov, count, off));
}

/* A read or write of a socket: a message, without waiting. */
static int socket_rw(const struct io_uring_sqe *sqe, const struct iovec *iov, int count)
{
	struct msghdr msg = {.msg_iov = (struct iovec *)iov, .msg_iovlen = (size_t)count};
	if (is_write(sqe))
		return result(sendmsg(sqe->fd, &msg, MSG_DONTWAIT | MSG_NOSIGNAL));
	return result(recvmsg(sqe->fd, &msg, MSG_DONTWAIT));
}

/*
 * A read or write of a pipe, FIFO, character device, eventfd, signalfd...
 * With RWF_NOWAIT where the kernel takes it for the file; else only once
 * ready, and then a blocking fd's write is cut to PIPE_BUF bytes, which a
 * pipe that polls writable takes without blocking.
 */
static int stream_rw(const struct io_uring_sqe *sqe, const struct iovec *iov, int count,
		     uint32_t ready)
{
	bool out = is_write(sqe);
	long rc = out ? pwritev2(sqe->fd, iov, count, -1, RWF_NOWAIT)
			: preadv2(sqe->fd, iov, count, -1, RWF_NOWAIT);
	if (rc >= 0 || errno != EOPNOTSUPP)
		return result(rc);
	uint32_t want = out ? EPOLLOUT : EPOLLIN;
	if (!(ready & (want | ALWAYS)) || !ready_now(sqe->fd, want))
		return -EAGAIN;
	if (!out)
		return result(readv(sqe->fd, iov, count));
	if (is_nonblocking(sqe->fd))
		return result(writev(sqe->fd, iov, count));
	const void *base = count > 0 ? iov[0].iov_base : NULL;
	size_t len = count > 0 ? iov[0].iov_len : 0;
	return result(write(sqe->fd, base, len < PIPE_BUF ? len : PIPE_BUF));
}

/* A read or write: by the kind of file. */
static int rw(const struct io_uring_sqe *sqe, uint32_t ready)
{
	struct stat st;
	if (fstat(sqe->fd, &st) < 0)
		return -errno;
	struct iovec one;
	const struct iovec *iov;
	int count;
	rw_iov(sqe, &one, &iov, &count);
	if (S_ISSOCK(st.st_mode))
		return socket_rw(sqe, iov, count);
	if (S_ISREG(st.st_mode) || S_ISBLK(st.st_mode) || S_ISDIR(st.st_mode))
		return TO_POOL;
	return stream_rw(sqe, iov, count, ready);
}

/* Whether fd is a socket that listens: only one can ever be ready to
 * accept. accept4 on anything else fails at once (EINVAL, ENOTSOCK). */
static bool listens(int fd)
{
	int on = 0;
	socklen_t len = sizeof(on);
	return getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &on, &len) == 0 && on;
}

/* accept4; on a blocking listening socket only once it is ready. Flags
 * accept4 refuses are refused at once (-EINVAL), as io_uring does,
 * rather than once a connection comes. */
static int accept_now(const struct io_uring_sqe *sqe, uint32_t ready)
{
	if (!is_nonblocking(sqe->fd) &&
	    (!(ready & (EPOLLIN | ALWAYS)) || !ready_now(sqe->fd, EPOLLIN)) &&
	    !(sqe->accept_flags & ~(uint32_t)(SOCK_CLOEXEC | SOCK_NONBLOCK)) && listens(sqe->fd))
		return -EAGAIN;
	return result(accept4(sqe->fd, (struct sockaddr *)(uintptr_t)sqe->addr,
			      (socklen_t *)(uintptr_t)sqe->addr2, (int)sqe->accept_flags));
}

/*
 * connect(2) without blocking: the socket is made non-blocking for the
 * call (and restored), and once it polls writable, its SO_ERROR and a
 * second connect (EISCONN) tell how it went.
 */
static int connect_now(const struct io_uring_sqe *sqe, uint32_t ready)
{
	int fd = sqe->fd;
	if (ready) {
		int err = 0;
		socklen_t len = sizeof(err);
		if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0)
			return -errno;
		if (err)
			return -err;
	}
	int flags = fcntl(fd, F_GETFL);
	if (flags < 0)
		return -errno;
	if (!(flags & O_NONBLOCK))
		fcntl(fd, F_SETFL, flags | O_NONBLOCK);
	int rc = connect(fd, (const struct sockaddr *)(uintptr_t)sqe->addr, (socklen_t)sqe->off);
	int err = rc < 0 ? errno : 0;
	if (!(flags & O_NONBLOCK))
		fcntl(fd, F_SETFL, flags);
	if (rc == 0 || (ready && err == EISCONN))
		return 0;
	if (err == EINPROGRESS || err == EALREADY || err == EAGAIN)
		return -EAGAIN;
	return -err;
}

/* The bytes io's current operation moved so far, kept in its own res
 * until it completes (a recv or send with MSG_WAITALL; see stream_call). */
static int32_t *moved_of(struct afe_io *io)
{
	return io->cqes_due ? &io->linked->res : &io->res;
}

/*
 * recv(2) or send(2). With MSG_WAITALL, as io_uring does it: a short
 * transfer waits for the rest (*moved counts what went before), and the
 * result is the whole, or what moved before the stream ended or failed.
 * Without it (or on a non-blocking call, where MSG_WAITALL means nothing
 * else), one call.
 */
static int stream_call(const struct io_uring_sqe *sqe, int32_t *moved)
{
	char *addr = (char *)(uintptr_t)sqe->addr;
	int flags = (int)sqe->msg_flags | MSG_DONTWAIT;
	bool all = flags & MSG_WAITALL;
	uint32_t done = all ? (uint32_t)*moved : 0;
	for (;;) {
		ssize_t n = sqe->opcode == IORING_OP_SEND
				    ? send(sqe->fd, addr + done, sqe->len - done, flags | MSG_NOSIGNAL)
				    : recv(sqe->fd, addr + done, sqe->len - done, flags);
		if (n > 0) {
			done += (uint32_t)n;
			if (all && done < sqe->len)
				continue;
			return (int)done;
		}
		if (n < 0 && errno == EAGAIN && all) {
			*moved = (int32_t)done;
			return done < sqe->len ? -EAGAIN : (int)done;
		}
		if (n < 0 && (errno == EAGAIN || done == 0))
			return -errno;
		return (int)done; /* the end of the stream, or an error after some */
	}
}

/* One try of io's current operation sqe, with the events epoll reported
 * for its fd (0 on the first try). Returns its result, -EAGAIN to wait, or
 * TO_POOL. */
static int attempt(struct afe_io *io, const struct io_uring_sqe *sqe, uint32_t ready)
{
	void *addr = (void *)(uintptr_t)sqe->addr;
	switch (sqe->opcode) {
	case IORING_OP_NOP:
		return 0;
	case AFE_OP_BUF_RING_REGISTER: /* io_uring's own (compat.h) */
	case AFE_OP_BUF_RING_UNREGISTER:
		return -EOPNOTSUPP;
	case IORING_OP_READ:
	case IORING_OP_WRITE:
	case IORING_OP_READV:
	case IORING_OP_WRITEV:
		return rw(sqe, ready);
	case IORING_OP_RECV:
	case IORING_OP_SEND:
		return stream_call(sqe, moved_of(io));
	case IORING_OP_RECVMSG:
		return result(recvmsg(sqe->fd, addr, (int)sqe->msg_flags | MSG_DONTWAIT));
	case IORING_OP_SENDMSG:
		return result(sendmsg(sqe->fd, addr,
				      (int)sqe->msg_flags | MSG_DONTWAIT | MSG_NOSIGNAL));
	case IORING_OP_ACCEPT:
		return accept_now(sqe, ready);
	case IORING_OP_CONNECT:
		return connect_now(sqe, ready);
	case IORING_OP_POLL_ADD: {
		uint32_t got = ready & (sqe->poll32_events | ALWAYS);
		return got ? (int)got : -EAGAIN;
	}
	case IORING_OP_OPENAT:
	case IORING_OP_FSYNC:
	case IORING_OP_STATX:
	case IORING_OP_UNLINKAT:
	case IORING_OP_RENAMEAT:
	case IORING_OP_MKDIRAT:
	case IORING_OP_FALLOCATE:
	case IORING_OP_SPLICE:
	case IORING_OP_TEE:
		return TO_POOL; /* path and file calls, and splices that may block */
	case IORING_OP_SHUTDOWN:
		return result(shutdown(sqe->fd, (int)sqe->len));
	case AFE_IORING_OP_FUTEX_WAKE:
		return afe_futex_wake_on(addr, (int)sqe->addr2, !(sqe->fd & AFE_FUTEX2_PRIVATE));
	default: /* FUTEX_WAITV, which AFE does not submit */
		return -EOPNOTSUPP;
	}
}

/* Whether fd is open for access (O_RDONLY or O_WRONLY; either is in
 * O_RDWR). */
static bool open_for(int fd, int access)
{
	int mode = fcntl(fd, F_GETFL);
	return mode >= 0 && ((mode & O_ACCMODE) == access || (mode & O_ACCMODE) == O_RDWR);
}

/* splice(2) or tee(2) as the SQE asks: the output fd in fd, the input in
 * splice_fd_in, offsets -1 for "none" (the fd's position). */
static int splice_call(const struct io_uring_sqe *sqe)
{
	int in = sqe->splice_fd_in, out = sqe->fd;
	if (sqe->opcode == IORING_OP_TEE)
		return result(tee(in, out, sqe->len, sqe->splice_flags));
	loff_t off_in = (loff_t)sqe->splice_off_in, off_out = (loff_t)sqe->off;
	int res = result(splice(in, sqe->splice_off_in == (uint64_t)-1 ? NULL : &off_in, out,
				sqe->off == (uint64_t)-1 ? NULL : &off_out, sqe->len,
				sqe->splice_flags));
	/* An offset on a pipe: splice(2) says so before it checks that in
	 * reads and out writes, io_uring after (-EBADF), as sendfile(2). */
	if (res == -ESPIPE && (!open_for(in, O_RDONLY) || !open_for(out, O_WRONLY)))
		return -EBADF;
	return res;
}

/* A file operation, on a blocking thread: what TO_POOL sent there. */
static intptr_t file_call(void *arg)
{
	struct file_job *fj = arg;
	const struct io_uring_sqe *sqe = sqe_of(fj->io);
	void *addr = (void *)(uintptr_t)sqe->addr;
	struct iovec one;
	const struct iovec *iov;
	int count;
	switch (sqe->opcode) {
	case IORING_OP_OPENAT:
		return result(openat(sqe->fd, addr, (int)sqe->open_flags, (mode_t)sqe->len));
	case IORING_OP_FSYNC:
		return result(sqe->fsync_flags & IORING_FSYNC_DATASYNC ? fdatasync(sqe->fd)
								       : fsync(sqe->fd));
	case IORING_OP_STATX: /* liburing's layout: mask in len, the buffer in off */
		return result(statx(sqe->fd, addr, (int)sqe->statx_flags, sqe->len,
				    (struct statx *)(uintptr_t)sqe->off));
	case IORING_OP_UNLINKAT:
		return result(unlinkat(sqe->fd, addr, (int)sqe->unlink_flags));
	case IORING_OP_RENAMEAT: /* the new directory fd in len, its path in off */
		return result(renameat2(sqe->fd, addr, (int)sqe->len,
					(const char *)(uintptr_t)sqe->off, sqe->rename_flags));
	case IORING_OP_MKDIRAT:
		return result(mkdirat(sqe->fd, addr, (mode_t)sqe->len));
	case IORING_OP_FALLOCATE: /* mode in len, the length in addr */
		return result(fallocate(sqe->fd, (int)sqe->len, (off_t)sqe->off,
					(off_t)sqe->addr));
	case IORING_OP_SPLICE:
	case IORING_OP_TEE:
		return splice_call(sqe);
	default:
		rw_iov(sqe, &one, &iov, &count);
		return file_rw(sqe, iov, count);
	}
}

/* The job's waker, called once from the blocking thread when it is done:
 * hands the job back to the ring thread. */
static void job_done(void *data)
{
	struct file_job *fj = data;
	struct afe_epoll *e = fj->e;
	/* Read first: once pushed, the ring thread may finish, stop and free
	 * e. The ring outlives this call: the runtime shuts the pool down,
	 * waiting for its threads, before it frees the ring. */
	struct afe_ring *ring = e->ring;
	/* Relaxed: only a guess for the exchange below, which orders. */
	struct file_job *head = atomic_load_explicit(&e->done, memory_order_relaxed);
	do
		fj->next_done = head;
	/* Seq_cst: pairs with the ring thread's exchange in take_done (the
	 * job's output travels with it) and, as push_request's does in
	 * ring.c, with its check after setting sleeping. */
	while (!atomic_compare_exchange_weak_explicit(&e->done, &head, fj, memory_order_seq_cst,
						      memory_order_relaxed));
	afe_ring_wake(ring);
}

static void job_keep(void *data)
{
	(void)data; /* the pool moves the waker, never copies it */
}

static const struct afe_waker_vtable job_waker = {job_keep, job_done, job_done, job_keep};

/* ---- operations ---------------------------------------------------------- */

static void advance(struct afe_epoll *e, struct afe_io *io, uint32_t ready);

/* Every result of io is in: hands it to its poller. */
static void finish(struct afe_epoll *e, struct afe_io *io)
{
	if (io->has_timeout)
		heap_remove(e, io);
	afe__ring_count(&e->ring->io_counts.finished, 1);
	io->completed = true;
	afe__io_finish(io); /* or, when its cancel request arrives */
}

/* io's current operation ended with res: the pair's second starts, or io
 * finishes. A pair's first failing cancels the second, as a link does. */
static void complete(struct afe_epoll *e, struct afe_io *io, int res)
{
	bool first = io->cqes_due == 0;
	if (io->linked && first && res >= 0) {
		io->res = res;
		io->cqes_due = 1;
		advance(e, io, 0);
		return;
	}
	if (io->linked && first) {
		io->res = res;
		io->linked->res = -ECANCELED;
	} else if (io->linked) {
		io->linked->res = res;
	} else {
		io->res = res;
	}
	io->timeout_res = -ECANCELED; /* its timeout, if any, did not fire */
	finish(e, io);
}

/* The bytes a MSG_WAITALL send or receive moved before it ended early (a
 * cancel, its timeout), or 0: as io_uring (5.18) reports them, instead of
 * the error. Not in a pair's second operation, whose first already
 * counted. */
static int32_t moved_before_the_end(struct afe_io *io)
{
	return io->cqes_due ? 0 : *moved_of(io);
}

/* Takes io out of the waiters and ends it with err, or with the bytes it
 * moved (then a pair's second operation is cancelled, as a short first
 * one cancels it). */
static void withdraw(struct afe_epoll *e, struct afe_io *io, int err)
{
	unwait(e, io);
	int32_t moved = moved_before_the_end(io);
	if (moved <= 0) {
		complete(e, io, err);
		return;
	}
	io->res = moved;
	if (io->linked)
		io->linked->res = -ECANCELED;
	io->timeout_res = -ECANCELED; /* its timeout, if any, did not fire */
	finish(e, io);
}

/* Makes io wait until its fd is ready, or ends it: a regular file is
 * always ready to poll; any other refusal is its result. */
static void wait_on(struct afe_epoll *e, struct afe_io *io)
{
	const struct io_uring_sqe *sqe = sqe_of(io);
	int err = sqe->fd < 0 ? -EBADF : link_waiter(e, io);
	if (err == 0) {
		err = update_interest(e, sqe->fd);
		if (err == 0)
			return;
		unlink_waiter(e, io);
	}
	if (err == -EPERM && sqe->opcode == IORING_OP_POLL_ADD)
		err = (int)(sqe->poll32_events & (EPOLLIN | EPOLLOUT | EPOLLRDNORM | EPOLLWRNORM));
	complete(e, io, err);
}

/* close(2), after ending the operations that wait on fd with -EBADF: once
 * closed, epoll would never report it again. A kept registration is
 * deleted first: a copy of the fd (dup, fork) would keep it alive, and
 * its events would come in the name of the number's next file. */
static int close_fd(struct afe_epoll *e, int fd)
{
	struct fd_waiters *w = slot_if_any(e, fd);
	if (w)
		while (w->head)
			withdraw(e, w->head, -EBADF);
	if (w && w->kept) {
		struct epoll_event none = {0};
		ctl(e->epfd, EPOLL_CTL_DEL, fd, &none);
	}
	int res = result(close(fd));
	if (w) { /* gone with the file, if it was the last */
		w->registered = 0;
		w->armed = w->kept = w->received = false;
	}
	return res;
}

/*
 * Runs io's current operation as a job on the blocking pool. It cannot be
 * withdrawn from there, so its timeout is dropped (has_timeout is the ring
 * thread's once submitted): the job's end completes it.
 */
static void to_pool(struct afe_epoll *e, struct afe_io *io)
{
	if (io->has_timeout) {
		heap_remove(e, io);
		io->has_timeout = false;
	}
	struct file_job *fj = malloc(sizeof(*fj));
	if (!fj) {
		complete(e, io, -ENOMEM);
		return;
	}
	fj->io = io;
	fj->e = e;
	afe_blocking_init(&fj->job, file_call, fj);
	struct afe_waker waker = {.vtable = &job_waker, .data = fj};
	int err = afe_blocking_pool_queue(e->ring->options.pool, &fj->job, &waker);
	if (err < 0) {
		free(fj);
		complete(e, io, err);
	}
}

/* What to do after a try of io's operation that gave res. */
static void settle(struct afe_epoll *e, struct afe_io *io, int res)
{
	const struct io_uring_sqe *sqe = sqe_of(io);
	struct fd_waiters *w = slot_if_any(e, sqe->fd);
	if (w && w->kept)
		note_try(w, sqe, res);
	else if (w && res >= 0 && is_socket_receive(sqe))
		w->received = w->registered != 0;
	if (res == -EAGAIN)
		wait_on(e, io);
	else if (res == TO_POOL)
		to_pool(e, io);
	else
		complete(e, io, res);
}

/* A futex wait: -EINVAL for a misaligned word and -EAGAIN at once when
 * the word no longer holds the value, as io_uring's; else it waits for
 * check_futexes. */
static void futex_wait(struct afe_epoll *e, struct afe_io *io)
{
	if (sqe_of(io)->addr % sizeof(uint32_t))
		complete(e, io, -EINVAL); /* a misaligned word, as the kernel says */
	else if (word_moved(sqe_of(io)))
		complete(e, io, -EAGAIN);
	else
		link_waiter(e, io); /* cannot fail: no memory to find */
}

/*
 * Whether io, a receive on a socket that operations waited on before (its
 * fd has a registration), waited for epoll's report instead of a first
 * try. A connection's next receive comes right after its answer went out,
 * long before the peer's next bytes: the try would fail, one system call
 * per message (5% of the echo server's time at 64 connections). Arming
 * the registration, level triggered, reports bytes already there in the
 * next round, so nothing is missed. false: io was not made to wait.
 *
 * Only once a receive got an answer from the file registered: a file
 * that never reports readable (a listening socket an accept waited on, a
 * pipe or eventfd that took over a connection's number) fails a receive
 * at once (-ENOTCONN, -ENOTSOCK), and would make it wait for ever. A
 * registration made anew (the number's file changed) tells the same.
 */
static bool waited_first(struct afe_epoll *e, struct afe_io *io)
{
	const struct io_uring_sqe *sqe = sqe_of(io);
	struct fd_waiters *w = slot_if_any(e, sqe->fd);
	if (!is_socket_receive(sqe) || !w || !w->registered || !w->received)
		return false;
	link_waiter(e, io); /* cannot fail: the fd's slot exists */
	if (update_interest(e, sqe->fd) == 0 && w->received)
		return true;
	/* The number went to a file epoll refuses, or to another file: try
	 * it (and drop a registration made for nothing). */
	unlink_waiter(e, io);
	update_interest(e, sqe->fd);
	return false;
}

/*
 * Whether io, a receive on a kept fd where epoll reported nothing since a
 * try last found nothing to read, was made to wait instead of trying:
 * the try would fail. false: io was not made to wait.
 */
static bool waited_on_kept(struct afe_epoll *e, struct fd_waiters *w, struct afe_io *io)
{
	const struct io_uring_sqe *sqe = sqe_of(io);
	if (!is_receive(sqe) || (w->ready & (wanted(sqe) | ALWAYS)))
		return false;
	link_waiter(e, io); /* cannot fail: the fd's slot exists */
	return true;
}


/* Tries io's current operation; it completes, waits, or goes to the pool. */
static void advance(struct afe_epoll *e, struct afe_io *io, uint32_t ready)
{
	const struct io_uring_sqe *sqe = sqe_of(io);
	if (is_futex_wait(sqe)) {
		futex_wait(e, io);
		return;
	}
	*moved_of(io) = 0;
	if (io->fd_owned && !io->cqes_due && sqe->fd >= 0)
		keep_registered(e, sqe->fd);
	struct fd_waiters *kept = kept_slot(e, sqe->fd);
	if (ready == 0 && (kept ? waited_on_kept(e, kept, io) : waited_first(e, io)))
		return;
	/* A kept registration reported what is ready already, perhaps
	 * before this operation came, and will not report it again: a poll
	 * asks the fd itself. */
	if (ready == 0 && kept && sqe->opcode == IORING_OP_POLL_ADD)
		ready = ready_now(sqe->fd, sqe->poll32_events);
	settle(e, io,
	       sqe->opcode == IORING_OP_CLOSE ? close_fd(e, sqe->fd) : attempt(io, sqe, ready));
}

/* Completes the operations whose jobs ended. */
static void take_done(struct afe_epoll *e)
{
	/* Seq_cst: pairs with job_done's push. */
	struct file_job *fj = atomic_exchange_explicit(&e->done, NULL, memory_order_seq_cst);
	while (fj) {
		struct file_job *next = fj->next_done;
		struct afe_io *io = fj->io;
		int res = (int)fj->job.output;
		free(fj);
		complete(e, io, res);
		fj = next;
	}
}

static void start(struct afe_epoll *e, struct afe_io *io)
{
	afe__ring_count(&e->ring->io_counts.issued, 1);
	io->cqes_due = 0;
	io->ring_next = NULL;
	io->ring_pprev = NULL;
	if (io->has_timeout) {
		uint64_t ns = (uint64_t)io->timeout.tv_sec * 1000000000u +
			      (uint64_t)io->timeout.tv_nsec;
		io->timeout.tv_sec = (int64_t)(now_ns() + ns);
		if (heap_push(e, io) < 0) {
			io->has_timeout = false;
			complete(e, io, -ENOMEM);
			return;
		}
	}
	advance(e, io, 0);
}

/* The poller's cancel request. An operation not completed waits on its
 * fd, or runs on the pool (not waiting): then its job's end finishes it. */
static void take_cancel(struct afe_epoll *e, struct afe_io *io)
{
	io->cancel_taken = true;
	if (io->completed)
		afe__io_finish(io);
	else if (io->ring_pprev)
		withdraw(e, io, -ECANCELED);
}

static void issue_backlog(struct afe_epoll *e)
{
	struct afe_ring *r = e->ring;
	/* Relaxed: only whether to refuse; a stop seen late is seen next
	 * round, where run's acquire load orders what came before it. */
	bool stopping = atomic_load_explicit(&r->stopping, memory_order_relaxed);
	while (r->backlog) {
		struct afe_io_request *req = r->backlog;
		r->backlog = req->next;
		if (stopping)
			afe__ring_refuse(r, req);
		else if (req == &req->io->cancel)
			take_cancel(e, req->io);
		else
			start(e, req->io);
	}
	r->backlog_tail = &r->backlog;
}

/* Tries the operations waiting on fd that want what came. After each
 * completion the list may have changed (a linked close ends others), so
 * the walk starts over; an operation that still waits is only retried. */
static void handle_ready(struct afe_epoll *e, int fd, uint32_t revents)
{
	if (!slot_if_any(e, fd))
		return;
	if (e->fds[fd]->kept)
		e->fds[fd]->ready |= revents;
	else
		e->fds[fd]->armed = false; /* one-shot: this event disarmed it */
	bool again = true;
	while (again) {
		again = false;
		for (struct afe_io *io = e->fds[fd]->head; io; io = io->ring_next) {
			const struct io_uring_sqe *sqe = sqe_of(io);
			if (!(revents & (wanted(sqe) | ALWAYS)))
				continue;
			int res = attempt(io, sqe, revents);
			if (res == -EAGAIN && e->fds[fd]->kept)
				note_try(e->fds[fd], sqe, res);
			if (res != -EAGAIN) {
				unlink_waiter(e, io);
				settle(e, io, res);
				again = true;
				break;
			}
		}
	}
	update_interest(e, fd);
}

/* Ends the operations whose timeouts came: -ETIMEDOUT to the poller. */
static void expire_timeouts(struct afe_epoll *e)
{
	uint64_t now = now_ns();
	while (e->ntimed && deadline_of(e->timed[0]) <= now) {
		struct afe_io *io = e->timed[0];
		unwait(e, io);
		int32_t moved = moved_before_the_end(io); /* timed: never a pair */
		io->res = moved > 0 ? moved : -ECANCELED;
		io->timeout_res = -ETIME;
		finish(e, io);
	}
}

/* Stopping: every operation waiting ends -ECANCELED; those on the pool
 * end with their jobs. */
static void cancel_everything(struct afe_epoll *e)
{
	for (size_t fd = 0; fd < e->nfds; fd++)
		while (e->fds[fd] && e->fds[fd]->head)
			withdraw(e, e->fds[fd]->head, -ECANCELED);
	while (e->futexes.head)
		withdraw(e, e->futexes.head, -ECANCELED);
}

/* Ends the futex waits whose words changed: woken, result 0. */
static void check_futexes(struct afe_epoll *e)
{
	for (struct afe_io *io = e->futexes.head, *next; io; io = next) {
		next = io->ring_next;
		if (word_moved(sqe_of(io))) {
			unlink_waiter(e, io);
			complete(e, io, 0); /* a pair's second may start, not in this list */
		}
	}
}

/* ---- the loop ------------------------------------------------------------ */

/* Whether every operation started has finished; the ring thread's own
 * counts, read relaxed. */
static bool nothing_in_flight(const struct afe_ring *r)
{
	return atomic_load_explicit(&r->io_counts.issued, memory_order_relaxed) ==
	       atomic_load_explicit(&r->io_counts.finished, memory_order_relaxed);
}

#define MAX_EVENTS 64

/* How long epoll_wait may sleep: until the next sleep's tick or the next
 * operation's deadline, rounded up to a millisecond; -1: for ever. */
static int wait_ms(struct afe_epoll *e)
{
	uint64_t wait = UINT64_MAX;
	struct __kernel_timespec ts;
	if (afe__sleeps_plan_wait(&e->ring->sleeps, &ts))
		wait = (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
	if (e->ntimed) {
		uint64_t at = deadline_of(e->timed[0]), now = now_ns();
		uint64_t left = at > now ? at - now : 0;
		wait = left < wait ? left : wait;
	}
	if (e->futexes.head)
		wait = wait < 1000000u ? wait : 1000000u; /* see check_futexes */
	if (wait == UINT64_MAX)
		return -1;
	uint64_t ms = (wait + 999999u) / 1000000u;
	return ms > INT_MAX ? INT_MAX : (int)ms;
}

static void handle_events(struct afe_epoll *e, const struct epoll_event *events, int n)
{
	for (int i = 0; i < n; i++) {
		if (events[i].data.fd == e->ring->bell_fd) {
			eventfd_t count;
			eventfd_read(e->ring->bell_fd, &count); /* non-blocking: drains it */
		} else {
			handle_ready(e, events[i].data.fd, events[i].events);
		}
	}
}

static void run(struct afe_ring *r)
{
	struct afe_epoll *e = r->impl;
	struct epoll_event events[MAX_EVENTS];
	for (;;) {
		afe__ring_take_requests(r);
		issue_backlog(e);
		take_done(e);
		check_futexes(e);
		afe__sleeps_expire(&r->sleeps);
		expire_timeouts(e);
		if (afe_defer_wakes_deliver())
			continue; /* polled here: take what they submitted */
		/* Acquire: pairs with afe_ring_stop's store (ring.c). */
		bool stopping = atomic_load_explicit(&r->stopping, memory_order_acquire);
		if (stopping) {
			cancel_everything(e);
			afe__sleeps_close(&r->sleeps);
			if (nothing_in_flight(r))
				return;
		}
		/* Seq_cst store, then the final check of requests, finished
		 * jobs and the stop: pairs with ring_doorbell (ring.c), which
		 * push_request and job_done call after their pushes. */
		atomic_store(&r->sleeping, true);
		bool woken = atomic_load(&r->requests) || atomic_load(&e->done) ||
			     (!stopping && atomic_load(&r->stopping));
		int timeout = woken ? 0 : wait_ms(e);
		afe_defer_wakes_flush(); /* the tasks woken this round */
		int n = epoll_wait(e->epfd, events, MAX_EVENTS, timeout);
		atomic_store(&r->sleeping, false);
		afe__sleeps_awake(&r->sleeps);
		if (n > 0)
			handle_events(e, events, n);
	}
}

/* ---- start and stop ------------------------------------------------------ */

static int setup(struct afe_ring *r, bool quiet)
{
	(void)quiet; /* nothing to fall back to */
	struct afe_epoll *e = calloc(1, sizeof(*e));
	if (!e)
		return -ENOMEM;
	e->ring = r;
	e->epfd = epoll_create1(EPOLL_CLOEXEC);
	int err = 0;
	const char *call = "epoll_create1";
	if (e->epfd >= 0) {
		call = "eventfd";
		r->bell_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	}
	if (e->epfd >= 0 && r->bell_fd >= 0) {
		call = "epoll_ctl";
		struct epoll_event ev = {.events = EPOLLIN, .data.fd = r->bell_fd};
		if (ctl(e->epfd, EPOLL_CTL_ADD, r->bell_fd, &ev) == 0) {
			r->impl = e;
			return 0;
		}
	}
	err = -errno;
	afe__ring_report_error(call, err, NULL);
	if (e->epfd >= 0)
		close(e->epfd);
	free(e);
	return err;
}

static void teardown(struct afe_ring *r)
{
	struct afe_epoll *e = r->impl;
	close(e->epfd);
	for (size_t fd = 0; fd < e->nfds; fd++)
		free(e->fds[fd]);
	free(e->fds);
	free(e->timed);
	free(e);
	r->impl = NULL;
}

const struct afe_ring_backend afe__backend_epoll = {
	.name = "epoll",
	.setup = setup,
	.run = run,
	.teardown = teardown,
};
