/* SPDX-License-Identifier: MIT */
/* Files and streams: ftruncate on any kernel, sendfile through a pipe,
 * exact reads, whole writes and a buffered line reader. */
#define _GNU_SOURCE /* pipe2, F_SETPIPE_SZ */
#include "afe/fs.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "afe/runtime.h"
#include "io_internal.h"
#include "page_cache.h"
#include "../pool/give_way.h"
#include "../pool/pool.h"
#include "../pool/worker.h"

/* An I/O length: at most what one operation takes. */
static unsigned chunk_of(size_t left)
{
	return left > INT_MAX ? INT_MAX : (unsigned)left;
}

/* The offset n bytes past offset, or -1 (the file position) for -1. */
static int64_t advance(int64_t offset, size_t n)
{
	return offset < 0 ? -1 : offset + (int64_t)n;
}

/* ---- ftruncate ------------------------------------------------------------- */

static intptr_t ftruncate_job(void *arg)
{
	struct afe_io_ftruncate *t = arg;
	if (t->length < 0)
		return -EINVAL;
	return ftruncate(t->fd, (off_t)t->length) == 0 ? 0 : -errno;
}

static bool ring_ftruncates(void)
{
	return afe_runtime_uring_features(afe_runtime_current()) & AFE_URING_FTRUNCATE;
}

static int ftruncate_poll(struct afe_future *f, struct afe_context *cx)
{
	struct afe_io_ftruncate *self = afe_container_of(f, struct afe_io_ftruncate, base);
	AFE_ASYNC_BEGIN(f, cx);
	if (ring_ftruncates()) {
		afe__io_ftruncate_init(&self->io, self->fd, self->length);
		AFE_AWAIT(&self->io.base);
		AFE_RETURN(self->io.base.result);
	}
	/* Set up here, not at init: the job points back at self, which
	 * spawning may have moved since. */
	afe_blocking_init(&self->job, ftruncate_job, self);
	AFE_AWAIT(&self->job.base);
	AFE_RETURN(self->job.base.result);
	AFE_ASYNC_END;
}

void afe_io_ftruncate_init(struct afe_io_ftruncate *t, int fd, int64_t length)
{
	afe_future_init(&t->base, ftruncate_poll);
	t->fd = fd;
	t->length = length;
}

/* ---- sendfile -------------------------------------------------------------- */

/*
 * Each step fills the pipe from the file, then drains it into out_fd.
 * Through the ring each splice runs on a kernel (io-wq) thread and wakes
 * the task back through the ring thread: two hand-offs a step, which cost
 * a fifth to a third of a sendfile(2) loop's throughput (uring/RING.md).
 * So a worker makes a splice itself where it will not wait:
 * - the fill, when the chunk's pages are in the page cache and read
 *   already (page_cache.h): a splice out of a file waits for the disk
 *   otherwise, whatever its flags;
 * - the drain, when out_fd is a non-blocking socket or pipe:
 *   SPLICE_F_NONBLOCK moves what fits, and EAGAIN waits for room with a
 *   poll through the ring (a splice through the ring would end with
 *   EAGAIN too). Into a blocking out_fd, or a file (which O_NONBLOCK does
 *   not stop from waiting), a splice may wait: a kernel thread waits
 *   then, not a worker.
 * The ring thread, running a woken task itself, must not hold the ring
 * for a splice: the task moves to a worker first. A worker blocks every
 * signal, which matters: a splice into a socket whose peer left raises
 * SIGPIPE at the thread that made it (through the ring, the kernel's
 * thread, or on epoll a blocking-pool thread, which blocks it too).
 */

/* The pipe's size: fewer round trips per MiB through the ring than the
 * default 64 KiB. The kernel may refuse (fs.pipe-max-size): then the
 * default stays. */
#define SENDFILE_PIPE_SIZE (1 << 20)

/* What a step moves when a worker makes both its splices, as sendfile(2)
 * moves through its own pipe: a MiB at a time was 0.83-1.25x the
 * sendfile(2) loop where 64 KiB was 0.94-1.29x (six rounds, RING.md). */
#define SENDFILE_WORKER_STEP (64 * 1024)

/* Opens the pipe and learns its size. Returns 0 or -errno. */
static int open_pipe(struct afe_sendfile *s)
{
	if (pipe2(s->pipe, O_CLOEXEC) < 0)
		return -errno;
	int size = fcntl(s->pipe[1], F_SETPIPE_SZ, SENDFILE_PIPE_SIZE);
	if (size < 0)
		size = fcntl(s->pipe[1], F_GETPIPE_SZ);
	s->chunk = size > 0 ? (size_t)size : 65536;
	return 0;
}

