/* SPDX-License-Identifier: MIT */
/* The blocking-style calls of afe/coro.h: each inits a future on the
 * coroutine's stack and awaits it. */
#include <afe/blocking.h>
#include <afe/channel.h>
#include <afe/combinators.h>
#include <afe/coro.h>
#include <afe/io.h>
#include <afe/mutex.h>
#include <afe/net.h>
#include <afe/semaphore.h>
#include <afe/sleep.h>
#include <afe/token.h>
#include <limits.h>

/* The ring takes 32-bit lengths: a longer buffer is done in part, as a
 * short read or write is. */
static unsigned ring_len(size_t len)
{
	return len > UINT_MAX ? UINT_MAX : (unsigned)len;
}

int afe_co_yield(void)
{
	struct afe_yield_now y;
	afe_yield_now_init(&y);
	return (int)afe_co_await(&y.base);
}

int afe_co_sleep(uint64_t ns)
{
	struct afe_sleep s;
	afe_sleep_init(&s, ns);
	return (int)afe_co_await(&s.base);
}

ssize_t afe_co_read(int fd, void *buf, size_t len, int64_t offset)
{
	struct afe_io io;
	afe_io_read_init(&io, fd, buf, ring_len(len), offset);
	return (ssize_t)afe_co_await(&io.base);
}

ssize_t afe_co_write(int fd, const void *buf, size_t len, int64_t offset)
{
	struct afe_io io;
	afe_io_write_init(&io, fd, buf, ring_len(len), offset);
	return (ssize_t)afe_co_await(&io.base);
}

ssize_t afe_co_recv(int fd, void *buf, size_t len, int flags)
{
	struct afe_io io;
	afe_io_recv_init(&io, fd, buf, ring_len(len), flags);
	return (ssize_t)afe_co_await(&io.base);
}

ssize_t afe_co_send(int fd, const void *buf, size_t len, int flags)
{
	struct afe_io io;
	afe_io_send_init(&io, fd, buf, ring_len(len), flags);
	return (ssize_t)afe_co_await(&io.base);
}

int afe_co_send_all(int fd, const void *buf, size_t len)
{
	struct afe_send_all s;
	afe_send_all_init(&s, fd, buf, len);
	intptr_t sent = afe_co_await(&s.base); /* len, or -errno */
	return sent < 0 ? (int)sent : 0;
}

int afe_co_accept(int fd, struct sockaddr *addr, unsigned *addrlen, int flags)
{
	struct afe_io io;
	afe_io_accept_init(&io, fd, addr, addrlen, flags);
	return (int)afe_co_await(&io.base);
}

int afe_co_connect(int fd, const struct sockaddr *addr, unsigned addrlen)
{
	struct afe_io io;
	afe_io_connect_init(&io, fd, addr, addrlen);
	return (int)afe_co_await(&io.base);
}

int afe_co_close(int fd)
{
	struct afe_io io;
	afe_io_close_init(&io, fd);
	return (int)afe_co_await(&io.base);
}

int afe_co_chan_send(struct afe_chan *ch, const void *item)
{
	struct afe_chan_send s;
	afe_chan_send_init(&s, ch, item);
	return (int)afe_co_await(&s.base);
}

int afe_co_chan_recv(struct afe_chan *ch, void *out)
{
	struct afe_chan_recv r;
	afe_chan_recv_init(&r, ch, out);
	return (int)afe_co_await(&r.base);
}

int afe_co_mutex_lock(struct afe_mutex *m)
{
	struct afe_mutex_lock l;
	afe_mutex_lock_init(&l, m);
	return (int)afe_co_await(&l.base);
}

int afe_co_sem_acquire(struct afe_semaphore *s, size_t n)
{
	struct afe_sem_acquire a;
	afe_sem_acquire_init(&a, s, n);
	return (int)afe_co_await(&a.base);
}

int afe_co_token_wait(struct afe_token *t)
{
	struct afe_token_wait w;
	afe_token_wait_init(&w, t);
	return (int)afe_co_await(&w.base);
}

intptr_t afe_co_blocking(intptr_t (*fn)(void *arg), void *arg)
{
	struct afe_blocking job;
	afe_blocking_init(&job, fn, arg);
	return afe_co_await(&job.base);
}

intptr_t afe_co_await_until(struct afe_future *f, struct afe_token *t)
{
	struct afe_token_wait w;
	afe_token_wait_init(&w, t);
	struct afe_future *branches[2] = {f, &w.base};
	struct afe_select sel;
	afe_select_init(&sel, branches, 2);
	intptr_t winner = afe_co_await(&sel.base);
	if (winner < 0)
		return winner;
	return winner == 0 ? f->result : -ECANCELED;
}
