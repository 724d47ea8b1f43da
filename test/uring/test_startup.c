/* SPDX-License-Identifier: MIT */
/*
 * Start-up and run-time failures of the io_uring calls, made by seccomp
 * filters in child processes: on the io_uring backend, create fails with
 * the errno of the call that failed and says which call it was; by
 * default, it falls back to epoll with a one-line notice, and the demo,
 * the echo example and a cross-process call pair work there; a refused io_uring_enter at run time
 * does not abort. And without pidfds (pidfd_open refused): the child
 * process example, a kill, and IPC with its peer's death seen. Skipped
 * where seccomp filters cannot be installed.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <linux/audit.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <netinet/in.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "io_helpers.h"

#if defined(__x86_64__)
#define NATIVE_ARCH AUDIT_ARCH_X86_64
#elif defined(__aarch64__)
#define NATIVE_ARCH AUDIT_ARCH_AARCH64
#endif

/* The exit status of a child that could not install its filter. */
#define NO_SECCOMP 77

struct deny {
	long nr;
	int err;
};

/* Makes the syscalls in rules (n of them, at most 3) fail with their errno,
 * in every thread of the process when tsync. Returns 0 or -errno. */
static int deny_syscalls(const struct deny *rules, unsigned n, bool tsync)
{
#ifdef NATIVE_ARCH
	struct sock_filter code[3 + 2 * 3 + 1];
	unsigned len = 0;
	code[len++] = (struct sock_filter)BPF_STMT(BPF_LD | BPF_W | BPF_ABS,
						   offsetof(struct seccomp_data, arch));
	/* Another architecture's syscall: allowed (jump to the end). */
	code[len++] = (struct sock_filter)BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, NATIVE_ARCH, 0,
						   (unsigned char)(1 + 2 * n));
	code[len++] = (struct sock_filter)BPF_STMT(BPF_LD | BPF_W | BPF_ABS,
						   offsetof(struct seccomp_data, nr));
	for (unsigned i = 0; i < n; i++) {
		code[len++] = (struct sock_filter)BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K,
							   (unsigned)rules[i].nr, 0, 1);
		code[len++] = (struct sock_filter)BPF_STMT(
			BPF_RET | BPF_K, SECCOMP_RET_ERRNO | ((unsigned)rules[i].err & SECCOMP_RET_DATA));
	}
	code[len++] = (struct sock_filter)BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW);
	struct sock_fprog prog = {.len = (unsigned short)len, .filter = code};
	if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0)
		return -errno;
	if (syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER,
		    tsync ? SECCOMP_FILTER_FLAG_TSYNC : 0, &prog) != 0)
		return -errno;
	return 0;
#else
	(void)rules, (void)n, (void)tsync;
	return -ENOSYS;
#endif
}

/* Makes every io_uring_enter that waits (min_complete > 0) fail with
 * -EBADR in every thread, as a kernel does once it dropped completions.
 * Returns 0 or -errno. */
static int deny_waiting_enters(void)
{
#ifdef NATIVE_ARCH
	struct sock_filter code[] = {
		BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, arch)),
		BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, NATIVE_ARCH, 0, 4),
		BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr)),
		BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, SYS_io_uring_enter, 0, 2),
		/* min_complete: the third argument, an unsigned int (low word) */
		BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, args[2])),
		BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, 0, 0, 1),
		BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
		BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | EBADR),
	};
	struct sock_fprog prog = {.len = sizeof(code) / sizeof(code[0]), .filter = code};
	if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0)
		return -errno;
	if (syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, SECCOMP_FILTER_FLAG_TSYNC, &prog) != 0)
		return -errno;
	return 0;
#else
	return -ENOSYS;
#endif
}

/* What a child printed on stderr (and stdout, for programs) and how it ended. */
struct child {
	int status;
	char out[4096];
};

/* Runs fn(arg) in a child whose stdout and stderr go to a pipe, bounded
 * to 10 s (then killed). fn's return value is the child's exit status. */
