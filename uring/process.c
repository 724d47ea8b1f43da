/* SPDX-License-Identifier: MIT */
/* Child processes (afe/process.h): posix_spawn with a clean signal state,
 * a pidfd to poll through the ring and reap with, pipes for stdio.
 *
 * Without pidfds (pidfd_open missing: a kernel before 5.3, valgrind 3.19,
 * a seccomp filter), the child is named by its pid. That is safe for as
 * long as it is not reaped: we are its parent, so its pid cannot be reused
 * before that. The wait then naps and looks again (waitid WNOHANG), its
 * naps growing from AFE_PROCESS_NAP_MIN_NS to AFE_PROCESS_NAP_MAX_NS: a
 * waitid on a blocking thread would be woken at once, but it cannot be
 * interrupted, so a cancelled wait would either block until the child
 * ends or leave a thread behind that afe_runtime_destroy waits for. A kill
 * by pid and the reaping exclude each other through pid_guard (see
 * reap_child and kill_by_pid). */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <spawn.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "afe/process.h"

#ifndef P_PIDFD
#define P_PIDFD 3 /* Linux 5.4; glibc before 2.36 lacks the name */
#endif

extern char **environ;

/* The naps of a wait without a pidfd: short first, for a child that ends
 * at once, then at most this long between two looks. */
#define AFE_PROCESS_NAP_MIN_NS (1 * 1000000ull)
#define AFE_PROCESS_NAP_MAX_NS (64 * 1000000ull)

/* pid_guard: a count of kills by pid under way, and two flags. */
#define PID_ENDED (1u << 30)  /* the child ended: reaping it may begin */
#define PID_REAPED (1u << 31) /* its pid may name another process now */
#define PID_KILLS (PID_ENDED - 1)

/* Whether err, from a pidfd call, says the facility is missing rather than
 * that the call failed: ENOSYS (no such syscall), or EPERM from a seccomp
 * filter (pidfd_open has no EPERM of its own). */
static bool pidfd_missing(int err)
{
	return err == ENOSYS || err == EPERM;
}

static void close_fd(int *fd)
{
	if (*fd >= 0)
		close(*fd);
	*fd = -1;
}

/* Moves a new pipe end to 3 or above (a parent may have 0, 1 or 2
 * closed): so that no action planned for the child's 0, 1 or 2 hits
 * another pipe's child end first, and so that the parent's end does not
 * become its own stdio. Returns 0 or -errno. */
static int lift_above_stdio(int *fd)
{
	if (*fd > STDERR_FILENO)
		return 0;
	int moved = fcntl(*fd, F_DUPFD_CLOEXEC, STDERR_FILENO + 1);
	if (moved < 0)
		return -errno;
	close(*fd);
	*fd = moved;
	return 0;
}

/* Plans the child's descriptor target (0, 1 or 2) by mode: for a pipe,
 * makes it (both ends close-on-exec: a child spawned meanwhile by another
 * thread must not hold them), keeps the parent's end in *parent_end and
 * the child's in *child_end, for the caller to close after the spawn.
 * Returns 0 or -errno. */
static int plan_stdio(posix_spawn_file_actions_t *fa, int target, enum afe_stdio mode,
		      int *parent_end, int *child_end)
{
	if (mode == AFE_STDIO_INHERIT)
		return 0;
	if (mode == AFE_STDIO_NULL)
		return -posix_spawn_file_actions_addopen(
			fa, target, "/dev/null", target == STDIN_FILENO ? O_RDONLY : O_WRONLY, 0);
	if (mode != AFE_STDIO_PIPE)
		return -EINVAL;
	int ends[2];
	if (pipe2(ends, O_CLOEXEC) < 0)
		return -errno;
	bool reads = target == STDIN_FILENO;
	*child_end = ends[reads ? 0 : 1];
	*parent_end = ends[reads ? 1 : 0];
	int err = lift_above_stdio(child_end);
	if (!err)
		err = lift_above_stdio(parent_end);
	if (!err) /* dup2 clears close-on-exec on the copy */
		err = -posix_spawn_file_actions_adddup2(fa, *child_end, target);
	return err;
}

/* Empty mask, every signal at its default action (sigfillset leaves out
 * the C library's internal ones, which it manages itself). */
static int plan_signals(posix_spawnattr_t *attr)
{
	sigset_t none, all;
	sigemptyset(&none);
	sigfillset(&all);
	int err = posix_spawnattr_setsigmask(attr, &none);
	if (!err)
		err = posix_spawnattr_setsigdefault(attr, &all);
	if (!err)
		err = posix_spawnattr_setflags(attr, POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);
	return -err;
}

