/* SPDX-License-Identifier: MIT */
/*
 * Every I/O future that takes an fd, given the wrong one: -1, a closed
 * number, a directory, a file where a socket belongs, the wrong end of a
 * pipe, a socket that listens where a connected one belongs and the
 * other way round, and so on; only cases where the plain system call
 * answers at once. Each must end at once with the -errno the plain call
 * gives, on whichever backend runs it (the CI runs this file with
 * AFE_BACKEND=epoll and AFE_URING_FEATURES=5.15 too). The expected value
 * is the plain call's, made in the test on a fresh fd of the same kind,
 * so the test documents parity rather than hard-coding errnos; where
 * io_uring itself answers otherwise, the comment says so.
 *
 * Each operation runs on a blocking fd and on a non-blocking one (the
 * epoll backend treats them apart), under an afe_timeout of 2 s: a hang
 * is reported as one, naming the operation and the fd, and the sweep
 * goes on; each Test asserts at its end that nothing differed.
 */
#define _GNU_SOURCE /* splice, tee, statx, accept4 */
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/sendfile.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/timerfd.h>
#include <sys/uio.h>
#include <unistd.h>

#include "afe/fs.h"
#include "afe/net.h"
#include "afe/recv_stream.h"
#include "afe/socket.h"
#include "afe/timeout.h"
#include "io_helpers.h"

#define GUARD_NS (2 * 1000000000ull)

/* ---- the wrong fds ------------------------------------------------------- */

enum kind {
	NEGATIVE,     /* -1 */
	CLOSED,	      /* a number no file has */
	DIRECTORY,    /* opened for reading */
	FILE_RDONLY,  /* a regular file opened for reading (4 bytes in it) */
	FILE_WRONLY,  /* the same opened for writing */
	PIPE_READ,    /* the read end of an empty pipe, its writer open */
	PIPE_WRITE,   /* the write end of an empty pipe, its reader open */
	PIPE_WIDOWED, /* the write end of a pipe whose reader closed */
	LISTENING,    /* a TCP socket that listens, nobody connecting */
	UNCONNECTED,  /* a TCP socket neither bound nor connected */
	CONNECTED,    /* one end of a Unix stream socketpair, nothing to read */
	UDP,	      /* a bound UDP socket, not connected */
	EVENTFD,      /* an eventfd at 0 */
	TIMERFD,      /* a timerfd never armed */
	SIGNALFD,     /* a signalfd for SIGUSR2, none pending */
	KINDS
};

static const char *const kind_names[KINDS] = {
	[NEGATIVE] = "-1",
	[CLOSED] = "a closed fd",
	[DIRECTORY] = "a directory",
	[FILE_RDONLY] = "a read-only file",
	[FILE_WRONLY] = "a write-only file",
	[PIPE_READ] = "a pipe's read end",
	[PIPE_WRITE] = "a pipe's write end",
	[PIPE_WIDOWED] = "a pipe without reader",
	[LISTENING] = "a listening socket",
	[UNCONNECTED] = "an unconnected TCP socket",
	[CONNECTED] = "a connected Unix socket",
	[UDP] = "an unconnected UDP socket",
	[EVENTFD] = "an eventfd",
	[TIMERFD] = "a timerfd",
	[SIGNALFD] = "a signalfd",
};

#define K(k) (1u << (k))
#define NOT_FILES (K(NEGATIVE) | K(CLOSED) | K(DIRECTORY) | K(FILE_RDONLY))
#define ANY_SOCKET (K(LISTENING) | K(UNCONNECTED) | K(CONNECTED) | K(UDP))

/* The fds a kind holds open besides the one it gives. */
struct held {
	int fds[3];
	int n;
};

static int file_fd = -1;	   /* FILE_*: 4 bytes, "data", unlinked */
static char file_path[64]; /* its name in /proc/self/fd */
static int closed_number = -1;
static struct sockaddr_in listener_addr; /* an address a socket listens at */
static int listener = -1;

static int keep(struct held *h, int fd)
{
	cr_assert_geq(fd, 0);
	h->fds[h->n++] = fd;
	return fd;
}

static void release(struct held *h)
{
	for (int i = 0; i < h->n; i++)
		close(h->fds[i]);
	h->n = 0;
}

/* A fresh fd of kind k, blocking or not (its other fds in h). */
static int open_kind(enum kind k, bool nonblocking, struct held *h)
{
	int p[2], fd = -1;
	switch (k) {
	case NEGATIVE:
		return -1;
	case CLOSED:
		return closed_number;
	case DIRECTORY:
		fd = keep(h, open("/tmp", O_RDONLY | O_DIRECTORY | O_CLOEXEC));
		break;
	case FILE_RDONLY:
	case FILE_WRONLY:
		fd = keep(h, open(file_path, (k == FILE_RDONLY ? O_RDONLY : O_WRONLY) | O_CLOEXEC));
		break;
	case PIPE_READ:
	case PIPE_WRITE:
	case PIPE_WIDOWED:
		cr_assert_eq(pipe2(p, O_CLOEXEC), 0);
		keep(h, p[0]);
		keep(h, p[1]);
		if (k == PIPE_WIDOWED) {
			close(p[0]);
			h->fds[0] = p[1];
			h->n = 1;
		}
		fd = k == PIPE_READ ? p[0] : p[1];
		break;
	case LISTENING:
		fd = keep(h, afe_tcp_listen("127.0.0.1", 0, 8));
		break;
	case UNCONNECTED:
		fd = keep(h, socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
		break;
	case CONNECTED:
		cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, p), 0);
		keep(h, p[1]);
		fd = keep(h, p[0]);
		break;
	case UDP:
		fd = keep(h, afe_udp_bind("127.0.0.1", 0));
		break;
	case EVENTFD:
		fd = keep(h, eventfd(0, EFD_CLOEXEC));
		break;
	case TIMERFD:
		fd = keep(h, timerfd_create(CLOCK_MONOTONIC, TFD_CLOEXEC));
		break;
	case SIGNALFD: {
		sigset_t set;
		sigemptyset(&set);
		sigaddset(&set, SIGUSR2);
		fd = keep(h, signalfd(-1, &set, SFD_CLOEXEC));
		break;
	}
	default:
		cr_assert(false, "kind %d", (int)k);
	}
	int flags = fcntl(fd, F_GETFL);
	cr_assert_geq(flags, 0);
	cr_assert_eq(fcntl(fd, F_SETFL, nonblocking ? flags | O_NONBLOCK : flags & ~O_NONBLOCK), 0);
	return fd;
}

