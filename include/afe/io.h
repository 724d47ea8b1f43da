/* SPDX-License-Identifier: MIT */
/*
 * I/O operations through the runtime's io_uring.
 *
 * Each operation is a future (struct afe_io) whose result is the kernel's:
 * a byte count, a file descriptor, 0, or a negative errno (-EBADF for a bad
 * fd, -ECONNRESET for a peer that reset, 0 bytes at end of file). Set one
 * up with an afe_io_*_init call, then await &io.base from a task. Awaiting
 * holds no thread: the operation goes to the ring and the task is woken
 * when its completion arrives. Two kinds end at their first poll instead,
 * on the polling thread: a read or write of a file at an offset that the
 * kernel does without waiting (RWF_NOWAIT: a read of cached pages), and a
 * file write it cannot start without waiting (ext4 for every buffered
 * write) when the polling worker has no other task queued: that worker
 * then makes the write, waiting, as write(2) would, instead of idling
 * while the kernel hands it to a thread of its own. A worker with tasks
 * queued sends such a write to the ring.
 *
 * A write or send to a pipe or socket may move fewer bytes than asked, on
 * every backend, blocking fd or not: io_uring completes it with what the
 * pipe or socket took once it had to wait (on Linux 6.18, 64 KiB of a
 * 1 MiB pipe write and 219 KiB of a 4 MiB Unix-socket send to slow
 * readers). Loop on the count, or use afe_write_all (afe/fs.h),
 * afe_send_all (afe/net.h) or MSG_WAITALL on a stream socket.
 *
 * A non-blocking fd (O_NONBLOCK, SOCK_NONBLOCK) is waited on as a blocking
 * one is from Linux 6.3 (checked on 6.18: reads of pipes, FIFOs,
 * eventfds and Unix sockets, a TCP listener's accept). Before it, an
 * operation on one may end with -EAGAIN after a wake-up that found
 * nothing ready (liburing issue 364; 6.3 retries up to 128 times), and
 * a send retried past that cap still can under heavy load. AFE's own
 * fds are blocking for that reason (afe_tcp_connect's, afe_udp_bind's,
 * the accept stream's connections); with one of your own, treat -EAGAIN
 * as "await afe_io_poll_init for it, then try again". The epoll backend
 * waits on both kinds alike.
 *
 * Buffers, paths and addresses passed in belong to the operation until it
 * completes, and so does the struct afe_io itself: keep it in your future's
 * state (an await does), never on a poll function's stack. A cancelled
 * operation is cancelled through the ring and its completion awaited before
 * the future is ready, so nothing the kernel writes to outlives it.
 *
 * Every init function only fills the struct; errors show in the result.
 * Polling outside a runtime's task gives -EINVAL; after the runtime began
 * shutting down, -ESHUTDOWN (at the second poll when the ring thread has
 * ended: the first gives way, see afe_runtime_destroy).
 *
 * On the epoll backend (afe_runtime_backend, afe/runtime.h) the ring
 * thread makes the calls itself on sockets, pipes and other pollable fds,
 * without blocking, once epoll says the fd is ready; reads and writes of
 * regular files, block devices and directories, openat, fsync, statx,
 * unlinkat, renameat, mkdirat, fallocate, splice and tee run as jobs on
 * the runtime's blocking pool (afe/blocking.h). The results are
 * the same as with io_uring, with these differences:
 * - afe_io_close ends the operations waiting on its fd with -EBADF
 *   (io_uring lets them wait on the closed file). Close an fd some
 *   operation waits on in any other way and that operation waits until
 *   cancelled or timed out.
 * - The TCP server's connections (afe_tcp_server) stay registered with
 *   epoll from one wait to the next, because the server closes them
 *   through afe_io_close; other fds are armed again at every wait (an
 *   epoll_ctl), since they may be closed behind the runtime's back.
 * - A connect on a blocking socket makes it non-blocking for the call.
 *   An accept on a blocking listening socket, or a read of a blocking
 *   file the kernel cannot read with RWF_NOWAIT, is made once the fd polls
 *   ready: another process taking the data first blocks the ring thread.
 * - A futex wait ends (0) when its word no longer holds the value, which
 *   the ring thread checks every round, at least every millisecond while
 *   any futex wait is pending; it is not in the kernel's queue, so a wake
 *   that leaves the word as it was neither ends it nor counts it (the
 *   futex wake is the system call, counting the kernel's waiters only).
 * - A file operation on the blocking pool cannot be withdrawn: cancelling
 *   it, or its timeout, waits for the call to return, and its result is
 *   the call's (a cancel of an io_uring file read in progress may also
 *   find it too late to stop).
 * Otherwise cancel (-ECANCELED) and per-operation timeouts (-ETIMEDOUT)
 * keep their meaning on both backends.
 */
