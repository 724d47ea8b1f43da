/* SPDX-License-Identifier: MIT */
/*
 * udp_client: the load client of the `udp_echo` workload
 * (bench/README.md), the same for every server it measures. Plain C and
 * epoll, no AFE. `peers` UDP sockets, each connected to the server, each
 * keep one `size`-byte datagram in flight: send it, wait for its echo,
 * check it byte for byte, send the next. First every peer makes one
 * unmeasured round trip (its "connect": a server not yet bound refuses,
 * and the peer tries again 10 ms later), then `warmup` unmeasured round
 * trips, then `n` measured ones. Prints the workload's JSON line; with
 * --server_pid also the server's CPU time over the measured part
 * (utime+stime from /proc/PID/stat) and its CPU microseconds per datagram.
 *
 * A datagram whose echo is not back within `timeout_ms` counts as lost
 * ("lost" in the line, over the whole run; the first one also on stderr)
 * and a fresh one goes out in its place; an echo that comes after all is
 * known by its round number and dropped.
 *
 *   udp_client [--peers=64] [--size=64] [--n=1000000] [--port=7000]
 *              [--host=127.0.0.1] [--impl=unknown] [--server_pid=0]
 *              [--server_threads=0] [--warmup=0] [--timeout_ms=1000]
 *
 * Exits 1 with a message on stderr on a wrong echo, on no echo at all for
 * 10 s, or when the server is gone (ECONNREFUSED after it answered); 2 on
 * a bad flag.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <netdb.h>
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

#define TICK_MS 10 /* how often the deadlines are looked at */
#define REFUSED_RETRY_NS (10 * 1000000ull)
#define PATIENCE_NS (10 * 1000000000ull)
#define MAX_DATAGRAM 65507 /* UDP over IPv4 */
/* A datagram: its round (u64), its peer's index (u32), then the peer's
 * own pattern. */
#define HEADER_BYTES 12

#define die(...) tool_die("udp_client", __VA_ARGS__)

/* ---- flags ---- */

static const char *const flag_names[] = {"peers",	   "size",   "n",	   "port",
					 "host",	   "impl",   "server_pid", "server_threads",
					 "warmup",	   "timeout_ms", NULL};

/* utime + stime of the server (all its threads), in clock ticks. */
static unsigned long long cpu_ticks(long pid)
{
	unsigned long long ticks;
	int err = proc_cpu_ticks(pid, &ticks);
	if (err < 0)
		die("cannot read /proc/%ld/stat: %s (is --server_pid right?)", pid, strerror(-err));
	return ticks;
}

/* ---- peers ---- */

struct peer {
	int fd;
	uint32_t index;
	bool in_flight;	   /* a datagram is out and its echo awaited */
	bool answered;	   /* an echo came back: the server is up */
	bool resent;	   /* a datagram was given up on: its echo may come late */
	uint64_t round;	   /* the round of the latest datagram sent (from 1) */
	uint64_t sent_ns;  /* when it went out */
	uint64_t retry_ns; /* not 0: refused, send again at this time */
	unsigned char *out, *in;
};

struct client {
	int ep;
	struct peer *peers;
	long npeers;
	size_t size;
	uint64_t timeout_ns;
	long lost;
};

/* The server refused p's datagram (ICMP port unreachable): not up yet,
 * unless it has answered before. */
static void refused(struct peer *p)
{
	if (p->answered)
		die("the server is gone (ECONNREFUSED on peer %u)", p->index);
	p->in_flight = false;
	p->resent = true;
	p->retry_ns = tool_now_ns() + REFUSED_RETRY_NS;
}

/* Sends p's next datagram, numbered with a fresh round. */
static void send_next(struct client *c, struct peer *p)
{
	p->round++;
	memcpy(p->out, &p->round, sizeof(p->round));
	p->retry_ns = 0;
	p->in_flight = true;
	p->sent_ns = tool_now_ns();
	for (;;) {
		ssize_t k = send(p->fd, p->out, c->size, 0);
		if (k == (ssize_t)c->size)
			return;
		if (k >= 0)
			die("sent %zd bytes of a %zu-byte datagram", k, c->size);
		if (errno == EINTR)
			continue;
		if (errno == ECONNREFUSED) {
			refused(p);
			return;
		}
		die("send: %s", strerror(errno));
	}
}

/* Reads p's echoes; true when the echo of its datagram in flight is in
 * and checked. Late echoes of datagrams given up on are dropped. */