static void close_pipe(struct afe_sendfile *s)
{
	if (s->pipe[0] >= 0) {
		close(s->pipe[0]);
		close(s->pipe[1]);
		s->pipe[0] = s->pipe[1] = -1;
	}
}

/* Whether a splice into fd never waits: a non-blocking socket or pipe.
 * A bad fd says no here and fails at its first splice. */
static bool never_waits(int fd)
{
	int flags = fcntl(fd, F_GETFL);
	struct stat st;
	return flags >= 0 && (flags & O_NONBLOCK) && fstat(fd, &st) == 0 &&
	       (S_ISSOCK(st.st_mode) || S_ISFIFO(st.st_mode));
}

/* What is left of len, at most most. */
static size_t left_at_most(const struct afe_sendfile *s, size_t most)
{
	size_t left = s->len - s->read;
	return left < most ? left : most;
}

/* Whether the next step's fill is ready in the page cache. The cache is
 * asked about a pipe's worth at once, which covers the worker's next
 * steps too: asked at every 64 KiB step it would take 32 system calls per
 * MiB, some 6% of the time a MiB takes here (an estimate: the rounds
 * measured both ways were within each other's noise, RING.md). */
static bool fill_ready(struct afe_sendfile *s)
{
	if (s->read + s->step <= s->cached_to)
		return true;
	size_t window = left_at_most(s, s->chunk);
	if (!afe__page_cache_ready(s->in_fd, advance(s->offset, s->read), window))
		return false;
	s->cached_to = s->read + window;
	return true;
}

/* Sizes the next step and says whether a worker may make its fill (in a
 * pool only: off any runtime the ring's splice refuses, as every afe_io
 * does): a worker's own step when the drain is a worker's too, else a
 * pipe's worth, the fewest hand-offs through the ring. */
static void plan_fill(struct afe_sendfile *s)
{
	s->step = left_at_most(s, s->out_nonblocking ? SENDFILE_WORKER_STEP : s->chunk);
	s->fill_cached = afe_pool_current() && fill_ready(s);
	if (!s->fill_cached)
		s->step = left_at_most(s, s->chunk);
}

/* A splice on this thread (off_in -1: from in's position, which moves).
 * The bytes moved, 0, or -errno. */
static intptr_t splice_here(int in, int64_t off_in, int out, size_t len)
{
	loff_t at = off_in;
	ssize_t n = splice(in, off_in < 0 ? NULL : &at, out, NULL, chunk_of(len),
			   SPLICE_F_MOVE | SPLICE_F_NONBLOCK);
	return n < 0 ? -errno : n;
}

/* The splice into out_fd raised SIGPIPE at this worker (its peer left),
 * which blocks every signal: taken, so that it does not stay pending. */
static void take_sigpipe(void)
{
	sigset_t pipe_only;
	sigemptyset(&pipe_only);
	sigaddset(&pipe_only, SIGPIPE);
	struct timespec now = {0, 0};
	(void)sigtimedwait(&pipe_only, NULL, &now);
}

/* Whether a splice that need not wait should move its task to a worker
 * first: the ring thread, running it, must not make it. */
static bool to_a_worker(bool need_not_wait)
{
	return need_not_wait && afe__io_on_the_ring_thread();
}

/* After a step made on this worker: whether the task gives way, to the
 * tasks queued behind it or once its poll spent its budget (a 1 GiB send
 * to a fast reader would otherwise keep the poll for half a second, deaf
 * to a cancel). */
static bool step_gives_way(const struct afe_sendfile *s)
{
	return (s->fill_cached || s->out_nonblocking) && afe_worker_current() &&
	       (afe__poll_budget_spend() || !afe_worker_has_nothing_queued());
}

