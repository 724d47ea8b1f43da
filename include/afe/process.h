/* SPDX-License-Identifier: MIT */
/*
 * Child processes: spawn a program, talk to it through pipes with the
 * ring's I/O futures, await its exit through a pidfd, kill it.
 *
 *   char *argv[] = {"sh", "-c", "echo hi; exit 3", NULL};
 *   struct afe_process_opts opts = {.stdout_mode = AFE_STDIO_PIPE};
 *   int err = afe_process_spawn(&self->child, "sh", argv, NULL, &opts);
 *   afe_io_read_init(&self->rd, self->child.stdout_fd, self->buf, 64, -1);
 *   AFE_AWAIT(&self->rd.base);                  // "hi\n"
 *   afe_process_wait_init(&self->wait, &self->child);
 *   AFE_AWAIT(&self->wait.base);                // result 3
 *   afe_process_close(&self->child);
 *
 * The child starts with an empty signal mask and every signal at its
 * default action, whatever the spawning thread had: AFE's threads block
 * signals (SIGINT and SIGTERM under AFE_MAIN, every asynchronous one in
 * a runtime's workers) and a program may ignore SIGPIPE, none of which a
 * child should inherit. It inherits the other file descriptors not marked
 * close-on-exec (AFE's own are), the working directory and, when envp is
 * NULL, the environment.
 *
 * Exit status: the wait's result is the exit code (0..255) of a child
 * that exited, or 128 + the signal number of one a signal ended, as a
 * shell reports them; afe_process.status says which, precisely.
 *
 * Reaping: the wait reaps the child (waitid through its pidfd). Nothing
 * else in the program may reap it: a SIGCHLD handler calling
 * waitpid(-1, ...) would take its status (the wait then fails with
 * -ECHILD). A child never waited for stays a zombie after it exits, until
 * this process ends: kill it and wait, then close.
 *
 * Without pidfds (pidfd_open(2) refused with ENOSYS: a kernel before 5.3,
 * valgrind 3.19; or with EPERM: a seccomp filter), the child is named by
 * its pid, which stays its own until it is reaped (we are its parent).
 * The results are the same; what differs: pidfd is -1; the wait looks
 * again after naps from 1 ms growing to 64 ms, so it may end up to 64 ms
 * after the child; and afe_process_kill sends kill(2) to the pid, never
 * once the child was reaped (then -ESRCH, as with a pidfd).
 */
#ifndef AFE_PROCESS_H
#define AFE_PROCESS_H

#include <stdatomic.h>
#include <stdbool.h>
#include <sys/types.h>

#include "common.h"
#include "future.h"
#include "io.h"
#include "sleep.h"

/* What a child's stdin, stdout or stderr is. */
enum afe_stdio {
	AFE_STDIO_INHERIT = 0, /* the parent's own (the default) */
	AFE_STDIO_NULL = 1,    /* /dev/null */
	AFE_STDIO_PIPE = 2,    /* a pipe; the parent's end in afe_process */
};

struct afe_process_opts {
	enum afe_stdio stdin_mode, stdout_mode, stderr_mode;
};

/* How a reaped child ended. */
struct afe_process_status {
	bool exited;   /* it exited: code is its exit code */
	bool signaled; /* a signal ended it: signo is that signal */
	int code;
	int signo;
	bool core_dumped;
};

/* A child. pid and the pipe ends are the caller's to read; the rest is
 * the library's. */
struct afe_process {
	pid_t pid;
	int pidfd; /* -1 without pidfds */
	/* The parent's ends of AFE_STDIO_PIPE pipes (close-on-exec, blocking
	 * mode, for afe_io_read/afe_io_write and afe_co_read/afe_co_write),
	 * else -1. afe_process_close closes those still here: to keep one,
	 * take it and store -1. Close stdin_fd to send end-of-file. */
	int stdin_fd, stdout_fd, stderr_fd;
	bool reaped;
	struct afe_process_status status; /* once reaped */
	/* Private. */
	/* Without pidfds: the child is named by pid; kills by pid under way,
	 * and whether reaping began (see uring/process.c). */
	bool by_pid;
	_Atomic unsigned pid_guard;
};

/*
 * Spawns path with the NULL-terminated argv (argv[0] included) and envp
 * (NULL: this process's environment). A path without a slash is looked
 * up in PATH, as execvp does. opts may be NULL: all three inherited. On
 * success p describes the child (and owns a pidfd and the pipe ends:
 * afe_process_close releases them; without pidfds, no pidfd: see above).
 * Returns 0, or -errno with nothing left behind: -EINVAL (a NULL p, path
 * or argv, an unknown stdio mode), -ENOENT (no such program), -EACCES
 * (not executable), -EMFILE, -ENOMEM, -EAGAIN (too many processes),
 * or what pidfd_open(2) fails with other than ENOSYS and EPERM (which
 * mean it is missing; the child is then killed and reaped). Unless p is
 * NULL, a failed spawn leaves p with pidfd and the pipe ends at -1.
 */
AFE_EXPORT int afe_process_spawn(struct afe_process *p, const char *path, char *const argv[],
				 char *const envp[], const struct afe_process_opts *opts);

/* A future that awaits p's exit and reaps it. */
struct afe_process_wait {
	struct afe_future base;
	struct afe_process *p;
	/* Private. */
	struct afe_io poll;
	struct afe_sleep nap; /* without pidfds, between two looks */
	uint64_t nap_ns;
};

/*
 * Makes w a future ready once p's child has ended; it reaps the child and
 * fills p->status. Result: the exit code (0..255), or 128 + the signal
 * number for a child a signal ended; at once for a child already reaped.
 * Errors: -ECANCELED when cancelled (the child is left running; wait
 * again later), -ECHILD when someone else reaped it, -EBADF for a p
 * closed or whose spawn failed, -EINVAL for a null p, and the poll's
 * errors (-ESHUTDOWN, -EINVAL outside a runtime, see afe/io.h; without
 * pidfds, the nap's, the same).
 * One wait per child at a time; p must outlive the wait.
 */
AFE_EXPORT void afe_process_wait_init(struct afe_process_wait *w, struct afe_process *p);

/*
 * Sends signal signo to p's child through its pidfd (without pidfds, to
 * its pid while it is not reaped): never to a process that reused its
 * pid. Callable from any thread, also while a wait is under way.
 * Returns 0 (also for a child that ended but was not reaped yet), -ESRCH
 * once it was reaped, -EINVAL for a bad signal or a null p, -EBADF for a p
 * closed or whose spawn failed, -EPERM.
 */
AFE_EXPORT int afe_process_kill(struct afe_process *p, int signo);

/*
 * Closes p's pidfd and the pipe ends still in p, and reaps the child if
 * it has ended (a running child is left running, and its zombie stays
 * when it ends: see Reaping above). No wait may be under way. Safe to
 * call twice, on a p whose spawn failed, and with NULL (nothing to do).
 */
AFE_EXPORT void afe_process_close(struct afe_process *p);

#endif /* AFE_PROCESS_H */
