/* SPDX-License-Identifier: MIT */
/*
 * The signal hub: one signalfd for the process, read through the ring by
 * one task, and the streams its deliveries go to.
 *
 * Invariants (all under hub.lock):
 * - hub.mask is what the signalfd reads: the signals with an open stream,
 *   plus SIGINT and SIGTERM once shutdown is installed. It only grows
 *   while a read may be in flight, so a read never misses a signal it was
 *   asked for; the signals a mask change adds are drained by the caller
 *   (sigtimedwait) because a read already waiting is not woken by a
 *   signal that was pending before the change.
 * - At most one reader task is wanted at a time, on hub.reader_rt, one of
 *   the live runtimes (src/core/live_runtimes.h), under the registry's
 *   lock, not hub.lock: the core calls the hub's hooks with it held. Once
 *   the signalfd exists, the hub sets those hooks and starts a reader on
 *   a live runtime, or on the next one created; when the reader's
 *   runtime stops (its destroy has begun) a new reader starts on
 *   another, and the old one ends when its ring stops. Two readers for a
 *   moment are harmless: each delivery is read by one of them. hub.lock
 *   is never held while the registry's is taken, nor the other way.
 * - A reader is a system task: counted in its runtime's system_tasks, so
 *   waiting for the runtime's tasks (AFE_MAIN's grace) does not wait for
 *   it.
 * - Wakers are woken by reference under the lock (scheduling a task takes
 *   no hub lock); dispatch runs shutdown actions and redelivery outside
 *   it, since those run user code.
 */
#define _GNU_SOURCE
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/signalfd.h>
#include <time.h>
#include <unistd.h>

#include "../pool/list.h"
#include "../pool/wake_batch.h"
#include "../src/core/live_runtimes.h"
#include "../src/core/runtime_internal.h"
#include "afe/io.h"
#include "afe/signal.h"
#include "afe/task.h"
#include "signals_internal.h"
#include "shutdown.h"

static struct {
	pthread_mutex_t lock;
	_Atomic int fd;		   /* the signalfd; -1 until first needed */
	sigset_t mask;		   /* what fd reads */
	sigset_t blocked_by_afe;   /* unblocked again in forked children */
	unsigned streams_for[_NSIG];
	struct signal_streams {
		struct afe_signal_stream *head, *tail;
	} streams; /* newest first */
	struct afe_runtime *reader_rt; /* runs the reader; NULL: none. Under the
					* registry's lock, not this one */
} hub = {.lock = PTHREAD_MUTEX_INITIALIZER, .fd = -1}; /* zeroed sets are empty */

AFE_LIST_FUNCTIONS(streams, struct signal_streams, struct afe_signal_stream)

/* ---- masks and children --------------------------------------------------- */

static void at_fork_prepare(void)
{
	pthread_mutex_lock(&hub.lock);
}

static void at_fork_parent(void)
{
	pthread_mutex_unlock(&hub.lock);
}

/* The child has one thread and a copy of our mask: give it back the
 * ordinary one, so that fork+exec does not pass blocked signals on. */
static void at_fork_child(void)
{
	pthread_sigmask(SIG_UNBLOCK, &hub.blocked_by_afe, NULL);
	/* The parent's runtimes have no threads here: a runtime the child
	 * starts must start its own reader. (Written without the registry's
	 * lock: the child has one thread.) */
	hub.reader_rt = NULL;
	pthread_mutex_unlock(&hub.lock);
}

static pthread_once_t fork_handlers_once = PTHREAD_ONCE_INIT;

static void install_fork_handlers(void)
{
	sigemptyset(&hub.blocked_by_afe); /* before any fork can read it */
	pthread_atfork(at_fork_prepare, at_fork_parent, at_fork_child);
}

/* Blocks set in the calling thread, remembering what it newly blocked. */
static int block_here(const sigset_t *set, sigset_t *old)
{
	pthread_once(&fork_handlers_once, install_fork_handlers);
	sigset_t before, newly;
	int err = pthread_sigmask(SIG_BLOCK, set, &before);
	if (err)
		return -err;
	if (old)
		*old = before;
	sigemptyset(&newly);
	for (int s = 1; s < _NSIG; s++)
		if (sigismember(set, s) == 1 && sigismember(&before, s) == 0)
			sigaddset(&newly, s);
	pthread_mutex_lock(&hub.lock);
	sigorset(&hub.blocked_by_afe, &hub.blocked_by_afe, &newly);
	pthread_mutex_unlock(&hub.lock);
	return 0;
}

static bool is_synchronous(int signo)
{
	return signo == SIGSEGV || signo == SIGBUS || signo == SIGFPE || signo == SIGILL ||
	       signo == SIGTRAP || signo == SIGSYS;
}

