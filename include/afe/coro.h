/* SPDX-License-Identifier: MIT */
/*
 * Stackful coroutines: plain C functions that run as tasks on the worker
 * pool, each on a stack of its own, and make blocking-style calls that
 * suspend the coroutine, not the worker.
 *
 *   static intptr_t echo(void *arg)
 *   {
 *       int fd = (int)(intptr_t)arg;
 *       char buf[4096];                       // locals live across calls
 *       ssize_t n;
 *       while ((n = afe_co_recv(fd, buf, sizeof(buf), 0)) > 0)
 *           if (afe_co_send_all(fd, buf, (size_t)n) < 0)
 *               break;
 *       afe_co_close(fd);
 *       return 0;
 *   }
 *   ...
 *   afe_coro_spawn(rt, echo, (void *)(intptr_t)fd, NULL, NULL);  // detached
 *
 * A coroutine is a task like any other: its join handle is the ordinary
 * one (join, cancel; dropping it detaches the coroutine, which is then
 * never cancelled), and both kinds of task mix freely: a coroutine awaits
 * any future (afe_co_await), a future joins a coroutine.
 *
 * Which to pick: stackless futures cost no stack (a connection's state is
 * its struct, a few hundred bytes) and never switch stacks; coroutines
 * read like blocking code, keep their locals, and can call into code that
 * was not written for AFE. Each coroutine holds its stack (its spawn's
 * stack_size, else the runtime's coro_stack_size, else
 * AFE_CORO_STACK_DEFAULT of address space, of which only the pages it
 * touched use memory) until it returns. Stacks are kept for reuse, by
 * size, for the first four sizes a process uses: each thread's last few
 * without a lock, and up to 1,024 more of each size in a pool the process
 * shares (what their coroutines touched stays resident until reused, or
 * until afe_coro_stacks_trim). Stacks of a fifth size are mapped and
 * unmapped each time.
 *
 * Threads: a coroutine may resume on another worker after any afe_co_*
 * call (work stealing). Thread-local variables read before a call may
 * differ after it, and errno belongs to the thread: read it right after
 * the call that set it (the afe_co_* calls return -errno themselves, and
 * leave errno alone). Do not hold a pthread mutex across a call. The
 * floating-point environment (<fenv.h>: rounding mode, exception masks)
 * belongs to the thread too, and a switch neither saves nor restores it:
 * a coroutine that changes it must put it back before its next call.
 *
 * Cancellation: once its task is cancelled, the call a coroutine is in
 * withdraws its operation (and waits until the kernel let go of its
 * buffer), then returns -ECANCELED, and so does every later call at once:
 * the coroutine unwinds by returning. afe_co_cancelled() tells.
 *
 * Every afe_co_* call outside a coroutine returns -EPERM (or false), and
 * one given memory on a shared stack (see afe_coro_opts) -EFAULT.
 */
#ifndef AFE_CORO_H
#define AFE_CORO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "common.h"
#include "future.h"
#include "task.h"

struct afe_runtime;
struct sockaddr;
struct afe_chan;
struct afe_mutex;
struct afe_semaphore;
struct afe_token;
struct afe_ipc_call;
struct msghdr;

/* A coroutine's body: its return value is the task's result. */
typedef intptr_t afe_coro_fn(void *arg);

/* Stack sizes: the default, and the least a coroutine may ask for. */
#define AFE_CORO_STACK_DEFAULT ((size_t)256 * 1024)
#define AFE_CORO_STACK_MIN ((size_t)16 * 1024)

struct afe_coro_opts {
	size_t stack_size; /* 0: the runtime's (afe_runtime_config.coro_stack_size,
			      AFE_CORO_STACK_DEFAULT unless set) */
	/* Run on one of a few stacks shared by all such coroutines, keeping
	 * only the bytes of stack in use (often under 1 KiB) while
	 * suspended: for many mostly idle coroutines. Each switch in after
	 * another coroutine used the stack copies both out and in, and a
	 * coroutine waits while another of its stack runs on another
	 * worker. The stack is AFE_CORO_STACK_DEFAULT (stack_size must be 0
	 * or that, whatever the runtime's). While such a coroutine waits its frames may be elsewhere,
	 * so nothing may use its locals then: a buffer, item or future on its
	 * stack given to an afe_co_* call gets -EFAULT (use heap or static
	 * memory), and no other task may be handed the address of a local.
	 * Under AddressSanitizer these coroutines get private stacks. */
	bool shared_stack;
};