/* ---- the operations ------------------------------------------------------ */

/* An operation under test, with what it points to. */
struct subject {
	union {
		struct afe_io io;
		struct afe_sendto sendto;
		struct afe_recvfrom recvfrom;
		struct afe_io_ftruncate ftruncate;
		struct afe_sendfile sendfile;
		struct afe_read_exact read_exact;
		struct afe_write_all write_all;
		struct afe_send_all send_all;
		struct afe_buf_reader reader;
		struct afe_accept_stream accepts;
		struct afe_recv_stream stream;
	} u;
	char buf[64];
	struct iovec iov;
	struct msghdr msg;
	struct statx stx;
	struct held extra; /* fds the operation's other side needs */
};

struct op {
	const char *name;
	unsigned kinds; /* K() of each kind tried */
	/* The plain call on fd: its result or -errno. It must not block. */
	int (*plain)(int fd);
	/* Fills s with the operation on fd; returns the future to await. */
	struct afe_future *(*make)(struct subject *s, int fd);
	/* Ends what make started, if it needs ending (a stream). */
	void (*after)(struct afe_runtime *rt, struct subject *s);
	/* Whether fd's number had a file that an operation waited on first
	 * (see behind_a_wait). */
	bool behind_a_wait;
};

static int res(long rc)
{
	return rc < 0 ? -errno : (int)rc;
}

static const char data[4] = "data";

/* A fresh pipe in s->extra: [0] its read end, [1] its write end. */
static void extra_pipe(struct held *h, bool with_data)
{
	int p[2];
	cr_assert_eq(pipe2(p, O_CLOEXEC | O_NONBLOCK), 0);
	keep(h, p[0]);
	keep(h, p[1]);
	if (with_data)
		cr_assert_eq(write(p[1], data, 4), 4);
}

static struct afe_future *io_of(struct subject *s)
{
	return &s->u.io.base;
}

/* read, write, readv, writev at the file position, and at offset 0. */
static int plain_read(int fd) { char b[4]; return res(read(fd, b, 4)); }
static int plain_write(int fd) { return res(write(fd, data, 4)); }
static int plain_pread(int fd) { char b[4]; return res(pread(fd, b, 4, 0)); }
static int plain_pwrite(int fd) { return res(pwrite(fd, data, 4, 0)); }
static int plain_readv(int fd)
{
	char b[4];
	struct iovec iov = {b, 4};
	return res(readv(fd, &iov, 1));
}
static int plain_writev(int fd)
{
	struct iovec iov = {(void *)data, 4};
	return res(writev(fd, &iov, 1));
}

static struct afe_future *make_read(struct subject *s, int fd)
{
	afe_io_read_init(&s->u.io, fd, s->buf, 4, -1);
	return io_of(s);
}
static struct afe_future *make_write(struct subject *s, int fd)
{
	afe_io_write_init(&s->u.io, fd, data, 4, -1);
	return io_of(s);
}
static struct afe_future *make_pread(struct subject *s, int fd)
{
	afe_io_read_init(&s->u.io, fd, s->buf, 4, 0);
	return io_of(s);
}
static struct afe_future *make_pwrite(struct subject *s, int fd)
{
	afe_io_write_init(&s->u.io, fd, data, 4, 0);
	return io_of(s);
}
static struct afe_future *make_readv(struct subject *s, int fd)
{
	s->iov = (struct iovec){s->buf, 4};
	afe_io_readv_init(&s->u.io, fd, &s->iov, 1, -1);
	return io_of(s);
}
static struct afe_future *make_writev(struct subject *s, int fd)
{
	s->iov = (struct iovec){(void *)data, 4};
	afe_io_writev_init(&s->u.io, fd, &s->iov, 1, -1);
	return io_of(s);
}

/* recv, send (and zero-copy), recvmsg, sendmsg, recvfrom, sendto. Plain:
 * without waiting; sends without SIGPIPE, as the futures make them. */
