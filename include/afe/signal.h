/* SPDX-License-Identifier: MIT */
/*
 * Signals, read through the ring, and the process's shutdown token.
 *
 * No signal handler is involved: a signal AFE handles is blocked, and one
 * process-wide signalfd collects it; a task of a runtime reads that fd
 * through the ring and hands what it reads to the streams waiting for it
 * (or to the shutdown token). Nothing async-signal-unsafe can run in a
 * handler because there is none.
 *
 * Which thread gets a signal: the kernel gives a process-directed signal
 * (kill(2), Ctrl-C, a supervisor's SIGTERM) to a thread that does not
 * block it, and only when every thread blocks it does it stay pending for
 * the signalfd. The runtime's own threads (workers, the ring thread, the
 * blocking pool) block every asynchronous signal, always. The other
 * threads -- main and yours -- must block the signals AFE is to read:
 * afe_signal_block, afe_signal_stream_open and afe_shutdown_init block in
 * the calling thread, and threads created afterwards inherit that mask,
 * so call them from main before starting threads (AFE_MAIN does this for
 * SIGINT and SIGTERM). A thread-directed signal (raise(3),
 * pthread_kill(3)) is not seen by the signalfd unless it targets the
 * ring thread: send to the process.
 *
 * Standard signals do not queue: two of the same number sent before the
 * first is read are one delivery.
 *
 * A signal AFE reads while nothing listens for it (no open stream; for
 * SIGINT and SIGTERM, nobody has asked for the shutdown token either) is
 * given its ordinary disposition again: it is raised anew in the reading
 * thread with the signal unblocked there, so a default action ends the
 * process as it would have without AFE.
 *
 * Child processes: the mask survives fork and exec. A fork handler
 * (pthread_atfork) unblocks in the child every signal AFE blocked, so
 * fork+exec gives the new program an ordinary mask (block again in the
 * child what you had blocked yourself). posix_spawn(3) and system(3) run
 * no fork handlers: give posix_spawn POSIX_SPAWN_SETSIGMASK with an empty
 * mask. Runtimes do not survive fork; the child uses none of them.
 */
#ifndef AFE_SIGNAL_H
#define AFE_SIGNAL_H

#include <stdbool.h>

#include "common.h"
#include "future.h"
#include "token.h"

/*
 * Blocks signo in the calling thread (threads it creates later inherit
 * that), so that a process-directed signo stays pending for AFE instead of
 * taking its ordinary action. Until a stream for it is open, a blocked
 * signo waits in the kernel; the first stream opened takes it.
 * Returns 0, or -EINVAL for a number that cannot be handled this way:
 * out of range, SIGKILL, SIGSTOP, the synchronous faults (SIGSEGV,
 * SIGBUS, SIGFPE, SIGILL, SIGTRAP, SIGSYS) and the C library's own.
 */
AFE_EXPORT int afe_signal_block(int signo);

/*
 * A stream of one signal's deliveries. Open it, then await
 * afe_signal_stream_next(s) as often as you like; close it when done.
 *
 *   afe_signal_stream_open(&self->usr1, SIGUSR1);      // in a task
 *   for (;;) {
 *       AFE_AWAIT(afe_signal_stream_next(&self->usr1)); // result: SIGUSR1
 *       reload_config();
 *   }
 *   AFE_CLEANUP;
 *   afe_signal_stream_close(&self->usr1);
 *
 * Every delivery read after the stream opened (or pending when it
 * opened) is counted in the stream, and each next completes once per
 * delivery, however late it is awaited. Several streams for one signal
 * each see every delivery.
 */
struct afe_signal_stream {
	struct afe_future base; /* the current "next delivery" future */
	int signo;
	/* Private. */
	bool open;
	unsigned pending;	/* deliveries not yet taken */
	struct afe_waker waker; /* the task awaiting next */
	struct afe_signal_stream *prev, *next;
};

/*
 * Opens s for signo: blocks signo in the calling thread (see
 * afe_signal_block), routes it to AFE's signalfd, and takes the deliveries
 * from now on, and one already pending. s must stay put until closed
 * (open it in your future's state after its first poll, or in memory that
 * does not move) and must not be open already. Callable from any thread,
 * with or without a runtime: deliveries are read once a runtime runs.
 * Returns 0, -EINVAL (null s, a signo afe_signal_block refuses), or the
 * -errno of signalfd(2) (-EMFILE, -ENOMEM).
 */
AFE_EXPORT int afe_signal_stream_open(struct afe_signal_stream *s, int signo);

/*
 * Resets the stream's future and returns it: ready with signo when a
 * delivery is counted (at once if one is), -EBADF if the stream is not
 * open, -ECANCELED when cancelled (the stream stays open, its count
 * intact). Await it from a task.
 */
AFE_EXPORT struct afe_future *afe_signal_stream_next(struct afe_signal_stream *s);

/*
 * Closes s: it counts no more deliveries and its memory is the caller's
 * again. When the last stream of a signal closes, the signal is no longer
 * read: later deliveries stay pending in the kernel while it is blocked.
 * No next future of s may be in progress (await it to the end or cancel
 * it first). Returns 0, or -EINVAL for a null or closed stream.
 */
AFE_EXPORT int afe_signal_stream_close(struct afe_signal_stream *s);

/*
 * Installs the process's shutdown: blocks SIGINT and SIGTERM in the
 * calling thread and routes both to the shutdown token. AFE_MAIN calls it
 * before starting the runtime; a program with its own main calls it
 * first thing, before creating threads. A signal arriving before it takes
 * its ordinary action; one arriving after it but before any runtime runs
 * stays pending and is read when the first runtime starts.
 * What the signals then do:
 * - the first SIGINT or SIGTERM cancels the shutdown token, once someone
 *   has asked for it (afe_shutdown_token); if nobody has, it gets its
 *   ordinary disposition (the process ends by that signal);
 * - any SIGINT or SIGTERM read after the token fired ends the process at
 *   once with _exit(128 + signo): 130 for a second Ctrl-C, 143 for
 *   SIGTERM, with a line on stderr.
 * Idempotent. Returns 0, or the -errno of signalfd(2).
 */
AFE_EXPORT int afe_shutdown_init(void);

/*
 * The process's shutdown token (see afe_shutdown_init): a root token that
 * lives for ever (afe_token_release ignores it). Asking for it is what
 * makes SIGINT and SIGTERM fire it instead of ending the process. Await
 * it beside your work, take children of it for sub-systems, or cancel it
 * yourself (afe_token_cancel) to start the same shutdown without a
 * signal. Never NULL; callable from any thread.
 */
AFE_EXPORT struct afe_token *afe_shutdown_token(void);

/*
 * A future that writes the task dump of the runtime it runs on
 * (afe_runtime_dump_tasks, which needs config.task_dump) to stderr each
 * time signo comes, until cancelled: spawn it as a child and drop the
 * handle when done. AFE_MAIN spawns one when config.task_dump_signal is
 * set. Its result: -ECANCELED, or the error of afe_signal_stream_open.
 * As with any stream, block signo in main first (afe_signal_block), or a
 * delivery to a thread that does not block it takes the default action.
 *
 *   struct afe_task_dump_watch w;
 *   afe_task_dump_watch_init(&w, SIGUSR1);
 *   afe_spawn_child(rt, &w, &handle);       // kill -USR1 PID: the tasks
 */
struct afe_task_dump_watch {
	struct afe_future base;
	int signo;
	/* Private. */
	struct afe_signal_stream stream;
};

AFE_EXPORT void afe_task_dump_watch_init(struct afe_task_dump_watch *w, int signo);

#endif /* AFE_SIGNAL_H */
