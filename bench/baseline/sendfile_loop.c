/* SPDX-License-Identifier: MIT */
/*
 * sendfile_loop: the `sendfile` workload of afe_bench as sendfile(2) in a
 * plain C loop, with no executor: a `size_mb` MiB file served `n` times
 * over one loopback TCP connection to a thread that reads it all and
 * counts the bytes. Timed from the connect to the client's end of stream.
 *
 *   sendfile_loop [--size_mb=64] [--n=1] [--path=/tmp/afe_sendfile.dat]
 *
 * The file is afe_bench's (rewritten when missing or of another size) and
 * is read once before timing, so both serve it from the page cache.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/sendfile.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "../tool.h"

#define CHUNK (1 << 20)

static void fail(const char *what)
{
	fprintf(stderr, "sendfile_loop: %s: %s\n", what, strerror(errno));
	exit(1);
}

/* --name=N from argv, or fallback; exits on anything else. */
static long flag(int argc, char **argv, const char *name, long fallback)
{
	size_t len = strlen(name);
	for (int i = 1; i < argc; i++) {
		if (strncmp(argv[i], "--", 2) || strncmp(argv[i] + 2, name, len) ||
		    argv[i][2 + len] != '=')
			continue;
		char *end;
		long v = strtol(argv[i] + 3 + len, &end, 10);
		if (*end || v < 1) {
			fprintf(stderr, "sendfile_loop: --%s wants a positive number\n", name);
			exit(2);
		}
		return v;
	}
	return fallback;
}

static const char *path_flag(int argc, char **argv)
{
	for (int i = 1; i < argc; i++)
		if (!strncmp(argv[i], "--path=", 7))
			return argv[i] + 7;
	return "/tmp/afe_sendfile.dat";
}

/* The file afe_bench makes: byte i of each MiB is i * 7 % 251. */
static int open_file(const char *path, uint64_t size)
{
	int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
	struct stat st;
	if (fd < 0 || fstat(fd, &st) < 0)
		fail(path);
	char *chunk = malloc(CHUNK);
	if (!chunk)
		fail("malloc");
	if ((uint64_t)st.st_size != size) {
		for (size_t i = 0; i < CHUNK; i++)
			chunk[i] = (char)(i * 7 % 251);
		if (ftruncate(fd, 0) < 0)
			fail("ftruncate");
		for (uint64_t at = 0; at < size; at += CHUNK)
			if (pwrite(fd, chunk, CHUNK, (off_t)at) != CHUNK)
				fail("pwrite");
	}
	for (off_t at = 0; pread(fd, chunk, CHUNK, at) > 0; at += CHUNK)
		; /* into the page cache */
	free(chunk);
	return fd;
}

struct client {
	int port;
	uint64_t got;
};

static void *client_main(void *arg)
{
	struct client *c = arg;
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	struct sockaddr_in addr = {.sin_family = AF_INET, .sin_port = htons((uint16_t)c->port)};
	addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (fd < 0 || connect(fd, (struct sockaddr *)&addr, sizeof(addr)) < 0)
		fail("connect");
	char *buf = malloc(256 * 1024);
	ssize_t n;
	while (buf && (n = read(fd, buf, 256 * 1024)) > 0)
		c->got += (uint64_t)n;
	free(buf);
	close(fd);
	return NULL;
}

static int listen_loopback(void)
{
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	struct sockaddr_in addr = {.sin_family = AF_INET};
	addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	socklen_t len = sizeof(addr);
	if (fd < 0 || bind(fd, (struct sockaddr *)&addr, sizeof(addr)) < 0 || listen(fd, 8) < 0 ||
	    getsockname(fd, (struct sockaddr *)&addr, &len) < 0)
		fail("listen");
	return fd;
}

/* Sends the whole file once, in as many sendfile(2) calls as it takes. */
static void send_once(int conn, int file, uint64_t size)
{
	off_t offset = 0;
	while ((uint64_t)offset < size) {
		ssize_t n = sendfile(conn, file, &offset, size - (uint64_t)offset);
		if (n <= 0)
			fail("sendfile");
	}
}

int main(int argc, char **argv)
{
	long size_mb = flag(argc, argv, "size_mb", 64), n = flag(argc, argv, "n", 1);
	uint64_t size = (uint64_t)size_mb << 20;
	int file = open_file(path_flag(argc, argv), size);
	int listen_fd = listen_loopback();
	struct sockaddr_in addr;
	socklen_t len = sizeof(addr);
	getsockname(listen_fd, (struct sockaddr *)&addr, &len);
	struct client client = {.port = ntohs(addr.sin_port)};
	pthread_t thread;
	uint64_t start = tool_now_ns();
	if (pthread_create(&thread, NULL, client_main, &client) != 0)
		fail("pthread_create");
	int conn = accept4(listen_fd, NULL, NULL, SOCK_CLOEXEC);
	if (conn < 0)
		fail("accept");
	for (long i = 0; i < n; i++)
		send_once(conn, file, size);
	close(conn);
	pthread_join(thread, NULL);
	double seconds = (double)(tool_now_ns() - start) / 1e9;
	if (client.got != size * (uint64_t)n) {
		fprintf(stderr, "sendfile_loop: the client got %llu of %llu bytes\n",
			(unsigned long long)client.got, (unsigned long long)(size * (uint64_t)n));
		return 1;
	}
	struct rusage ru;
	getrusage(RUSAGE_SELF, &ru);
	printf("{\"workload\":\"sendfile\",\"impl\":\"sendfile_loop\",\"threads\":1,\"n\":%ld,"
	       "\"seconds\":%.6f,\"ops_per_s\":%.0f,\"size_mb\":%ld,\"mib_per_s\":%.1f,"
	       "\"peak_rss_kb\":%ld}\n",
	       n, seconds, (double)n / seconds, size_mb, (double)(size_mb * n) / seconds,
	       ru.ru_maxrss);
	close(listen_fd);
	close(file);
	return 0;
}
