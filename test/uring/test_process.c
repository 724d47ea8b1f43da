/* SPDX-License-Identifier: MIT */
/* Child processes: exit codes and signals, programs that do not exist,
 * pipes read and written through the ring, kills, and a child spawned
 * from a worker (every asynchronous signal blocked there) and from a
 * thread that blocks SIGTERM and ignores SIGPIPE, which must still die by
 * those signals. */
#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>

#include "helpers.h"

#define MS 1000000ull

/* Spawns argv[0] with opts from its poll (on a worker), then awaits its
 * exit: the spawn's error, or the wait's result. */
struct run_child {
	struct afe_future base;
	struct afe_process *p;
	char *const *argv;
	struct afe_process_opts opts;
	struct afe_process_wait wait;
};

static int run_child_poll(struct afe_future *f, struct afe_context *cx)
{
	struct run_child *self = afe_container_of(f, struct run_child, base);
	AFE_ASYNC_BEGIN(f, cx);
	int err = afe_process_spawn(self->p, self->argv[0], self->argv, NULL, &self->opts);
	if (err < 0)
		AFE_RETURN(err);
	afe_process_wait_init(&self->wait, self->p);
	AFE_AWAIT(&self->wait.base);
	AFE_RETURN(self->wait.base.result);
	AFE_ASYNC_END;
}

/* Runs argv to its end on rt; returns what run_child gave. */
static intptr_t run(struct afe_runtime *rt, struct afe_process *p, char *const *argv)
{
	struct run_child r = {.p = p, .argv = argv};
	afe_future_init(&r.base, run_child_poll);
	return test_block_on(rt, &r);
}

#define ARGV(...) ((char *const[]){__VA_ARGS__, NULL})

Test(process, exit_codes_and_signals_come_back_as_a_shell_reports_them, .timeout = 60)
{
	struct afe_runtime *rt = test_runtime(2);
	struct afe_process p;
	cr_assert_eq(run(rt, &p, ARGV("true")), 0);
	cr_assert(p.reaped && p.status.exited && !p.status.signaled && p.status.code == 0);
	afe_process_close(&p);
	cr_assert_eq(run(rt, &p, ARGV("false")), 1);
	cr_assert_eq(p.status.code, 1);
	afe_process_close(&p);
	cr_assert_eq(run(rt, &p, ARGV("sh", "-c", "exit 3")), 3);
	afe_process_close(&p);
	cr_assert_eq(run(rt, &p, ARGV("sh", "-c", "kill -TERM $$")), 128 + SIGTERM);
	cr_assert(p.status.signaled && !p.status.exited);
	cr_assert_eq(p.status.signo, SIGTERM);
	afe_process_close(&p);
	test_runtime_destroy(rt);
}

static int open_fds(void)
{
	int n = 0;
	for (int fd = 0; fd < 1024; fd++)
		n += fcntl(fd, F_GETFD) != -1;
	return n;
}

Test(process, a_missing_program_is_enoent_and_leaves_nothing_behind, .timeout = 60)
{
	int fds = open_fds();
	struct afe_process p;
	struct afe_process_opts pipes = {AFE_STDIO_PIPE, AFE_STDIO_PIPE, AFE_STDIO_PIPE};
	cr_assert_eq(afe_process_spawn(&p, "/nonexistent/afe-prog", ARGV("x"), NULL, &pipes),
		     -ENOENT);
	cr_assert_eq(p.pidfd, -1);
	cr_assert_eq(p.stdin_fd, -1);
	cr_assert_eq(p.stdout_fd, -1);
	cr_assert_eq(p.stderr_fd, -1);
	cr_assert_eq(afe_process_spawn(&p, "afe-no-such-program", ARGV("x"), NULL, NULL), -ENOENT);
	cr_assert_eq(afe_process_spawn(&p, "/dev/null", ARGV("x"), NULL, NULL), -EACCES);
	cr_assert_eq(open_fds(), fds, "pipes leaked");
	/* The failed p is safe to use: */
	cr_assert_eq(afe_process_kill(&p, SIGKILL), -EBADF);
	afe_process_close(&p);
	struct afe_runtime *rt = test_runtime(1);
	struct afe_process_wait w;
	afe_process_wait_init(&w, &p);
	cr_assert_eq(test_block_on(rt, &w), -EBADF);
	test_runtime_destroy(rt);
}

