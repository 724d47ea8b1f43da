/* SPDX-License-Identifier: MIT */
/*
 * echo_client: the common load client of the `echo` workload
 * (bench/README.md), the same for every server it measures. Plain C and
 * epoll, no AFE. `conns` connections each send a `size`-byte message, wait
 * until all of it has come back, check it byte for byte, and go again, `n`
 * measured round trips in all (after `warmup` unmeasured ones). Prints the
 * workload's JSON line; with --server_pid also the server's CPU time over
 * the measured part (utime+stime from /proc/PID/stat) and its CPU
 * microseconds per message.
 *
 *   echo_client [--conns=64] [--size=64] [--n=1000000] [--port=7000]
 *               [--host=127.0.0.1] [--impl=unknown] [--server_pid=0]
 *               [--server_threads=0] [--warmup=0] [--threads=1]
 *
 * --threads=N spreads the connections over N client threads, each with its
 * own epoll (one thread by default). Exits 1 with a message on stderr on a
 * connect failure (after 5 s of retries), a lost connection or a wrong
 * echo; 2 on a bad flag.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
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

#include "flags.h"
#include "tool.h"
#include "proc_cpu.h"

#define CONNECT_PATIENCE_NS (5 * 1000000000ull)
#define ECHO_PATIENCE_MS 10000

#define die(...) tool_die("echo_client", __VA_ARGS__)

/* ---- flags ---- */

static const char *const flag_names[] = {"conns",  "size",	"n",		  "port",
					 "host",   "impl",	"server_pid",	  "server_threads",
					 "warmup", "threads", NULL};

/* ---- the server's CPU time ---- */

/* utime + stime of the server (all its threads), in clock ticks. */
static unsigned long long cpu_ticks(long pid)
{
	unsigned long long ticks;
	int err = proc_cpu_ticks(pid, &ticks);
	if (err < 0)
		die("cannot read /proc/%ld/stat: %s (is --server_pid right?)", pid, strerror(-err));
	return ticks;
}

/* ---- connections ---- */

struct conn {
	int fd;
	bool busy;	     /* a round trip is under way */
	bool want_out;	     /* EPOLLOUT is armed */
	size_t sent, got;    /* bytes of this round trip */
	uint64_t round;	     /* round trips begun on this connection */
	uint64_t start_ns;   /* when this round trip's first byte went out */
	unsigned char *out;  /* the message */
	unsigned char *in;   /* its echo */
};

static int connect_with_retry(const struct addrinfo *addrs)
{
	uint64_t deadline = tool_now_ns() + CONNECT_PATIENCE_NS;
	int err = 0;
	for (;;) {
		for (const struct addrinfo *a = addrs; a; a = a->ai_next) {
			int fd = socket(a->ai_family, a->ai_socktype | SOCK_CLOEXEC, a->ai_protocol);
			if (fd < 0)
				die("socket: %s", strerror(errno));
			if (connect(fd, a->ai_addr, a->ai_addrlen) == 0) {
				int one = 1;
				if (setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one)) < 0)
					die("setsockopt(TCP_NODELAY): %s", strerror(errno));
				int fl = fcntl(fd, F_GETFL);
				if (fl < 0 || fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0)
					die("fcntl(O_NONBLOCK): %s", strerror(errno));
				return fd;
			}
			err = errno;
			close(fd);
		}
		if (tool_now_ns() >= deadline)
			die("cannot connect for 5 s: %s", strerror(err));
		usleep(10000); /* the server may still be starting */
	}
}

/* ---- one client thread: its connections and its share of the work ---- */

struct worker {
	pthread_t thread;
	int index;
	int ep;
	struct conn *conns;
	long nconns;
	long size;
	long warmup;		/* unmeasured round trips of this thread */
	long n;			/* measured round trips of this thread */
	uint64_t *samples;	/* its n latencies, in ns */
	pthread_barrier_t *barrier;
};

static void set_events(struct worker *w, struct conn *c, bool want_out)
{
	if (c->want_out == want_out)
		return;
	struct epoll_event ev = {.events = EPOLLIN | (want_out ? EPOLLOUT : 0u),
				 .data.ptr = c};
	if (epoll_ctl(w->ep, EPOLL_CTL_MOD, c->fd, &ev) < 0)
		die("epoll_ctl: %s", strerror(errno));
	c->want_out = want_out;
}

/* Sends what is left of the message; arms EPOLLOUT while some stays. */
static void push(struct worker *w, struct conn *c)
{
	size_t size = (size_t)w->size;
	while (c->sent < size) {
		ssize_t k = send(c->fd, c->out + c->sent, size - c->sent, MSG_NOSIGNAL);
		if (k > 0) {
			c->sent += (size_t)k;
		} else if (k < 0 && errno == EINTR) {
			continue;
		} else if (k < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
			break;
		} else {
			die("connection lost: send: %s", k < 0 ? strerror(errno) : "sent nothing");
		}
	}
	set_events(w, c, c->sent < size);
}