static void run_child(struct child *c, int (*fn)(void *), void *arg)
{
	int fds[2];
	cr_assert_eq(pipe(fds), 0);
	fflush(NULL);
	pid_t pid = fork();
	cr_assert_geq(pid, 0);
	if (pid == 0) {
		close(fds[0]);
		dup2(fds[1], STDOUT_FILENO);
		dup2(fds[1], STDERR_FILENO);
		close(fds[1]);
		unsetenv("AFE_BACKEND"); /* the default's choice is what is tested */
		int status = fn(arg);
		fflush(NULL);
		_exit(status);
	}
	close(fds[1]);
	size_t got = 0;
	struct timespec start;
	clock_gettime(CLOCK_MONOTONIC, &start);
	for (;;) {
		struct pollfd p = {.fd = fds[0], .events = POLLIN};
		struct timespec now;
		clock_gettime(CLOCK_MONOTONIC, &now);
		if (now.tv_sec - start.tv_sec > 10) {
			kill(pid, SIGKILL);
			break;
		}
		if (poll(&p, 1, 100) <= 0)
			continue;
		ssize_t n = read(fds[0], c->out + got, sizeof(c->out) - 1 - got);
		if (n <= 0)
			break; /* EOF: every copy of the write end closed */
		got += (size_t)n;
		if (got == sizeof(c->out) - 1)
			break;
	}
	c->out[got] = '\0';
	close(fds[0]);
	cr_assert_eq(waitpid(pid, &c->status, 0), pid);
	if (WIFEXITED(c->status) && WEXITSTATUS(c->status) == NO_SECCOMP)
		cr_skip_test("seccomp filters unavailable: %s", c->out);
}

static int create_denied(void *arg)
{
	const struct deny *rule = arg;
	int err = deny_syscalls(rule, 1, false);
	if (err < 0) {
		fprintf(stderr, "%s", strerror(-err));
		return NO_SECCOMP;
	}
	struct afe_runtime_config config;
	afe_runtime_config_default(&config);
	config.workers = 1;
	config.backend = AFE_BACKEND_URING; /* the default would fall back */
	struct afe_runtime *rt;
	err = afe_runtime_create(&rt, &config);
	if (err == 0) {
		/* Unfixed: the ring thread meets the refusal here. */
		afe_runtime_destroy(rt);
		return 0;
	}
	return -err;
}

/* The child exited with the errno create returned, and said which call. */
static void expect_create_error(const struct child *c, int err, const char *call,
				const char *name)
{
	cr_assert(WIFEXITED(c->status), "child killed by signal %d; it said: %s",
		  WIFSIGNALED(c->status) ? WTERMSIG(c->status) : 0, c->out);
	cr_assert_eq(WEXITSTATUS(c->status), err, "create returned %d, not -%d; it said: %s",
		     -WEXITSTATUS(c->status), err, c->out);
	cr_assert(strstr(c->out, call), "the message names %s: %s", call, c->out);
	cr_assert(strstr(c->out, name), "the message names %s: %s", name, c->out);
	cr_assert_null(strstr(c->out, "older than"), "no guess at the kernel: %s", c->out);
}

Test(startup, enter_refused_fails_create)
{
	struct deny rule = {SYS_io_uring_enter, EPERM};
	struct child c;
	run_child(&c, create_denied, &rule);
	expect_create_error(&c, EPERM, "io_uring_enter", "EPERM");
}

Test(startup, register_refused_names_the_call)
{
	struct deny rule = {SYS_io_uring_register, EACCES};
	struct child c;
	run_child(&c, create_denied, &rule);
	expect_create_error(&c, EACCES, "io_uring_register", "EACCES");
}

Test(startup, setup_einval_names_the_call)
{
	struct deny rule = {SYS_io_uring_setup, EINVAL};
	struct child c;
	run_child(&c, create_denied, &rule);
	expect_create_error(&c, EINVAL, "io_uring_setup", "EINVAL");
}

