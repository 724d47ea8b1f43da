/* SPDX-License-Identifier: MIT */
/* An idle runtime uses no CPU: once every worker parked, its threads sleep
 * in the kernel until there is work, without waking on a timer, also with
 * a sleep or an accept pending, after a spin, and on either backend. */
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "helpers.h"
#include "src/core/runtime_internal.h"

/* CPU (user + system) one second of idling may use. A thread that spins
 * uses hundreds of ms in that second; the sanitizers' own background
 * threads and the kernel's tick-sampled accounting stay well below this. */
#define IDLE_CPU_BOUND_MS 30

/* Times the runtime's threads may wake in that second. A thread that
 * wakes every millisecond (a timed wait where an untimed one belongs)
 * costs too little CPU to see, but wakes a thousand times. */
#define IDLE_WAKES_BOUND 20

/* Up to this many threads are tracked: a few workers, the ring thread,
 * the sanitizer's, the test's. */
#define MAX_THREADS 64

struct thread_use {
	int tid;
	char comm[32];
	unsigned long long ticks; /* utime + stime, in clock ticks */
	unsigned long long wakes; /* context switches, voluntary or not */
};

/* Reads /proc/self/task/<tid>/<file> into buf; false if it is gone. */
static bool read_task_file(const char *tid, const char *file, char *buf, size_t size)
{
	char path[300];
	snprintf(path, sizeof(path), "/proc/self/task/%s/%s", tid, file);
	FILE *f = fopen(path, "r");
	if (!f)
		return false;
	size_t n = fread(buf, 1, size - 1, f);
	fclose(f);
	buf[n] = '\0';
	return n > 0;
}

/* Fills u with what one thread used so far; false if it ended. CPU time
 * is fields 14 and 15 of stat, counted from the ')' closing the thread's
 * name (which may hold spaces); wakes come from status. */
static bool thread_use(const char *tid, struct thread_use *u)
{
	char stat[1024], status[4096];
	if (!read_task_file(tid, "stat", stat, sizeof(stat)) ||
	    !read_task_file(tid, "status", status, sizeof(status)))
		return false;
	char *open = strchr(stat, '('), *close = strrchr(stat, ')');
	unsigned long long utime, stime, voluntary, involuntary;
	/* state ppid pgrp session tty_nr tpgid flags minflt cminflt majflt cmajflt utime stime */
	if (!open || !close ||
	    sscanf(close + 1, " %*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu", &utime,
		   &stime) != 2)
		return false;
	char *v = strstr(status, "voluntary_ctxt_switches:");
	char *i = strstr(status, "nonvoluntary_ctxt_switches:");
	if (!v || !i || sscanf(v, "voluntary_ctxt_switches: %llu", &voluntary) != 1 ||
	    sscanf(i, "nonvoluntary_ctxt_switches: %llu", &involuntary) != 1)
		return false;
	u->tid = atoi(tid);
	snprintf(u->comm, sizeof(u->comm), "%.*s", (int)(close - open - 1), open + 1);
	u->ticks = utime + stime;
	u->wakes = voluntary + involuntary;
	return true;
}

/* Fills u with what each thread of this process used so far; returns how
 * many threads. */
static unsigned threads_use(struct thread_use *u)
{
	unsigned n = 0;
	DIR *dir = opendir("/proc/self/task");
	cr_assert_not_null(dir);
	for (struct dirent *d; (d = readdir(dir)) && n < MAX_THREADS;)
		if (d->d_name[0] != '.' && thread_use(d->d_name, &u[n]))
			n++;
	closedir(dir);
	return n;
}

/* Waits until every worker of rt parked, lets the rest settle 100 ms, then
 * asserts that over one second the process used at most
 * IDLE_CPU_BOUND_MS of CPU and the runtime's threads (named afe-...)
 * woke at most IDLE_WAKES_BOUND times, naming the busiest thread when
 * not. */