static int plain_recv(int fd) { char b[4]; return res(recv(fd, b, 4, MSG_DONTWAIT)); }
static int plain_send(int fd) { return res(send(fd, data, 4, MSG_DONTWAIT | MSG_NOSIGNAL)); }
static int plain_recvmsg(int fd)
{
	char b[4];
	struct iovec iov = {b, 4};
	struct msghdr msg = {.msg_iov = &iov, .msg_iovlen = 1};
	return res(recvmsg(fd, &msg, MSG_DONTWAIT));
}
static int plain_sendmsg(int fd)
{
	struct iovec iov = {(void *)data, 4};
	struct msghdr msg = {.msg_iov = &iov, .msg_iovlen = 1};
	return res(sendmsg(fd, &msg, MSG_DONTWAIT | MSG_NOSIGNAL));
}
/* To an address of the wrong length (1 byte). */
static int plain_sendto_short(int fd)
{
	return res(sendto(fd, data, 4, MSG_DONTWAIT | MSG_NOSIGNAL,
			  (const struct sockaddr *)&listener_addr, 1));
}

static struct afe_future *make_recv(struct subject *s, int fd)
{
	afe_io_recv_init(&s->u.io, fd, s->buf, 4, 0);
	return io_of(s);
}
static struct afe_future *make_recv_waitall(struct subject *s, int fd)
{
	afe_io_recv_init(&s->u.io, fd, s->buf, 4, MSG_WAITALL);
	return io_of(s);
}
static struct afe_future *make_send(struct subject *s, int fd)
{
	afe_io_send_init(&s->u.io, fd, data, 4, MSG_NOSIGNAL);
	return io_of(s);
}
static struct afe_future *make_send_waitall(struct subject *s, int fd)
{
	afe_io_send_init(&s->u.io, fd, data, 4, MSG_NOSIGNAL | MSG_WAITALL);
	return io_of(s);
}
static struct afe_future *make_send_zc(struct subject *s, int fd)
{
	afe_io_send_zc_init(&s->u.io, fd, data, 4, 0);
	return io_of(s);
}
static struct afe_future *make_recvmsg(struct subject *s, int fd)
{
	s->iov = (struct iovec){s->buf, 4};
	s->msg = (struct msghdr){.msg_iov = &s->iov, .msg_iovlen = 1};
	afe_io_recvmsg_init(&s->u.io, fd, &s->msg, 0);
	return io_of(s);
}
static struct afe_future *make_sendmsg(struct subject *s, int fd)
{
	s->iov = (struct iovec){(void *)data, 4};
	s->msg = (struct msghdr){.msg_iov = &s->iov, .msg_iovlen = 1};
	afe_io_sendmsg_init(&s->u.io, fd, &s->msg, MSG_NOSIGNAL);
	return io_of(s);
}
static struct afe_future *make_recvfrom(struct subject *s, int fd)
{
	afe_recvfrom_init(&s->u.recvfrom, fd, s->buf, 4, 0);
	return &s->u.recvfrom.io.base;
}
static struct afe_future *make_sendto(struct subject *s, int fd)
{
	afe_sendto_init(&s->u.sendto, fd, data, 4, MSG_NOSIGNAL, NULL, 0);
	return &s->u.sendto.io.base;
}
static struct afe_future *make_sendto_short(struct subject *s, int fd)
{
	afe_sendto_init(&s->u.sendto, fd, data, 4, MSG_NOSIGNAL,
			(const struct sockaddr *)&listener_addr, 1);
	return &s->u.sendto.io.base;
}

/* accept, connect, shutdown, close. */
static int plain_accept(int fd) { return res(accept4(fd, NULL, NULL, SOCK_CLOEXEC)); }
static int plain_accept_bad_flags(int fd) { return res(accept4(fd, NULL, NULL, 1)); }
static int plain_connect_short(int fd)
{
	return res(connect(fd, (const struct sockaddr *)&listener_addr, 1));
}
static int plain_connect(int fd)
{
	return res(connect(fd, (const struct sockaddr *)&listener_addr, sizeof(listener_addr)));
}
static int plain_shutdown(int fd) { return res(shutdown(fd, SHUT_WR)); }
static int plain_shutdown_bad_how(int fd) { return res(shutdown(fd, 7)); }
static int plain_close(int fd) { return res(close(fd)); }

static struct afe_future *make_accept(struct subject *s, int fd)
{
	afe_io_accept_init(&s->u.io, fd, NULL, NULL, SOCK_CLOEXEC);
	return io_of(s);
}
static struct afe_future *make_accept_bad_flags(struct subject *s, int fd)
{
	afe_io_accept_init(&s->u.io, fd, NULL, NULL, 1);
	return io_of(s);
}
static struct afe_future *make_connect_short(struct subject *s, int fd)
{
	afe_io_connect_init(&s->u.io, fd, (const struct sockaddr *)&listener_addr, 1);
	return io_of(s);
}
static struct afe_future *make_connect(struct subject *s, int fd)
{
	afe_io_connect_init(&s->u.io, fd, (const struct sockaddr *)&listener_addr,
			    sizeof(listener_addr));
	return io_of(s);
}
static struct afe_future *make_shutdown(struct subject *s, int fd)
{
	afe_io_shutdown_init(&s->u.io, fd, SHUT_WR);
	return io_of(s);
}
static struct afe_future *make_shutdown_bad_how(struct subject *s, int fd)
{
	afe_io_shutdown_init(&s->u.io, fd, 7);
	return io_of(s);
}
static struct afe_future *make_close(struct subject *s, int fd)
{
	afe_io_close_init(&s->u.io, fd);
	return io_of(s);
}

