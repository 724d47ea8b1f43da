/* SPDX-License-Identifier: MIT */
/*
 * ipc_baseline: the `ipc_call` and `ipc_call_pipelined` workloads
 * (bench/README.md) without any call layer: the floors that
 * `afe_bench ipc_call` is compared with. A producer process calls
 * add(a, b, c) in a consumer process it forks: `n` calls one after the other
 * (latency per call), then `n` calls with `inflight` outstanding. Every
 * reply is checked (call id and sum); a wrong one exits 1.
 *
 *   ipc_baseline --impl=futex_ring|busy_ring|unix_socket [--n=100000]
 *                [--inflight=64] [--spin_ns=0]
 *
 * futex_ring   a pair of single-writer rings in shared memory (calls one
 *              way, replies the other); a reader with nothing to read
 *              sleeps on a shared futex, and a writer wakes it only when
 *              its waiters flag is up. --spin_ns: spin that long first.
 * busy_ring    the same rings; both sides busy-poll and never sleep.
 * unix_socket  socketpair(AF_UNIX, SOCK_STREAM), fixed-size frames,
 *              blocking reads (see socket_pipelined for the window).
 *
 * Plain C and libc; no AFE.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <linux/futex.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "../flags.h"
#include "../tool.h"

#define MAX_INFLIGHT 4096 /* ring slots and socket buffers are sized for this */
#define SPIN_FOREVER UINT64_MAX
#define STOP_ID UINT64_MAX /* a call with this id ends the ring consumer */

/* ---- common ---- */

static const char *impl = "";
static bool in_consumer;
static pid_t consumer_pid; /* in the producer: the consumer, killed by fail() */

static void fail(const char *fmt, ...) __attribute__((noreturn, format(printf, 1, 2)));

static void fail(const char *fmt, ...)
{
	va_list ap;
	fprintf(stderr, "ipc_baseline %s%s: ", impl, in_consumer ? " consumer" : "");
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	if (consumer_pid > 0) { /* leave no consumer behind */
		signal(SIGCHLD, SIG_DFL);
		kill(consumer_pid, SIGKILL);
		waitpid(consumer_pid, NULL, 0);
	}
	exit(1);
}

/* The producer's SIGCHLD: a consumer that dies before being told to stop
 * would leave the producer asleep for ever, so end the run. */
static void on_consumer_death(int sig)
{
	(void)sig;
	static const char msg[] = "ipc_baseline: the consumer process died\n";
	if (write(STDERR_FILENO, msg, sizeof(msg) - 1) < 0) {
		/* nothing more to do */
	}
	while (waitpid(-1, NULL, WNOHANG) > 0)
		;
	_exit(1);
}

static inline void cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
	__builtin_ia32_pause();
#elif defined(__aarch64__)
	__asm__ __volatile__("yield" ::: "memory");
#endif
}

/* The call add(a, b, c) and its reply, as they travel (32 and 16 bytes). */
struct call {
	uint64_t id, a, b, c;
};
struct reply {
	uint64_t id, sum;
};

/* Operands differ from call to call, so a reply to another call fails the
 * check even when its id were right. Sums wrap (unsigned). */
static struct call make_call(uint64_t id)
{
	return (struct call){id, id, id * 0x9e3779b97f4a7c15u, ~id << 7};
}

static struct reply answer(const struct call *c)
{
	return (struct reply){c->id, c->a + c->b + c->c};
}

static void check_reply(const struct reply *r, uint64_t id)
{
	struct call c = make_call(id);
	if (r->id != id || r->sum != c.a + c.b + c.c)
		fail("call %llu: reply has id %llu and sum %llu, want sum %llu",
		     (unsigned long long)id, (unsigned long long)r->id,
		     (unsigned long long)r->sum, (unsigned long long)(c.a + c.b + c.c));
}

struct latency {
	double p50_us, p99_us, max_us;
};

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
	return (x > y) - (x < y);
}

/* Same ranks as bench_latency_of in bench/bench_util.c (which needs the
 * runtime to link). Sorts the samples. */
static struct latency latency_of(uint64_t *ns, size_t n)
{
	qsort(ns, n, sizeof(*ns), cmp_u64);
	return (struct latency){(double)ns[n / 2] / 1000.0,
				(double)ns[(size_t)((double)n * 0.99)] / 1000.0,
				(double)ns[n - 1] / 1000.0};
}