#ifndef AFE_IO_H
#define AFE_IO_H

#include <stdatomic.h>
#include <stdint.h>

#include "common.h"
#include "future.h"
#include "sleep.h"

struct afe_runtime;
struct iovec;
struct sockaddr;
struct msghdr;
struct statx;

/* A request queued for the ring's thread: the operation, or its cancel. */
struct afe_io_request {
	/* Private. */
	struct afe_io_request *next;
	struct afe_io *io;
};

/* A kernel timespec (struct __kernel_timespec). */
struct afe_io_timespec {
	int64_t tv_sec;
	long long tv_nsec;
};

/* One operation. */
struct afe_io {
	struct afe_future base;
	/* Private. */
	struct afe_io_request submit, cancel;
	struct afe_runtime *rt;
	int32_t res, timeout_res;
	uint8_t cqes_due;	 /* ring thread: completions still to come */
	bool cancel_taken;	 /* ring thread: took the cancel request */
	bool completed;		 /* ring thread: every completion arrived */
	bool submitted;		 /* poller: handed to the ring */
	bool has_timeout;
	bool follows;		 /* the second of a linked pair */
	uint8_t waitall;	 /* ring thread: before Linux 5.18, see backend_uring.c */
	bool fd_owned;		 /* its fd is the poller's context's owned_fd */
	atomic_flag lock;	 /* guards the three below */
	bool done;		 /* the ring thread is finished with it */
	bool cancel_requested;	 /* the poller queued the cancel request */
	uint32_t cqe_flags;	 /* ring thread: the flags of the result's CQE */
	struct afe_waker waker;
	/* Multishot operations: called on the ring thread for each result
	 * that is not the last (the last one completes the future), with
	 * its CQE's flags (a provided buffer's id). */
	void (*on_more)(struct afe_io *io, int32_t res, uint32_t flags);
	struct afe_io_timespec timeout;
	struct afe_io *linked; /* afe_io_link: the operation that follows */
	/* Ring thread, before Linux 5.19 (no cancel matching everything):
	 * the list of operations in flight its stop cancels one by one. */
	struct afe_io *ring_next, **ring_pprev;
	/* The prepared struct io_uring_sqe. */
	_Alignas(8) unsigned char sqe[64];
};

/* Does nothing; result 0. Measures the ring's round trip. */
AFE_EXPORT void afe_io_nop_init(struct afe_io *io);

/* read(2)/write(2) of len bytes at offset, or at the file position when
 * offset is negative (-1: any negative offset means the position, where
 * pread(2) would give -EINVAL), and for pipes and sockets, whose offset
 * is ignored. */
AFE_EXPORT void afe_io_read_init(struct afe_io *io, int fd, void *buf, unsigned len,
				 int64_t offset);
AFE_EXPORT void afe_io_write_init(struct afe_io *io, int fd, const void *buf, unsigned len,
				  int64_t offset);
AFE_EXPORT void afe_io_readv_init(struct afe_io *io, int fd, const struct iovec *iov,
				  unsigned count, int64_t offset);
AFE_EXPORT void afe_io_writev_init(struct afe_io *io, int fd, const struct iovec *iov,
				   unsigned count, int64_t offset);

/* recv(2)/send(2) on a socket; flags are MSG_* flags. With MSG_WAITALL on
 * a stream socket the result is the whole len, or what moved before the
 * end of the stream, an error, a cancel or the timeout (the error when
 * nothing moved). Before Linux 5.18 (no AFE_URING_WAITALL) the kernel
 * would end it short: the ring thread submits the rest after each short
 * part. sendmsg/recvmsg get no such help: before 5.18 theirs may end short. */
AFE_EXPORT void afe_io_recv_init(struct afe_io *io, int fd, void *buf, unsigned len, int flags);
AFE_EXPORT void afe_io_send_init(struct afe_io *io, int fd, const void *buf, unsigned len,
				 int flags);