/* 0 if signo can be blocked and read, else -EINVAL. */
static int check_signo(int signo)
{
	sigset_t probe;
	sigemptyset(&probe);
	if (signo <= 0 || signo >= _NSIG || signo == SIGKILL || signo == SIGSTOP ||
	    is_synchronous(signo) || sigaddset(&probe, signo) != 0) /* libc-reserved */
		return -EINVAL;
	return 0;
}

int afe_signal_block(int signo)
{
	int err = check_signo(signo);
	if (err)
		return err;
	sigset_t one;
	sigemptyset(&one);
	sigaddset(&one, signo);
	return block_here(&one, NULL);
}

/* ---- the reader task ------------------------------------------------------ */

static void dispatch(int signo);

struct reader {
	struct afe_future base;
	struct afe_runtime *rt;
	struct afe_io ready;
	struct signalfd_siginfo info[8];
};

static void reader_ended(struct reader *self, intptr_t err)
{
	afe__runtimes_lock();
	if (hub.reader_rt == self->rt) {
		/* Not moved away by stopping: it failed on its own. */
		hub.reader_rt = NULL;
		fprintf(stderr, "afe: signal reader stopped: %s\n", strerror((int)-err));
	}
	afe__runtimes_unlock();
	afe__system_task_done(self->rt);
}

/* Reads and dispatches what the signalfd holds (it does not block). The
 * read holds hub.lock: set_mask_locked re-masks the same descriptor, and a
 * read beside that re-mask is a race by ThreadSanitizer's account of
 * descriptors (signalfd on a live fd counts as its close and reopen). */
static void read_pending(struct reader *self)
{
	for (;;) {
		pthread_mutex_lock(&hub.lock);
		ssize_t n = read(atomic_load(&hub.fd), self->info, sizeof(self->info));
		pthread_mutex_unlock(&hub.lock);
		if (n <= 0)
			return; /* EAGAIN: another reader took them */
		for (size_t i = 0; i < (size_t)n / sizeof(self->info[0]); i++)
			dispatch((int)self->info[i].ssi_signo);
	}
}

/* The ring only reports the signalfd readable; the read happens here, in
 * the task. A read through the ring would take the signals off the fd
 * when it completes, even when its runtime is being destroyed and the
 * task never runs again to dispatch them: they would be lost while the
 * reader moves to another runtime. */
static int reader_poll(struct afe_future *f, struct afe_context *cx)
{
	struct reader *self = afe_container_of(f, struct reader, base);
	AFE_ASYNC_BEGIN(f, cx);
	for (;;) {
		afe_io_poll_init(&self->ready, atomic_load(&hub.fd), POLLIN);
		AFE_AWAIT(&self->ready.base);
		intptr_t n = self->ready.base.result;
		if (n == -EINTR || n == -EAGAIN)
			continue;
		if (n < 0)
			AFE_RETURN(n); /* -ECANCELED, -ESHUTDOWN: the ring stopped */
		read_pending(self);
	}
	AFE_CLEANUP;
	reader_ended(self, f->result);
	AFE_ASYNC_END;
}

/* Starts a reader on a live runtime, newest first, if one is needed and
 * none runs. With the registry's lock held. */
static void ensure_reader_locked(void)
{
	if (atomic_load(&hub.fd) < 0 || hub.reader_rt)
		return;
	for (struct afe_runtime *rt = afe__runtime_next_live(NULL); rt;
	     rt = afe__runtime_next_live(rt)) {
		struct reader r = {.rt = rt};
		afe_future_init(&r.base, reader_poll);
		if (afe__spawn_system(rt, &r, NULL, false) == 0) {
			hub.reader_rt = rt;
			return;
		}
	}
}

static void runtime_started(struct afe_runtime *rt)
{
	(void)rt; /* on the list: ensure_reader_locked finds it */
	ensure_reader_locked();
}

static void runtime_stopping(struct afe_runtime *rt)
{
	if (hub.reader_rt == rt) {
		hub.reader_rt = NULL;
		ensure_reader_locked(); /* rt has left the list */
	}
}

static const struct afe__runtime_hooks hooks = {
	.started = runtime_started,
	.stopping = runtime_stopping,
};

/* After the signalfd changed: from now on the hub hears of runtimes, and
 * a reader runs if any runtime is live. Not under hub.lock. */
static void ensure_reader(void)
{
	afe__runtimes_lock();
	afe__runtime_hooks_set_locked(&hooks);
	ensure_reader_locked();
	afe__runtimes_unlock();
}

/* ---- routing ---------------------------------------------------------------- */

/* Makes the signalfd read mask. With hub.lock held. */
static int set_mask_locked(const sigset_t *mask)
{
	int fd = signalfd(atomic_load(&hub.fd), mask, SFD_CLOEXEC | SFD_NONBLOCK);
	if (fd < 0)
		return -errno;
	atomic_store(&hub.fd, fd);
	hub.mask = *mask;
	return 0;
}

/* Reads the signals of `added` already pending, which a read in flight
 * would not notice, and dispatches them. Not under the lock. */