Test(startup, setup_refused_names_the_call)
{
	struct deny rule = {SYS_io_uring_setup, EPERM};
	struct child c;
	run_child(&c, create_denied, &rule);
	expect_create_error(&c, EPERM, "io_uring_setup", "EPERM");
}

/* Refuses io_uring_enter with -EBADR once the runtime runs, then gives the
 * ring thread an operation to submit: it must report and retry, not abort. */
static int enter_fails_later(void *arg)
{
	(void)arg;
	struct afe_runtime_config config;
	afe_runtime_config_default(&config);
	config.workers = 1;
	config.backend = AFE_BACKEND_URING;
	struct afe_runtime *rt;
	if (afe_runtime_create(&rt, &config) != 0)
		return 2;
	struct deny rule = {SYS_io_uring_enter, EBADR};
	int err = deny_syscalls(&rule, 1, true);
	if (err < 0) {
		fprintf(stderr, "%s", strerror(-err));
		return NO_SECCOMP;
	}
	struct one_op op;
	afe_io_nop_init(&op.io);
	afe_future_init(&op.base, one_op_poll);
	if (afe_spawn(rt, &op, NULL) != 0)
		return 3;
	struct timespec wait = {.tv_sec = 0, .tv_nsec = 300 * 1000000L};
	nanosleep(&wait, NULL);
	/* Alive. The NOP waits for an io_uring_enter that never comes back,
	 * so the runtime cannot be stopped: leave without destroying it. */
	return 0;
}

Test(startup, enter_refused_at_run_time_does_not_abort)
{
	struct child c;
	run_child(&c, enter_fails_later, NULL);
	cr_assert(WIFEXITED(c.status), "child killed by signal %d; it said: %s",
		  WIFSIGNALED(c.status) ? WTERMSIG(c.status) : 0, c.out);
	cr_assert_eq(WEXITSTATUS(c.status), 0, "it said: %s", c.out);
	cr_assert(strstr(c.out, "io_uring_enter failed: EBADR"), "it said: %s", c.out);
	/* Said once, however many retries. */
	const char *first = strstr(c.out, "EBADR");
	cr_assert_null(strstr(first + 1, "io_uring_enter failed"), "it said: %s", c.out);
}

/* After -EBADR on every wait, operations still complete (the ring thread
 * polls); exits 0 when 100 NOPs and a sleep finished. */
static int waits_fail_later(void *arg)
{
	(void)arg;
	struct afe_runtime_config config;
	afe_runtime_config_default(&config);
	config.workers = 1;
	config.backend = AFE_BACKEND_URING;
	struct afe_runtime *rt;
	if (afe_runtime_create(&rt, &config) != 0)
		return 2;
	int err = deny_waiting_enters();
	if (err < 0) {
		fprintf(stderr, "%s", strerror(-err));
		return NO_SECCOMP;
	}
	for (int i = 0; i < 100; i++) {
		struct one_op op;
		afe_io_nop_init(&op.io);
		afe_future_init(&op.base, one_op_poll);
		intptr_t result = -1;
		if (afe_block_on(rt, &op, &result) != 0 || result != 0)
			return 3;
	}
	struct afe_sleep nap;
	afe_sleep_init(&nap, 5 * 1000000u);
	if (afe_block_on(rt, &nap, NULL) != 0)
		return 4;
	return afe_runtime_destroy(rt) == 0 ? 0 : 5;
}

Test(startup, operations_complete_after_ebadr)
{
	struct child c;
	run_child(&c, waits_fail_later, NULL);
	cr_assert(WIFEXITED(c.status), "child killed by signal %d; it said: %s",
		  WIFSIGNALED(c.status) ? WTERMSIG(c.status) : 0, c.out);
	cr_assert_eq(WEXITSTATUS(c.status), 0, "it said: %s", c.out);
	const char *first = strstr(c.out, "io_uring_enter failed: EBADR");
	cr_assert(first, "it said: %s", c.out);
	cr_assert_null(strstr(first + 1, "io_uring_enter failed"), "said once: %s", c.out);
}

