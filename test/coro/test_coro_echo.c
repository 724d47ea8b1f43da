/* SPDX-License-Identifier: MIT */
/* The coroutine echo example (test/examples/coro_echo.c), run as a user
 * would: it serves a client byte for byte and stops on SIGTERM with 0. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "helpers.h"

/* Starts the example on a free port; returns the port, its pid in *pid. */
static int start_example(pid_t *pid)
{
	int out[2];
	cr_assert_eq(pipe(out), 0);
	*pid = fork();
	cr_assert_neq(*pid, -1);
	if (*pid == 0) {
		dup2(out[1], STDOUT_FILENO);
		execl(CORO_ECHO, CORO_ECHO, "0", (char *)NULL);
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
	int port = start_example(&pid);
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