static bool receive(struct client *c, struct peer *p)
{
	for (;;) {
		/* MSG_TRUNC: the datagram's real length, even if longer. */
		ssize_t k = recv(p->fd, p->in, c->size, MSG_TRUNC);
		if (k < 0) {
			if (errno == EINTR)
				continue;
			if (errno == EAGAIN || errno == EWOULDBLOCK)
				return false;
			if (errno == ECONNREFUSED) {
				refused(p);
				return false;
			}
			die("recv: %s", strerror(errno));
		}
		if ((size_t)k != c->size)
			die("an echo of %zd bytes came back to peer %u, which sends %zu", k,
			    p->index, c->size);
		if (memcmp(p->in + sizeof(p->round), p->out + sizeof(p->round),
			   c->size - sizeof(p->round)) != 0)
			die("an echo to peer %u differs from what it sent", p->index);
		uint64_t round;
		memcpy(&round, p->in, sizeof(round));
		if (p->in_flight && round == p->round) {
			p->in_flight = false;
			p->answered = true;
			return true;
		}
		if (!p->resent || round == 0 || round > p->round)
			die("peer %u got an echo of round %llu, which it is not owed (its last: %llu)",
			    p->index, (unsigned long long)round, (unsigned long long)p->round);
	}
}

/* Gives up on datagrams out for longer than the timeout (lost: a fresh
 * one goes out) and sends again where the server refused. */
static void look_at_deadlines(struct client *c, uint64_t now)
{
	for (long i = 0; i < c->npeers; i++) {
		struct peer *p = &c->peers[i];
		if (p->in_flight && now - p->sent_ns >= c->timeout_ns) {
			if (c->lost++ == 0)
				fprintf(stderr,
					"udp_client: no echo in %llu ms to peer %u: counted lost, "
					"sent again (said once)\n",
					(unsigned long long)(c->timeout_ns / 1000000u), p->index);
			p->resent = true;
			send_next(c, p);
		} else if (!p->in_flight && p->retry_ns && now >= p->retry_ns) {
			send_next(c, p);
		}
	}
}

/* Runs round trips, one in flight per peer at most, until `total` have
 * come back; records their latencies in samples when it is not NULL. */
static void run_phase(struct client *c, long total, uint64_t *samples)
{
	long begun = 0, done = 0;
	for (long i = 0; i < c->npeers && begun < total; i++, begun++)
		send_next(c, &c->peers[i]);
	uint64_t last_echo = tool_now_ns(), next_look = last_echo + TICK_MS * 1000000ull;
	struct epoll_event events[256];
	while (done < total) {
		int k = epoll_wait(c->ep, events, 256, TICK_MS);
		if (k < 0) {
			if (errno == EINTR)
				continue;
			die("epoll_wait: %s", strerror(errno));
		}
		uint64_t now = tool_now_ns();
		/* Deadlines first: an echo still unread when its deadline
		 * has passed is late, whenever this thread got to run. */
		if (now >= next_look) {
			look_at_deadlines(c, now);
			next_look = now + TICK_MS * 1000000ull;
		}
		if (k == 0 && now - last_echo > PATIENCE_NS)
			die("no echo for %llu s (%ld of %ld round trips done)",
			    PATIENCE_NS / 1000000000ull, done, total);
		for (int e = 0; e < k; e++) {
			struct peer *p = events[e].data.ptr;
			if (!receive(c, p))
				continue;
			last_echo = tool_now_ns();
			if (samples)
				samples[done] = last_echo - p->sent_ns;
			done++;
			if (begun < total) {
				begun++;
				send_next(c, p);
			}
		}
	}
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
	return (x > y) - (x < y);
}