/* The bytes of a coroutine's control block (private), kept in its future
 * and so in its task: spawning allocates nothing more than a task. */
#define AFE__CORO_STORAGE 464u

/* A coroutine as a future: to spawn, to afe_block_on from plain code, to
 * await from another future, or as AFE_MAIN's root. Its stack is made at
 * its first poll (which then fails with -ENOMEM or -EINVAL if it cannot
 * be); a coroutine future never polled holds nothing, and may be copied
 * until then (as spawn does), never after. Poll it to its end: one
 * dropped half-way keeps its stack. */
struct afe_coro {
	struct afe_future base;
	afe_coro_fn *fn;
	void *arg;
	size_t stack_size;
	bool shared_stack;
	/* Private. */
	bool made; /* the control block below is set up */
	_Alignas(16) unsigned char storage[AFE__CORO_STORAGE];
};

/* Makes c a coroutine future running fn(arg). opts may be NULL. Returns 0,
 * or -EINVAL (null c or fn, a stack below AFE_CORO_STACK_MIN, or a shared
 * stack of another size); c then completes at once with that error. A
 * stack_size no mapping can hold (past SIZE_MAX / 2) fails the first poll
 * with -ENOMEM. */
AFE_EXPORT int afe_coro_init(struct afe_coro *c, afe_coro_fn *fn, void *arg,
			     const struct afe_coro_opts *opts);

/*
 * Spawns fn(arg) as a coroutine task on rt (NULL: the current task's
 * runtime, as for afe_spawn). handle, if not NULL, receives its join
 * handle; opts may be NULL. The stack is made here, so a failure leaves
 * nothing behind. Returns 0, -EINVAL (null fn, no runtime, a stack below
 * AFE_CORO_STACK_MIN, or a shared stack of another size), -ENOMEM (no
 * memory for the stack, or a stack_size past SIZE_MAX / 2), -ESHUTDOWN
 * (rt is being destroyed).
 */
AFE_EXPORT int afe_coro_spawn(struct afe_runtime *rt, afe_coro_fn *fn, void *arg,
			      struct afe_join_handle *handle, const struct afe_coro_opts *opts);

/*
 * Unmaps the coroutine stacks kept for reuse: those in the pools the
 * process shares, and the calling thread's own. Each other thread that
 * ran coroutines (a runtime's workers) keeps up to 32 stacks of each
 * pooled size until it exits. For after a burst of coroutines, to give
 * the memory they touched back to the system; later coroutines map fresh
 * stacks. Any thread, any time. Returns how many stacks it unmapped.
 */
AFE_EXPORT unsigned afe_coro_stacks_trim(void);

/* Suspends the calling coroutine until f (initialised, not yet polled, in
 * memory that outlives the call: the coroutine's stack is fine) is ready,
 * and returns f's result. -ECANCELED once the coroutine is cancelled (f
 * was withdrawn, or never started); -EPERM outside a coroutine. */
AFE_EXPORT intptr_t afe_co_await(struct afe_future *f);

/* Whether the calling coroutine was cancelled (false outside one). */
AFE_EXPORT bool afe_co_cancelled(void);

/* Lets the other runnable tasks run first. 0, -ECANCELED, -EPERM. Inline
 * where it can be (afe/coro_inline.h). */
AFE_EXPORT int afe_co_yield(void);

/* afe_sleep for ns nanoseconds. 0, -ECANCELED, -ESHUTDOWN, -EPERM. */
AFE_EXPORT int afe_co_sleep(uint64_t ns);

/* The ring's operations (afe/io.h), awaited: the byte count or new fd, or
 * -errno (-ECANCELED, -EPERM as above). offset -1: the file position. */
