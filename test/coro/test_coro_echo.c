/* SPDX-License-Identifier: MIT */
/* The coroutine echo examples (test/examples/coro_echo.c, udp_echo.c), run
 * as a user would: they serve a client byte for byte and stop on SIGTERM
 * with 0. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <unistd.h>

#include "helpers.h"

/* Starts the example program on a free port; returns the port, its pid
 * in *pid. */
static int start_example(const char *program, pid_t *pid)
{
	int out[2];
	cr_assert_eq(pipe(out), 0);
	*pid = fork();
	cr_assert_neq(*pid, -1);
	if (*pid == 0) {
		dup2(out[1], STDOUT_FILENO);
		execl(program, program, "0", (char *)NULL);
		_exit(127);
	}
	close(out[1]);
	FILE *f = fdopen(out[0], "r");
	char line[128] = {0};
	cr_assert_not_null(fgets(line, sizeof(line), f));
	fclose(f);
	const char *colon = strrchr(line, ':');
	cr_assert_not_null(colon, "said: %s", line);
	return atoi(colon + 1);
}

Test(coro_echo, serves_byte_for_byte_and_stops_on_sigterm)
{
	pid_t pid;
	int port = start_example(CORO_ECHO, &pid);
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	cr_assert_eq(connect(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	static char sent[200000], got[sizeof(sent)];
	for (size_t i = 0; i < sizeof(sent); i++)
		sent[i] = (char)(i * 131 + i / 7);
	size_t back = 0;
	for (size_t at = 0; at < sizeof(sent);) { /* interleaved: no deadlock on full buffers */
		ssize_t n = send(fd, sent + at, sizeof(sent) - at > 8192 ? 8192 : sizeof(sent) - at, 0);
		cr_assert_gt(n, 0);
		at += (size_t)n;
		while (back < at) {
			ssize_t r = recv(fd, got + back, sizeof(got) - back, 0);
			cr_assert_gt(r, 0);
			back += (size_t)r;
		}
	}
	cr_assert_eq(memcmp(sent, got, sizeof(sent)), 0);
	close(fd);
	kill(pid, SIGTERM);
	int status;
	cr_assert_eq(waitpid(pid, &status, 0), pid);
	cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0, "status %#x", status);
}

Test(coro_echo, the_udp_echo_answers_each_datagram_and_stops_on_sigterm)
{
	pid_t pid;
	int port = start_example(UDP_ECHO, &pid);
	int fd = socket(AF_INET, SOCK_DGRAM, 0);
	struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	cr_assert_eq(connect(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	struct timeval second = {.tv_sec = 5};
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &second, sizeof(second));
	for (int i = 0; i < 100; i++) {
		char out[64], in[128];
		int len = snprintf(out, sizeof(out), "datagram %d", i);
		cr_assert_eq(send(fd, out, (size_t)len, 0), len);
		cr_assert_eq(recv(fd, in, sizeof(in), 0), len, "datagram %d", i);
		cr_assert_eq(memcmp(in, out, (size_t)len), 0);
	}
	close(fd);
	kill(pid, SIGTERM);
	int status;
	cr_assert_eq(waitpid(pid, &status, 0), pid);
	cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0, "status %#x", status);
}