static int sendfile_poll(struct afe_future *f, struct afe_context *cx)
{
	struct afe_sendfile *self = afe_container_of(f, struct afe_sendfile, base);
	AFE_ASYNC_BEGIN(f, cx);
	self->out_nonblocking = never_waits(self->out_fd);
	int err = open_pipe(self);
	if (err < 0)
		AFE_RETURN(err);
	while (self->read < self->len) {
		plan_fill(self);
		if (to_a_worker(self->fill_cached))
			AFE_YIELD(); /* the ring thread's yield: polled again on a worker */
		self->moved = -EAGAIN;
		if (self->fill_cached && afe_worker_current())
			self->moved = splice_here(self->in_fd, advance(self->offset, self->read),
						  self->pipe[1], self->step);
		if (self->moved == -EAGAIN) { /* through the ring (never EAGAIN: the pipe is empty) */
			afe_io_splice_init(&self->io, self->in_fd, advance(self->offset, self->read),
					   self->pipe[1], -1, chunk_of(self->step), SPLICE_F_MOVE);
			AFE_AWAIT_INTO(self->moved, &self->io.base);
		}
		if (self->moved <= 0) /* an error, or the file's end */
			AFE_RETURN(self->moved < 0 ? self->moved : (intptr_t)self->sent);
		self->read += (size_t)self->moved;
		self->piped = (size_t)self->moved;
		while (self->piped > 0) {
			if (to_a_worker(self->out_nonblocking))
				AFE_YIELD(); /* after a fill or a poll through the ring */
			if (self->out_nonblocking && afe_worker_current()) {
				self->moved = splice_here(self->pipe[0], -1, self->out_fd, self->piped);
				if (self->moved == -EPIPE)
					take_sigpipe();
			} else {
				afe_io_splice_init(&self->io, self->pipe[0], -1, self->out_fd, -1,
						   chunk_of(self->piped), SPLICE_F_MOVE);
				AFE_AWAIT_INTO(self->moved, &self->io.base);
			}
			if (self->moved == -EAGAIN && self->out_nonblocking) { /* no room yet */
				afe_io_poll_init(&self->io, self->out_fd, POLLOUT);
				AFE_AWAIT(&self->io.base);
				if (self->io.base.result < 0)
					AFE_RETURN(self->io.base.result);
				continue; /* POLLERR or POLLHUP: the splice says which */
			}
			if (self->moved <= 0) /* 0: out_fd takes nothing more */
				AFE_RETURN(self->moved < 0 ? self->moved : -EPIPE);
			self->sent += (size_t)self->moved;
			self->piped -= (size_t)self->moved;
		}
		if (step_gives_way(self))
			AFE_YIELD();
	}
	AFE_RETURN((intptr_t)self->sent);
	AFE_CLEANUP;
	close_pipe(self);
	AFE_ASYNC_END;
}

void afe_sendfile_init(struct afe_sendfile *s, int out_fd, int in_fd, int64_t offset, size_t len)
{
	afe_future_init(&s->base, sendfile_poll);
	s->out_fd = out_fd;
	s->in_fd = in_fd;
	s->offset = offset;
	s->len = len > INTPTR_MAX ? INTPTR_MAX : len; /* the result must hold it */
	s->sent = s->read = s->piped = s->chunk = s->step = s->cached_to = 0;
	s->moved = 0;
	s->out_nonblocking = s->fill_cached = false;
	s->pipe[0] = s->pipe[1] = -1;
}

/* ---- read exact, write all ------------------------------------------------- */

static int read_exact_poll(struct afe_future *f, struct afe_context *cx)
{
	struct afe_read_exact *self = afe_container_of(f, struct afe_read_exact, base);
	AFE_ASYNC_BEGIN(f, cx);
	while (self->done < self->len) {
		afe_io_read_init(&self->io, self->fd, self->buf + self->done,
				 chunk_of(self->len - self->done), advance(self->offset, self->done));
		AFE_AWAIT(&self->io.base);
		if (self->io.base.result < 0)
			AFE_RETURN(self->io.base.result);
		if (self->io.base.result == 0) /* the end: clean only before any byte */
			AFE_RETURN(self->done == 0 ? 0 : -EPIPE);
		self->done += (size_t)self->io.base.result;
	}
	AFE_RETURN((intptr_t)self->len);
	AFE_ASYNC_END;
}

void afe_read_exact_init(struct afe_read_exact *r, int fd, void *buf, size_t len, int64_t offset)
{
	afe_future_init(&r->base, read_exact_poll);
	r->fd = fd;
	r->buf = buf;
	r->len = len > INTPTR_MAX ? INTPTR_MAX : len;
	r->offset = offset;
	r->done = 0;
}

/* Whether fd is a socket: then writes are sends without SIGPIPE. */
static bool is_socket(int fd)
{
	struct stat st;
	return fstat(fd, &st) == 0 && S_ISSOCK(st.st_mode);
}

static void write_next(struct afe_write_all *w)
{
	const char *from = w->buf + w->done;
	unsigned n = chunk_of(w->len - w->done);
	if (w->socket)
		afe_io_send_init(&w->io, w->fd, from, n, MSG_NOSIGNAL);
	else
		afe_io_write_init(&w->io, w->fd, from, n, advance(w->offset, w->done));
}

