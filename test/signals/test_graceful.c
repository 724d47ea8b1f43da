/* SPDX-License-Identifier: MIT */
/*
 * Graceful exit, end to end: programs built with AFE_MAIN run in a child
 * process, are put under load and sent signals; the test checks what they
 * finish, what they refuse, their exit status and how long they took.
 * The programs' paths come from CMake (GRACEFUL_SERVER, ECHO_SERVER,
 * HELLO_MAIN).
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "helpers.h"

enum { GRACE_MS = 30000, CHUNK = 64 * 1024, CHUNKS = 150 };

struct child {
	pid_t pid;
	FILE *out; /* its stdout */
};

static double now_s(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

/* Starts argv with stdout (and stderr too, if both) on a pipe,
 * AFE_GRACE_MS set, and env_extra (a NAME=VALUE or NULL) added to its
 * environment. */
static struct child start_with(char *const argv[], const char *env_extra, bool both)
{
	int fds[2];
	cr_assert_eq(pipe2(fds, O_CLOEXEC), 0);
	fflush(NULL);
	pid_t pid = fork();
	cr_assert_geq(pid, 0);
	if (pid == 0) {
		dup2(fds[1], STDOUT_FILENO);
		if (both)
			dup2(fds[1], STDERR_FILENO);
		char grace[32];
		snprintf(grace, sizeof(grace), "%d", GRACE_MS);
		setenv("AFE_GRACE_MS", grace, 1);
		if (env_extra)
			putenv((char *)env_extra);
		execv(argv[0], argv);
		_exit(127);
	}
	close(fds[1]);
	struct child c = {.pid = pid, .out = fdopen(fds[0], "r")};
	cr_assert_not_null(c.out);
	return c;
}

static struct child start(char *const argv[], const char *env_extra)
{
	return start_with(argv, env_extra, false);
}

/* Reads stdout lines until one starts with prefix; returns it (static). */
static const char *expect_line(struct child *c, const char *prefix)
{
	static char line[256];
	while (fgets(line, sizeof(line), c->out))
		if (strncmp(line, prefix, strlen(prefix)) == 0)
			return line;
	cr_assert(false, "no line starting with \"%s\"", prefix);
	return NULL;
}

/* Waits up to timeout_s for the child; returns its status. */
static int finish(struct child *c, double timeout_s)
{
	double until = now_s() + timeout_s;
	int status;
	for (;;) {
		pid_t r = waitpid(c->pid, &status, WNOHANG);
		if (r == c->pid)
			break;
		if (now_s() > until) {
			kill(c->pid, SIGKILL);
			waitpid(c->pid, &status, 0);
			cr_assert(false, "the child did not exit within %.0f s", timeout_s);
		}
		struct timespec ms = {0, 5000000};
		nanosleep(&ms, NULL);
	}
	fclose(c->out);
	return status;
}

static int connect_to(int port)
{
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	cr_assert_geq(fd, 0);
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (connect(fd, (struct sockaddr *)&a, sizeof(a)) < 0) {
		int err = errno;
		close(fd);
		return -err;
	}
	int one = 1;
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	return fd;
}

static void send_all(int fd, const char *buf, size_t len)
{
	while (len) {
		ssize_t n = send(fd, buf, len, MSG_NOSIGNAL);
		cr_assert_gt(n, 0, "send: %s", strerror(errno));
		buf += n;
		len -= (size_t)n;
	}
}

static void recv_exactly(int fd, char *buf, size_t len)
{
	while (len) {
		ssize_t n = recv(fd, buf, len, 0);
		cr_assert_gt(n, 0, "recv: %s", n < 0 ? strerror(errno) : "peer closed");
		buf += n;
		len -= (size_t)n;
	}
}

enum { CONNS = 8, MSG = 1000 };

/* One request on each connection: all sent, then all answers read. */
static void sends(const int *fds, int round)
{
	char msg[MSG];
	for (int i = 0; i < CONNS; i++) {
		memset(msg, 'A' + (round + i) % 26, sizeof(msg));
		send_all(fds[i], msg, sizeof(msg));
	}
}

static void answers(const int *fds, int round)
{
	char msg[MSG], want[MSG];
	for (int i = 0; i < CONNS; i++) {
		memset(want, 'A' + (round + i) % 26, sizeof(want));
		recv_exactly(fds[i], msg, sizeof(msg));
		cr_assert_eq(memcmp(msg, want, sizeof(msg)), 0, "conn %d round %d", i, round);
	}
}

static void check_file(const char *path)
{
	FILE *f = fopen(path, "rb");
	cr_assert_not_null(f, "the critical file %s exists", path);
	static char buf[CHUNK];
	for (int i = 0; i < CHUNKS; i++) {
		cr_assert_eq(fread(buf, 1, CHUNK, f), CHUNK, "chunk %d is whole", i);
		for (int j = 0; j < CHUNK; j++)
			if (buf[j] != 'a' + i % 26)
				cr_assert(false, "chunk %d byte %d", i, j);
	}
	cr_assert_eq(fgetc(f), EOF, "nothing after the last chunk");
	fclose(f);
	remove(path);
}

static void file_path(char *path, size_t size, const char *name)
{
	snprintf(path, size, "/tmp/afe_graceful_%s_%d", name, (int)getpid());
	remove(path);
}

Test(graceful, sigterm_under_load_finishes_in_flight_work_and_exits_0)
{
	char path[128], chunks[16];
	file_path(path, sizeof(path), "load");
	snprintf(chunks, sizeof(chunks), "%d", CHUNKS);
	char *argv[] = {GRACEFUL_SERVER, path, chunks, NULL};
	struct child c = start(argv, NULL);
	int port = atoi(expect_line(&c, "port ") + 5);

	int fds[CONNS];
	for (int i = 0; i < CONNS; i++) {
		fds[i] = connect_to(port);
		cr_assert_geq(fds[i], 0, "connect: %s", strerror(-fds[i]));
	}
	int round = 0;
	for (; round < 20; round++) { /* load */
		sends(fds, round);
		answers(fds, round);
	}
	sends(fds, round); /* requests in flight when the signal comes */
	cr_assert_eq(kill(c.pid, SIGTERM), 0);
	double signalled = now_s();
	answers(fds, round++);
	expect_line(&c, "shutting down");
	expect_line(&c, "stopped accepting");
	int refused = connect_to(port);
	cr_assert_eq(refused, -ECONNREFUSED, "no more accepts: got %d", refused);
	for (int k = 0; k < 5; k++, round++) { /* open sessions still served */
		sends(fds, round);
		answers(fds, round);
	}
	struct stat st;
	cr_assert_neq(stat(path, &st), 0, "the critical task was still writing");
	for (int i = 0; i < CONNS; i++)
		close(fds[i]);
	int status = finish(&c, GRACE_MS / 1000.0 + 10);
	double took = now_s() - signalled;
	cr_assert(WIFEXITED(status), "status %#x", status);
	cr_assert_eq(WEXITSTATUS(status), 0);
	cr_assert_lt(took, GRACE_MS / 1000.0, "exited within the grace period");
	check_file(path);
}

Test(graceful, second_sigint_while_shutting_down_exits_130)
{
	char path[128];
	file_path(path, sizeof(path), "twice");
	char *argv[] = {GRACEFUL_SERVER, path, "100000", NULL}; /* never done */
	struct child c = start(argv, NULL);
	expect_line(&c, "port ");
	cr_assert_eq(kill(c.pid, SIGINT), 0);
	expect_line(&c, "stopped accepting");
	/* Now in the grace period, waiting for the critical task. */
	cr_assert_eq(kill(c.pid, SIGINT), 0);
	int status = finish(&c, 20);
	cr_assert(WIFEXITED(status), "status %#x", status);
	cr_assert_eq(WEXITSTATUS(status), 130);
	char tmp[160];
	snprintf(tmp, sizeof(tmp), "%s.tmp", path);
	remove(tmp);
}

Test(graceful, tasks_left_after_the_grace_period_are_counted)
{
	char path[128];
	file_path(path, sizeof(path), "left");
	char *argv[] = {GRACEFUL_SERVER, path, "100000", NULL}; /* never done */
	struct child c = start_with(argv, "AFE_GRACE_MS=300", true);
	expect_line(&c, "port ");
	double signalled = now_s();
	kill(c.pid, SIGTERM);
	expect_line(&c, "stopped accepting");
	const char *line = expect_line(&c, "afe: ");
	cr_assert(strstr(line, "1 task(s) still running at exit"), "%s", line);
	int status = finish(&c, 20);
	double took = now_s() - signalled;
	cr_assert(WIFEXITED(status), "status %#x", status);
	cr_assert_eq(WEXITSTATUS(status), 0, "the root's status");
	cr_assert_geq(took, 0.3, "it waited the grace period");
	char tmp[160];
	snprintf(tmp, sizeof(tmp), "%s.tmp", path);
	remove(tmp);
}

Test(graceful, two_sigterms_at_once_end_it_one_way_or_the_other)
{
	/* Sent back to back, they are merged into one delivery (graceful,
	 * 0) or read apart (the second exits at once, 143): both defined;
	 * nothing else is. */
	char path[128];
	file_path(path, sizeof(path), "quick");
	char *argv[] = {GRACEFUL_SERVER, path, "20", NULL};
	struct child c = start(argv, NULL);
	expect_line(&c, "port ");
	kill(c.pid, SIGTERM);
	kill(c.pid, SIGTERM);
	int status = finish(&c, 20);
	cr_assert(WIFEXITED(status), "status %#x", status);
	cr_assert(WEXITSTATUS(status) == 0 || WEXITSTATUS(status) == 143, "exit %d",
		  WEXITSTATUS(status));
	char tmp[160];
	snprintf(tmp, sizeof(tmp), "%s.tmp", path);
	remove(tmp);
	remove(path);
}

Test(graceful, signal_during_start_up_is_not_lost)
{
	char path[128];
	file_path(path, sizeof(path), "early");
	char *argv[] = {GRACEFUL_SERVER, path, "5", NULL};
	struct child c = start(argv, "GRACEFUL_SELF_SIGNAL=1");
	expect_line(&c, "port ");
	expect_line(&c, "stopped accepting");
	int status = finish(&c, 20);
	cr_assert(WIFEXITED(status), "status %#x", status);
	cr_assert_eq(WEXITSTATUS(status), 0);
	FILE *f = fopen(path, "rb");
	cr_assert_not_null(f, "the critical task finished its file");
	fclose(f);
	remove(path);
}

Test(graceful, a_signal_during_init_is_held_and_fires_the_token)
{
	char path[128];
	file_path(path, sizeof(path), "init");
	char *argv[] = {GRACEFUL_SERVER, path, "5", NULL};
	struct child c = start(argv, "GRACEFUL_SIGNAL_IN_INIT=1");
	expect_line(&c, "stopped accepting");
	int status = finish(&c, 20);
	cr_assert(WIFEXITED(status), "status %#x: AFE_MAIN blocks before init", status);
	cr_assert_eq(WEXITSTATUS(status), 0);
	remove(path);
}

Test(graceful, a_thread_started_in_init_does_not_take_sigterm)
{
	char path[128];
	file_path(path, sizeof(path), "thread");
	char *argv[] = {GRACEFUL_SERVER, path, "5", NULL};
	struct child c = start(argv, "GRACEFUL_THREAD_IN_INIT=1");
	expect_line(&c, "port ");
	kill(c.pid, SIGTERM);
	expect_line(&c, "stopped accepting");
	int status = finish(&c, 20);
	cr_assert(WIFEXITED(status), "status %#x: the thread took SIGTERM", status);
	cr_assert_eq(WEXITSTATUS(status), 0);
	remove(path);
}

Test(graceful, an_init_failing_with_an_errno_exits_1_and_says_why)
{
	char path[128];
	file_path(path, sizeof(path), "fails");
	char *argv[] = {GRACEFUL_SERVER, path, "5", NULL};
	struct child c = start_with(argv, "GRACEFUL_INIT_FAILS=1", true);
	expect_line(&c, "afe: init failed: Cannot allocate memory");
	int status = finish(&c, 20);
	cr_assert(WIFEXITED(status), "status %#x", status);
	cr_assert_eq(WEXITSTATUS(status), 1, "not 244 (-ENOMEM as a byte)");
}

Test(graceful, echo_server_example_stops_on_sigterm_and_sigint)
{
	int signals[] = {SIGTERM, SIGINT};
	for (int i = 0; i < 2; i++) {
		char *argv[] = {ECHO_SERVER, "0", NULL};
		struct child c = start(argv, NULL);
		const char *line = expect_line(&c, "echo_server: listening on 127.0.0.1:");
		int port = atoi(strrchr(line, ':') + 1);
		int fd = connect_to(port);
		cr_assert_geq(fd, 0);
		send_all(fd, "ping", 4);
		char buf[4];
		recv_exactly(fd, buf, 4);
		close(fd);
		kill(c.pid, signals[i]);
		int status = finish(&c, 20);
		cr_assert(WIFEXITED(status), "status %#x", status);
		cr_assert_eq(WEXITSTATUS(status), 0);
	}
}

Test(graceful, readme_demo_stops_cleanly_on_ctrl_c)
{
	char *argv[] = {HELLO_MAIN, "1000000", NULL};
	struct child c = start(argv, NULL);
	expect_line(&c, "hello_main: started");
	kill(c.pid, SIGINT);
	const char *line = expect_line(&c, "hello_main: ");
	cr_assert(strstr(line, "interrupted") || strstr(line, "joined"), "%s", line);
	int status = finish(&c, 60);
	cr_assert(WIFEXITED(status), "status %#x", status);
	cr_assert(WEXITSTATUS(status) == 130 || WEXITSTATUS(status) == 0, "exit %d",
		  WEXITSTATUS(status));
}