/* poll: poll(2) reports a closed fd as POLLNVAL in revents, and skips a
 * negative one (revents 0); io_uring's poll fails -EBADF for both
 * (inherent: it resolves the fd before it polls), and the epoll backend
 * does as io_uring. */
static int plain_poll(int fd)
{
	struct pollfd p = {.fd = fd, .events = POLLIN};
	int n = poll(&p, 1, 0);
	if (n < 0)
		return -errno;
	if (fd < 0 || (p.revents & POLLNVAL))
		return -EBADF;
	return n ? p.revents : -EAGAIN; /* -EAGAIN: not at once, no case here */
}
static struct afe_future *make_poll(struct subject *s, int fd)
{
	afe_io_poll_init(&s->u.io, fd, POLLIN);
	return io_of(s);
}

/* fsync, fallocate, ftruncate. */
static int plain_fsync(int fd) { return res(fsync(fd)); }
static int plain_fdatasync(int fd) { return res(fdatasync(fd)); }
static int plain_fallocate(int fd) { return res(fallocate(fd, 0, 0, 4096)); }
static int plain_ftruncate(int fd) { return res(ftruncate(fd, 4)); }

static struct afe_future *make_fsync(struct subject *s, int fd)
{
	afe_io_fsync_init(&s->u.io, fd, false);
	return io_of(s);
}
static struct afe_future *make_fdatasync(struct subject *s, int fd)
{
	afe_io_fsync_init(&s->u.io, fd, true);
	return io_of(s);
}
static struct afe_future *make_fallocate(struct subject *s, int fd)
{
	afe_io_fallocate_init(&s->u.io, fd, 0, 0, 4096);
	return io_of(s);
}
static struct afe_future *make_ftruncate(struct subject *s, int fd)
{
	afe_io_ftruncate_init(&s->u.ftruncate, fd, 4);
	return &s->u.ftruncate.base;
}

/* The path calls with fd as their directory (a relative path), and
 * statx of fd itself (AT_EMPTY_PATH). */
static int plain_openat(int fd) { return res(openat(fd, "afe-no-such", O_RDONLY | O_CLOEXEC)); }
static int plain_statx(int fd)
{
	struct statx stx;
	return res(statx(fd, "afe-no-such", 0, STATX_BASIC_STATS, &stx));
}
static int plain_statx_empty(int fd)
{
	struct statx stx;
	int rc = res(statx(fd, "", AT_EMPTY_PATH, STATX_BASIC_STATS, &stx));
	return rc;
}
static int plain_unlinkat(int fd) { return res(unlinkat(fd, "afe-no-such", 0)); }
static int plain_mkdirat(int fd) { return res(mkdirat(fd, "afe-no-such/x", 0700)); }
static int plain_renameat(int fd)
{
	return res(renameat(fd, "afe-no-such", AT_FDCWD, "/tmp/afe-no-such-either"));
}

static struct afe_future *make_openat(struct subject *s, int fd)
{
	afe_io_openat_init(&s->u.io, fd, "afe-no-such", O_RDONLY | O_CLOEXEC, 0);
	return io_of(s);
}
static struct afe_future *make_statx(struct subject *s, int fd)
{
	afe_io_statx_init(&s->u.io, fd, "afe-no-such", 0, STATX_BASIC_STATS, &s->stx);
	return io_of(s);
}
static struct afe_future *make_statx_empty(struct subject *s, int fd)
{
	afe_io_statx_init(&s->u.io, fd, "", AT_EMPTY_PATH, STATX_BASIC_STATS, &s->stx);
	return io_of(s);
}
static struct afe_future *make_unlinkat(struct subject *s, int fd)
{
	afe_io_unlinkat_init(&s->u.io, fd, "afe-no-such", 0);
	return io_of(s);
}
static struct afe_future *make_mkdirat(struct subject *s, int fd)
{
	afe_io_mkdirat_init(&s->u.io, fd, "afe-no-such/x", 0700);
	return io_of(s);
}
static struct afe_future *make_renameat(struct subject *s, int fd)
{
	afe_io_renameat_init(&s->u.io, fd, "afe-no-such", AT_FDCWD, "/tmp/afe-no-such-either", 0);
	return io_of(s);
}

/* splice and tee: fd as the side that reads, a pipe's write end as the
 * other; fd as the side that writes, a pipe holding data as the other. */
static int plain_splice_from(int fd)
{
	struct held h = {0};
	extra_pipe(&h, false);
	int rc = res(splice(fd, NULL, h.fds[1], NULL, 4, SPLICE_F_NONBLOCK));
	release(&h);
	return rc;
}
/* At an offset, which a pipe has none of: splice(2) says so (-ESPIPE)
 * before it checks that fd reads (writes); io_uring checks that first
 * (-EBADF on a pipe's wrong end: inherent, as sendfile(2) does), and the
 * epoll backend does as io_uring. */