int main(int argc, char **argv)
{
	flags_check("udp_client", flag_names, argc, argv);
	long npeers = flags_number("udp_client", argc, argv, "peers", 64);
	long size = flags_number("udp_client", argc, argv, "size", 64);
	long n = flags_number("udp_client", argc, argv, "n", 1000000);
	long port = flags_number("udp_client", argc, argv, "port", 7000);
	long server_pid = flags_number("udp_client", argc, argv, "server_pid", 0);
	long server_threads = flags_number("udp_client", argc, argv, "server_threads", 0);
	long warmup = flags_number("udp_client", argc, argv, "warmup", 0);
	long timeout_ms = flags_number("udp_client", argc, argv, "timeout_ms", 1000);
	const char *host = flags_string(argc, argv, "host");
	const char *impl = flags_string(argc, argv, "impl");
	if (!host)
		host = "127.0.0.1";
	if (!impl)
		impl = "unknown";
	if (npeers < 1 || npeers > UINT32_MAX || size < HEADER_BYTES || size > MAX_DATAGRAM ||
	    n < 1 || port < 1 || port > 65535 || timeout_ms < 1) {
		fprintf(stderr, "udp_client: want peers >= 1, %d <= size <= %d, n >= 1, "
				"1 <= port <= 65535, timeout_ms >= 1\n",
			HEADER_BYTES, MAX_DATAGRAM);
		exit(2);
	}
	for (const char *p = impl; *p; p++)
		if (*p == '"' || *p == '\\' || (unsigned char)*p < 0x20) {
			fprintf(stderr, "udp_client: --impl must be JSON-safe\n");
			exit(2);
		}

	struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_DGRAM}, *addrs;
	char port_text[16];
	snprintf(port_text, sizeof(port_text), "%ld", port);
	int gai = getaddrinfo(host, port_text, &hints, &addrs);
	if (gai != 0)
		die("cannot resolve %s: %s", host, gai_strerror(gai));

	struct client c = {
		.npeers = npeers,
		.size = (size_t)size,
		.timeout_ns = (uint64_t)timeout_ms * 1000000u,
		.peers = calloc((size_t)npeers, sizeof(struct peer)),
		.ep = epoll_create1(EPOLL_CLOEXEC),
	};
	uint64_t *samples = malloc((size_t)n * sizeof(*samples));
	if (!c.peers || !samples)
		die("out of memory");
	if (c.ep < 0)
		die("epoll_create1: %s", strerror(errno));
	for (long i = 0; i < npeers; i++) {
		struct peer *p = &c.peers[i];
		p->index = (uint32_t)i;
		p->fd = socket(addrs->ai_family, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
		if (p->fd < 0)
			die("socket: %s", strerror(errno));
		/* Connected: only the server's datagrams come in, and its
		 * ICMP refusals show as ECONNREFUSED. */
		if (connect(p->fd, addrs->ai_addr, addrs->ai_addrlen) < 0)
			die("connect: %s", strerror(errno));
		p->out = malloc((size_t)size);
		p->in = malloc((size_t)size);
		if (!p->out || !p->in)
			die("out of memory");
		memcpy(p->out + sizeof(p->round), &p->index, sizeof(p->index));
		for (long b = HEADER_BYTES; b < size; b++) /* a pattern of its own per peer */
			p->out[b] = (unsigned char)((uint64_t)b * 131u + (uint64_t)i * 7u + 1u);
		struct epoll_event ev = {.events = EPOLLIN, .data.ptr = p};
		if (epoll_ctl(c.ep, EPOLL_CTL_ADD, p->fd, &ev) < 0)
			die("epoll_ctl: %s", strerror(errno));
	}
	freeaddrinfo(addrs);

	run_phase(&c, npeers, NULL); /* every peer reaches the server */
	if (warmup)
		run_phase(&c, warmup, NULL);
	unsigned long long ticks_before = server_pid ? cpu_ticks(server_pid) : 0;
	uint64_t start = tool_now_ns();
	run_phase(&c, n, samples);
	double seconds = (double)(tool_now_ns() - start) / 1e9;
	unsigned long long ticks_after = server_pid ? cpu_ticks(server_pid) : 0;

	qsort(samples, (size_t)n, sizeof(*samples), cmp_u64);
	size_t p99 = (size_t)((double)n * 0.99);
	if (p99 >= (size_t)n)
		p99 = (size_t)n - 1;
	struct rusage ru;
	getrusage(RUSAGE_SELF, &ru);
	printf("{\"workload\":\"udp_echo\",\"impl\":\"%s\",\"threads\":%ld,\"peers\":%ld,"
	       "\"n\":%ld,\"seconds\":%.6f,\"ops_per_s\":%.0f,\"p50_us\":%.3f,"
	       "\"p99_us\":%.3f,\"max_us\":%.3f,\"lost\":%ld",
	       impl, server_threads, npeers, n, seconds, seconds > 0 ? (double)n / seconds : 0.0,
	       (double)samples[n / 2] / 1e3, (double)samples[p99] / 1e3,
	       (double)samples[n - 1] / 1e3, c.lost);
	if (server_pid) {
		double cpu = (double)(ticks_after - ticks_before) / (double)sysconf(_SC_CLK_TCK);
		printf(",\"server_cpu_s\":%.3f,\"server_cpu_us_per_msg\":%.3f", cpu,
		       cpu * 1e6 / (double)n);
	}
	printf(",\"peak_rss_kb\":%ld}\n", ru.ru_maxrss);
	fflush(stdout);

	close(c.ep);
	for (long i = 0; i < npeers; i++) {
		close(c.peers[i].fd);
		free(c.peers[i].out);
		free(c.peers[i].in);
	}
	free(c.peers);
	free(samples);
	return 0;
}