/* Begins a round trip: a fresh message (its first bytes number the round,
 * so a stale or misrouted echo does not match), then sends. */
static void begin(struct worker *w, struct conn *c)
{
	uint64_t tag = c->round++ ^ ((uint64_t)(uintptr_t)c << 20);
	size_t k = (size_t)w->size < sizeof(tag) ? (size_t)w->size : sizeof(tag);
	memcpy(c->out, &tag, k);
	c->sent = c->got = 0;
	c->busy = true;
	c->start_ns = tool_now_ns();
	push(w, c);
}

/* Reads what has come back; true when the whole echo is in and checked. */
static bool pull(struct worker *w, struct conn *c)
{
	size_t size = (size_t)w->size;
	for (;;) {
		if (!c->busy) {
			/* Nothing is owed: anything readable is an extra byte or
			 * the server hanging up. */
			unsigned char extra;
			ssize_t k = recv(c->fd, &extra, 1, 0);
			if (k > 0)
				die("the server sent bytes nobody asked for");
			if (k == 0)
				die("connection lost: the server closed it");
			if (errno == EINTR)
				continue;
			if (errno == EAGAIN || errno == EWOULDBLOCK)
				return false;
			die("connection lost: recv: %s", strerror(errno));
		}
		ssize_t k = recv(c->fd, c->in + c->got, size - c->got, 0);
		if (k == 0)
			die("connection lost: the server closed it mid-echo (%zu of %zu bytes back)",
			    c->got, size);
		if (k < 0) {
			if (errno == EINTR)
				continue;
			if (errno == EAGAIN || errno == EWOULDBLOCK)
				return false;
			die("connection lost: recv: %s", strerror(errno));
		}
		c->got += (size_t)k;
		if (c->got > c->sent)
			die("the server echoed bytes before they were sent");
		if (c->got < size)
			continue;
		if (memcmp(c->in, c->out, size) != 0) {
			size_t at = 0;
			while (c->in[at] == c->out[at])
				at++;
			die("an echo differs from what was sent (at byte %zu of %zu)", at, size);
		}
		c->busy = false;
		return true;
	}
}

/* Runs `total` round trips on this thread's connections; records their
 * latencies in samples when it is not NULL. */
static void run_phase(struct worker *w, long total, uint64_t *samples)
{
	long begun = 0, done = 0;
	for (long i = 0; i < w->nconns && begun < total; i++, begun++)
		begin(w, &w->conns[i]);
	struct epoll_event events[256];
	while (done < total) {
		int k = epoll_wait(w->ep, events, 256, ECHO_PATIENCE_MS);
		if (k < 0) {
			if (errno == EINTR)
				continue;
			die("epoll_wait: %s", strerror(errno));
		}
		if (k == 0)
			die("no echo for %d s (%ld of %ld round trips done on thread %d)",
			    ECHO_PATIENCE_MS / 1000, done, total, w->index);
		for (int e = 0; e < k; e++) {
			struct conn *c = events[e].data.ptr;
			if ((events[e].events & EPOLLOUT) && c->busy)
				push(w, c);
			if (!(events[e].events & (EPOLLIN | EPOLLERR | EPOLLHUP)))
				continue;
			if (!pull(w, c))
				continue;
			uint64_t t = tool_now_ns() - c->start_ns;
			if (samples)
				samples[done] = t;
			done++;
			if (begun < total) {
				begun++;
				begin(w, c);
			}
		}
	}
}

static void *worker_main(void *arg)
{
	struct worker *w = arg;
	if (w->warmup)
		run_phase(w, w->warmup, NULL);
	pthread_barrier_wait(w->barrier); /* all warmed up */
	pthread_barrier_wait(w->barrier); /* the clock has started */
	run_phase(w, w->n, w->samples);
	return NULL;
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
	return (x > y) - (x < y);
}

