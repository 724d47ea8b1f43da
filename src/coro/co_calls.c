/* SPDX-License-Identifier: MIT */
/* The blocking-style calls of afe/coro.h: each inits a future in the
 * coroutine's slot (see coro_internal.h) and awaits it. */
#include <afe/coro.h>
#include <afe/ipc.h>
#include <afe/net.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include "coro_internal.h"

/* Declares s, the calling coroutine's slot, for a call whose buffer is
 * [buf, buf + len) (len 0: none). Returns -EPERM outside a coroutine, and
 * -EFAULT for a buffer on a shared stack (see coro_internal.h). */
#define SLOT_OR_RETURN(s, buf, len)                            \
	union afe__co_slot *s = afe__co_slot();                \
	if (!s)                                                \
		return -EPERM;                                 \
	if (afe__co_on_shared_stack((buf), (len)))            \
		return -EFAULT

/* The ring takes 32-bit lengths: a longer buffer is done in part, as a
 * short read or write is. */
static unsigned ring_len(size_t len)
{
	return len > UINT_MAX ? UINT_MAX : (unsigned)len;
}


int afe_co_sleep(uint64_t ns)
{
	SLOT_OR_RETURN(s, NULL, 0);
	afe_sleep_init(&s->sleep, ns);
	return (int)afe_co_await(&s->sleep.base);
}

ssize_t afe_co_read(int fd, void *buf, size_t len, int64_t offset)
{
	SLOT_OR_RETURN(s, buf, len);
	afe_io_read_init(&s->io, fd, buf, ring_len(len), offset);
	return (ssize_t)afe_co_await(&s->io.base);
}

ssize_t afe_co_write(int fd, const void *buf, size_t len, int64_t offset)
{
	SLOT_OR_RETURN(s, buf, len);
	afe_io_write_init(&s->io, fd, buf, ring_len(len), offset);
	return (ssize_t)afe_co_await(&s->io.base);
}

ssize_t afe_co_recv(int fd, void *buf, size_t len, int flags)
{
	SLOT_OR_RETURN(s, buf, len);
	afe_io_recv_init(&s->io, fd, buf, ring_len(len), flags);
	return (ssize_t)afe_co_await(&s->io.base);
}

ssize_t afe_co_send(int fd, const void *buf, size_t len, int flags)
{
	SLOT_OR_RETURN(s, buf, len);
	afe_io_send_init(&s->io, fd, buf, ring_len(len), flags);
	return (ssize_t)afe_co_await(&s->io.base);
}

int afe_co_send_all(int fd, const void *buf, size_t len)
{
	SLOT_OR_RETURN(s, buf, len);
	afe_send_all_init(&s->send_all, fd, buf, len);
	intptr_t sent = afe_co_await(&s->send_all.base); /* len, or -errno */
	return sent < 0 ? (int)sent : 0;
}

/* The send and the receive linked (afe_io_link): one trip through the
 * ring when the send goes out whole. On the coroutine's own stack, where
 * its await winds them down before returning; a shared stack cannot hold
 * them (see coro_internal.h), so there the two go one after the other, as
 * they do after a send the link cut short. */
ssize_t afe_co_send_recv(int fd, const void *out, size_t outlen, void *in, size_t inlen)
{
	SLOT_OR_RETURN(s, out, outlen);
	if (afe__co_on_shared_stack(in, inlen))
		return -EFAULT;
	size_t sent = 0;
	struct afe_io pair[2];
	if (!afe__co_on_shared_stack(pair, sizeof(pair)) && outlen <= UINT_MAX) {
		afe_io_send_init(&pair[0], fd, out, (unsigned)outlen, MSG_WAITALL | MSG_NOSIGNAL);
		afe_io_recv_init(&pair[1], fd, in, ring_len(inlen), 0);
		afe_io_link(&pair[0], &pair[1]);
		intptr_t res = afe_co_await(&pair[0].base);
		if (res < 0)
			return (ssize_t)res; /* the receive was cancelled with it */
		if ((size_t)res == outlen)
			return (ssize_t)pair[1].base.result;
		sent = (size_t)res; /* the link broke: the rest, then the receive */
	}
	int err = afe_co_send_all(fd, (const char *)out + sent, outlen - sent);
	return err < 0 ? err : afe_co_recv(fd, in, inlen, 0);
}

int afe_co_accept(int fd, struct sockaddr *addr, unsigned *addrlen, int flags)
{
	SLOT_OR_RETURN(s, addrlen, sizeof(*addrlen));
	if (afe__co_on_shared_stack(addr, addrlen ? *addrlen : 0))
		return -EFAULT;
	afe_io_accept_init(&s->io, fd, addr, addrlen, flags);
	return (int)afe_co_await(&s->io.base);
}

int afe_co_connect(int fd, const struct sockaddr *addr, unsigned addrlen)
{
	SLOT_OR_RETURN(s, addr, addrlen); /* the kernel may read it late */
	afe_io_connect_init(&s->io, fd, addr, addrlen);
	return (int)afe_co_await(&s->io.base);
}