Test(process, bad_arguments_are_einval)
{
	struct afe_process p;
	cr_assert_eq(afe_process_spawn(NULL, "true", ARGV("true"), NULL, NULL), -EINVAL);
	memset(&p, 0x5a, sizeof(p));
	cr_assert_eq(afe_process_spawn(&p, NULL, ARGV("true"), NULL, NULL), -EINVAL);
	cr_assert_eq(p.pidfd, -1, "a failed spawn leaves no fd in p");
	cr_assert_eq(p.stdin_fd, -1);
	cr_assert_eq(p.stdout_fd, -1);
	cr_assert_eq(p.stderr_fd, -1);
	memset(&p, 0x5a, sizeof(p));
	cr_assert_eq(afe_process_spawn(&p, "true", NULL, NULL, NULL), -EINVAL);
	cr_assert_eq(p.pidfd, -1);
	int fds = open_fds();
	struct afe_process_opts bad = {AFE_STDIO_PIPE, (enum afe_stdio)7, AFE_STDIO_INHERIT};
	cr_assert_eq(afe_process_spawn(&p, "true", ARGV("true"), NULL, &bad), -EINVAL);
	cr_assert_eq(open_fds(), fds, "the stdin pipe leaked");
	cr_assert_eq(p.pidfd, -1);
	cr_assert_eq(p.stdin_fd, -1);
	cr_assert_eq(afe_process_kill(&p, SIGKILL), -EBADF);
	afe_process_close(&p);
	cr_assert_eq(afe_process_kill(NULL, SIGKILL), -EINVAL);
	afe_process_close(NULL);
	struct afe_runtime *rt = test_runtime(1);
	struct afe_process_wait w;
	afe_process_wait_init(&w, NULL);
	cr_assert_eq(test_block_on(rt, &w), -EINVAL);
	test_runtime_destroy(rt);
}

/* The child reaped behind the wait's back (waitpid here): -ECHILD. */
Test(process, a_child_someone_else_reaped_is_echild, .timeout = 60)
{
	struct afe_runtime *rt = test_runtime(1);
	struct afe_process p;
	cr_assert_eq(afe_process_spawn(&p, "true", ARGV("true"), NULL, NULL), 0);
	int status;
	cr_assert_eq(waitpid(p.pid, &status, 0), p.pid);
	struct afe_process_wait w;
	afe_process_wait_init(&w, &p);
	cr_assert_eq(test_block_on(rt, &w), -ECHILD);
	cr_assert_not(p.reaped);
	afe_process_close(&p);
	test_runtime_destroy(rt);
}

/* A wait polled outside a runtime on a child still running is -EINVAL
 * (its poll's error), and the child is left for a later wait. */
Test(process, a_wait_outside_a_runtime_is_einval_and_leaves_the_child, .timeout = 60)
{
	struct afe_process p;
	cr_assert_eq(afe_process_spawn(&p, "sleep", ARGV("sleep", "30"), NULL, NULL), 0);
	struct counting_waker cw;
	counting_waker_init(&cw);
	struct afe_context cx = counting_context(&cw, false);
	struct afe_process_wait w;
	afe_process_wait_init(&w, &p);
	cr_assert_eq(afe_future_poll(&w.base, &cx), AFE_READY);
	cr_assert_eq(w.base.result, -EINVAL);
	cr_assert_not(p.reaped);
	cr_assert_eq(afe_process_kill(&p, SIGKILL), 0);
	struct afe_runtime *rt = test_runtime(1);
	afe_process_wait_init(&w, &p);
	cr_assert_eq(test_block_on(rt, &w), 128 + SIGKILL);
	afe_process_close(&p);
	test_runtime_destroy(rt);
}