static int splice_at_offset_as_io_uring(int fd, int rc, int wrong_end)
{
	int mode = fcntl(fd, F_GETFL);
	return rc == -ESPIPE && (mode & O_ACCMODE) == wrong_end ? -EBADF : rc;
}
static int plain_splice_from_at_offset(int fd)
{
	struct held h = {0};
	extra_pipe(&h, false);
	loff_t off = 0;
	int rc = res(splice(fd, &off, h.fds[1], NULL, 4, SPLICE_F_NONBLOCK));
	release(&h);
	return splice_at_offset_as_io_uring(fd, rc, O_WRONLY);
}
static int plain_splice_to_at_offset(int fd)
{
	struct held h = {0};
	extra_pipe(&h, true);
	loff_t off = 0;
	int rc = res(splice(h.fds[0], NULL, fd, &off, 4, SPLICE_F_NONBLOCK));
	release(&h);
	return splice_at_offset_as_io_uring(fd, rc, O_RDONLY);
}
static int plain_splice_to(int fd)
{
	struct held h = {0};
	extra_pipe(&h, true);
	int rc = res(splice(h.fds[0], NULL, fd, NULL, 4, SPLICE_F_NONBLOCK));
	release(&h);
	return rc;
}
static int plain_tee_from(int fd)
{
	struct held h = {0};
	extra_pipe(&h, false);
	int rc = res(tee(fd, h.fds[1], 4, SPLICE_F_NONBLOCK));
	release(&h);
	return rc;
}
static int plain_tee_to(int fd)
{
	struct held h = {0};
	extra_pipe(&h, true);
	int rc = res(tee(h.fds[0], fd, 4, SPLICE_F_NONBLOCK));
	release(&h);
	return rc;
}

static struct afe_future *make_splice_from(struct subject *s, int fd)
{
	extra_pipe(&s->extra, false);
	afe_io_splice_init(&s->u.io, fd, -1, s->extra.fds[1], -1, 4, 0);
	return io_of(s);
}
static struct afe_future *make_splice_from_at_offset(struct subject *s, int fd)
{
	extra_pipe(&s->extra, false);
	afe_io_splice_init(&s->u.io, fd, 0, s->extra.fds[1], -1, 4, 0);
	return io_of(s);
}
static struct afe_future *make_splice_to_at_offset(struct subject *s, int fd)
{
	extra_pipe(&s->extra, true);
	afe_io_splice_init(&s->u.io, s->extra.fds[0], -1, fd, 0, 4, 0);
	return io_of(s);
}
static struct afe_future *make_splice_to(struct subject *s, int fd)
{
	extra_pipe(&s->extra, true);
	afe_io_splice_init(&s->u.io, s->extra.fds[0], -1, fd, -1, 4, 0);
	return io_of(s);
}
static struct afe_future *make_tee_from(struct subject *s, int fd)
{
	extra_pipe(&s->extra, false);
	afe_io_tee_init(&s->u.io, fd, s->extra.fds[1], 4, 0);
	return io_of(s);
}
static struct afe_future *make_tee_to(struct subject *s, int fd)
{
	extra_pipe(&s->extra, true);
	afe_io_tee_init(&s->u.io, s->extra.fds[0], fd, 4, 0);
	return io_of(s);
}

/* sendfile: fd as the side written (the file, 4 bytes, read), or as the
 * file read (into a connected socket). Plain: sendfile(2). */
static int plain_sendfile_to(int fd)
{
	int in = open(file_path, O_RDONLY | O_CLOEXEC);
	off_t off = 0;
	int rc = res(sendfile(fd, in, &off, 4));
	close(in);
	return rc;
}
static int plain_sendfile_from(int fd)
{
	int sv[2];
	cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
	off_t off = 0;
	int rc = res(sendfile(sv[0], fd, &off, 4));
	close(sv[0]);
	close(sv[1]);
	return rc;
}

static struct afe_future *make_sendfile_to(struct subject *s, int fd)
{
	int in = keep(&s->extra, open(file_path, O_RDONLY | O_CLOEXEC));
	afe_sendfile_init(&s->u.sendfile, fd, in, 0, 4);
	return &s->u.sendfile.base;
}
static struct afe_future *make_sendfile_from(struct subject *s, int fd)
{
	int sv[2];
	cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
	keep(&s->extra, sv[0]);
	keep(&s->extra, sv[1]);
	afe_sendfile_init(&s->u.sendfile, sv[0], fd, 0, 4);
	return &s->u.sendfile.base;
}

/* The futures of fs.h and net.h built on the operations. */
static struct afe_future *make_read_exact(struct subject *s, int fd)
{
	afe_read_exact_init(&s->u.read_exact, fd, s->buf, 4, -1);
	return &s->u.read_exact.base;
}
static struct afe_future *make_write_all(struct subject *s, int fd)
{
	afe_write_all_init(&s->u.write_all, fd, data, 4, -1);
	return &s->u.write_all.base;
}
static struct afe_future *make_send_all(struct subject *s, int fd)
{
	afe_send_all_init(&s->u.send_all, fd, data, 4);
	return &s->u.send_all.base;
}
static struct afe_future *make_read_until(struct subject *s, int fd)
{
	afe_buf_reader_init(&s->u.reader, fd, s->buf, 4);
	return afe_buf_reader_read_until(&s->u.reader, '\n');
}
static struct afe_future *make_accept_stream(struct subject *s, int fd)
{
	afe_accept_stream_init(&s->u.accepts, fd);
	return afe_accept_stream_next(&s->u.accepts);
}
static struct afe_future *make_recv_stream(struct subject *s, int fd)
{
	cr_assert_eq(afe_recv_stream_init(&s->u.stream, fd, 2, 64), 0);
	return afe_recv_stream_next(&s->u.stream);
}

static intptr_t guarded(struct afe_runtime *rt, struct afe_future *f)
{
	struct afe_timeout t;
	afe_timeout_init(&t, f, GUARD_NS);
	return test_block_on(rt, &t);
}