static void drain(const sigset_t *added)
{
	struct timespec now = {0, 0};
	siginfo_t info;
	int signo;
	while ((signo = sigtimedwait(added, &info, &now)) > 0)
		dispatch(signo);
}

int afe__signals_route(const sigset_t *add)
{
	pthread_mutex_lock(&hub.lock);
	sigset_t mask, added;
	sigemptyset(&added);
	sigorset(&mask, &hub.mask, add);
	/* Counted here: glibc 2.36's sigisemptyset misses real-time signals. */
	bool any_added = false;
	for (int s = 1; s < _NSIG; s++) {
		if (sigismember(add, s) == 1 && sigismember(&hub.mask, s) == 0) {
			sigaddset(&added, s);
			any_added = true;
		}
	}
	int err = any_added ? set_mask_locked(&mask) : 0;
	pthread_mutex_unlock(&hub.lock);
	if (err == 0 && any_added) {
		ensure_reader();
		drain(&added);
	}
	return err;
}

/* Gives signo its ordinary disposition, as if AFE had not blocked it:
 * raised again at this thread and unblocked here for a moment. */
static void redeliver(int signo)
{
	sigset_t one, old;
	sigemptyset(&one);
	sigaddset(&one, signo);
	raise(signo);
	pthread_sigmask(SIG_UNBLOCK, &one, &old);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
}

static void dispatch(int signo)
{
	bool listened = false;
	pthread_mutex_lock(&hub.lock);
	for (struct afe_signal_stream *s = hub.streams.head; s; s = s->next) {
		if (s->signo != signo)
			continue;
		listened = true;
		s->pending++;
		if (afe_waker_is_set(&s->waker))
			afe_waker_wake_by_ref(&s->waker);
	}
	pthread_mutex_unlock(&hub.lock);
	if (afe__shutdown_take(signo))
		return;
	if (!listened)
		redeliver(signo);
}

/* ---- streams ---------------------------------------------------------------- */

static int next_poll(struct afe_future *f, struct afe_context *cx)
{
	struct afe_signal_stream *s = afe_container_of(f, struct afe_signal_stream, base);
	struct afe_waker stale = {0};
	int ready = AFE_READY;
	pthread_mutex_lock(&hub.lock);
	if (!s->open) {
		f->result = -EBADF;
	} else if (s->pending) {
		s->pending--;
		f->result = s->signo;
	} else if (cx->cancel) {
		f->result = -ECANCELED;
	} else {
		ready = AFE_PENDING;
		if (!afe_waker_is_set(&s->waker) || !afe_waker_will_wake(&s->waker, cx->waker)) {
			stale = s->waker;
			afe_waker_clone(&s->waker, cx->waker);
		}
	}
	if (ready == AFE_READY) {
		stale = afe_waker_take(&s->waker);
	}
	pthread_mutex_unlock(&hub.lock);
	afe_waker_drop(&stale); /* may free a task: not under the lock */
	return ready;
}

struct afe_future *afe_signal_stream_next(struct afe_signal_stream *s)
{
	afe_future_init(&s->base, next_poll);
	return &s->base;
}

int afe_signal_stream_open(struct afe_signal_stream *s, int signo)
{
	if (!s || check_signo(signo) != 0)
		return -EINVAL;
	int err = afe_signal_block(signo);
	if (err)
		return err;
	*s = (struct afe_signal_stream){.signo = signo, .open = true};
	afe_future_init(&s->base, next_poll);
	pthread_mutex_lock(&hub.lock);
	streams_push_front(&hub.streams, s);
	hub.streams_for[signo]++;
	pthread_mutex_unlock(&hub.lock);
	sigset_t one;
	sigemptyset(&one);
	sigaddset(&one, signo);
	err = afe__signals_route(&one);
	if (err)
		afe_signal_stream_close(s);
	return err;
}

int afe_signal_stream_close(struct afe_signal_stream *s)
{
	if (!s)
		return -EINVAL;
	pthread_mutex_lock(&hub.lock);
	if (!s->open) {
		pthread_mutex_unlock(&hub.lock);
		return -EINVAL;
	}
	s->open = false;
	streams_remove(&hub.streams, s);
	struct afe_waker stale = afe_waker_take(&s->waker);
	/* The last stream of a signal: stop reading it, so later deliveries
	 * wait in the kernel, unless the shutdown token reads it. */
	bool remasked = false;
	if (--hub.streams_for[s->signo] == 0 && !afe__shutdown_reads(s->signo)) {
		sigset_t mask = hub.mask;
		sigdelset(&mask, s->signo);
		remasked = set_mask_locked(&mask) == 0; /* shrinking: nothing to drain */
	}
	pthread_mutex_unlock(&hub.lock);
	if (remasked)
		ensure_reader(); /* as after any change: restarts one that failed */
	afe_waker_drop(&stale);
	return 0;
}
