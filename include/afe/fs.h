/* SPDX-License-Identifier: MIT */
/*
 * Files and streams, built on the ring's operations (afe/io.h): ftruncate
 * on any kernel, a file sent to a socket through a pipe, reads and writes
 * of an exact length, and a buffered reader for line protocols.
 *
 * Each is a future: fill it with its init call, keep it in your future's
 * state and await &x.base from a task. Buffers passed in belong to the
 * future until it is ready. Polled outside a runtime's task each gives
 * -EINVAL, as the operations do; cancelled, -ECANCELED once nothing it
 * started is in flight.
 *
 * A line server's loop:
 *
 *   afe_buf_reader_init(&self->in, fd, self->buf, sizeof(self->buf));
 *   for (;;) {
 *       AFE_AWAIT(afe_buf_reader_read_until(&self->in, '\n'));
 *       intptr_t n = self->in.base.result;   // 0: the peer closed
 *       if (n <= 0) break;                   // or -EMSGSIZE, -ECONNRESET
 *       afe_write_all_init(&self->out, fd, afe_buf_reader_line(&self->in),
 *                          (size_t)n, -1);
 *       AFE_AWAIT(&self->out.base);
 *   }
 */
#ifndef AFE_FS_H
#define AFE_FS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "blocking.h"
#include "common.h"
#include "future.h"
#include "io.h"

/*
 * ftruncate(2): fd's file gets exactly length bytes (cut, or grown with
 * zeros). Through the ring when the runtime has AFE_URING_FTRUNCATE
 * (Linux 6.9, see afe_runtime_uring_features), else ftruncate(2) on the
 * blocking pool. Result 0, or -EBADF, -EINVAL (a negative length, an fd
 * not open for writing or not a regular file).
 */
struct afe_io_ftruncate {
	struct afe_future base;
	int fd;
	int64_t length;
	/* Private: one of the two is used. */
	struct afe_io io;
	struct afe_blocking job;
};
AFE_EXPORT void afe_io_ftruncate_init(struct afe_io_ftruncate *t, int fd, int64_t length);

/*
 * Sends len bytes of file in_fd from offset (or from its file position
 * when offset is -1, which then advances) to out_fd, a socket (or
 * anything splice(2) writes to), as sendfile(2) does: spliced into a pipe
 * of its own, and from there to out_fd, in chunks of at most the pipe's
 * size, so the data is not copied through user memory. Short splices are carried
 * on from where they stopped.
 *
 * Each splice that will not wait is made by the worker polling the task
 * itself: out of the file when the chunk's pages are in the page cache (a
 * byte at each end read with RWF_NOWAIT), and into out_fd when it is a
 * non-blocking socket or pipe (SOCK_NONBLOCK, O_NONBLOCK), waiting for
 * room through the ring when it is full; with both, 64 KiB at a time. The
 * others go through the ring, a pipe's worth (1 MiB) at a time, to a
 * kernel thread that may wait: into a blocking out_fd (or a file, which
 * O_NONBLOCK does not stop from waiting), out of a chunk the disk must
 * read. So give it a non-blocking socket: a blocking one was served about
 * a third slower on loopback (README, benchmarks); but see afe/io.h on
 * what other operations on a non-blocking fd may answer before Linux 6.3
 * (-EAGAIN), where AFE's own sockets are blocking. Between two steps made
 * on the worker, the task gives way to the tasks queued behind it, and at
 * least every 128 steps.
 *
 * Result: the bytes sent, which is len unless the file ended first (then
 * what it held past offset: 0 at or past its end); or the first error:
 * -EBADF, -EINVAL (an offset other than -1 on an in_fd that has none: a
 * socket, a pipe), -EPIPE or -ECONNRESET (the peer went away), -EMFILE
 * (no fd for the pipe). splice(2) has no MSG_NOSIGNAL: a splice into a
 * socket whose peer left raises SIGPIPE at the thread that made it, a
 * worker, which blocks it; the sendfile takes it there (through the ring,
 * 6.18 raised none). After an error, sent says how many bytes did reach
 * out_fd.
 */