/* The echo example under a filter refusing io_uring_setup. */
static int echo_server_denied(void *arg)
{
	(void)arg;
	struct deny rule = {SYS_io_uring_setup, EPERM};
	int err = deny_syscalls(&rule, 1, false);
	if (err < 0) {
		fprintf(stderr, "%s", strerror(-err));
		return NO_SECCOMP;
	}
	execl(ECHO_SERVER, ECHO_SERVER, "0", (char *)NULL);
	return 127;
}

/* The notice the fallback gives, in full. */
#define NOTICE_EPERM "afe: io_uring not permitted (seccomp? sysctl kernel.io_uring_disabled?); using epoll\n"

/* Installs rule, then runs a NOP and a sleep on a runtime with the default
 * backend, quiet or not. Exits 0 when they worked over epoll. */
static int runs_on_epoll(const struct deny *rule, bool quiet)
{
	int err = deny_syscalls(rule, 1, false);
	if (err < 0) {
		fprintf(stderr, "%s", strerror(-err));
		return NO_SECCOMP;
	}
	struct afe_runtime_config config;
	afe_runtime_config_default(&config);
	config.workers = 1;
	config.quiet_fallback = quiet;
	struct afe_runtime *rt;
	err = afe_runtime_create(&rt, &config);
	if (err != 0)
		return 2;
	if (afe_runtime_backend(rt) != AFE_BACKEND_EPOLL)
		return 3;
	struct one_op op;
	afe_io_nop_init(&op.io);
	afe_future_init(&op.base, one_op_poll);
	intptr_t result = -1;
	if (afe_block_on(rt, &op, &result) != 0 || result != 0)
		return 4;
	struct afe_sleep nap;
	afe_sleep_init(&nap, 5 * 1000000u);
	if (afe_block_on(rt, &nap, NULL) != 0)
		return 5;
	return afe_runtime_destroy(rt) == 0 ? 0 : 6;
}

static int setup_eperm_on_epoll(void *arg)
{
	(void)arg;
	struct deny rule = {SYS_io_uring_setup, EPERM};
	return runs_on_epoll(&rule, false);
}

static int setup_enosys_on_epoll_quietly(void *arg)
{
	(void)arg;
	struct deny rule = {SYS_io_uring_setup, ENOSYS};
	return runs_on_epoll(&rule, true);
}

static int enter_eperm_on_epoll(void *arg)
{
	(void)arg;
	struct deny rule = {SYS_io_uring_enter, EPERM};
	return runs_on_epoll(&rule, false);
}

static void expect_exit_0(const struct child *c)
{
	cr_assert(WIFEXITED(c->status), "child killed by signal %d; it said: %s",
		  WIFSIGNALED(c->status) ? WTERMSIG(c->status) : 0, c->out);
	cr_assert_eq(WEXITSTATUS(c->status), 0, "exited %d; it said: %s",
		     WEXITSTATUS(c->status), c->out);
}

Test(fallback, setup_refused_runs_on_epoll_with_one_line_said)
{
	struct child c;
	run_child(&c, setup_eperm_on_epoll, NULL);
	expect_exit_0(&c);
	cr_assert_eq(strcmp(c.out, NOTICE_EPERM), 0, "it said: %s", c.out);
}

Test(fallback, no_io_uring_runs_on_epoll_and_quiet_says_nothing)
{
	struct child c;
	run_child(&c, setup_enosys_on_epoll_quietly, NULL);
	expect_exit_0(&c);
	cr_assert_eq(c.out[0], '\0', "it said: %s", c.out);
}

