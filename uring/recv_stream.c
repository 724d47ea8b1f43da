/* SPDX-License-Identifier: MIT */
/*
 * The receive stream (afe/recv_stream.h): one multishot receive into a
 * provided-buffer ring where the kernel has them, else one receive per
 * await into the stream's first buffer; on a datagram socket, recvmsg
 * in either form, which also gives each datagram's sender.
 *
 * The buffer ring is the stream's own: its entries are written only by
 * the task that owns the stream (one poll at a time), which hands a
 * buffer back when it asks for the next bytes, so the ring's tail has one
 * writer and needs no lock. The ring thread registers and unregisters it
 * (compat.h's AFE_OP_BUF_RING_*), and queues each result the multishot
 * receive brings (received(), under the lock) until the task takes it.
 */
#define _GNU_SOURCE
#include "afe/recv_stream.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "afe/runtime.h"
#include "compat.h"
#include "../pool/give_way.h"
#include "../pool/spinlock.h"
#include "../pool/wake_batch.h"

#define MAX_BUFFERS 32768u /* the kernel's bound on a buffer ring */
#define MAX_SIZE (1u << 20)
#define OPEN 1 /* s->end while the stream gives bytes */

/* The buffers' group in the ring (s->group_state). */
enum {
	GROUP_UNTRIED,	   /* before the first await */
	GROUP_NONE,	   /* one receive per await: no multishot, or refused */
	GROUP_REGISTERING, /* s->reg registers it */
	GROUP_READY,	   /* s->group, in the ring */
	GROUP_UNREGISTERING,
};

/* The buffer ring sits at the start of the mapping, alone in its pages. */
static size_t ring_bytes(unsigned count)
{
	size_t page = (size_t)sysconf(_SC_PAGESIZE);
	size_t bytes = (size_t)count * sizeof(struct io_uring_buf);
	return (bytes + page - 1) / page * page;
}

static struct io_uring_buf_ring *ring_of(struct afe_recv_stream *s)
{
	return (struct io_uring_buf_ring *)(void *)s->memory;
}

static char *buffer(struct afe_recv_stream *s, unsigned id)
{
	return s->memory + ring_bytes(s->count) + (size_t)id * s->size;
}

/* Puts buffer id (back) in the ring, for the kernel to fill; the
 * advance is a release store of the tail, which the kernel's read of it
 * pairs with. */
static void provide(struct afe_recv_stream *s, unsigned id)
{
	int mask = io_uring_buf_ring_mask(s->count);
	io_uring_buf_ring_add(ring_of(s), buffer(s, id), s->size, (unsigned short)id, mask, 0);
	io_uring_buf_ring_advance(ring_of(s), 1);
}

/* A datagram buffer starts with the multishot recvmsg's header and room
 * for the sender's address; size bytes of payload follow. */
#define DATAGRAM_HEAD (sizeof(struct io_uring_recvmsg_out) + sizeof(struct sockaddr_storage))

/* Sets s up with count buffers that each hold size bytes of payload
 * (datagrams: after a DATAGRAM_HEAD); s->size is a buffer's whole length. */