AFE_EXPORT ssize_t afe_co_read(int fd, void *buf, size_t len, int64_t offset);
AFE_EXPORT ssize_t afe_co_write(int fd, const void *buf, size_t len, int64_t offset);
AFE_EXPORT ssize_t afe_co_recv(int fd, void *buf, size_t len, int flags);
AFE_EXPORT ssize_t afe_co_send(int fd, const void *buf, size_t len, int flags);
/* Sends all len bytes (afe_send_all): 0 or -errno. */
AFE_EXPORT int afe_co_send_all(int fd, const void *buf, size_t len);
/* A server's reply and its next request: sends all outlen bytes of out,
 * then receives into in (which may be out). The receive's byte count (0:
 * the peer closed), or -errno from either. One trip through the ring where
 * send_all and recv make two (the two are linked, as afe_io_link), except
 * on a shared stack, where they go one after the other. */
AFE_EXPORT ssize_t afe_co_send_recv(int fd, const void *out, size_t outlen, void *in,
				    size_t inlen);
AFE_EXPORT int afe_co_accept(int fd, struct sockaddr *addr, unsigned *addrlen, int flags);
AFE_EXPORT int afe_co_connect(int fd, const struct sockaddr *addr, unsigned addrlen);
/* Connects to host:port by literal or name (afe_tcp_connect): the
 * connected fd, or -errno (-ENOMEM when its future cannot be had). */
AFE_EXPORT int afe_co_tcp_connect(const char *host, uint16_t port);
AFE_EXPORT int afe_co_close(int fd);

/* Sync primitives, awaited (see their headers): 0 or -errno. */
AFE_EXPORT int afe_co_chan_send(struct afe_chan *ch, const void *item);
AFE_EXPORT int afe_co_chan_recv(struct afe_chan *ch, void *out);
AFE_EXPORT int afe_co_mutex_lock(struct afe_mutex *m);
AFE_EXPORT int afe_co_sem_acquire(struct afe_semaphore *s, size_t n);
/* Until t is cancelled: 0, or -ECANCELED when the coroutine is. */
AFE_EXPORT int afe_co_token_wait(struct afe_token *t);

/* Awaits a cross-process call armed by an AFE_IPC_FN helper (afe/ipc.h):
 * 0 once answered (read it with NAME_result), or the call's -errno. */
AFE_EXPORT int afe_co_ipc_call(struct afe_ipc_call *call);

/* sendto/recvfrom and the raw message and shutdown operations (afe/io.h,
 * afe/socket.h), awaited: the byte count (0 for shutdown) or -errno. The
 * recvfrom's sender is in *from (fromlen in/out, as recvfrom(2)); msg
 * and what it points to must not be on a shared stack. */
AFE_EXPORT ssize_t afe_co_sendto(int fd, const void *buf, size_t len, int flags,
				 const struct sockaddr *to, unsigned tolen);
AFE_EXPORT ssize_t afe_co_recvfrom(int fd, void *buf, size_t len, int flags,
				   struct sockaddr *from, unsigned *fromlen);
AFE_EXPORT ssize_t afe_co_sendmsg(int fd, const struct msghdr *msg, int flags);
AFE_EXPORT ssize_t afe_co_recvmsg(int fd, struct msghdr *msg, int flags);
AFE_EXPORT int afe_co_shutdown(int fd, int how);

/* Runs fn(arg) on the blocking pool (afe/blocking.h) and returns its
 * result; -ECANCELED if the coroutine is cancelled meanwhile (a job that
 * started cannot be interrupted: the call returns once it did), -EPERM. */
AFE_EXPORT intptr_t afe_co_blocking(intptr_t (*fn)(void *arg), void *arg);

/* Awaits f until t is cancelled (afe_token_until): f's result, or
 * -ECANCELED when t fired first (f withdrawn; not polled at all when t had
 * already fired) or the coroutine was cancelled; -EINVAL for a null f or
 * t. For servers that stop on afe_shutdown_token(). */
AFE_EXPORT intptr_t afe_co_await_until(struct afe_future *f, struct afe_token *t);

#include "coro_inline.h"

#endif /* AFE_CORO_H */