Test(fallback, enter_refused_at_start_runs_on_epoll)
{
	struct child c;
	run_child(&c, enter_eperm_on_epoll, NULL);
	expect_exit_0(&c);
	cr_assert(strstr(c.out, "using epoll"), "it said: %s", c.out);
}

static int demo_denied(void *arg)
{
	(void)arg;
	struct deny rule = {SYS_io_uring_setup, EPERM};
	int err = deny_syscalls(&rule, 1, false);
	if (err < 0) {
		fprintf(stderr, "%s", strerror(-err));
		return NO_SECCOMP;
	}
	execl(HELLO_MAIN, HELLO_MAIN, "7", (char *)NULL);
	return 127;
}

Test(fallback, the_demo_runs_on_epoll)
{
	struct child c;
	run_child(&c, demo_denied, NULL);
	expect_exit_0(&c);
	cr_assert(strstr(c.out, NOTICE_EPERM), "it said: %s", c.out);
	cr_assert(strstr(c.out, "joined 7 tasks, sum 91"), "it said: %s", c.out);
}

/* The example consumer and producer under a filter refusing
 * io_uring_setup (inherited by both): the producer's calls, answered. */
static int ipc_pair_denied(void *arg)
{
	(void)arg;
	struct deny rule = {SYS_io_uring_setup, EPERM};
	int err = deny_syscalls(&rule, 1, false);
	if (err < 0) {
		fprintf(stderr, "%s", strerror(-err));
		return NO_SECCOMP;
	}
	char script[1024];
	snprintf(script, sizeof(script),
		 "%s afe-fallback-%d & c=$!; st=1; for i in $(seq 50); do "
		 "%s afe-fallback-%d && { st=0; break; }; sleep 0.1; done; "
		 "kill -INT $c; wait $c; exit $st",
		 IPC_CONSUMER, getpid(), IPC_PRODUCER, getpid());
	execl("/bin/sh", "sh", "-c", script, (char *)NULL);
	return 127;
}

Test(fallback, an_ipc_call_pair_runs_on_epoll)
{
	struct child c;
	run_child(&c, ipc_pair_denied, NULL);
	expect_exit_0(&c);
	cr_assert(strstr(c.out, NOTICE_EPERM), "it said: %s", c.out);
	cr_assert(strstr(c.out, "add(1, 2, 3) = 6"), "it said: %s", c.out);
}

/* Reads from fd until want bytes came or 5 s passed; returns the count. */
static size_t read_for(int fd, char *buf, size_t want)
{
	size_t got = 0;
	while (got < want) {
		struct pollfd p = {.fd = fd, .events = POLLIN};
		if (poll(&p, 1, 5000) <= 0)
			break;
		ssize_t n = read(fd, buf + got, want - got);
		if (n <= 0)
			break;
		got += (size_t)n;
	}
	return got;
}

/* Sends len bytes of msg to 127.0.0.1:port and reads the echo into back.
 * Returns the bytes echoed. */
