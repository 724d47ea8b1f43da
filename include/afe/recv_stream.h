/* SPDX-License-Identifier: MIT */
/*
 * The bytes arriving on a connected socket (TCP, a Unix stream), into
 * buffers the stream owns.
 *
 * Where the kernel has multishot receive (Linux 6.0: AFE_URING_RECV_MULTISHOT,
 * afe/runtime.h) one receive stays armed in the ring for the whole stream,
 * and the kernel fills whichever of the stream's buffers are free (they
 * are registered as a provided-buffer ring): one submission for any
 * number of receives, and bytes keep arriving while the task works on the
 * last ones. Elsewhere (older kernels, the epoll backend) each await makes
 * one receive. Either way the results are the same.
 *
 *   struct afe_recv_stream in;              // in the future's struct
 *   err = afe_recv_stream_init(&in, fd, 8, 4096);   // 8 buffers of 4 KiB
 *   ...
 *   for (;;) {
 *       AFE_AWAIT(afe_recv_stream_next(&self->in));
 *       ssize_t n = self->in.base.result;   // 0: the peer closed; < 0: -errno
 *       if (n <= 0)
 *           break;
 *       consume(self->in.data, (size_t)n);  // valid until the next call
 *   }
 *   AFE_AWAIT(afe_recv_stream_stop(&self->in));
 *   afe_recv_stream_destroy(&self->in);
 *
 * Each await of afe_recv_stream_next gives the next bytes in order (at
 * most one buffer's worth), 0 once the peer closed and everything before
 * was taken, or the error that ended the stream (-ECONNRESET, -EBADF,
 * -ENOTSOCK, ...); after 0 or an error every later await gives the same.
 * The bytes it gives stay at `data` until the next call on the stream,
 * whose buffer then goes back to the kernel. When the task takes bytes
 * slower than they arrive, the kernel stops at the last free buffer and
 * the stream arms the receive again as buffers come back: nothing is
 * lost. Cancelling an await stops the stream (as afe_recv_stream_stop).
 *
 * The stream must be stopped before it is destroyed, or its memory moved,
 * once an await was made (a multishot receive may still be writing into
 * its buffers); the fd stays the caller's, open until then.
 *
 * On a datagram socket (UDP, a Unix datagram socket), a stream set up with
 * afe_recv_stream_init_datagrams gives one datagram per await, with its
 * sender (a multishot recvmsg where the kernel has it):
 *
 *   err = afe_recv_stream_init_datagrams(&in, fd, 64, 2048);
 *   ...
 *       AFE_AWAIT(afe_recv_stream_next(&self->in));
 *       ssize_t n = self->in.base.result;   // >= 0: a datagram (0: empty)
 *       if (n < 0)
 *           break;                          // the error that ended it
 *       reply_to(&self->in.from, self->in.from_len, self->in.data, n);
 *
 * There 0 is an empty datagram, not an end: the stream ends only on an
 * error or a stop. A datagram longer than size gives its first size bytes
 * with `truncated` set; its rest is lost, as with MSG_TRUNC.
 */
#ifndef AFE_RECV_STREAM_H
#define AFE_RECV_STREAM_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>

#include "common.h"
#include "future.h"
#include "io.h"

/* A received part the task has not taken yet: its length, its buffer. */
struct afe__recv_part {
	int32_t len;
	uint16_t buffer;
};

struct afe_recv_stream {
	struct afe_future base; /* the current "next bytes" future */
	const char *data;	/* the bytes the last await gave */
	/* Datagram streams only: the last datagram's sender (from_len bytes
	 * of from) and whether it was longer than a buffer. */
	struct sockaddr_storage from;
	socklen_t from_len;
	bool truncated;
	/* Private. */
	int fd;
	unsigned count, size; /* buffers, bytes each (datagrams: with a header) */
	char *memory;	      /* the buffer ring's page, then the buffers */
	size_t memory_len;
	int group;	       /* the buffers' group id in the ring; -1: none */
	int held;	       /* the buffer the task holds; -1: none */
	int32_t end;	       /* 1 while open; else what every await gives */
	uint8_t group_state;   /* recv_stream.c */
	uint8_t dry_rearms;    /* -ENOBUFS with every buffer free, running */
	bool armed;	       /* the receive is in the ring */
	bool datagrams;	       /* a recvmsg per datagram, with its sender */
	struct msghdr msg;     /* datagrams: the receive's header */
	struct iovec iov;      /* datagrams, one per await: buffer 0 */
	struct afe_io recv, reg; /* the receive; the group's (un)registration */
	atomic_flag lock;      /* guards the parts and the waker (ring thread) */
	unsigned head, parts_count;
	struct afe__recv_part *parts; /* count entries: one per buffer at most */
	struct afe_waker waker;
};

/* Sets s up on connected socket fd with count buffers (a power of two,
 * 1 to 32768) of size bytes (1 to 1 MiB) each. 0; -EINVAL for a null s, a
 * bad count or size; -ENOMEM. After an error s holds no memory and an
 * await of it gives the error. */
AFE_EXPORT int afe_recv_stream_init(struct afe_recv_stream *s, int fd, unsigned count,
				    unsigned size);

/* As afe_recv_stream_init, on datagram socket fd: each await gives one
 * datagram of up to size bytes (buffers hold size bytes of payload, plus
 * room for the sender's address). The same errors. */
AFE_EXPORT int afe_recv_stream_init_datagrams(struct afe_recv_stream *s, int fd, unsigned count,
					      unsigned size);

/* Resets the stream's future for the next bytes and returns it; the
 * bytes the last one gave go back to the stream. */
AFE_EXPORT struct afe_future *afe_recv_stream_next(struct afe_recv_stream *s);

/* Resets the stream's future to one that stops the stream (as cancelling
 * an await does: the receive is withdrawn and its buffers unregistered)
 * and returns it: for cleanup sections, where awaits are not cancelled.
 * Its result is 0; later awaits of next give -ECANCELED. */
AFE_EXPORT struct afe_future *afe_recv_stream_stop(struct afe_recv_stream *s);

/* Frees the stream's buffers: after a stop, or before any await. */
AFE_EXPORT void afe_recv_stream_destroy(struct afe_recv_stream *s);

#endif /* AFE_RECV_STREAM_H */