/* The workload's JSON line; extra ("\"name\":value") goes before peak_rss_kb. */
static void report(const char *workload, long n, double seconds, const struct latency *lat,
		   const char *extra)
{
	struct rusage ru;
	getrusage(RUSAGE_SELF, &ru);
	printf("{\"workload\":\"%s\",\"impl\":\"%s\",\"threads\":1,\"n\":%ld,"
	       "\"seconds\":%.6f,\"ops_per_s\":%.0f",
	       workload, impl, n, seconds, seconds > 0 ? (double)n / seconds : 0.0);
	if (lat)
		printf(",\"p50_us\":%.3f,\"p99_us\":%.3f,\"max_us\":%.3f", lat->p50_us,
		       lat->p99_us, lat->max_us);
	if (extra && *extra)
		printf(",%s", extra);
	printf(",\"peak_rss_kb\":%ld}\n", ru.ru_maxrss);
	fflush(stdout);
}

/* ---- futex_ring and busy_ring ---- */

/* One direction: a single writer fills slots and publishes them by
 * advancing tail; a single reader follows with its own private head. No
 * side checks for a full ring: the producer never has more than
 * `inflight` <= slots calls outstanding, and every call and reply in the
 * rings belongs to an outstanding call, so neither ring can overflow. */
struct ring {
	_Alignas(64) _Atomic uint32_t tail; /* slots published */
	_Atomic uint32_t sleeping;          /* 1: the reader is (about to be) asleep on bell */
	_Atomic uint32_t bell;              /* the reader's futex word: bumped by each wake */
};

struct shm { /* MAP_SHARED before fork: the same address in both processes */
	struct ring calls, replies;
	_Alignas(64) struct call call_slots[MAX_INFLIGHT];
	_Alignas(64) struct reply reply_slots[MAX_INFLIGHT];
};

_Static_assert(sizeof(_Atomic uint32_t) == sizeof(uint32_t), "futex words are 32-bit");

static uint32_t ring_mask;  /* slots used - 1: the power of two >= inflight */
static uint64_t spin_ns;    /* how long a reader spins before sleeping */
static bool may_sleep;      /* futex_ring: readers sleep; busy_ring: never */

/* Shared futexes (no FUTEX_PRIVATE_FLAG): the word is in memory two
 * processes map. */
static void futex_wait(_Atomic uint32_t *word, uint32_t expected)
{
	if (syscall(SYS_futex, (void *)word, FUTEX_WAIT, expected, NULL, NULL, 0) < 0 &&
	    errno != EAGAIN && errno != EINTR)
		fail("futex wait: %s", strerror(errno));
}

static void futex_wake(_Atomic uint32_t *word)
{
	if (syscall(SYS_futex, (void *)word, FUTEX_WAKE, 1, NULL, NULL, 0) < 0)
		fail("futex wake: %s", strerror(errno));
}

/* The writer publishes slots up to tail and wakes the reader if it sleeps. */
static void ring_publish(struct ring *r, uint32_t tail)
{
	atomic_store_explicit(&r->tail, tail, memory_order_release);
	if (!may_sleep)
		return;
	/* Pairs with the fence in ring_wait: either the reader's re-check sees
	 * this tail, or this load sees its flag. The exchange makes one wake
	 * per sleep, however many publishes come before the reader runs. The
	 * bump matters when this exchange takes the flag of a later sleep than
	 * the one this tail ends (the reader saw the tail, woke and went back
	 * to sleep meanwhile): the bell has moved past the value that sleep
	 * waits on, so its wait returns at once instead of missing the wake. */
	atomic_thread_fence(memory_order_seq_cst);
	if (atomic_load_explicit(&r->sleeping, memory_order_relaxed) &&
	    atomic_exchange(&r->sleeping, 0)) {
		atomic_fetch_add(&r->bell, 1);
		futex_wake(&r->bell);
	}
}

