/* SPDX-License-Identifier: MIT */
/*
 * echo_client: the common load client of the `echo` workload
 * (shared/BENCH.md), the same for every server it measures. Plain C and
 * epoll on one thread, no AFE: `conns` connections each send a `size`-byte
 * message, wait for all of it to come back, check it, and go again, `n`
 * round trips in all. Prints the workload's JSON line; with --server_pid
 * also the server's CPU time over the measured part (from /proc/PID/stat)
 * and its CPU microseconds per message.
 *
 *   echo_client [--conns=64] [--size=64] [--n=1000000] [--port=7000]
 *               [--impl=NAME] [--server_pid=PID] [--server_threads=N]
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

struct conn {
	int fd;
	size_t sent, got;
	uint64_t start_ns, round;
	unsigned char *out, *in;
};

static uint64_t now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static void die(const char *fmt, const char *detail)
{
	fprintf(stderr, "echo_client: ");
	fprintf(stderr, fmt, detail);
	fputc('\n', stderr);
	exit(1);
}

/* The value of arg when it is --name=value, else NULL. */
static const char *value_of(const char *arg, const char *name)
{
	size_t len = strlen(name);
	if (strncmp(arg, "--", 2) || strncmp(arg + 2, name, len) || arg[2 + len] != '=')
		return NULL;
	return arg + 3 + len;
}

/* --name=value flags; the value is a number, except impl. */
static const char *flag(int argc, char **argv, const char *name)
{
	for (int i = 1; i < argc; i++)
		if (value_of(argv[i], name))
			return value_of(argv[i], name);
	return NULL;
}

static long number(int argc, char **argv, const char *name, long fallback)
{
	const char *v = flag(argc, argv, name);
	if (!v)
		return fallback;
	char *end;
	long n = strtol(v, &end, 10);
	if (!*v || *end || n < 0)
		die("bad number for --%s", name);
	return n;
}

static void check_flags(int argc, char **argv)
{
	static const char *const known[] = {"conns", "size", "n", "port", "impl",
					    "server_pid", "server_threads", NULL};
	for (int i = 1; i < argc; i++) {
		bool ok = false;
		for (const char *const *k = known; *k && !ok; k++)
			ok = value_of(argv[i], *k) != NULL;
		if (!ok) {
			fprintf(stderr, "echo_client: unknown flag %s\n", argv[i]);
			exit(2);
		}
	}
}

/* utime + stime of a process, in seconds. */
static double cpu_seconds(long pid)
{
	char path[64], buf[1024];
	snprintf(path, sizeof(path), "/proc/%ld/stat", pid);
	FILE *f = fopen(path, "r");
	if (!f || !fgets(buf, sizeof(buf), f))
		die("cannot read %s", path);
	fclose(f);
	/* Fields after the ")" closing the command name: state is field 3;
	 * utime and stime are fields 14 and 15. */
	char *p = strrchr(buf, ')');
	unsigned long long utime = 0, stime = 0;
	if (!p || sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu",
			 &utime, &stime) != 2)
		die("cannot parse %s", path);
	return (double)(utime + stime) / (double)sysconf(_SC_CLK_TCK);
}

static int connect_with_retry(int port)
{
	struct sockaddr_in a;
	memset(&a, 0, sizeof(a));
	a.sin_family = AF_INET;
	a.sin_port = htons((uint16_t)port);
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	for (int tries = 0; tries < 500; tries++) { /* 5 s for the server to start */
		int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
		if (fd < 0)
			die("socket: %s", strerror(errno));
		if (connect(fd, (struct sockaddr *)&a, sizeof(a)) == 0) {
			int one = 1;
			setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
			fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
			return fd;
		}
		close(fd);
		usleep(10000);
	}
	die("cannot connect: %s", strerror(errno));
	return -1;
}

static void fill(struct conn *c, size_t size, size_t index)
{
	for (size_t i = 0; i < size; i++)
		c->out[i] = (unsigned char)(i + index * 31 + c->round * 7);
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
	return (x > y) - (x < y);
}