int main(int argc, char **argv)
{
	flags_check("echo_client", flag_names, argc, argv);
	long conns = flags_number("echo_client", argc, argv, "conns", 64);
	long size = flags_number("echo_client", argc, argv, "size", 64);
	long n = flags_number("echo_client", argc, argv, "n", 1000000);
	long port = flags_number("echo_client", argc, argv, "port", 7000);
	long server_pid = flags_number("echo_client", argc, argv, "server_pid", 0);
	long server_threads = flags_number("echo_client", argc, argv, "server_threads", 0);
	long warmup = flags_number("echo_client", argc, argv, "warmup", 0);
	long threads = flags_number("echo_client", argc, argv, "threads", 1);
	const char *host = flags_string(argc, argv, "host");
	const char *impl = flags_string(argc, argv, "impl");
	if (!host)
		host = "127.0.0.1";
	if (!impl)
		impl = "unknown";
	if (conns < 1 || size < 1 || n < 1 || port < 1 || port > 65535 || threads < 1 ||
	    threads > conns) {
		fprintf(stderr, "echo_client: want conns >= 1, size >= 1, n >= 1, 1 <= port <= "
				"65535, 1 <= threads <= conns\n");
		exit(2);
	}
	for (const char *p = impl; *p; p++)
		if (*p == '"' || *p == '\\' || (unsigned char)*p < 0x20) {
			fprintf(stderr, "echo_client: --impl must be JSON-safe\n");
			exit(2);
		}

	struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM}, *addrs;
	char port_text[16];
	snprintf(port_text, sizeof(port_text), "%ld", port);
	int gai = getaddrinfo(host, port_text, &hints, &addrs);
	if (gai != 0)
		die("cannot resolve %s: %s", host, gai_strerror(gai));

	uint64_t *samples = malloc((size_t)n * sizeof(*samples));
	struct conn *cs = calloc((size_t)conns, sizeof(*cs));
	struct worker *ws = calloc((size_t)threads, sizeof(*ws));
	if (!samples || !cs || !ws)
		die("out of memory");
	for (long i = 0; i < conns; i++) {
		struct conn *c = &cs[i];
		c->fd = connect_with_retry(addrs);
		c->out = malloc((size_t)size);
		c->in = malloc((size_t)size);
		if (!c->out || !c->in)
			die("out of memory");
		for (long b = 0; b < size; b++) /* a pattern of its own per connection */
			c->out[b] = (unsigned char)((uint64_t)b * 131u + (uint64_t)i * 7u + 1u);
	}
	freeaddrinfo(addrs);

	pthread_barrier_t barrier;
	if (pthread_barrier_init(&barrier, NULL, (unsigned)threads + 1) != 0)
		die("pthread_barrier_init failed");
	long conn_at = 0, sample_at = 0;
	for (long t = 0; t < threads; t++) {
		struct worker *w = &ws[t];
		w->index = (int)t;
		w->size = size;
		w->barrier = &barrier;
		w->nconns = conns / threads + (t < conns % threads);
		w->conns = &cs[conn_at];
		conn_at += w->nconns;
		w->n = n / threads + (t < n % threads);
		w->warmup = warmup / threads + (t < warmup % threads);
		w->samples = &samples[sample_at];
		sample_at += w->n;
		w->ep = epoll_create1(EPOLL_CLOEXEC);
		if (w->ep < 0)
			die("epoll_create1: %s", strerror(errno));
		for (long i = 0; i < w->nconns; i++) {
			struct epoll_event ev = {.events = EPOLLIN, .data.ptr = &w->conns[i]};
			if (epoll_ctl(w->ep, EPOLL_CTL_ADD, w->conns[i].fd, &ev) < 0)
				die("epoll_ctl: %s", strerror(errno));
		}
		int err = pthread_create(&w->thread, NULL, worker_main, w);
		if (err)
			die("pthread_create: %s", strerror(err));
	}

	pthread_barrier_wait(&barrier); /* the warmup is over everywhere */
	unsigned long long ticks_before = server_pid ? cpu_ticks(server_pid) : 0;
	uint64_t start = tool_now_ns();
	pthread_barrier_wait(&barrier);
	for (long t = 0; t < threads; t++)
		pthread_join(ws[t].thread, NULL);
	double seconds = (double)(tool_now_ns() - start) / 1e9;
	unsigned long long ticks_after = server_pid ? cpu_ticks(server_pid) : 0;

	qsort(samples, (size_t)n, sizeof(*samples), cmp_u64);
	size_t p99 = (size_t)((double)n * 0.99);
	if (p99 >= (size_t)n)
		p99 = (size_t)n - 1;
	struct rusage ru;
	getrusage(RUSAGE_SELF, &ru);
	printf("{\"workload\":\"echo\",\"impl\":\"%s\",\"threads\":%ld,\"conns\":%ld,"
	       "\"n\":%ld,\"seconds\":%.6f,\"ops_per_s\":%.0f,\"p50_us\":%.3f,"
	       "\"p99_us\":%.3f,\"max_us\":%.3f",
	       impl, server_threads, conns, n, seconds, seconds > 0 ? (double)n / seconds : 0.0,
	       (double)samples[n / 2] / 1e3, (double)samples[p99] / 1e3,
	       (double)samples[n - 1] / 1e3);
	if (server_pid) {
		double cpu = (double)(ticks_after - ticks_before) / (double)sysconf(_SC_CLK_TCK);
		printf(",\"server_cpu_s\":%.3f,\"server_cpu_us_per_msg\":%.3f", cpu,
		       cpu * 1e6 / (double)n);
	}
	printf(",\"peak_rss_kb\":%ld}\n", ru.ru_maxrss);
	fflush(stdout);

	for (long t = 0; t < threads; t++)
		close(ws[t].ep);
	for (long i = 0; i < conns; i++) {
		close(cs[i].fd);
		free(cs[i].out);
		free(cs[i].in);
	}
	pthread_barrier_destroy(&barrier);
	free(ws);
	free(cs);
	free(samples);
	return 0;
}