/* The reader at head waits until the ring holds something; returns tail. */
static uint32_t ring_wait(struct ring *r, uint32_t head)
{
	uint32_t tail = atomic_load_explicit(&r->tail, memory_order_acquire);
	if (tail != head)
		return tail;
	if (spin_ns) {
		uint64_t deadline = spin_ns == SPIN_FOREVER ? UINT64_MAX : tool_now_ns() + spin_ns;
		do {
			cpu_relax();
			tail = atomic_load_explicit(&r->tail, memory_order_acquire);
			if (tail != head)
				return tail;
		} while (deadline == UINT64_MAX || tool_now_ns() < deadline);
	}
	for (;;) {
		/* Read the bell, publish the flag, re-check, then sleep only
		 * while the bell is still the value read: a wake in between
		 * makes the wait return at once (EAGAIN) instead of being lost. */
		uint32_t bell = atomic_load_explicit(&r->bell, memory_order_acquire);
		atomic_store_explicit(&r->sleeping, 1, memory_order_relaxed);
		atomic_thread_fence(memory_order_seq_cst);
		tail = atomic_load_explicit(&r->tail, memory_order_acquire);
		if (tail == head) {
			futex_wait(&r->bell, bell);
			tail = atomic_load_explicit(&r->tail, memory_order_acquire);
		}
		if (tail != head) {
			atomic_store_explicit(&r->sleeping, 0, memory_order_relaxed);
			return tail;
		}
	}
}

static void __attribute__((noreturn)) ring_consumer(struct shm *m)
{
	uint32_t head = 0, out = 0;
	for (;;) {
		uint32_t tail = ring_wait(&m->calls, head);
		for (; head != tail; head++) {
			const struct call *c = &m->call_slots[head & ring_mask];
			if (c->id == STOP_ID)
				_exit(0);
			m->reply_slots[out++ & ring_mask] = answer(c);
		}
		ring_publish(&m->replies, out); /* one publish (and wake) per batch */
	}
}

/* The producer's side of the rings; call ids run on across both phases. */
struct ring_producer {
	struct shm *m;
	uint32_t call_tail, reply_head;
	uint64_t next_id;
};

static void ring_put(struct ring_producer *p, struct call c)
{
	p->m->call_slots[p->call_tail++ & ring_mask] = c;
}

static void ring_sequential(struct ring_producer *p, long n, uint64_t *samples)
{
	for (long i = 0; i < n; i++) {
		uint64_t start = tool_now_ns(), id = p->next_id++;
		ring_put(p, make_call(id));
		ring_publish(&p->m->calls, p->call_tail);
		uint32_t tail = ring_wait(&p->m->replies, p->reply_head);
		if (tail - p->reply_head != 1)
			fail("%u replies to one call", tail - p->reply_head);
		check_reply(&p->m->reply_slots[p->reply_head++ & ring_mask], id);
		samples[i] = tool_now_ns() - start;
	}
}

/* Keeps the window full: every reply taken makes room for one more call;
 * the new calls of a round are published (and the consumer woken) once. */
static void ring_pipelined(struct ring_producer *p, long n, long inflight)
{
	uint64_t first = p->next_id, issued = 0, done = 0;
	while (done < (uint64_t)n) {
		uint64_t before = issued;
		for (; issued < (uint64_t)n && issued - done < (uint64_t)inflight; issued++)
			ring_put(p, make_call(first + issued));
		if (issued != before)
			ring_publish(&p->m->calls, p->call_tail);
		uint32_t tail = ring_wait(&p->m->replies, p->reply_head);
		for (; p->reply_head != tail; p->reply_head++, done++) {
			if (done == issued)
				fail("a reply to a call not made");
			check_reply(&p->m->reply_slots[p->reply_head & ring_mask], first + done);
		}
	}
	p->next_id += (uint64_t)n;
}

/* ---- unix_socket ---- */

static void write_all(int fd, const void *buf, size_t len)
{
	for (size_t done = 0; done < len;) {
		ssize_t k = write(fd, (const char *)buf + done, len - done);
		if (k < 0 && errno == EINTR)
			continue;
		if (k <= 0)
			fail("write: %s", k < 0 ? strerror(errno) : "no progress");
		done += (size_t)k;
	}
}

static void read_all(int fd, void *buf, size_t len)
{
	for (size_t done = 0; done < len;) {
		ssize_t k = read(fd, (char *)buf + done, len - done);
		if (k < 0 && errno == EINTR)
			continue;
		if (k <= 0)
			fail("read: %s", k < 0 ? strerror(errno) : "the other side closed");
		done += (size_t)k;
	}
}

/* Reads whatever calls have come, answers every whole one with a single
 * write, keeps a partial frame for the next read. Ends when the producer
 * closes its end. */