/* Reads p's stdout through the ring to its end, then awaits the exit. */
struct read_all {
	struct afe_future base;
	struct afe_process *p;
	char *buf;
	unsigned len, got;
	struct afe_io io;
	struct afe_process_wait wait;
};

static int read_all_poll(struct afe_future *f, struct afe_context *cx)
{
	struct read_all *self = afe_container_of(f, struct read_all, base);
	AFE_ASYNC_BEGIN(f, cx);
	do {
		afe_io_read_init(&self->io, self->p->stdout_fd, self->buf + self->got,
				 self->len - self->got, -1);
		AFE_AWAIT(&self->io.base);
		if (self->io.base.result < 0)
			AFE_RETURN(self->io.base.result);
		self->got += (unsigned)self->io.base.result;
	} while (self->io.base.result > 0 && self->got < self->len);
	afe_process_wait_init(&self->wait, self->p);
	AFE_AWAIT(&self->wait.base);
	AFE_RETURN(self->wait.base.result);
	AFE_ASYNC_END;
}

static intptr_t read_stdout(struct afe_runtime *rt, struct afe_process *p, char *buf,
			    unsigned len)
{
	struct read_all r = {.p = p, .buf = buf, .len = len - 1};
	afe_future_init(&r.base, read_all_poll);
	return test_block_on(rt, &r);
}

Test(process, stdout_and_stderr_pipes_read_through_the_ring, .timeout = 60)
{
	struct afe_runtime *rt = test_runtime(2);
	struct afe_process p;
	struct afe_process_opts opts = {.stdout_mode = AFE_STDIO_PIPE};
	cr_assert_eq(afe_process_spawn(&p, "sh", ARGV("sh", "-c", "echo hi; exit 3"), NULL, &opts),
		     0);
	cr_assert_geq(p.stdout_fd, 0);
	cr_assert_eq(p.stdin_fd, -1);
	cr_assert_eq(p.stderr_fd, -1);
	char buf[64] = {0};
	cr_assert_eq(read_stdout(rt, &p, buf, sizeof(buf)), 3);
	cr_assert(strcmp(buf, "hi\n") == 0, "read '%s'", buf);
	afe_process_close(&p);

	/* stderr through a pipe, stdout to /dev/null: swap them to read. */
	struct afe_process_opts err_only = {.stdout_mode = AFE_STDIO_NULL,
					    .stderr_mode = AFE_STDIO_PIPE};
	cr_assert_eq(afe_process_spawn(&p, "sh", ARGV("sh", "-c", "echo out; echo err >&2"), NULL,
				       &err_only),
		     0);
	p.stdout_fd = p.stderr_fd;
	p.stderr_fd = -1;
	memset(buf, 0, sizeof(buf));
	cr_assert_eq(read_stdout(rt, &p, buf, sizeof(buf)), 0);
	cr_assert(strcmp(buf, "err\n") == 0, "read '%s'", buf);
	afe_process_close(&p);
	test_runtime_destroy(rt);
}

/* Writes text to cat's stdin through the ring, closes it, and reads it
 * back from cat's stdout. */
struct cat_round {
	struct afe_future base;
	struct afe_process *p;
	const char *text;
	struct afe_io io;
	struct read_all back;
};

static int cat_round_poll(struct afe_future *f, struct afe_context *cx)
{
	struct cat_round *self = afe_container_of(f, struct cat_round, base);
	AFE_ASYNC_BEGIN(f, cx);
	afe_io_write_init(&self->io, self->p->stdin_fd, self->text, (unsigned)strlen(self->text),
			  -1);
	AFE_AWAIT(&self->io.base);
	if (self->io.base.result != (intptr_t)strlen(self->text))
		AFE_RETURN(-1000);
	afe_io_close_init(&self->io, self->p->stdin_fd); /* end-of-file for cat */
	self->p->stdin_fd = -1;
	AFE_AWAIT(&self->io.base);
	afe_future_init(&self->back.base, read_all_poll);
	AFE_AWAIT(&self->back.base);
	AFE_RETURN(self->back.base.result);
	AFE_ASYNC_END;
}