int afe_co_tcp_connect(const char *host, uint16_t port)
{
	if (!afe__co_slot())
		return -EPERM;
	/* On the heap, not in the slot: it is several times the slot's size,
	 * which every coroutine pays for, and a connect can afford a malloc. */
	struct afe_tcp_connect *c = malloc(sizeof(*c));
	if (!c)
		return -ENOMEM;
	afe_tcp_connect_init(c, host, port); /* copies host */
	int fd = (int)afe_co_await(&c->base);
	free(c);
	return fd;
}

int afe_co_close(int fd)
{
	SLOT_OR_RETURN(s, NULL, 0);
	afe_io_close_init(&s->io, fd);
	return (int)afe_co_await(&s->io.base);
}

/* A channel reads a waiting sender's item, and writes a waiting
 * receiver's, from the other side's task. */
int afe_co_chan_send(struct afe_chan *ch, const void *item)
{
	SLOT_OR_RETURN(s, item, ch ? ch->item_size : 0);
	afe_chan_send_init(&s->chan_send, ch, item);
	return (int)afe_co_await(&s->chan_send.base);
}

int afe_co_chan_recv(struct afe_chan *ch, void *out)
{
	SLOT_OR_RETURN(s, out, ch ? ch->item_size : 0);
	afe_chan_recv_init(&s->chan_recv, ch, out);
	return (int)afe_co_await(&s->chan_recv.base);
}

int afe_co_mutex_lock(struct afe_mutex *m)
{
	SLOT_OR_RETURN(s, NULL, 0);
	afe_mutex_lock_init(&s->lock, m);
	return (int)afe_co_await(&s->lock.base);
}

int afe_co_sem_acquire(struct afe_semaphore *sem, size_t n)
{
	SLOT_OR_RETURN(s, NULL, 0);
	afe_sem_acquire_init(&s->acquire, sem, n);
	return (int)afe_co_await(&s->acquire.base);
}

int afe_co_token_wait(struct afe_token *t)
{
	SLOT_OR_RETURN(s, NULL, 0);
	afe_token_wait_init(&s->token, t);
	return (int)afe_co_await(&s->token.base);
}

int afe_co_ipc_call(struct afe_ipc_call *call)
{
	SLOT_OR_RETURN(s, call, sizeof(*call));
	(void)s; /* the call is the caller's future */
	return (int)afe_co_await(&call->base);
}

/* sendto and recvfrom keep their futures on the heap, not in the slot:
 * with an address each they are half as big again as the slot's other
 * members, and the slot is every coroutine's (100,000 sleeping coroutines
 * held 14 MB more for it); a datagram can afford a malloc. */
ssize_t afe_co_sendto(int fd, const void *buf, size_t len, int flags, const struct sockaddr *to,
		      unsigned tolen)
{
	SLOT_OR_RETURN(s, buf, len);
	(void)s;
	struct afe_sendto *op = malloc(sizeof(*op));
	if (!op)
		return -ENOMEM;
	afe_sendto_init(op, fd, buf, ring_len(len), flags, to, tolen); /* copies to */
	ssize_t sent = (ssize_t)afe_co_await(&op->io.base);
	free(op);
	return sent;
}

ssize_t afe_co_recvfrom(int fd, void *buf, size_t len, int flags, struct sockaddr *from,
			unsigned *fromlen)
{
	SLOT_OR_RETURN(s, buf, len);
	(void)s;
	struct afe_recvfrom *op = malloc(sizeof(*op));
	if (!op)
		return -ENOMEM;
	afe_recvfrom_init(op, fd, buf, ring_len(len), flags);
	ssize_t got = (ssize_t)afe_co_await(&op->io.base);
	if (got >= 0 && from && fromlen) { /* copied out after: may be on the stack */
		unsigned n = op->msg.msg_namelen;
		memcpy(from, &op->from, n < *fromlen ? n : *fromlen);
		*fromlen = n;
	}
	free(op);
	return got;
}

ssize_t afe_co_sendmsg(int fd, const struct msghdr *msg, int flags)
{
	SLOT_OR_RETURN(s, msg, sizeof(*msg));
	afe_io_sendmsg_init(&s->io, fd, msg, flags);
	return (ssize_t)afe_co_await(&s->io.base);
}

ssize_t afe_co_recvmsg(int fd, struct msghdr *msg, int flags)
{
	SLOT_OR_RETURN(s, msg, sizeof(*msg));
	afe_io_recvmsg_init(&s->io, fd, msg, flags);
	return (ssize_t)afe_co_await(&s->io.base);
}

int afe_co_shutdown(int fd, int how)
{
	SLOT_OR_RETURN(s, NULL, 0);
	afe_io_shutdown_init(&s->io, fd, how);
	return (int)afe_co_await(&s->io.base);
}

intptr_t afe_co_blocking(intptr_t (*fn)(void *arg), void *arg)
{
	SLOT_OR_RETURN(s, arg, 1); /* its size is fn's business: its first byte */
	afe_blocking_init(&s->job, fn, arg);
	return afe_co_await(&s->job.base);
}

intptr_t afe_co_await_until(struct afe_future *f, struct afe_token *t)
{
	SLOT_OR_RETURN(s, f, sizeof(*f));
	afe_token_until_init(&s->until, t, f);
	return afe_co_await(&s->until.base);
}