/* Runs posix_spawnp with the planned stdio and signals. Returns 0 or
 * -errno; fills p's pid and parent ends, and closes the child's ends. */
static int spawn_child(struct afe_process *p, const char *path, char *const argv[],
		       char *const envp[], const struct afe_process_opts *opts)
{
	posix_spawn_file_actions_t fa;
	posix_spawnattr_t attr;
	int err = -posix_spawn_file_actions_init(&fa);
	if (err)
		return err;
	err = -posix_spawnattr_init(&attr);
	if (err) {
		posix_spawn_file_actions_destroy(&fa);
		return err;
	}
	const enum afe_stdio modes[3] = {opts->stdin_mode, opts->stdout_mode, opts->stderr_mode};
	int *parent_ends[3] = {&p->stdin_fd, &p->stdout_fd, &p->stderr_fd};
	int child_ends[3] = {-1, -1, -1};
	for (int i = 0; i < 3 && !err; i++)
		err = plan_stdio(&fa, i, modes[i], parent_ends[i], &child_ends[i]);
	if (!err)
		err = plan_signals(&attr);
	if (!err)
		err = -posix_spawnp(&p->pid, path, &fa, &attr, argv, envp ? envp : environ);
	for (int i = 0; i < 3; i++)
		close_fd(&child_ends[i]);
	posix_spawnattr_destroy(&attr);
	posix_spawn_file_actions_destroy(&fa);
	return err;
}

/* What a reaped child's status looks like to a shell. */
static intptr_t exit_code_of(const struct afe_process_status *s)
{
	return s->signaled ? 128 + s->signo : s->code;
}

/* waitid(flags | WEXITED | WNOHANG) on p's child, through its pidfd or
 * its pid. 0 (info->si_pid 0 while it runs) or -errno. */
static int wait_child(const struct afe_process *p, siginfo_t *info, int flags)
{
	memset(info, 0, sizeof(*info));
	int r = p->pidfd >= 0 ? waitid(P_PIDFD, (id_t)p->pidfd, info, flags | WEXITED | WNOHANG)
			      : waitid(P_PID, (id_t)p->pid, info, flags | WEXITED | WNOHANG);
	return r < 0 ? -errno : 0;
}

/* Reaps p's child if it has ended: 0 (info->si_pid 0 while it runs) or
 * -errno. Seen ended first without reaping it (WNOWAIT), so that the kills
 * by pid under way can end, and none start, before its pid is let go. */
static int reap_child(struct afe_process *p, siginfo_t *info)
{
	int err = wait_child(p, info, WNOWAIT);
	if (err || info->si_pid == 0)
		return err;
	/* seq_cst, the flag then the count: pairs with kill_by_pid's
	 * increment then look at the flag. Both change pid_guard, so one of
	 * the two comes first: either the kill sees PID_ENDED and leaves the
	 * pid alone, or we see its count here and wait for it (one kill()). */
	atomic_fetch_or_explicit(&p->pid_guard, PID_ENDED, memory_order_seq_cst);
	while (atomic_load_explicit(&p->pid_guard, memory_order_seq_cst) & PID_KILLS)
		sched_yield();
	err = wait_child(p, info, 0);
	if (!err) /* seq_cst: read by kill_by_pid's increment */
		atomic_fetch_or_explicit(&p->pid_guard, PID_REAPED, memory_order_seq_cst);
	return err;
}

/* Reaps p's child if it has ended. Returns true with *result set (the exit
 * code, or -errno from waitid), or false while the child runs. */
static bool try_reap(struct afe_process *p, intptr_t *result)
{
	if (p->reaped) {
		*result = exit_code_of(&p->status);
		return true;
	}
	siginfo_t info;
	int err = reap_child(p, &info);
	if (err) {
		*result = err;
		return true;
	}
	if (info.si_pid == 0)
		return false; /* still running */
	struct afe_process_status *s = &p->status;
	s->exited = info.si_code == CLD_EXITED;
	s->signaled = !s->exited;
	s->core_dumped = info.si_code == CLD_DUMPED;
	s->code = s->exited ? info.si_status : 0;
	s->signo = s->signaled ? info.si_status : 0;
	p->reaped = true;
	*result = exit_code_of(s);
	return true;
}