static void stop_recv_stream(struct afe_runtime *rt, struct subject *s)
{
	cr_assert_neq(guarded(rt, afe_recv_stream_stop(&s->u.stream)), -ETIMEDOUT);
	afe_recv_stream_destroy(&s->u.stream);
}

/* ---- the sweep ----------------------------------------------------------- */

/*
 * Gives fd's number the past of a connection's: another file (a
 * connected Unix socket) at that number is waited on through rt until
 * writable, and a receive on it gets a byte; then it is closed, and fd's
 * file put back at the number. The epoll backend keeps a registration
 * once waited on, and makes a receive on a number where a receive got
 * bytes wait for epoll's report before it tries.
 */
static void behind_a_wait(struct afe_runtime *rt, int fd)
{
	int sv[2];
	cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
	int saved = fcntl(fd, F_DUPFD_CLOEXEC, 0); /* -1: a closed number */
	cr_assert_eq(dup3(sv[0], fd, O_CLOEXEC), fd);
	struct afe_io io;
	afe_io_poll_init(&io, fd, POLLOUT);
	cr_assert_eq(run_io(rt, &io) & POLLOUT, POLLOUT);
	char byte = 'x';
	cr_assert_eq(write(sv[1], &byte, 1), 1);
	afe_io_recv_init(&io, fd, &byte, 1, 0);
	cr_assert_eq(run_io(rt, &io), 1);
	if (saved >= 0) {
		cr_assert_eq(dup3(saved, fd, O_CLOEXEC), fd);
		close(saved);
	} else {
		close(fd);
	}
	close(sv[0]);
	close(sv[1]);
}

static void setup_fixtures(void)
{
	signal(SIGPIPE, SIG_IGN); /* a write to a pipe without reader */
	file_fd = test_unlinked_file();
	cr_assert_eq(write(file_fd, data, 4), 4);
	snprintf(file_path, sizeof(file_path), "/proc/self/fd/%d", file_fd);
	/* A number well above what the runtime and the test open. */
	closed_number = fcntl(file_fd, F_DUPFD_CLOEXEC, 900);
	cr_assert_geq(closed_number, 900);
	close(closed_number);
	listener = afe_tcp_listen("127.0.0.1", 0, 8);
	cr_assert_geq(listener, 0);
	socklen_t len = sizeof(listener_addr);
	cr_assert_eq(getsockname(listener, (struct sockaddr *)&listener_addr, &len), 0);
}

static void teardown_fixtures(void)
{
	close(listener);
	close(file_fd);
}

/* Runs op on each of its kinds of fd, blocking and not, against the plain
 * call; reports each difference and hang, and fails if there was any. */
static void sweep(const struct op *op)
{
	setup_fixtures();
	struct afe_runtime *rt = test_runtime(1);
	int differences = 0;
	for (int k = 0; k < KINDS; k++) {
		if (!(op->kinds & K(k)))
			continue;
		struct held h = {0};
		int want = op->plain(open_kind((enum kind)k, false, &h));
		release(&h);
		cr_assert_neq(want, -EAGAIN, "%s on %s: the plain call would wait", op->name,
			      kind_names[k]);
		for (int nonblocking = 0; nonblocking < 2; nonblocking++) {
			struct subject s;
			memset(&s, 0, sizeof(s));
			int fd = open_kind((enum kind)k, nonblocking, &h);
			if (op->behind_a_wait && fd >= 0)
				behind_a_wait(rt, fd);
			struct afe_future *f = op->make(&s, fd);
			intptr_t got = guarded(rt, f);
			if (op->after)
				op->after(rt, &s);
			release(&s.extra);
			release(&h);
			if (got == want)
				continue;
			differences++;
			fprintf(stderr, "%s on %s (%s): %s%s (%d), the plain call %s (%d)\n",
				op->name, kind_names[k], nonblocking ? "non-blocking" : "blocking",
				got == -ETIMEDOUT ? "HUNG, " : "", got < 0 ? strerror((int)-got) : "",
				(int)got, want < 0 ? strerror(-want) : "", want);
		}
	}
	test_runtime_destroy(rt);
	teardown_fixtures();
	cr_assert_eq(differences, 0, "%s: %d differences (above)", op->name, differences);
}

/* A Test of op id; SWEEP_WITH adds a field to its struct op (after,
 * behind_a_wait). */
#define SWEEP_WITH(id, kinds_, plain_, make_, field)                                    \
	Test(io_bad_fds, id, .timeout = 20)                                             \
	{                                                                               \
		static const struct op op = {.name = #id, .kinds = (kinds_),             \
					      .plain = plain_, .make = make_, field};    \
		sweep(&op);                                                             \
	}
#define SWEEP(id, kinds_, plain_, make_) SWEEP_WITH(id, kinds_, plain_, make_, .after = NULL)

/* Not open, or not open for reading (writing). */
#define NOT_READABLE \
	((NOT_FILES & ~K(FILE_RDONLY)) | K(FILE_WRONLY) | K(PIPE_WRITE) | K(PIPE_WIDOWED))
#define NOT_WRITABLE (NOT_FILES | K(PIPE_READ) | K(PIPE_WIDOWED))
/* Files whose read or write of 4 bytes is refused at once (8 or 128 are
 * the least they take, a timerfd and signalfd take no write). */
#define SHORT_REFUSED (K(EVENTFD) | K(TIMERFD) | K(SIGNALFD))
#define NOT_SOCKETS (NOT_FILES | K(PIPE_READ) | K(PIPE_WRITE) | K(EVENTFD))