static size_t echo_through(int port, const char *msg, char *back, size_t len)
{
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	cr_assert_geq(fd, 0);
	struct sockaddr_in addr = {.sin_family = AF_INET,
				   .sin_port = htons((uint16_t)port),
				   .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	cr_assert_eq(connect(fd, (struct sockaddr *)&addr, sizeof(addr)), 0);
	size_t sent = 0, got = 0;
	while (sent < len) { /* in chunks, reading between: no deadlock */
		size_t chunk = len - sent < 4096 ? len - sent : 4096;
		cr_assert_eq(write(fd, msg + sent, chunk), (ssize_t)chunk);
		sent += chunk;
		got += read_for(fd, back + got, sent - got);
	}
	close(fd);
	return got;
}

Test(fallback, the_echo_example_serves_over_epoll_byte_for_byte)
{
	int fds[2];
	cr_assert_eq(pipe(fds), 0);
	fflush(NULL);
	pid_t pid = fork();
	cr_assert_geq(pid, 0);
	if (pid == 0) {
		close(fds[0]);
		dup2(fds[1], STDOUT_FILENO);
		dup2(fds[1], STDERR_FILENO);
		close(fds[1]);
		unsetenv("AFE_BACKEND");
		_exit(echo_server_denied(NULL));
	}
	close(fds[1]);
	char said[512] = {0};
	size_t n = 0;
	const char *line = NULL;
	while (!line && n < sizeof(said) - 1) {
		struct pollfd p = {.fd = fds[0], .events = POLLIN};
		if (poll(&p, 1, 5000) <= 0)
			break;
		ssize_t r = read(fds[0], said + n, sizeof(said) - 1 - n);
		if (r <= 0)
			break;
		n += (size_t)r;
		line = strstr(said, "listening on 127.0.0.1:");
	}
	int port = 0;
	if (line)
		port = atoi(strchr(line, ':') + 1);
	if (!line) {
		kill(pid, SIGKILL);
		int status;
		waitpid(pid, &status, 0);
		close(fds[0]);
		if (WIFEXITED(status) && WEXITSTATUS(status) == NO_SECCOMP)
			cr_skip_test("seccomp filters unavailable: %s", said);
		cr_assert(false, "no port; it said: %s", said);
	}
	cr_assert(strstr(said, NOTICE_EPERM), "it said: %s", said);
	static char msg[100000], back[100000];
	for (size_t i = 0; i < sizeof(msg); i++)
		msg[i] = (char)(i * 7 + i / 251);
	size_t got = echo_through(port, msg, back, sizeof(msg));
	kill(pid, SIGTERM);
	int status;
	cr_assert_eq(waitpid(pid, &status, 0), pid);
	close(fds[0]);
	cr_assert_eq(got, sizeof(msg));
	cr_assert_eq(memcmp(msg, back, sizeof(msg)), 0, "echoed byte for byte");
}


/* ---- without pidfds --------------------------------------------------------
 * pidfd_open and pidfd_send_signal refused (ENOSYS: valgrind 3.19, a kernel
 * before 5.3; EPERM: a sandbox's seccomp filter): child processes and IPC
 * peers are then watched by pid. */

/* Refuses the pidfd calls with err in this process and those it starts.
 * 0, or NO_SECCOMP (said on stderr). */
static int deny_pidfds(int err)
{
	const struct deny rules[2] = {{SYS_pidfd_open, err}, {SYS_pidfd_send_signal, err}};
	int denied = deny_syscalls(rules, 2, false);
	if (denied < 0) {
		fprintf(stderr, "%s", strerror(-denied));
		return NO_SECCOMP;
	}
	return 0;
}

static int child_process_example_without_pidfds(void *arg)
{
	if (deny_pidfds(*(const int *)arg))
		return NO_SECCOMP;
	execl(CHILD_PROCESS, CHILD_PROCESS, (char *)NULL);
	return 127;
}

Test(nopidfd, the_child_process_example_reads_and_reaps_its_child)
{
	const int errs[2] = {ENOSYS, EPERM};
	for (int i = 0; i < 2; i++) {
		struct child c;
		run_child(&c, child_process_example_without_pidfds, (void *)&errs[i]);
		expect_exit_0(&c);
		cr_assert_eq(strcmp(c.out, "child said: hi\nchild exited with status 3\n"), 0,
			     "refused with %s, it said: %s", strerror(errs[i]), c.out);
	}
}

/* Sends signal 0 to the child until that fails, all along its kill, wait
 * and reaping: the last answer must be -ESRCH (reaped), never another
 * error, nor a signal to a process that took its pid. */
static void *probe_child(void *arg)
{
	struct afe_process *p = arg;
	intptr_t err;
	while ((err = afe_process_kill(p, 0)) == 0)
		;
	return (void *)err;
}

/* Spawns `sleep 10`: a wait cut short by a timeout leaves it running (and
 * waitable), a kill ends it, a wait reaps it, a later kill finds it gone;
 * a thread probes it all along. With only pidfd_send_signal refused (arg
 * true), the kills go by pid beside a pidfd. Exits 0 when all did. */
static int kills_a_sleep_without_pidfds(void *arg)
{
	bool only_send_signal = *(const bool *)arg;
	const struct deny send_signal = {SYS_pidfd_send_signal, ENOSYS};
	if (only_send_signal ? deny_syscalls(&send_signal, 1, false) != 0 : deny_pidfds(ENOSYS) != 0)
		return NO_SECCOMP;
	struct afe_runtime *rt;
	if (afe_runtime_create(&rt, NULL) != 0)
		return 2;
	static struct afe_process p;
	char *argv[] = {"sleep", "10", NULL};
	int err = afe_process_spawn(&p, "sleep", argv, NULL, NULL);
	if (err) {
		fprintf(stderr, "spawn: %s\n", strerror(-err));
		return 3;
	}
	struct afe_process_wait w;
	afe_process_wait_init(&w, &p);
	struct afe_timeout limited;
	afe_timeout_init(&limited, &w.base, 50 * 1000000ull);
	intptr_t result = 0;
	if (afe_block_on(rt, &limited, &result) != 0 || result != -ETIMEDOUT)
		return 4;
	if ((p.pidfd >= 0) != only_send_signal)
		return 10;
	pthread_t prober;
	if (pthread_create(&prober, NULL, probe_child, &p) != 0)
		return 11;
	if ((err = afe_process_kill(&p, SIGKILL)) != 0) {
		fprintf(stderr, "kill: %s\n", strerror(-err));
		return 5;
	}
	afe_process_wait_init(&w, &p);
	if (afe_block_on(rt, &w, &result) != 0 || result != 128 + SIGKILL || !p.status.signaled)
		return 6;
	void *probed;
	if (pthread_join(prober, &probed) != 0 || (intptr_t)probed != -ESRCH) {
		fprintf(stderr, "the probe ended with %d\n", (int)(intptr_t)probed);
		return 12;
	}
	if (afe_process_kill(&p, SIGKILL) != -ESRCH)
		return 7;
	afe_process_close(&p);
	if (afe_process_kill(&p, SIGKILL) != -EBADF)
		return 8;
	return afe_runtime_destroy(rt) == 0 ? 0 : 9;
}

Test(nopidfd, a_kill_ends_a_child_and_its_wait_reaps_it)
{
	const bool only_send_signal[2] = {false, true};
	for (int i = 0; i < 2; i++) {
		struct child c;
		run_child(&c, kills_a_sleep_without_pidfds, (void *)&only_send_signal[i]);
		expect_exit_0(&c);
	}
}

/* The example consumer and producer, both without pidfds. */
static int ipc_pair_without_pidfds(void *arg)
{
	(void)arg;
	if (deny_pidfds(ENOSYS))
		return NO_SECCOMP;
	char script[1024];
	snprintf(script, sizeof(script),
		 "%s afe-nopidfd-%d & c=$!; st=1; for i in $(seq 50); do "
		 "%s afe-nopidfd-%d && { st=0; break; }; sleep 0.1; done; "
		 "kill -INT $c; wait $c; exit $st",
		 IPC_CONSUMER, getpid(), IPC_PRODUCER, getpid());
	execl("/bin/sh", "sh", "-c", script, (char *)NULL);
	return 127;
}

Test(nopidfd, an_ipc_call_pair_runs)
{
	struct child c;
	run_child(&c, ipc_pair_without_pidfds, NULL);
	expect_exit_0(&c);
	cr_assert(strstr(c.out, "add(1, 2, 3) = 6"), "it said: %s", c.out);
}

/* A producer of this process connected to the example consumer, which is
 * then killed and left a zombie (not reaped): the producer must find it
 * gone (its calls then fail with -EPIPE). Exits 0 when it did within 5 s. */
static int producer_sees_the_consumer_die_without_pidfds(void *arg)
{
	(void)arg;
	if (deny_pidfds(ENOSYS))
		return NO_SECCOMP;
	char name[64];
	snprintf(name, sizeof(name), "afe-nopidfd-gone-%d", getpid());
	pid_t consumer = fork();
	if (consumer == 0) {
		execl(IPC_CONSUMER, IPC_CONSUMER, name, (char *)NULL);
		_exit(127);
	}
	struct afe_ipc_producer *p = NULL;
	int err = -ECONNREFUSED;
	for (int tries = 0; err == -ECONNREFUSED && tries < 250; tries++) {
		err = afe_ipc_producer_connect(&p, NULL, name, NULL);
		if (err == -ECONNREFUSED)
			usleep(20 * 1000);
	}
	kill(consumer, SIGKILL);
	bool gone = false;
	if (err)
		fprintf(stderr, "connect: %s\n", strerror(-err));
	else
		for (int i = 0; i < 500 && !(gone = afe_ipc_producer_is_gone(p)); i++)
			usleep(10 * 1000);
	if (!err)
		afe_ipc_producer_close(p);
	waitpid(consumer, NULL, 0);
	char path[80];
	snprintf(path, sizeof(path), "/%s", name);
	shm_unlink(path); /* the killed consumer's */
	return err ? 2 : gone ? 0 : 3;
}

Test(nopidfd, a_producer_sees_its_consumer_killed)
{
	struct child c;
	run_child(&c, producer_sees_the_consumer_die_without_pidfds, NULL);
	expect_exit_0(&c);
}

/* A consumer of this process, and a producer in a child (forked before any
 * runtime, it makes its own) that connects, says so, and is then killed
 * and left a zombie: the consumer must drop it (peers_gone). Exits 0 when
 * it did within 5 s. */
static int consumer_sees_a_producer_die_without_pidfds(void *arg)
{
	(void)arg;
	if (deny_pidfds(ENOSYS))
		return NO_SECCOMP;
	char name[64];
	snprintf(name, sizeof(name), "afe-nopidfd-peer-%d", getpid());
	int go[2], connected[2];
	if (pipe(go) || pipe(connected))
		return 2;
	pid_t producer = fork();
	if (producer == 0) {
		char c;
		if (read(go[0], &c, 1) != 1)
			_exit(1);
		struct afe_ipc_producer *p;
		int err = afe_ipc_producer_connect(&p, NULL, name, NULL);
		c = (char)-err;
		if (write(connected[1], &c, 1) != 1)
			_exit(1);
		pause(); /* until killed */
		_exit(1);
	}
	struct afe_runtime *rt;
	if (afe_runtime_create(&rt, NULL) != 0)
		return 3;
	struct afe_ipc_consumer *c;
	int err = afe_ipc_consumer_serve(&c, rt, name, NULL);
	char said = 1;
	if (err == 0 && (write(go[1], &said, 1) != 1 || read(connected[0], &said, 1) != 1))
		said = 1;
	if (err || said) {
		fprintf(stderr, "serve: %s, connect: %s\n", strerror(-err), strerror(said));
		kill(producer, SIGKILL);
		waitpid(producer, NULL, 0);
		if (!err)
			afe_ipc_consumer_close(c);
		return 4;
	}
	kill(producer, SIGKILL);
	struct afe_ipc_stats st = {0};
	for (int i = 0; i < 500 && st.peers_gone == 0; i++) {
		usleep(10 * 1000);
		afe_ipc_consumer_stats(c, &st);
	}
	waitpid(producer, NULL, 0);
	afe_ipc_consumer_close(c);
	if (afe_runtime_destroy(rt) != 0)
		return 5;
	return st.peers_gone == 1 ? 0 : 6;
}

Test(nopidfd, a_consumer_sees_its_producer_killed)
{
	struct child c;
	run_child(&c, consumer_sees_a_producer_die_without_pidfds, NULL);
	expect_exit_0(&c);
}