static void assert_idle_uses_no_cpu(struct afe_runtime *rt)
{
	for (int ms = 0; !afe_idle_all_parked(&rt->pool.idle); ms++) {
		cr_assert_lt(ms, 5000, "the workers never all parked");
		usleep(1000);
	}
	usleep(100 * 1000);

	static struct thread_use before[MAX_THREADS], after[MAX_THREADS];
	unsigned nb = threads_use(before);
	usleep(1000 * 1000);
	unsigned na = threads_use(after);

	long tick_ms = 1000 / sysconf(_SC_CLK_TCK);
	unsigned long long ticks = 0, wakes = 0, most_ticks = 0, most_wakes = 0;
	const char *most_ticks_comm = "none", *most_wakes_comm = "none";
	for (unsigned i = 0; i < na; i++) {
		struct thread_use used = after[i];
		for (unsigned j = 0; j < nb; j++) {
			if (before[j].tid == used.tid) {
				used.ticks -= before[j].ticks;
				used.wakes -= before[j].wakes;
			}
		}
		ticks += used.ticks;
		if (used.ticks > most_ticks) {
			most_ticks = used.ticks;
			most_ticks_comm = after[i].comm;
		}
		if (strncmp(used.comm, "afe-", 4) != 0)
			continue; /* the test's and the sanitizer's threads */
		wakes += used.wakes;
		if (used.wakes > most_wakes) {
			most_wakes = used.wakes;
			most_wakes_comm = after[i].comm;
		}
	}
	cr_assert_leq(ticks * tick_ms, IDLE_CPU_BOUND_MS,
		      "an idle runtime used %llu ms of CPU in 1000 ms (most: %s, %llu ms)",
		      ticks * tick_ms, most_ticks_comm, most_ticks * tick_ms);
	cr_assert_leq(wakes, IDLE_WAKES_BOUND,
		      "an idle runtime's threads woke %llu times in 1000 ms (most: %s, %llu)",
		      wakes, most_wakes_comm, most_wakes);
}

static struct afe_runtime *runtime_with(enum afe_backend backend, unsigned spin_us)
{
	struct afe_runtime_config config;
	afe_runtime_config_default(&config);
	config.backend = backend;
	config.spin_us = spin_us;
	struct afe_runtime *rt = NULL;
	cr_assert_eq(afe_runtime_create(&rt, &config), 0);
	if (backend == AFE_BACKEND_EPOLL)
		cr_assert_eq(afe_runtime_backend(rt), AFE_BACKEND_EPOLL);
	return rt;
}

/* Runs a task on rt first, so the workers have been awake and parked
 * again rather than never started. */
static void idle_after_a_task(struct afe_runtime *rt)
{
	struct afe_ready r;
	afe_ready_init(&r, 3);
	cr_assert_eq(test_block_on(rt, &r), 3);
	assert_idle_uses_no_cpu(rt);
	test_runtime_destroy(rt);
}

Test(idle_cpu, default_config)
{
	idle_after_a_task(runtime_with(AFE_BACKEND_AUTO, AFE_SPIN_AUTO));
}

Test(idle_cpu, workers_park_after_their_spin)
{
	struct afe_runtime *rt = runtime_with(AFE_BACKEND_AUTO, 50);
	cr_assert_eq(afe_runtime_spin_us(rt), 50);
	idle_after_a_task(rt);
}

Test(idle_cpu, epoll_backend)
{
	idle_after_a_task(runtime_with(AFE_BACKEND_EPOLL, AFE_SPIN_AUTO));
}

/* A sleep of 10 s and an accept nobody connects to, both pending while
 * the runtime idles; then both cancelled. */
static void idle_with_a_sleep_and_an_accept(struct afe_runtime *rt)
{
	int listen_fd = afe_tcp_listen(NULL, 0, 0);
	cr_assert_geq(listen_fd, 0);
	struct afe_sleep sleep;
	afe_sleep_init(&sleep, 10 * 1000000000ull);
	struct afe_io accept;
	afe_io_accept_init(&accept, listen_fd, NULL, NULL, SOCK_CLOEXEC);
	struct afe_join_handle sleeping, accepting;
	cr_assert_eq(afe_spawn(rt, &sleep, &sleeping), 0);
	cr_assert_eq(afe_spawn(rt, &accept, &accepting), 0);

	assert_idle_uses_no_cpu(rt);

	cr_assert(!afe_join_handle_is_finished(&sleeping), "the sleep ended early");
	cr_assert(!afe_join_handle_is_finished(&accepting), "the accept ended early");
	struct afe_cancel cancel;
	cr_assert_eq(afe_cancel_init(&cancel, &sleeping), 0);
	cr_assert_eq(test_block_on(rt, &cancel), -ECANCELED);
	cr_assert_eq(afe_cancel_init(&cancel, &accepting), 0);
	cr_assert_eq(test_block_on(rt, &cancel), -ECANCELED);
	test_runtime_destroy(rt);
	close(listen_fd);
}

Test(idle_cpu, pending_sleep_and_accept)
{
	idle_with_a_sleep_and_an_accept(runtime_with(AFE_BACKEND_AUTO, AFE_SPIN_AUTO));
}

Test(idle_cpu, pending_sleep_and_accept_on_epoll)
{
	idle_with_a_sleep_and_an_accept(runtime_with(AFE_BACKEND_EPOLL, AFE_SPIN_AUTO));
}