static int setup(struct afe_recv_stream *s, int fd, unsigned count, unsigned size,
		 bool datagrams)
{
	if (!s)
		return -EINVAL;
	memset(s, 0, sizeof(*s));
	s->group = s->held = -1;
	atomic_flag_clear(&s->lock);
	afe_recv_stream_next(s); /* a stream that failed gives its error */
	s->group_state = GROUP_NONE;
	s->end = -EINVAL;
	if (count == 0 || count > MAX_BUFFERS || (count & (count - 1)) || size == 0 ||
	    size > MAX_SIZE)
		return -EINVAL;
	unsigned stride = datagrams ? size + (unsigned)DATAGRAM_HEAD : size;
	s->end = -ENOMEM;
	size_t memory_len = ring_bytes(count) + (size_t)count * stride;
	void *memory = mmap(NULL, memory_len, PROT_READ | PROT_WRITE,
			    MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (memory == MAP_FAILED)
		return -ENOMEM;
	s->parts = malloc(count * sizeof(*s->parts));
	if (!s->parts) {
		munmap(memory, memory_len);
		return -ENOMEM;
	}
	s->memory = memory;
	s->memory_len = memory_len;
	s->group_state = GROUP_UNTRIED;
	s->fd = fd;
	s->count = count;
	s->size = stride;
	s->datagrams = datagrams;
	s->end = OPEN;
	return 0;
}

int afe_recv_stream_init(struct afe_recv_stream *s, int fd, unsigned count, unsigned size)
{
	return setup(s, fd, count, size, false);
}

int afe_recv_stream_init_datagrams(struct afe_recv_stream *s, int fd, unsigned count,
				   unsigned size)
{
	return setup(s, fd, count, size, true);
}

void afe_recv_stream_destroy(struct afe_recv_stream *s)
{
	if (s->memory)
		munmap(s->memory, s->memory_len);
	free(s->parts);
	afe_waker_drop(&s->waker);
	memset(s, 0, sizeof(*s));
}

/* Puts a receive's result (res bytes, in the buffer its CQE's flags name)
 * behind the parts; false when it is no part: no bytes, or no buffer of
 * the stream. One part per buffer at most: a full list would mean a
 * buffer the kernel gave twice. Called with the lock held. */
static bool queue_part_locked(struct afe_recv_stream *s, int32_t res, uint32_t flags)
{
	unsigned id = flags >> IORING_CQE_BUFFER_SHIFT;
	if (res <= 0 || !(flags & IORING_CQE_F_BUFFER) || id >= s->count)
		return false;
	if (s->parts_count < s->count)
		s->parts[(s->head + s->parts_count++) % s->count] =
			(struct afe__recv_part){.len = res, .buffer = (uint16_t)id};
	return true;
}

/* Ring thread: a result of the multishot receive, more to come. */
static void received(struct afe_io *io, int32_t res, uint32_t flags)
{
	struct afe_recv_stream *s = afe_container_of(io, struct afe_recv_stream, recv);
	afe_spin_lock(&s->lock);
	queue_part_locked(s, res, flags);
	struct afe_waker waker = afe_waker_take(&s->waker);
	afe_spin_unlock(&s->lock);
	afe_waker_wake_if_set(&waker);
}

/* The header of a datagram receive: the sender's address into from, and
 * (one receive per await) the payload into buffer 0. A multishot recvmsg
 * reads only its lengths: it writes the address into each buffer. */
static struct msghdr *datagram_header(struct afe_recv_stream *s, bool multishot)
{
	memset(&s->msg, 0, sizeof(s->msg));
	s->msg.msg_name = &s->from;
	s->msg.msg_namelen = sizeof(s->from);
	if (!multishot) {
		s->iov.iov_base = buffer(s, 0);
		s->iov.iov_len = s->size - DATAGRAM_HEAD;
		s->msg.msg_iov = &s->iov;
		s->msg.msg_iovlen = 1;
	}
	return &s->msg;
}

/* The receive, armed: multishot into the group, or one into buffer 0. */
static void arm(struct afe_recv_stream *s)
{
	bool multishot = s->group_state == GROUP_READY;
	if (s->datagrams)
		afe_io_recvmsg_init(&s->recv, s->fd, datagram_header(s, multishot), 0);
	else if (multishot)
		afe_io_recv_init(&s->recv, s->fd, NULL, 0, 0);
	else
		afe_io_recv_init(&s->recv, s->fd, buffer(s, 0), s->size, 0);
	if (multishot) {
		struct io_uring_sqe *sqe = (struct io_uring_sqe *)(void *)s->recv.sqe;
		sqe->ioprio |= IORING_RECV_MULTISHOT;
		sqe->flags |= IOSQE_BUFFER_SELECT;
		sqe->buf_group = (uint16_t)s->group;
		s->recv.on_more = received;
	}
	s->armed = true;
}

/* Polls reg (the group's registration or unregistration) to its end
 * with cancel cleared: a cancelled first poll would skip the request. */
static int poll_plainly(struct afe_recv_stream *s, struct afe_context *cx)
{
	struct afe_context plain = *cx;
	plain.cancel = false;
	return afe_future_poll(&s->reg.base, &plain);
}

/* The group's registration ended: its id, or the stream goes on without
 * (one receive per await) when the kernel refused it. */
static void registered(struct afe_recv_stream *s)
{
	intptr_t group = s->reg.base.result;
	s->group_state = group >= 0 ? GROUP_READY : GROUP_NONE;
	s->group = group >= 0 ? (int)group : -1;
}

/* Withdraws the receive, then the group, waiting for each; READY once
 * nothing of the stream is in the ring, which then gives -ECANCELED. */
static int wind_down(struct afe_recv_stream *s, struct afe_context *cx)
{
	if (s->armed) {
		struct afe_context cancelling = *cx;
		cancelling.cancel = true;
		if (afe_future_poll(&s->recv.base, &cancelling) == AFE_PENDING)
			return AFE_PENDING;
		s->armed = false;
	}
	if (s->group_state == GROUP_REGISTERING) {
		if (poll_plainly(s, cx) == AFE_PENDING)
			return AFE_PENDING;
		registered(s);
	}
	if (s->group_state == GROUP_READY) {
		afe_io_nop_init(&s->reg);
		afe_prep_buf_ring_unregister((struct io_uring_sqe *)(void *)s->reg.sqe,
					     (uint16_t)s->group);
		s->group_state = GROUP_UNREGISTERING;
	}
	if (s->group_state == GROUP_UNREGISTERING) {
		if (poll_plainly(s, cx) == AFE_PENDING)
			return AFE_PENDING;
		/* Gone, or the ring is (-ESHUTDOWN), which takes the group with it. */
		s->group_state = GROUP_NONE;
		s->group = -1;
	}
	s->parts_count = 0;
	s->held = -1;
	s->end = -ECANCELED;
	afe_waker_drop(&s->waker);
	return AFE_READY;
}

static int stop_poll(struct afe_future *f, struct afe_context *cx)
{
	struct afe_recv_stream *s = afe_container_of(f, struct afe_recv_stream, base);
	if (wind_down(s, cx) == AFE_PENDING)
		return AFE_PENDING;
	f->result = 0;
	return AFE_READY;
}

/* One receive per await, into buffer 0 (the task is done with the last
 * bytes there once it asks for more). */
static int next_one_by_one(struct afe_recv_stream *s, struct afe_context *cx)
{
	if (!s->armed)
		arm(s);
	if (afe_future_poll(&s->recv.base, cx) == AFE_PENDING)
		return AFE_PENDING;
	s->armed = false;
	intptr_t res = s->recv.base.result;
	if (s->datagrams && res >= 0) {
		s->data = buffer(s, 0);
		s->from_len = s->msg.msg_namelen;
		s->truncated = s->msg.msg_flags & MSG_TRUNC;
		s->base.result = res;
	} else if (res > 0) {
		s->data = buffer(s, 0);
		s->base.result = res;
	} else {
		s->end = (int32_t)res;
		s->base.result = res;
	}
	return AFE_READY;
}

/* A datagram the multishot recvmsg left in buffer id (len bytes of it):
 * its header, the sender's address, then its payload. The kernel wrote
 * it, so a header that does not fit means a kernel that lays buffers out
 * otherwise: the stream ends with -EIO. */
static void give_datagram(struct afe_recv_stream *s, unsigned id, int32_t len)
{
	struct io_uring_recvmsg_out *out =
		io_uring_recvmsg_validate(buffer(s, id), len, &s->msg);
	if (!out || out->namelen > sizeof(s->from)) {
		s->end = -EIO;
		s->base.result = -EIO;
		return;
	}
	size_t room = (size_t)len - DATAGRAM_HEAD;
	memcpy(&s->from, io_uring_recvmsg_name(out), out->namelen);
	s->from_len = out->namelen;
	s->truncated = (out->flags & MSG_TRUNC) || out->payloadlen > room;
	s->data = io_uring_recvmsg_payload(out, &s->msg);
	s->base.result = (intptr_t)(out->payloadlen < room ? out->payloadlen : room);
}

/* Takes the oldest part the multishot receive brought, if any. */
static bool take_part(struct afe_recv_stream *s)
{
	if (s->parts_count == 0)
		return false;
	struct afe__recv_part part = s->parts[s->head];
	s->head = (s->head + 1) % s->count;
	s->parts_count--;
	s->held = part.buffer;
	s->dry_rearms = 0;
	if (s->datagrams) {
		give_datagram(s, part.buffer, part.len);
	} else {
		s->data = buffer(s, part.buffer);
		s->base.result = part.len;
	}
	return true;
}

/* The multishot receive's last result (it is not armed any more): bytes
 * in a buffer go behind the parts; the end of the stream or an error is
 * kept for after them; -ENOBUFS (every buffer was taken) re-arms. */
static void multishot_ended(struct afe_recv_stream *s)
{
	intptr_t res = s->recv.base.result; /* a CQE's: it fits an int32_t */
	s->armed = false;
	afe_spin_lock(&s->lock);
	bool queued = queue_part_locked(s, (int32_t)res, s->recv.cqe_flags);
	afe_spin_unlock(&s->lock);
	if (!queued && res != -ENOBUFS)
		s->end = res > 0 ? -EIO : (int32_t)res; /* bytes without a buffer: never */
}

static int next_multishot(struct afe_recv_stream *s, struct afe_context *cx)
{
	for (;;) {
		afe_spin_lock(&s->lock);
		/* A part is an operation ended at once: it spends the poll's
		 * budget (pool/give_way.h), or a stream that never runs dry
		 * would keep the task's thread. */
		bool give_way = s->parts_count && afe__poll_budget_spend();
		bool took = !give_way && take_part(s);
		if (!took && !give_way && s->end == OPEN)
			afe_waker_register(&s->waker, cx);
		afe_spin_unlock(&s->lock);
		if (give_way)
			return afe__give_way(cx);
		if (took)
			return AFE_READY;
		if (s->end != OPEN) {
			s->base.result = s->end;
			return AFE_READY;
		}
		if (!s->armed)
			arm(s);
		if (afe_future_poll(&s->recv.base, cx) == AFE_PENDING)
			return AFE_PENDING;
		bool no_buffers = s->recv.base.result == -ENOBUFS;
		multishot_ended(s);
		/* -ENOBUFS with every buffer back in the ring, twice running:
		 * the kernel does not see them; an error, not a loop. */
		if (no_buffers && s->parts_count == 0 && ++s->dry_rearms > 1)
			s->end = -ENOBUFS;
	}
}

static int next_poll(struct afe_future *f, struct afe_context *cx)
{
	struct afe_recv_stream *s = afe_container_of(f, struct afe_recv_stream, base);
	if (cx->cancel) {
		if (wind_down(s, cx) == AFE_PENDING)
			return AFE_PENDING;
		f->result = -ECANCELED;
		return AFE_READY;
	}
	if (s->held >= 0) { /* the task is done with the last bytes */
		provide(s, (unsigned)s->held);
		s->held = -1;
	}
	if (s->end != OPEN && s->parts_count == 0) {
		f->result = s->end;
		return AFE_READY;
	}
	if (s->group_state == GROUP_UNTRIED) {
		struct afe_runtime *rt = afe_runtime_current();
		if (!(afe_runtime_uring_features(rt) & AFE_URING_RECV_MULTISHOT)) {
			s->group_state = GROUP_NONE;
		} else {
			for (unsigned id = 0; id < s->count; id++)
				provide(s, id);
			afe_io_nop_init(&s->reg);
			afe_prep_buf_ring_register((struct io_uring_sqe *)(void *)s->reg.sqe,
						   ring_of(s), s->count);
			s->group_state = GROUP_REGISTERING;
		}
	}
	if (s->group_state == GROUP_REGISTERING) {
		if (afe_future_poll(&s->reg.base, cx) == AFE_PENDING)
			return AFE_PENDING;
		registered(s);
	}
	return s->group_state == GROUP_READY ? next_multishot(s, cx) : next_one_by_one(s, cx);
}

struct afe_future *afe_recv_stream_next(struct afe_recv_stream *s)
{
	afe_future_init(&s->base, next_poll);
	return &s->base;
}

struct afe_future *afe_recv_stream_stop(struct afe_recv_stream *s)
{
	afe_future_init(&s->base, stop_poll);
	return &s->base;
}