struct afe_sendfile {
	struct afe_future base;
	int out_fd, in_fd;
	int64_t offset;
	size_t len;
	size_t sent;   /* bytes out_fd took so far */
	/* Private. */
	size_t read;   /* bytes taken from in_fd so far */
	size_t piped;  /* of those, still in the pipe */
	size_t chunk;  /* the pipe's capacity */
	size_t step;   /* what the current step fills */
	size_t cached_to; /* read found in the page cache up to here */
	intptr_t moved; /* the last splice's result */
	bool out_nonblocking; /* a non-blocking socket or pipe */
	bool fill_cached; /* the step's fill is a worker's: its pages are cached */
	int pipe[2];
	struct afe_io io;
};
AFE_EXPORT void afe_sendfile_init(struct afe_sendfile *s, int out_fd, int in_fd, int64_t offset,
				  size_t len);

/*
 * Reads exactly len bytes from fd into buf, in as many reads as it takes:
 * from offset on (a file), or with offset -1 from the file position, a
 * pipe or a socket. Result: len; 0 when the data ended before its first
 * byte (a peer that closed between messages; also for len 0); -EPIPE when
 * it ended part way (done says how many bytes arrived); or the first
 * error (-EBADF, -ECONNRESET, ...).
 */
struct afe_read_exact {
	struct afe_future base;
	int fd;
	char *buf;
	size_t len;
	int64_t offset;
	size_t done; /* bytes in buf so far */
	/* Private. */
	struct afe_io io;
};
AFE_EXPORT void afe_read_exact_init(struct afe_read_exact *r, int fd, void *buf, size_t len,
				    int64_t offset);

/*
 * Writes all len bytes of buf to fd, in as many writes as it takes: at
 * offset on (a file), or with offset -1 at the file position, to a pipe or
 * a socket. On a socket it sends with MSG_NOSIGNAL, so a closed peer is
 * -EPIPE rather than a SIGPIPE (a pipe whose reader closed raises SIGPIPE
 * as write(2) does). Result: len, or the first error (-EBADF, -EPIPE,
 * -ENOSPC, ...; done says how many bytes were written); a write that
 * takes nothing counts as -EPIPE.
 */
struct afe_write_all {
	struct afe_future base;
	int fd;
	const char *buf;
	size_t len;
	int64_t offset;
	size_t done; /* bytes written so far */
	/* Private. */
	bool socket;
	struct afe_io io;
};
AFE_EXPORT void afe_write_all_init(struct afe_write_all *w, int fd, const void *buf, size_t len,
				   int64_t offset);

/*
 * A reader of delimited records (lines) from a stream fd (a socket, a pipe,
 * a file from its position), through a buffer of fixed capacity the caller
 * owns. The reader is itself the future of its current read: each
 * afe_buf_reader_read_until resets it and returns its base to await.
 *
 * Result of a read: the length of the next record, delimiter included;
 * afe_buf_reader_line points at its first byte, valid until the next
 * read. At the end of the data:
 * - a record cut short (no delimiter before the end) comes as it is, its
 *   length its result: check line[n - 1] == delim to tell;
 * - then, and at every later read, 0.
 * -EMSGSIZE: capacity bytes arrived without a delimiter; they are dropped
 * (line points at them until the next read), and the next read goes on
 * from the rest of that record. Errors of the read (-EBADF, -ECONNRESET)
 * come as they are; what was buffered stays. Cancelled, a read keeps what
 * arrived for the next one (-ECANCELED).
 *
 * Reads ask for the buffer's free room at a time, so a record may arrive
 * with more behind it: the reader keeps that for the next read, and the
 * fd must not be read by anyone else meanwhile.
 */
struct afe_buf_reader {
	struct afe_future base; /* the current read */
	int fd;
	char *buf;
	size_t capacity;
	/* Private. */
	size_t start, end; /* unread bytes: buf[start, end) */
	size_t scanned;	   /* of those, bytes known to hold no delim */
	size_t taken;	   /* the last record's length: dropped at the next read */
	char delim;
	bool eof;
	bool reading; /* io is a read under way */
	struct afe_io io;
};

/* buf holds capacity bytes (at least 1; a NULL buf or a capacity of 0
 * makes every read -EINVAL). */
AFE_EXPORT void afe_buf_reader_init(struct afe_buf_reader *r, int fd, void *buf, size_t capacity);

/* Resets r's future to read up to and including the next delim, and
 * returns it. While that read is under way (AFE_AWAIT calls this again at
 * every poll) it returns the same future, unchanged. */
AFE_EXPORT struct afe_future *afe_buf_reader_read_until(struct afe_buf_reader *r, char delim);

/* The first byte of the record the last read gave. */
AFE_EXPORT const char *afe_buf_reader_line(const struct afe_buf_reader *r);

#endif /* AFE_FS_H */