SWEEP(read, NOT_READABLE | K(LISTENING) | K(UNCONNECTED) | SHORT_REFUSED, plain_read, make_read)
SWEEP(readv, NOT_READABLE | K(LISTENING) | K(UNCONNECTED) | SHORT_REFUSED, plain_readv,
      make_readv)
SWEEP(read_exact, NOT_READABLE | K(LISTENING) | K(UNCONNECTED) | SHORT_REFUSED, plain_read,
      make_read_exact)
SWEEP(read_until, NOT_READABLE | K(LISTENING) | K(UNCONNECTED) | SHORT_REFUSED, plain_read,
      make_read_until)
SWEEP(write, NOT_WRITABLE | K(LISTENING) | K(UNCONNECTED) | SHORT_REFUSED, plain_write,
      make_write)
SWEEP(writev, NOT_WRITABLE | K(LISTENING) | K(UNCONNECTED) | SHORT_REFUSED, plain_writev,
      make_writev)
SWEEP(write_all, NOT_WRITABLE | K(LISTENING) | K(UNCONNECTED) | SHORT_REFUSED, plain_write,
      make_write_all)
/* At an offset. Not on a pipe, socket or eventfd, where pread(2) fails
 * -ESPIPE: io_uring reads those at their position whatever the offset
 * (inherent, and afe_io_read_init says so), so a read of an empty pipe
 * waits. */
SWEEP(pread, K(NEGATIVE) | K(CLOSED) | K(DIRECTORY) | K(FILE_WRONLY), plain_pread, make_pread)
SWEEP(pwrite, K(NEGATIVE) | K(CLOSED) | K(DIRECTORY) | K(FILE_RDONLY), plain_pwrite, make_pwrite)

SWEEP(recv, NOT_SOCKETS | K(LISTENING) | K(UNCONNECTED), plain_recv, make_recv)
SWEEP(recv_waitall, NOT_SOCKETS | K(LISTENING) | K(UNCONNECTED), plain_recv, make_recv_waitall)
SWEEP(recvmsg, NOT_SOCKETS | K(LISTENING) | K(UNCONNECTED), plain_recvmsg, make_recvmsg)
SWEEP(recvfrom, NOT_SOCKETS | K(LISTENING) | K(UNCONNECTED), plain_recvmsg, make_recvfrom)
SWEEP_WITH(recv_stream, NOT_SOCKETS | K(LISTENING) | K(UNCONNECTED), plain_recv,
	   make_recv_stream, .after = stop_recv_stream)

/* The same on a number whose earlier file was waited on. */
#define NOT_RECEIVING \
	(NOT_SOCKETS | K(PIPE_WRITE) | K(LISTENING) | K(UNCONNECTED) | K(TIMERFD) | K(SIGNALFD))
SWEEP_WITH(recv_behind_a_wait, NOT_RECEIVING, plain_recv, make_recv, .behind_a_wait = true)
SWEEP_WITH(recvmsg_behind_a_wait, NOT_RECEIVING, plain_recvmsg, make_recvmsg,
	   .behind_a_wait = true)
SWEEP_WITH(recvfrom_behind_a_wait, NOT_RECEIVING, plain_recvmsg, make_recvfrom,
	   .behind_a_wait = true)
SWEEP_WITH(read_behind_a_wait, NOT_READABLE | K(LISTENING) | K(UNCONNECTED) | SHORT_REFUSED,
	   plain_read, make_read, .behind_a_wait = true)
SWEEP_WITH(accept_behind_a_wait, NOT_SOCKETS | K(UNCONNECTED) | K(CONNECTED) | K(UDP),
	   plain_accept, make_accept, .behind_a_wait = true)

SWEEP(send, NOT_SOCKETS | K(LISTENING) | K(UNCONNECTED) | K(UDP), plain_send, make_send)
SWEEP(send_waitall, NOT_SOCKETS | K(LISTENING) | K(UNCONNECTED) | K(UDP), plain_send,
      make_send_waitall)
SWEEP(send_zc, NOT_SOCKETS | K(LISTENING) | K(UNCONNECTED) | K(UDP), plain_send, make_send_zc)
SWEEP(send_all, NOT_SOCKETS | K(LISTENING) | K(UNCONNECTED) | K(UDP), plain_send, make_send_all)
SWEEP(sendmsg, NOT_SOCKETS | K(LISTENING) | K(UNCONNECTED) | K(UDP), plain_sendmsg, make_sendmsg)
SWEEP(sendto, NOT_SOCKETS | K(LISTENING) | K(UNCONNECTED) | K(UDP), plain_sendmsg, make_sendto)
SWEEP(sendto_short_address, NOT_SOCKETS | ANY_SOCKET, plain_sendto_short, make_sendto_short)

SWEEP(accept, NOT_SOCKETS | K(UNCONNECTED) | K(CONNECTED) | K(UDP), plain_accept, make_accept)
SWEEP(accept_bad_flags, K(LISTENING), plain_accept_bad_flags, make_accept_bad_flags)
SWEEP(accept_stream, NOT_SOCKETS | K(UNCONNECTED) | K(CONNECTED) | K(UDP), plain_accept,
      make_accept_stream)