/*
 * send(2) without copying buf into the kernel (io_uring's SEND_ZC, from
 * Linux 6.1): the network card, or the loopback's receiver, reads buf itself.
 * flags and the result are afe_io_send_init's (a byte count, short
 * unless MSG_WAITALL, or -EPIPE, -ECONNRESET, -EBADF, -ENOTSOCK, ...;
 * MSG_NOSIGNAL is always added: a closed peer is an error, never a
 * SIGPIPE). buf must stay untouched until the operation completes, and it
 * completes only once the kernel no longer reads it, which on TCP is when
 * the peer acknowledged the bytes: later than a plain send, which is done
 * once they are copied. Cancelled or timed out, it also ends only then,
 * with -ECANCELED (-ETIMEDOUT) or the bytes it moved.
 * Worth it for large sends: pinning the pages and the second completion
 * cost more than copying a few KiB (below about 10 KiB, use
 * afe_io_send_init). Zero-copy is for TCP and UDP sockets; on any other
 * (a Unix socket), on the epoll backend and without AFE_URING_SEND_ZC
 * (an older kernel, or $AFE_URING_FEATURES below 6.1), the same future
 * makes a plain send, with the same results. Checking the socket costs
 * the poller two getsockopt(2) calls on io_uring.
 */
AFE_EXPORT void afe_io_send_zc_init(struct afe_io *io, int fd, const void *buf, unsigned len,
				    int flags);

/* accept4(2): result is the new fd. addr and addrlen may be NULL. */
AFE_EXPORT void afe_io_accept_init(struct afe_io *io, int fd, struct sockaddr *addr,
				   unsigned *addrlen, int flags);
/* connect(2): result 0 once connected. */
AFE_EXPORT void afe_io_connect_init(struct afe_io *io, int fd, const struct sockaddr *addr,
				    unsigned addrlen);

AFE_EXPORT void afe_io_close_init(struct afe_io *io, int fd);
/* openat(2): result is the new fd. */
AFE_EXPORT void afe_io_openat_init(struct afe_io *io, int dirfd, const char *path, int flags,
				   unsigned mode);
/* fsync(2), or fdatasync(2) when datasync is true. */
AFE_EXPORT void afe_io_fsync_init(struct afe_io *io, int fd, bool datasync);
/* Waits until fd is ready for events (POLLIN, POLLOUT, ...); result is the
 * events that are ready. */
AFE_EXPORT void afe_io_poll_init(struct afe_io *io, int fd, unsigned events);

/* sendmsg(2)/recvmsg(2): datagrams with their addresses, several buffers,
 * ancillary data (SCM_RIGHTS passes fds over a Unix socket). msg and what
 * it points to must stay put until the operation completes; recvmsg
 * fills in msg_namelen, msg_controllen and msg_flags as recvmsg(2) does.
 * Result: the byte count. */
AFE_EXPORT void afe_io_sendmsg_init(struct afe_io *io, int fd, const struct msghdr *msg,
				    int flags);
AFE_EXPORT void afe_io_recvmsg_init(struct afe_io *io, int fd, struct msghdr *msg, int flags);
/* shutdown(2): how is SHUT_RD, SHUT_WR or SHUT_RDWR (SHUT_WR half-closes:
 * the peer reads end-of-file, and can still send). Result 0. */
AFE_EXPORT void afe_io_shutdown_init(struct afe_io *io, int fd, int how);

/*
 * Futexes through the ring (Linux 6.7): the waiting task holds no thread.
 * AFE_FUTEX_SHARED words may be in memory shared between processes (a
 * shm_open or MAP_SHARED mapping); AFE_FUTEX_PRIVATE words are faster but
 * seen by this process only. A wait and a wake meet only when both use the
 * same kind.
 *
 * afe_io_futex_wait_init: result 0 once the 32-bit word is woken, -EAGAIN
 * at once when it no longer holds expected (re-check what you wait for),
 * -ECANCELED when cancelled. Wakes can be spurious: re-check after any.
 * afe_io_futex_wake_init: wakes up to nr waiters; result how many woke.
 * word must be 4-byte aligned (else -EINVAL). Both fail with -EOPNOTSUPP
 * on a runtime without AFE_URING_FUTEX (afe_runtime_uring_features: an
 * older kernel, or $AFE_URING_FEATURES below 6.7).
 */
#define AFE_FUTEX_SHARED 0u
#define AFE_FUTEX_PRIVATE 128u /* FUTEX2_PRIVATE */
AFE_EXPORT void afe_io_futex_wait_init(struct afe_io *io, const _Atomic uint32_t *word,
				       uint32_t expected, unsigned flags);
AFE_EXPORT void afe_io_futex_wake_init(struct afe_io *io, const _Atomic uint32_t *word,
				       uint32_t nr, unsigned flags);

/*
 * Gives an initialised, not yet polled operation a time limit: if it has
 * not completed ns nanoseconds after it was submitted, it is cancelled and
 * its result is -ETIMEDOUT. Returns 0, or -EINVAL for a NULL io, an
 * operation already polled, or one of a linked pair (afe_io_link).
 */
AFE_EXPORT int afe_io_set_timeout(struct afe_io *io, uint64_t ns);