Test(process, stdin_written_through_the_ring_comes_back_from_cat, .timeout = 60)
{
	struct afe_runtime *rt = test_runtime(2);
	struct afe_process p;
	struct afe_process_opts opts = {AFE_STDIO_PIPE, AFE_STDIO_PIPE, AFE_STDIO_INHERIT};
	cr_assert_eq(afe_process_spawn(&p, "cat", ARGV("cat"), NULL, &opts), 0);
	char buf[64] = {0};
	struct cat_round r = {.p = &p, .text = "hello, cat\n",
			      .back = {.p = &p, .buf = buf, .len = sizeof(buf) - 1}};
	afe_future_init(&r.base, cat_round_poll);
	cr_assert_eq(test_block_on(rt, &r), 0);
	cr_assert(strcmp(buf, "hello, cat\n") == 0, "read '%s'", buf);
	afe_process_close(&p);
	test_runtime_destroy(rt);
}

/* The parent's end of cat's stdin must not leak into a child spawned
 * later (sleep): cat then sees end-of-file as soon as the parent closes
 * it, not when sleep ends. */
Test(process, a_later_child_does_not_hold_an_earlier_ones_pipe, .timeout = 60)
{
	struct afe_runtime *rt = test_runtime(2);
	struct afe_process p, sleeper;
	struct afe_process_opts opts = {AFE_STDIO_PIPE, AFE_STDIO_PIPE, AFE_STDIO_INHERIT};
	cr_assert_eq(afe_process_spawn(&p, "cat", ARGV("cat"), NULL, &opts), 0);
	cr_assert_eq(afe_process_spawn(&sleeper, "sleep", ARGV("sleep", "5"), NULL, NULL), 0);
	uint64_t start = afe_now_ns();
	char buf[64] = {0};
	struct cat_round r = {.p = &p, .text = "x\n",
			      .back = {.p = &p, .buf = buf, .len = sizeof(buf) - 1}};
	afe_future_init(&r.base, cat_round_poll);
	cr_assert_eq(test_block_on(rt, &r), 0);
	uint64_t took = afe_now_ns() - start;
	cr_assert_lt(took, 3000 * MS, "cat ended after %llu ms", (unsigned long long)(took / MS));
	afe_process_close(&p);
	cr_assert_eq(afe_process_kill(&sleeper, SIGKILL), 0);
	struct afe_process_wait w;
	afe_process_wait_init(&w, &sleeper);
	cr_assert_eq(test_block_on(rt, &w), 128 + SIGKILL);
	afe_process_close(&sleeper);
	test_runtime_destroy(rt);
}

Test(process, a_killed_child_ends_by_sigkill_at_once, .timeout = 60)
{
	struct afe_runtime *rt = test_runtime(2);
	struct afe_process p;
	cr_assert_eq(afe_process_spawn(&p, "sleep", ARGV("sleep", "10"), NULL, NULL), 0);
	/* A wait cancelled (by a timeout) leaves the child running. */
	struct afe_process_wait w;
	afe_process_wait_init(&w, &p);
	struct afe_timeout limited;
	afe_timeout_init(&limited, &w.base, 20 * MS);
	cr_assert_eq(test_block_on(rt, &limited), -ETIMEDOUT);
	cr_assert_eq(w.base.result, -ECANCELED);
	cr_assert(!p.reaped);
	cr_assert_eq(afe_process_kill(&p, 12345), -EINVAL);

	uint64_t start = afe_now_ns();
	cr_assert_eq(afe_process_kill(&p, SIGKILL), 0);
	afe_process_wait_init(&w, &p);
	cr_assert_eq(test_block_on(rt, &w), 128 + SIGKILL);
	uint64_t took = afe_now_ns() - start;
	cr_assert_lt(took, 1000 * MS, "took %llu ms", (unsigned long long)(took / MS));
	cr_assert_eq(p.status.signo, SIGKILL);
	/* Reaped: the pidfd refuses signals, a wait again gives the same. */
	cr_assert_eq(afe_process_kill(&p, SIGTERM), -ESRCH);
	afe_process_wait_init(&w, &p);
	cr_assert_eq(test_block_on(rt, &w), 128 + SIGKILL);
	afe_process_close(&p);
	afe_process_close(&p);
	cr_assert_eq(afe_process_kill(&p, SIGKILL), -EBADF);
	test_runtime_destroy(rt);
}