static void __attribute__((noreturn)) socket_consumer(int fd)
{
	static unsigned char in[MAX_INFLIGHT * sizeof(struct call)];
	static struct reply out[MAX_INFLIGHT];
	size_t have = 0;
	for (;;) {
		ssize_t k = read(fd, in + have, sizeof(in) - have);
		if (k == 0)
			_exit(0);
		if (k < 0) {
			if (errno == EINTR)
				continue;
			fail("read: %s", strerror(errno));
		}
		have += (size_t)k;
		size_t calls = have / sizeof(struct call);
		for (size_t i = 0; i < calls; i++) {
			struct call c;
			memcpy(&c, in + i * sizeof(c), sizeof(c));
			out[i] = answer(&c);
		}
		write_all(fd, out, calls * sizeof(*out));
		have -= calls * sizeof(struct call);
		memmove(in, in + calls * sizeof(struct call), have);
	}
}

static void socket_sequential(int fd, long n, uint64_t *next_id, uint64_t *samples)
{
	for (long i = 0; i < n; i++) {
		uint64_t start = tool_now_ns(), id = (*next_id)++;
		struct call c = make_call(id);
		struct reply r;
		write_all(fd, &c, sizeof(c));
		read_all(fd, &r, sizeof(r));
		check_reply(&r, id);
		samples[i] = tool_now_ns() - start;
	}
}

/* One thread, no poll in the steady state: each round appends a call for
 * every reply taken, sends all unsent calls in one non-blocking send, then
 * blocks in one read that takes every reply there is. Sends never block,
 * so the two processes cannot both sit in a full write; the read blocks
 * only while a whole call is out unanswered, so a reply must come. */
static void socket_pipelined(int fd, long n, long inflight, uint64_t *next_id)
{
	static unsigned char out[MAX_INFLIGHT * sizeof(struct call)];
	static unsigned char in[MAX_INFLIGHT * sizeof(struct reply)];
	uint64_t first = *next_id, issued = 0, done = 0, sent = 0; /* sent: bytes */
	size_t out_at = 0, out_len = 0, have = 0;
	while (done < (uint64_t)n) {
		memmove(out, out + out_at, out_len - out_at); /* usually nothing */
		out_len -= out_at;
		out_at = 0;
		for (; issued < (uint64_t)n && issued - done < (uint64_t)inflight; issued++) {
			struct call c = make_call(first + issued);
			memcpy(out + out_len, &c, sizeof(c));
			out_len += sizeof(c);
		}
		if (out_at < out_len) {
			ssize_t k = send(fd, out + out_at, out_len - out_at, MSG_DONTWAIT);
			if (k > 0) {
				out_at += (size_t)k;
				sent += (uint64_t)k;
			} else if (k < 0 && errno != EAGAIN && errno != EINTR) {
				fail("send: %s", strerror(errno));
			}
		}
		if (sent / sizeof(struct call) == done) { /* nothing whole out: wait to send */
			struct pollfd pfd = {.fd = fd, .events = POLLIN | POLLOUT};
			if (poll(&pfd, 1, -1) < 0 && errno != EINTR)
				fail("poll: %s", strerror(errno));
			continue;
		}
		ssize_t k = read(fd, in + have, sizeof(in) - have);
		if (k < 0 && errno == EINTR)
			continue;
		if (k <= 0)
			fail("read: %s", k < 0 ? strerror(errno) : "the consumer closed");
		have += (size_t)k;
		size_t replies = have / sizeof(struct reply);
		for (size_t i = 0; i < replies; i++, done++) {
			struct reply r;
			memcpy(&r, in + i * sizeof(r), sizeof(r));
			if (done == sent / sizeof(struct call))
				fail("a reply to a call not sent");
			check_reply(&r, first + done);
		}
		have -= replies * sizeof(struct reply);
		memmove(in, in + replies * sizeof(struct reply), have);
	}
	*next_id += (uint64_t)n;
}

/* ---- main ---- */