/*
 * Links two initialised, not yet polled operations in the kernel: `then`
 * starts only once `io` completed in full, and both go to the ring in one
 * request and come back with one wake. Await io only; once it is ready,
 * then.base.result holds the second result (-ECANCELED when io failed, and
 * awaiting then returns it at once). Cancelling io cancels both.
 *
 * A send or write breaks the link only on an error, so use MSG_WAITALL on a
 * send whose peer must see all of it before `then` matters: a short send
 * then counts as failed. (Before Linux 5.18 the ring thread submits `then`
 * itself once such a send or recv moved everything: see afe_io_send_init.)
 * The request/response loop of a server:
 *
 *   afe_io_send_init(&self->send, fd, out, n, MSG_WAITALL | MSG_NOSIGNAL);
 *   afe_io_recv_init(&self->recv, fd, in, sizeof(in), 0);
 *   afe_io_link(&self->send, &self->recv);
 *   AFE_AWAIT(&self->send.base);   // then self->recv.base.result
 *
 * Returns 0, or -EINVAL for a NULL or identical pair, one already polled
 * or linked, or one with a timeout (afe_io_set_timeout).
 */
AFE_EXPORT int afe_io_link(struct afe_io *io, struct afe_io *then);

/*
 * Files and directories by path (each as its *at(2) call: dirfd is a
 * directory's fd or AT_FDCWD, relative paths start there). The path
 * strings and *out belong to the operation until it completes. Results:
 * 0, or -ENOENT (no such file), -EEXIST (mkdirat: it exists), -ENOTDIR,
 * -EACCES, -EBADF (a bad dirfd with a relative path), ...
 *
 * afe_io_statx_init: statx(2); fills *out with the fields in mask
 * (STATX_BASIC_STATS, STATX_SIZE, ...); flags are AT_* flags
 * (AT_SYMLINK_NOFOLLOW; AT_EMPTY_PATH with "" for dirfd itself).
 * afe_io_unlinkat_init: unlinkat(2); flags 0, or AT_REMOVEDIR for an
 * empty directory. afe_io_renameat_init: renameat2(2); flags 0 or
 * RENAME_NOREPLACE, RENAME_EXCHANGE. afe_io_mkdirat_init: mkdirat(2),
 * mode as for mkdir(2) (less the umask).
 */
AFE_EXPORT void afe_io_statx_init(struct afe_io *io, int dirfd, const char *path, int flags,
				  unsigned mask, struct statx *out);
AFE_EXPORT void afe_io_unlinkat_init(struct afe_io *io, int dirfd, const char *path, int flags);
AFE_EXPORT void afe_io_renameat_init(struct afe_io *io, int old_dirfd, const char *old_path,
				     int new_dirfd, const char *new_path, unsigned flags);
AFE_EXPORT void afe_io_mkdirat_init(struct afe_io *io, int dirfd, const char *path,
				    unsigned mode);

/* fallocate(2): mode 0 allocates len bytes at offset (the file grows if
 * they pass its end), FALLOC_FL_KEEP_SIZE, FALLOC_FL_PUNCH_HOLE ... do as
 * there. Result 0, -EBADF, -EINVAL (len <= 0), -EOPNOTSUPP (a mode the
 * filesystem lacks), -ESPIPE (a pipe or socket), -ENOSPC. (ftruncate:
 * afe_io_ftruncate in afe/fs.h, which needs no new kernel.) */
AFE_EXPORT void afe_io_fallocate_init(struct afe_io *io, int fd, int mode, int64_t offset,
				      int64_t len);

/*
 * splice(2): moves up to len bytes from fd_in to fd_out, one of which must
 * be a pipe. The offset of a side that is a file is off_in/off_out, or -1
 * for its file position (a pipe's must be -1). Result: the bytes moved, 0
 * at the end of fd_in's data (a file's end, a pipe with no writer), or
 * -EINVAL (neither side a pipe, an offset on a pipe), -EBADF, ... flags:
 * SPLICE_F_MOVE, SPLICE_F_MORE, as for splice(2).
 * tee(2): copies up to len bytes from pipe fd_in to pipe fd_out without
 * consuming them; result as splice's (-EINVAL when either is no pipe).
 */
AFE_EXPORT void afe_io_splice_init(struct afe_io *io, int fd_in, int64_t off_in, int fd_out,
				   int64_t off_out, unsigned len, unsigned flags);
AFE_EXPORT void afe_io_tee_init(struct afe_io *io, int fd_in, int fd_out, unsigned len,
				unsigned flags);

#endif /* AFE_IO_H */