int afe_process_spawn(struct afe_process *p, const char *path, char *const argv[],
		      char *const envp[], const struct afe_process_opts *opts)
{
	if (!p)
		return -EINVAL;
	memset(p, 0, sizeof(*p));
	p->pidfd = p->stdin_fd = p->stdout_fd = p->stderr_fd = -1;
	if (!path || !argv)
		return -EINVAL;
	const struct afe_process_opts inherit = {0};
	int err = spawn_child(p, path, argv, envp, opts ? opts : &inherit);
	if (!err) {
		/* The child is ours and unreaped, so its pid cannot be reused
		 * before this: the pidfd names it. */
		p->pidfd = (int)syscall(SYS_pidfd_open, p->pid, 0);
		if (p->pidfd < 0 && pidfd_missing(errno))
			p->by_pid = true; /* see the top of this file */
		else if (p->pidfd < 0) {
			err = -errno;
			kill(p->pid, SIGKILL);
			waitpid(p->pid, NULL, 0);
		}
	}
	if (err) {
		afe_process_close(p);
		p->pid = 0;
	}
	return err;
}

static int wait_poll(struct afe_future *f, struct afe_context *cx)
{
	struct afe_process_wait *w = afe_container_of(f, struct afe_process_wait, base);
	AFE_ASYNC_BEGIN(f, cx);
	if (!w->p)
		AFE_RETURN(-EINVAL);
	if (w->p->pidfd < 0 && !w->p->by_pid)
		AFE_RETURN(-EBADF);
	w->nap_ns = AFE_PROCESS_NAP_MIN_NS;
	while (!try_reap(w->p, &w->base.result)) {
		if (w->p->pidfd >= 0) {
			afe_io_poll_init(&w->poll, w->p->pidfd, POLLIN); /* readable once it ended */
			AFE_AWAIT(&w->poll.base);
			if (w->poll.base.result < 0)
				AFE_RETURN(w->poll.base.result);
		} else { /* no pidfd: look again after a nap */
			afe_sleep_init(&w->nap, w->nap_ns);
			AFE_AWAIT(&w->nap.base);
			if (w->nap.base.result < 0)
				AFE_RETURN(w->nap.base.result);
			if (w->nap_ns < AFE_PROCESS_NAP_MAX_NS)
				w->nap_ns *= 2;
		}
	}
	AFE_ASYNC_END;
}

void afe_process_wait_init(struct afe_process_wait *w, struct afe_process *p)
{
	afe_future_init(&w->base, wait_poll);
	w->p = p;
}

/* kill(2) on p's pid, only while the pid is still its child's: not once
 * reaping began (see reap_child). */
static int kill_by_pid(struct afe_process *p, int signo)
{
	/* seq_cst: pairs with reap_child's flag then look at the count. */
	unsigned guard = atomic_fetch_add_explicit(&p->pid_guard, 1, memory_order_seq_cst);
	int err = 0;
	sigset_t valid;
	sigemptyset(&valid);
	if (guard & PID_REAPED)
		err = -ESRCH;
	else if (!(guard & PID_ENDED) && kill(p->pid, signo) < 0)
		err = -errno;
	else if ((guard & PID_ENDED) && signo && sigaddset(&valid, signo) < 0)
		err = -EINVAL; /* what kill() would have said */
	/* else ended, not yet reaped: a signal to it would change nothing */
	atomic_fetch_sub_explicit(&p->pid_guard, 1, memory_order_seq_cst); /* reap_child waits */
	return err;
}

int afe_process_kill(struct afe_process *p, int signo)
{
	if (!p)
		return -EINVAL;
	if (p->pidfd < 0 && !p->by_pid)
		return -EBADF;
	if (p->pidfd >= 0) {
		if (syscall(SYS_pidfd_send_signal, p->pidfd, signo, NULL, 0) == 0)
			return 0;
		/* Only ENOSYS: its EPERM is also the kernel's "not allowed". */
		if (errno != ENOSYS)
			return -errno;
	}
	return kill_by_pid(p, signo);
}

void afe_process_close(struct afe_process *p)
{
	if (!p)
		return;
	if (p->pidfd >= 0 || p->by_pid) {
		intptr_t ignored;
		try_reap(p, &ignored); /* no zombie for a child that ended */
		close_fd(&p->pidfd);
		p->by_pid = false;
	}
	close_fd(&p->stdin_fd);
	close_fd(&p->stdout_fd);
	close_fd(&p->stderr_fd);
}