int main(int argc, char **argv)
{
	long n = 100000, inflight = 64, spin = -1;
	for (int i = 1; i < argc; i++) {
		const char *v;
		if ((v = flag_value(argv[i], "impl")))
			impl = v;
		else if ((v = flag_value(argv[i], "n")))
			n = flag_number("ipc_baseline", "n", v, LONG_MAX);
		else if ((v = flag_value(argv[i], "inflight")))
			inflight = flag_number("ipc_baseline", "inflight", v, LONG_MAX);
		else if ((v = flag_value(argv[i], "spin_ns")))
			spin = flag_number("ipc_baseline", "spin_ns", v, LONG_MAX);
		else {
			fprintf(stderr, "ipc_baseline: unknown flag '%s' (flags: --impl --n "
					"--inflight --spin_ns)\n",
				argv[i]);
			return 2;
		}
	}
	bool futex_ring = !strcmp(impl, "futex_ring"), busy_ring = !strcmp(impl, "busy_ring");
	bool sock = !strcmp(impl, "unix_socket");
	if (!futex_ring && !busy_ring && !sock) {
		fprintf(stderr, "ipc_baseline: --impl=futex_ring, busy_ring or unix_socket\n");
		return 2;
	}
	if (n < 1 || inflight < 1 || inflight > MAX_INFLIGHT) {
		fprintf(stderr, "ipc_baseline: n must be positive, 1 <= inflight <= %d\n",
			MAX_INFLIGHT);
		return 2;
	}
	if (spin >= 0 && !futex_ring) {
		fprintf(stderr, "ipc_baseline: --spin_ns is for --impl=futex_ring only\n");
		return 2;
	}
	may_sleep = futex_ring;
	spin_ns = busy_ring ? SPIN_FOREVER : spin > 0 ? (uint64_t)spin : 0;
	for (ring_mask = 1; ring_mask < (uint32_t)inflight; ring_mask <<= 1)
		;
	ring_mask--;

	uint64_t *samples = malloc((size_t)n * sizeof(*samples));
	if (!samples)
		fail("out of memory");
	struct shm *m = NULL;
	int sv[2] = {-1, -1};
	if (sock) {
		if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0)
			fail("socketpair: %s", strerror(errno));
	} else {
		m = mmap(NULL, sizeof(*m), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
		if (m == MAP_FAILED)
			fail("mmap: %s", strerror(errno));
		memset(m, 0, sizeof(*m)); /* fault the pages in before timing */
	}
	memset(samples, 0, (size_t)n * sizeof(*samples));

	struct sigaction sa = {.sa_handler = on_consumer_death, .sa_flags = SA_NOCLDSTOP};
	sigemptyset(&sa.sa_mask);
	sigaction(SIGCHLD, &sa, NULL);
	fflush(stdout);
	pid_t parent = getpid();
	pid_t pid = fork();
	if (pid < 0)
		fail("fork: %s", strerror(errno));
	if (pid == 0) { /* the consumer: dies with the producer */
		in_consumer = true;
		signal(SIGCHLD, SIG_DFL);
		if (prctl(PR_SET_PDEATHSIG, SIGKILL) < 0 || getppid() != parent)
			_exit(1);
		if (sock) {
			close(sv[0]);
			socket_consumer(sv[1]);
		}
		ring_consumer(m);
	}
	consumer_pid = pid;

	char extra[64];
	extra[0] = '\0';
	if (futex_ring)
		snprintf(extra, sizeof(extra), "\"spin_ns\":%llu", (unsigned long long)spin_ns);
	struct ring_producer p = {.m = m};
	uint64_t next_id = 0;
	if (sock)
		close(sv[1]);

	uint64_t start = tool_now_ns();
	if (sock)
		socket_sequential(sv[0], n, &next_id, samples);
	else
		ring_sequential(&p, n, samples);
	double seconds = (double)(tool_now_ns() - start) / 1e9;
	struct latency lat = latency_of(samples, (size_t)n);
	report("ipc_call", n, seconds, &lat, extra);

	start = tool_now_ns();
	if (sock)
		socket_pipelined(sv[0], n, inflight, &next_id);
	else
		ring_pipelined(&p, n, inflight);
	seconds = (double)(tool_now_ns() - start) / 1e9;
	size_t len = strlen(extra);
	snprintf(extra + len, sizeof(extra) - len, "%s\"inflight\":%ld", len ? "," : "", inflight);
	report("ipc_call_pipelined", n, seconds, NULL, extra);

	/* Stop the consumer and reap it. */
	signal(SIGCHLD, SIG_DFL);
	if (sock) {
		close(sv[0]);
	} else {
		ring_put(&p, (struct call){.id = STOP_ID});
		ring_publish(&m->calls, p.call_tail);
	}
	int status;
	while (waitpid(pid, &status, 0) < 0)
		if (errno != EINTR)
			fail("waitpid: %s", strerror(errno));
	consumer_pid = 0;
	if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
		fprintf(stderr, "ipc_baseline %s: the consumer ended badly (status %#x)\n", impl,
			status);
		return 1;
	}
	free(samples);
	if (m)
		munmap(m, sizeof(*m));
	return 0;
}