/* The spawning thread blocks SIGTERM (as AFE_MAIN's do) and ignores
 * SIGPIPE, and the spawn runs on a worker, which blocks every
 * asynchronous signal: a child inheriting either would leave the signal
 * it sends itself pending, sleep 5 s and exit 0. (exec: a shell waiting
 * for a child of its own would take a pending SIGTERM in sigsuspend.) */
Test(process, a_child_dies_by_signals_its_parent_blocked_or_ignored, .timeout = 60)
{
	sigset_t term;
	sigemptyset(&term);
	sigaddset(&term, SIGTERM);
	cr_assert_eq(pthread_sigmask(SIG_BLOCK, &term, NULL), 0);
	signal(SIGPIPE, SIG_IGN);
	struct afe_runtime *rt = test_runtime(2);
	struct afe_process p;
	uint64_t start = afe_now_ns();
	cr_assert_eq(run(rt, &p, ARGV("sh", "-c", "kill -TERM $$; exec sleep 5")), 128 + SIGTERM);
	afe_process_close(&p);
	cr_assert_eq(run(rt, &p, ARGV("sh", "-c", "kill -PIPE $$; exec sleep 5")), 128 + SIGPIPE);
	afe_process_close(&p);
	uint64_t took = afe_now_ns() - start;
	cr_assert_lt(took, 4000 * MS, "took %llu ms", (unsigned long long)(took / MS));
	/* And from this thread itself, outside the runtime. */
	cr_assert_eq(afe_process_spawn(&p, "sh", ARGV("sh", "-c", "kill -TERM $$; exec sleep 5"), NULL,
				       NULL),
		     0);
	struct afe_process_wait w;
	afe_process_wait_init(&w, &p);
	cr_assert_eq(test_block_on(rt, &w), 128 + SIGTERM);
	afe_process_close(&p);
	test_runtime_destroy(rt);
}

/* A parent whose 0 and 1 are closed: a stderr pipe then gets fds 0 and 1,
 * and the child's stdout (/dev/null, opened at 1) must not replace the
 * pipe's end before it becomes the child's 2. In a forked child, which
 * reads the pipe with read(2) and exits 0 when it saw "err\n". */
static void spawn_with_stdio_closed(void)
{
	close(STDIN_FILENO);
	close(STDOUT_FILENO);
	struct afe_process p;
	struct afe_process_opts opts = {AFE_STDIO_NULL, AFE_STDIO_NULL, AFE_STDIO_PIPE};
	if (afe_process_spawn(&p, "sh", ARGV("sh", "-c", "echo err >&2"), NULL, &opts) < 0)
		_exit(2);
	char buf[16] = {0};
	ssize_t n = read(p.stderr_fd, buf, sizeof(buf) - 1);
	afe_process_close(&p);
	_exit(n == 4 && strcmp(buf, "err\n") == 0 ? 0 : 1);
}

Test(process, pipes_work_in_a_parent_with_its_stdio_closed, .timeout = 60)
{
	char said[256];
	int status = test_child_stderr(spawn_with_stdio_closed, said, sizeof(said));
	cr_assert(WIFEXITED(status), "status %d", status);
	cr_assert_eq(WEXITSTATUS(status), 0, "exit %d (1: not read, 2: spawn failed)",
		     WEXITSTATUS(status));
}