int main(int argc, char **argv)
{
	check_flags(argc, argv);
	long conns = number(argc, argv, "conns", 64), size = number(argc, argv, "size", 64);
	long n = number(argc, argv, "n", 1000000), port = number(argc, argv, "port", 7000);
	long server_pid = number(argc, argv, "server_pid", 0);
	long server_threads = number(argc, argv, "server_threads", 0);
	const char *impl = flag(argc, argv, "impl") ? flag(argc, argv, "impl") : "unknown";
	if (conns < 1 || size < 1 || n < conns || port > 65535)
		die("%s", "need conns >= 1, size >= 1, n >= conns, a port");

	uint64_t *samples = malloc((size_t)n * sizeof(*samples));
	struct conn *cs = calloc((size_t)conns, sizeof(*cs));
	int ep = epoll_create1(EPOLL_CLOEXEC);
	if (!samples || !cs || ep < 0)
		die("%s", "out of memory");
	for (long i = 0; i < conns; i++) {
		cs[i].fd = connect_with_retry((int)port);
		cs[i].out = malloc((size_t)size);
		cs[i].in = malloc((size_t)size);
		if (!cs[i].out || !cs[i].in)
			die("%s", "out of memory");
		struct epoll_event ev = {.events = EPOLLIN, .data.u64 = (uint64_t)i};
		epoll_ctl(ep, EPOLL_CTL_ADD, cs[i].fd, &ev);
	}

	double cpu_before = server_pid ? cpu_seconds(server_pid) : 0;
	uint64_t start = now_ns();
	long started = 0, done = 0;
	/* Start one round trip per connection; each finished round starts the
	 * next while round trips remain to be started. */
	for (long i = 0; i < conns && started < n; i++, started++) {
		struct conn *c = &cs[i];
		fill(c, (size_t)size, (size_t)i);
		c->start_ns = now_ns();
		ssize_t w = send(c->fd, c->out, (size_t)size, MSG_NOSIGNAL);
		if (w < 0 && errno != EAGAIN)
			die("send: %s", strerror(errno));
		c->sent = w > 0 ? (size_t)w : 0;
	}
	struct epoll_event events[256];
	while (done < n) {
		int k = epoll_wait(ep, events, 256, 10000);
		if (k == 0)
			die("%s", "no echo for 10 s");
		if (k < 0 && errno != EINTR)
			die("epoll_wait: %s", strerror(errno));
		for (int e = 0; e < k; e++) {
			size_t i = (size_t)events[e].data.u64;
			struct conn *c = &cs[i];
			if (c->sent < (size_t)size) { /* finish a partial send first */
				ssize_t w = send(c->fd, c->out + c->sent, (size_t)size - c->sent,
						 MSG_NOSIGNAL);
				if (w > 0)
					c->sent += (size_t)w;
				else if (errno != EAGAIN)
					die("send: %s", strerror(errno));
			}
			ssize_t r = recv(c->fd, c->in + c->got, (size_t)size - c->got, 0);
			if (r == 0)
				die("%s", "the server closed a connection");
			if (r < 0) {
				if (errno == EAGAIN)
					continue;
				die("recv: %s", strerror(errno));
			}
			c->got += (size_t)r;
			if (c->got < (size_t)size)
				continue;
			if (memcmp(c->in, c->out, (size_t)size) != 0)
				die("%s", "an echo differs from what was sent");
			samples[done++] = now_ns() - c->start_ns;
			c->got = 0;
			c->round++;
			if (started < n) {
				started++;
				fill(c, (size_t)size, i);
				c->start_ns = now_ns();
				ssize_t w = send(c->fd, c->out, (size_t)size, MSG_NOSIGNAL);
				if (w < 0 && errno != EAGAIN)
					die("send: %s", strerror(errno));
				c->sent = w > 0 ? (size_t)w : 0;
			}
		}
	}
	double seconds = (double)(now_ns() - start) / 1e9;
	double server_cpu = server_pid ? cpu_seconds(server_pid) - cpu_before : 0;

	qsort(samples, (size_t)n, sizeof(*samples), cmp_u64);
	struct rusage ru;
	getrusage(RUSAGE_SELF, &ru);
	printf("{\"workload\":\"echo\",\"impl\":\"%s\",\"threads\":%ld,\"n\":%ld,\"seconds\":%.6f,"
	       "\"ops_per_s\":%.0f,\"p50_us\":%.3f,\"p99_us\":%.3f,\"max_us\":%.3f",
	       impl, server_threads, n, seconds, (double)n / seconds,
	       (double)samples[n / 2] / 1e3, (double)samples[(size_t)((double)n * 0.99)] / 1e3,
	       (double)samples[n - 1] / 1e3);
	if (server_pid)
		printf(",\"server_cpu_s\":%.3f,\"server_cpu_us_per_msg\":%.3f", server_cpu,
		       server_cpu * 1e6 / (double)n);
	printf(",\"peak_rss_kb\":%ld}\n", ru.ru_maxrss);
	for (long i = 0; i < conns; i++)
		close(cs[i].fd);
	return 0;
}