SWEEP(connect_short_address, NOT_SOCKETS | ANY_SOCKET, plain_connect_short, make_connect_short)
SWEEP(connect, NOT_SOCKETS | K(LISTENING) | K(CONNECTED), plain_connect, make_connect)
SWEEP(shutdown, NOT_SOCKETS | K(UNCONNECTED) | K(LISTENING) | K(UDP), plain_shutdown,
      make_shutdown)
SWEEP(shutdown_bad_how, K(CONNECTED), plain_shutdown_bad_how, make_shutdown_bad_how)
SWEEP(close, K(NEGATIVE) | K(CLOSED), plain_close, make_close)
SWEEP(poll, K(NEGATIVE) | K(CLOSED) | K(DIRECTORY) | K(FILE_RDONLY) | K(PIPE_WIDOWED) |
		    K(UNCONNECTED),
      plain_poll, make_poll)

SWEEP(fsync, K(NEGATIVE) | K(CLOSED) | K(PIPE_READ) | K(CONNECTED) | K(EVENTFD), plain_fsync,
      make_fsync)
SWEEP(fdatasync, K(NEGATIVE) | K(CLOSED) | K(PIPE_READ) | K(CONNECTED) | K(EVENTFD),
      plain_fdatasync, make_fdatasync)
SWEEP(fallocate, NOT_FILES | K(PIPE_WRITE) | K(CONNECTED) | K(EVENTFD), plain_fallocate,
      make_fallocate)
SWEEP(ftruncate, NOT_FILES | K(PIPE_WRITE) | K(CONNECTED) | K(EVENTFD), plain_ftruncate,
      make_ftruncate)

#define NOT_DIRECTORIES (K(NEGATIVE) | K(CLOSED) | K(FILE_RDONLY) | K(PIPE_READ) | K(CONNECTED))
SWEEP(openat, NOT_DIRECTORIES, plain_openat, make_openat)
SWEEP(statx, NOT_DIRECTORIES, plain_statx, make_statx)
SWEEP(statx_empty_path, K(NEGATIVE) | K(CLOSED), plain_statx_empty, make_statx_empty)
SWEEP(unlinkat, NOT_DIRECTORIES, plain_unlinkat, make_unlinkat)
SWEEP(mkdirat, NOT_DIRECTORIES, plain_mkdirat, make_mkdirat)
SWEEP(renameat, NOT_DIRECTORIES, plain_renameat, make_renameat)

SWEEP(splice_from, NOT_FILES | K(FILE_WRONLY) | K(PIPE_WRITE), plain_splice_from,
      make_splice_from)
SWEEP(splice_from_at_offset, NOT_FILES | K(FILE_WRONLY) | K(PIPE_READ) | K(PIPE_WRITE),
      plain_splice_from_at_offset, make_splice_from_at_offset)
SWEEP(splice_to, NOT_FILES | K(PIPE_READ), plain_splice_to, make_splice_to)
SWEEP(splice_to_at_offset, NOT_FILES | K(PIPE_READ) | K(PIPE_WRITE), plain_splice_to_at_offset,
      make_splice_to_at_offset)
SWEEP(tee_from, NOT_FILES | K(PIPE_WRITE) | K(CONNECTED), plain_tee_from, make_tee_from)
SWEEP(tee_to, NOT_FILES | K(PIPE_READ) | K(CONNECTED), plain_tee_to, make_tee_to)
SWEEP(sendfile_to, NOT_FILES | K(PIPE_READ) | K(PIPE_WIDOWED) | K(LISTENING) | K(UNCONNECTED) |
			   K(UDP),
      plain_sendfile_to, make_sendfile_to)
SWEEP(sendfile_from, (NOT_FILES & ~K(FILE_RDONLY)) | K(FILE_WRONLY) | K(PIPE_WRITE),
      plain_sendfile_from, make_sendfile_from)

/* A receive on a listening socket that an accept waited on before: the
 * epoll backend keeps the socket's registration, but the receive fails at
 * once (-ENOTCONN), as recv(2) does, rather than waiting to be readable. */
Test(io_bad_fds, recv_on_a_listening_socket_an_accept_waited_on, .timeout = 20)
{
	setup_fixtures();
	struct afe_runtime *rt = test_runtime(1);
	for (int nonblocking = 0; nonblocking < 2; nonblocking++) {
		struct held h = {0};
		int fd = open_kind(LISTENING, nonblocking, &h);
		struct sockaddr_in at;
		socklen_t len = sizeof(at);
		cr_assert_eq(getsockname(fd, (struct sockaddr *)&at, &len), 0);
		struct afe_io accept;
		afe_io_accept_init(&accept, fd, NULL, NULL, SOCK_CLOEXEC);
		struct one_op op = one_op_of(&accept);
		struct afe_join_handle handle;
		cr_assert_eq(afe_spawn(rt, &op, &handle), 0);
		usleep(20000); /* into its wait */
		int client = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
		cr_assert_eq(connect(client, (struct sockaddr *)&at, len), 0);
		struct afe_join join;
		cr_assert_eq(afe_join_init(&join, &handle), 0);
		intptr_t accepted = test_block_on(rt, &join);
		cr_assert_geq(accepted, 0);
		close((int)accepted);
		close(client);
		struct subject s;
		memset(&s, 0, sizeof(s));
		intptr_t got = guarded(rt, make_recv(&s, fd));
		cr_assert_eq(got, plain_recv(fd), "%s: %d", nonblocking ? "non-blocking" : "blocking",
			     (int)got);
		release(&h);
	}
	test_runtime_destroy(rt);
	teardown_fixtures();
}