static int write_all_poll(struct afe_future *f, struct afe_context *cx)
{
	struct afe_write_all *self = afe_container_of(f, struct afe_write_all, base);
	AFE_ASYNC_BEGIN(f, cx);
	self->socket = is_socket(self->fd);
	while (self->done < self->len) {
		write_next(self);
		AFE_AWAIT(&self->io.base);
		if (self->io.base.result <= 0)
			AFE_RETURN(self->io.base.result < 0 ? self->io.base.result : -EPIPE);
		self->done += (size_t)self->io.base.result;
	}
	AFE_RETURN((intptr_t)self->len);
	AFE_ASYNC_END;
}

void afe_write_all_init(struct afe_write_all *w, int fd, const void *buf, size_t len,
			int64_t offset)
{
	afe_future_init(&w->base, write_all_poll);
	w->fd = fd;
	w->buf = buf;
	w->len = len > INTPTR_MAX ? INTPTR_MAX : len;
	w->offset = offset;
	w->done = 0;
	w->socket = false;
}

/* ---- buffered reader ------------------------------------------------------- */

/* Gives the caller the next len unread bytes as the record; returns len. */
static intptr_t take(struct afe_buf_reader *r, size_t len)
{
	r->taken = len;
	r->scanned = 0;
	return (intptr_t)len;
}

/* The length of the next record if the buffer holds its delimiter, else 0
 * (and what was searched is not searched again). */
static size_t find_delim(struct afe_buf_reader *r)
{
	const char *from = r->buf + r->start + r->scanned;
	const char *hit = memchr(from, r->delim, r->end - r->start - r->scanned);
	if (hit)
		return (size_t)(hit - (r->buf + r->start)) + 1;
	r->scanned = r->end - r->start;
	return 0;
}

/* Moves the unread bytes to the front, for the most room to read into. */
static void compact(struct afe_buf_reader *r)
{
	if (r->start == 0)
		return;
	memmove(r->buf, r->buf + r->start, r->end - r->start);
	r->end -= r->start;
	r->start = 0;
}

/* The read in io finished (or was cancelled): keeps what it brought. */
static void read_done(struct afe_buf_reader *r)
{
	r->reading = false;
	if (r->io.base.result > 0)
		r->end += (size_t)r->io.base.result;
	else if (r->io.base.result == 0)
		r->eof = true;
}

static int read_until_poll(struct afe_future *f, struct afe_context *cx)
{
	struct afe_buf_reader *self = afe_container_of(f, struct afe_buf_reader, base);
	AFE_ASYNC_BEGIN(f, cx);
	if (!self->buf || self->capacity == 0)
		AFE_RETURN(-EINVAL);
	self->start += self->taken;
	self->taken = 0;
	for (;;) {
		size_t n = find_delim(self);
		if (n > 0)
			AFE_RETURN(take(self, n));
		if (self->eof) /* the rest, cut short; then 0 */
			AFE_RETURN(take(self, self->end - self->start));
		if (self->end - self->start == self->capacity) {
			take(self, self->capacity);
			AFE_RETURN(-EMSGSIZE);
		}
		compact(self);
		afe_io_read_init(&self->io, self->fd, self->buf + self->end,
				 chunk_of(self->capacity - self->end), -1);
		self->reading = true;
		AFE_AWAIT(&self->io.base);
		read_done(self);
		if (self->io.base.result < 0)
			AFE_RETURN(self->io.base.result);
	}
	AFE_CLEANUP;
	if (self->reading) /* cancelled: a read that completed still counts */
		read_done(self);
	AFE_ASYNC_END;
}

void afe_buf_reader_init(struct afe_buf_reader *r, int fd, void *buf, size_t capacity)
{
	afe_future_init(&r->base, read_until_poll);
	r->fd = fd;
	r->buf = buf;
	r->capacity = capacity;
	r->start = r->end = r->scanned = r->taken = 0;
	r->delim = '\n';
	r->eof = false;
	r->reading = false;
}

struct afe_future *afe_buf_reader_read_until(struct afe_buf_reader *r, char delim)
{
	/* AFE_AWAIT evaluates its argument at every poll: a read under way
	 * must go on, not start again. */
	if (r->base.resume != 0 && !afe_future_is_done(&r->base))
		return &r->base;
	afe_future_init(&r->base, read_until_poll);
	if (delim != r->delim)
		r->scanned = 0;
	r->delim = delim;
	return &r->base;
}

const char *afe_buf_reader_line(const struct afe_buf_reader *r)
{
	return r->buf ? r->buf + r->start : NULL;
}
