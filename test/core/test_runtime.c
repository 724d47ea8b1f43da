/* SPDX-License-Identifier: MIT */
/* Runtime life cycle, block_on, metrics, parking and AFE_MAIN's exit. */
#define _GNU_SOURCE /* pthread_getname_np */
#include <dirent.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "helpers.h"
#include "uring/io_helpers.h"
#include "src/core/runtime_internal.h"

Test(runtime, config_defaults_and_env)
{
	struct afe_runtime_config c;
	setenv("AFE_WORKERS", "3", 1);
	afe_runtime_config_default(&c);
	cr_assert_eq(c.workers, 3);
	cr_assert_eq(c.grace_ms, 1000);
	cr_assert_eq(c.exit_mode, AFE_EXIT_GRACE);
	cr_assert_eq(c.spin_us, AFE_SPIN_AUTO);
	setenv("AFE_WORKERS", "lots", 1);
	afe_runtime_config_default(&c);
	cr_assert_eq(c.workers, (unsigned)sysconf(_SC_NPROCESSORS_ONLN), "bad value ignored");
	unsetenv("AFE_WORKERS");
}

Test(runtime, create_rejects_bad_arguments)
{
	struct afe_runtime_config c;
	afe_runtime_config_default(&c);
	c.workers = 5000;
	struct afe_runtime *rt = (void *)1;
	cr_assert_eq(afe_runtime_create(&rt, &c), -EINVAL);
	cr_assert_null(rt);
	cr_assert_eq(afe_runtime_create(NULL, NULL), -EINVAL);
	cr_assert_eq(afe_runtime_destroy(NULL), -EINVAL);
	cr_assert_eq(afe_runtime_wait_idle(NULL, 0), -EINVAL);
	cr_assert_eq(afe_runtime_workers(NULL), 0);
	cr_assert_eq(afe_runtime_spin_us(NULL), 0);
	struct afe_metrics m;
	cr_assert_eq(afe_runtime_metrics(NULL, &m), -EINVAL);
	struct afe_ready r;
	afe_ready_init(&r, 0);
	cr_assert_eq(afe_block_on(NULL, &r, NULL), -EINVAL);
	afe_runtime_config_default(&c);
	c.ring_entries = 1; /* an operation with a timeout takes two */
	cr_assert_eq(afe_runtime_create(&rt, &c), -EINVAL);
	cr_assert_null(rt);
	c.ring_entries = 32768 + 1;
	c.cq_entries = 65536;
	cr_assert_eq(afe_runtime_create(&rt, &c), -EINVAL);
	cr_assert_null(rt);
}

Test(runtime, metrics_into_null_is_einval)
{
	struct afe_runtime *rt = test_runtime(1);
	cr_assert_eq(afe_runtime_metrics(rt, NULL), -EINVAL);
	test_runtime_destroy(rt);
}

Test(runtime, null_config_uses_defaults)
{
	unsetenv("AFE_WORKERS"); /* the default is the online CPUs */
	struct afe_runtime *rt;
	cr_assert_eq(afe_runtime_create(&rt, NULL), 0);
	cr_assert_eq(afe_runtime_workers(rt), (unsigned)sysconf(_SC_NPROCESSORS_ONLN));
	cr_assert_eq(afe_runtime_spin_us(rt), 0, "workers on every CPU: park at once");
	cr_assert_null(afe_runtime_current(), "this thread is no worker");
	test_runtime_destroy(rt);
}

Test(runtime, spin_us_reports_the_resolved_spin)
{
	struct afe_runtime_config c;
	afe_runtime_config_default(&c);
	c.workers = 1; /* a CPU left free, if the machine has two */
	struct afe_runtime *rt;
	cr_assert_eq(afe_runtime_create(&rt, &c), 0);
	cr_assert_eq(afe_runtime_spin_us(rt), sysconf(_SC_NPROCESSORS_ONLN) > 1 ? 50u : 0u);
	test_runtime_destroy(rt);
	c.spin_us = 7;
	cr_assert_eq(afe_runtime_create(&rt, &c), 0);
	cr_assert_eq(afe_runtime_spin_us(rt), 7);
	test_runtime_destroy(rt);
}

/* Records what it sees from inside a worker. */
struct inside {
	struct afe_future base;
	struct afe_runtime *current;
	int block_on_err;
};
static struct inside inside_seen;
static int inside_poll(struct afe_future *f, struct afe_context *cx)
{
	(void)cx;
	struct afe_runtime *rt = afe_runtime_current();
	struct afe_ready r;
	afe_ready_init(&r, 0);
	inside_seen.current = rt;
	inside_seen.block_on_err = afe_block_on(rt, &r, NULL);
	inside_seen.base.result = afe_runtime_destroy(rt);
	f->result = 0;
	return AFE_READY;
}

Test(runtime, worker_threads_cannot_block_on_or_destroy)
{
	struct afe_runtime *rt = test_runtime(2);
	struct inside in;
	afe_future_init(&in.base, inside_poll);
	test_block_on(rt, &in);
	cr_assert_eq(inside_seen.current, rt);
	cr_assert_eq(inside_seen.block_on_err, -EDEADLK);
	cr_assert_eq(inside_seen.base.result, -EINVAL);
	test_runtime_destroy(rt);
}

Test(runtime, metrics_count_the_work)
{
	struct afe_runtime *rt = test_runtime(2);
	for (int i = 0; i < 10; i++) {
		struct yielder y = yielder_make(5, i);
		cr_assert_eq(test_block_on(rt, &y), i);
	}
	struct afe_metrics m;
	cr_assert_eq(afe_runtime_metrics(rt, &m), 0);
	cr_assert_eq(m.spawned, 10);
	cr_assert_eq(m.completed, 10);
	cr_assert_eq(m.polled, 60, "6 polls per yielder of 5 rounds");
	cr_assert_geq(m.injected, 10, "block_on spawns from outside");
	test_runtime_destroy(rt);
}

/* Holds its worker (a poll that spins, as no real poll may) until go; the
 * jobs wait for jobs_go. */
static _Atomic bool go, jobs_go;

static int holds_the_worker_poll(struct afe_future *f, struct afe_context *cx)
{
	(void)cx;
	while (!atomic_load(&go))
		sched_yield();
	f->result = 0;
	return AFE_READY;
}

static intptr_t wait_for_go(void *arg)
{
	(void)arg;
	while (!atomic_load(&jobs_go))
		usleep(1000);
	return 0;
}

Test(runtime, metrics_gauge_the_queued_tasks_and_the_blocking_jobs)
{
	struct afe_runtime_config config;
	afe_runtime_config_default(&config);
	config.workers = 1;
	config.blocking_threads = 1;
	struct afe_runtime *rt;
	cr_assert_eq(afe_runtime_create(&rt, &config), 0);
	atomic_store(&go, false);
	atomic_store(&jobs_go, false);
	struct {
		struct afe_future base;
	} holder;
	afe_future_init(&holder.base, holds_the_worker_poll);
	struct afe_join_handle held, jobs[2], queued[5];
	cr_assert_eq(afe_spawn(rt, &holder, &held), 0);
	struct afe_metrics m;
	for (int ms = 0; afe_runtime_metrics(rt, &m) == 0 && m.polled == 0; ms++) {
		cr_assert_lt(ms, 5000, "the holder never ran");
		usleep(1000);
	}
	for (int i = 0; i < 5; i++) {
		struct afe_ready r;
		afe_ready_init(&r, i);
		cr_assert_eq(afe_spawn(rt, &r, &queued[i]), 0);
	}
	struct afe_blocking job[2];
	for (int i = 0; i < 2; i++) {
		afe_blocking_init(&job[i], wait_for_go, NULL);
		cr_assert_eq(afe_spawn(rt, &job[i], &jobs[i]), 0);
	}
	cr_assert_eq(afe_runtime_metrics(rt, &m), 0);
	cr_assert_eq(m.queued, 7, "5 tasks and 2 jobs' tasks wait behind the held worker");
	cr_assert_eq(m.blocking_running + m.blocking_queued, 0, "no job could start yet");
	atomic_store(&go, true); /* the worker goes on: the jobs start on one thread */
	/* Until both jobs are in and the thread took one (both may be
	 * queued before it does, or the first taken before the second). */
	for (int ms = 0; afe_runtime_metrics(rt, &m) == 0 &&
			 (m.blocking_running < 1 || m.blocking_running + m.blocking_queued < 2);
	     ms++) {
		cr_assert_lt(ms, 5000, "the jobs never both came in");
		usleep(1000);
	}
	cr_assert_eq(m.blocking_running, 1);
	cr_assert_eq(m.blocking_queued, 1, "one thread: the second job waits (running %ju, queued %ju)",
		     (uintmax_t)m.blocking_running, (uintmax_t)m.blocking_queued);
	atomic_store(&jobs_go, true);
	for (int i = 0; i < 5; i++) {
		struct afe_join j;
		afe_join_init(&j, &queued[i]);
		cr_assert_eq(test_block_on(rt, &j), i);
	}
	for (int i = 0; i < 2; i++) {
		struct afe_join j;
		afe_join_init(&j, &jobs[i]);
		cr_assert_eq(test_block_on(rt, &j), 0);
	}
	struct afe_join j;
	afe_join_init(&j, &held);
	cr_assert_eq(test_block_on(rt, &j), 0);
	cr_assert_eq(afe_runtime_metrics(rt, &m), 0);
	cr_assert_eq(m.queued, 0);
	cr_assert_eq(m.blocking_running + m.blocking_queued, 0);
	test_runtime_destroy(rt);
}

Test(runtime, an_idle_runtime_parks_every_worker)
{
	struct afe_runtime *rt = test_runtime(2);
	struct yielder y = yielder_make(100, 1);
	test_block_on(rt, &y);
	/* Idle workers search for spin_us (at most 50 us), then sleep on their futex:
	 * within 5 s, however loaded the machine. */
	for (int ms = 0; !afe_idle_all_parked(&rt->pool.idle); ms++) {
		cr_assert_lt(ms, 5000, "the workers never all parked");
		usleep(1000);
	}
	struct afe_metrics before, after;
	afe_runtime_metrics(rt, &before);
	cr_assert_geq(before.parks, 2);
	/* A spawn wakes a parked worker, which then runs the task. */
	y = yielder_make(1, 9);
	cr_assert_eq(test_block_on(rt, &y), 9);
	afe_runtime_metrics(rt, &after);
	cr_assert_gt(after.unparks, before.unparks, "the spawn unparked a worker");
	test_runtime_destroy(rt);
}

/* Reads its worker thread's name. */
static char worker_name[16];
static int name_reader_poll(struct afe_future *f, struct afe_context *cx)
{
	(void)cx;
	f->result = pthread_getname_np(pthread_self(), worker_name, sizeof(worker_name));
	return AFE_READY;
}

static char blocking_name[16];
static intptr_t read_blocking_name(void *arg)
{
	(void)arg;
	return pthread_getname_np(pthread_self(), blocking_name, sizeof(blocking_name));
}

/* How many of this process's threads are called name. */
static unsigned threads_named(const char *name)
{
	unsigned n = 0;
	DIR *dir = opendir("/proc/self/task");
	cr_assert_not_null(dir);
	for (struct dirent *d; (d = readdir(dir));) {
		char path[300], comm[32] = "";
		snprintf(path, sizeof(path), "/proc/self/task/%s/comm", d->d_name);
		FILE *f = fopen(path, "r");
		if (!f)
			continue; /* "." and "..", or a thread that ended */
		if (fgets(comm, sizeof(comm), f))
			comm[strcspn(comm, "\n")] = '\0';
		fclose(f);
		n += strcmp(comm, name) == 0;
	}
	closedir(dir);
	return n;
}

Test(runtime, threads_are_named_for_top_and_gdb)
{
	struct afe_runtime *rt = test_runtime(2);
	struct {
		struct afe_future base;
	} reader;
	afe_future_init(&reader.base, name_reader_poll);
	cr_assert_eq(test_block_on(rt, &reader), 0);
	cr_assert(strcmp(worker_name, "afe-worker-0") == 0 || strcmp(worker_name, "afe-worker-1") == 0,
		  "a task ran on a thread named %s", worker_name);
	cr_assert_eq(threads_named("afe-worker-0"), 1);
	cr_assert_eq(threads_named("afe-worker-1"), 1);
	cr_assert_eq(threads_named("afe-ring"), 1);

	struct afe_blocking job;
	afe_blocking_init(&job, read_blocking_name, NULL);
	cr_assert_eq(test_block_on(rt, &job), 0);
	cr_assert(strcmp(blocking_name, "afe-blocking") == 0, "a job ran on %s", blocking_name);
	test_runtime_destroy(rt);
}

Test(runtime, wait_idle_times_out_on_a_task_that_never_ends)
{
	struct afe_runtime *rt = test_runtime(1);
	struct afe_pending p;
	afe_pending_init(&p);
	struct afe_join_handle h;
	cr_assert_eq(afe_spawn(rt, &p, &h), 0);
	cr_assert_eq(afe_runtime_wait_idle(rt, 20), 1);
	struct afe_cancel c;
	afe_cancel_init(&c, &h);
	cr_assert_eq(test_block_on(rt, &c), -ECANCELED);
	cr_assert_eq(afe_runtime_wait_idle(rt, 0), 0);
	test_runtime_destroy(rt);
}

/* afe_main_run in a child process: its return value is the status. */
struct main_root {
	struct afe_future base;
	intptr_t status;
	bool leave_a_task;
	bool leave_a_sleeper; /* detached, sleeps 100 ms */
};

static int main_root_poll(struct afe_future *f, struct afe_context *cx)
{
	(void)cx;
	struct main_root *m = afe_container_of(f, struct main_root, base);
	if (m->leave_a_sleeper) {
		struct afe_sleep sleep;
		afe_sleep_init(&sleep, 100 * 1000000u);
		afe_spawn(NULL, &sleep, NULL);
	}
	if (m->leave_a_task) {
		struct afe_pending p;
		afe_pending_init(&p);
		struct afe_join_handle h;
		afe_spawn(NULL, &p, &h);
		/* Keep a reference so the task stays alive: it never ends. */
	}
	f->result = m->status;
	return AFE_READY;
}

static int exit_status_of_run(intptr_t status, bool leave_a_task, bool leave_a_sleeper,
			      enum afe_exit_mode mode)
{
	pid_t pid = fork();
	cr_assert_geq(pid, 0);
	if (pid == 0) {
		struct main_root m = {.status = status, .leave_a_task = leave_a_task,
				      .leave_a_sleeper = leave_a_sleeper};
		afe_future_init(&m.base, main_root_poll);
		struct afe_runtime_config c;
		afe_runtime_config_default(&c);
		c.exit_mode = mode;
		c.grace_ms = 50;
		exit(afe_main_run(&m, sizeof(m), &m.base, &c));
	}
	int ws;
	cr_assert_eq(waitpid(pid, &ws, 0), pid);
	cr_assert(WIFEXITED(ws));
	return WEXITSTATUS(ws);
}

static int exit_status_of(intptr_t status, bool leave_a_task, enum afe_exit_mode mode)
{
	return exit_status_of_run(status, leave_a_task, false, mode);
}

Test(runtime, wait_all_mode_waits_for_detached_tasks)
{
	uint64_t start = afe_now_ns();
	cr_assert_eq(exit_status_of_run(7, false, true, AFE_EXIT_WAIT_ALL), 7);
	cr_assert_geq(afe_now_ns() - start, 100 * 1000000u, "the detached sleeper ran to its end");
}

Test(runtime, main_run_exits_with_the_root_status)
{
	cr_assert_eq(exit_status_of(0, false, AFE_EXIT_GRACE), 0);
	cr_assert_eq(exit_status_of(42, false, AFE_EXIT_GRACE), 42);
	cr_assert_eq(exit_status_of(-ENOENT, false, AFE_EXIT_GRACE), 1, "an -errno exits 1");
	cr_assert_eq(exit_status_of(1000, false, AFE_EXIT_GRACE), 1, "out of range exits 1");
	cr_assert_eq(exit_status_of(3, true, AFE_EXIT_GRACE), 3, "grace period ends");
	cr_assert_eq(exit_status_of(4, true, AFE_EXIT_IMMEDIATE), 4);
}

/* A task parked on a oneshot outlives its runtime: waking it and dropping
 * its (child) handle afterwards are safe, and free it. */
struct parked_on_oneshot {
	struct afe_future base;
	struct afe_oneshot *o;
	struct afe_oneshot_recv recv;
};

static int parked_on_oneshot_poll(struct afe_future *f, struct afe_context *cx)
{
	struct parked_on_oneshot *self = afe_container_of(f, struct parked_on_oneshot, base);
	AFE_ASYNC_BEGIN(f, cx);
	afe_oneshot_recv_init(&self->recv, self->o);
	AFE_AWAIT(&self->recv.base);
	AFE_RETURN(self->recv.base.result);
	AFE_ASYNC_END;
}

Test(runtime, waking_and_dropping_after_destroy_are_safe)
{
	struct afe_runtime *rt = test_runtime(2);
	static struct afe_oneshot o1, o2;
	afe_oneshot_init(&o1);
	afe_oneshot_init(&o2);
	struct parked_on_oneshot p1 = {.o = &o1}, p2 = {.o = &o2};
	afe_future_init(&p1.base, parked_on_oneshot_poll);
	afe_future_init(&p2.base, parked_on_oneshot_poll);
	struct afe_join_handle h1, h2;
	cr_assert_eq(afe_spawn(rt, &p1, &h1), 0);
	cr_assert_eq(afe_spawn_child(rt, &p2, &h2), 0);
	cr_assert_eq(afe_runtime_wait_idle(rt, 50), 2, "both wait on their oneshots");
	cr_assert_eq(afe_runtime_destroy(rt), 2);
	cr_assert_eq(afe_oneshot_send(&o1, 5), 0); /* the wake is refused: no queue */
	cr_assert_not(afe_join_handle_is_finished(&h1));
	afe_join_handle_drop(&h1);
	afe_join_handle_drop(&h2); /* a child: asks to cancel, refused the same way */
	cr_assert_eq(afe_oneshot_send(&o2, 6), 0);
}

/* A thread blocked in afe_block_on is released when another destroys the
 * runtime under it. */
static struct afe_runtime *doomed;
static atomic_int blocked_result = 1;

static void *block_forever(void *arg)
{
	(void)arg;
	struct afe_pending p;
	afe_pending_init(&p);
	intptr_t r = 0;
	atomic_store(&blocked_result, afe_block_on(doomed, &p, &r));
	return NULL;
}

Test(runtime, block_on_returns_eshutdown_when_the_runtime_is_destroyed)
{
	doomed = test_runtime(2);
	pthread_t t;
	cr_assert_eq(pthread_create(&t, NULL, block_forever, NULL), 0);
	for (int ms = 0; afe_runtime_wait_idle(doomed, 0) == 0; ms++) {
		cr_assert_lt(ms, 5000);
		usleep(1000);
	}
	cr_assert_eq(afe_runtime_destroy(doomed), 1);
	pthread_join(t, NULL);
	cr_assert_eq(atomic_load(&blocked_result), -ESHUTDOWN);
}

/* A detached task looping on an operation whose result it ignores
 * (issue 23): once destroy stopped the ring, a sleep, a read or a
 * blocking job polled was ready at once with -ESHUTDOWN, so the loop spun
 * inside one poll and destroy waited for it for ever. */
enum ignoring_loop_kind { LOOP_ON_SLEEP, LOOP_ON_READ, LOOP_ON_BLOCKING_JOB };

struct ignoring_loop {
	struct afe_future base;
	enum ignoring_loop_kind kind;
	int fd; /* a pipe's read end that never gets data */
	atomic_bool *started;
	struct afe_sleep nap;
	struct afe_io read;
	struct afe_blocking job;
	char byte;
	unsigned long rounds;
};

static intptr_t nap_briefly(void *arg)
{
	(void)arg;
	usleep(20000);
	return 0;
}

static int ignoring_loop_poll(struct afe_future *f, struct afe_context *cx)
{
	struct ignoring_loop *self = afe_container_of(f, struct ignoring_loop, base);
	AFE_ASYNC_BEGIN(f, cx);
	atomic_store(self->started, true);
	for (;;) {
		if (self->kind == LOOP_ON_SLEEP) {
			afe_sleep_init(&self->nap, 100 * 1000000u);
			AFE_AWAIT(&self->nap.base);
		} else if (self->kind == LOOP_ON_READ) {
			afe_io_read_init(&self->read, self->fd, &self->byte, 1, -1);
			AFE_AWAIT(&self->read.base);
		} else {
			afe_blocking_init(&self->job, nap_briefly, NULL);
			AFE_AWAIT(&self->job.base);
		}
		self->rounds++; /* the work; the result is ignored */
	}
	AFE_ASYNC_END;
}

#define LOOP_GRACE_MS 200

/* In a child: runs the loop as a detached task, tells the parent through
 * ready when destroy begins, and exits with what destroy returned. */
static void run_loop_then_destroy(enum ignoring_loop_kind kind, int ready)
{
	struct afe_runtime_config config;
	afe_runtime_config_default(&config);
	config.workers = 2;
	config.grace_ms = LOOP_GRACE_MS;
	struct afe_runtime *rt;
	if (afe_runtime_create(&rt, &config) != 0)
		_exit(100);
	int fds[2];
	if (pipe(fds) != 0)
		_exit(101);
	static atomic_bool started;
	struct ignoring_loop loop = {.kind = kind, .fd = fds[0], .started = &started};
	afe_future_init(&loop.base, ignoring_loop_poll);
	if (afe_spawn(rt, &loop, NULL) != 0)
		_exit(102);
	while (!atomic_load(&started))
		usleep(1000);
	usleep(150000); /* a round or two */
	if (write(ready, "d", 1) != 1)
		_exit(103);
	uint64_t start = afe_now_ns();
	int left = afe_runtime_destroy(rt);
	/* Timed here: the parent, starved on a loaded machine, may read the
	 * "d" late and so time destroy short. */
	uint64_t ms = (afe_now_ns() - start) / 1000000u;
	if (write(ready, &ms, sizeof(ms)) != sizeof(ms))
		_exit(105);
	_exit(left >= 0 && left < 100 ? left : 104);
}

/* Destroy's return value in the child and how long it took, or -1 when
 * it had not returned within the grace period and a second (the child is
 * then killed). */
struct destroy_outcome {
	int left;
	unsigned long long ms;
};

static struct destroy_outcome destroy_beside_an_ignoring_loop(enum ignoring_loop_kind kind)
{
	int ready[2];
	cr_assert_eq(pipe(ready), 0);
	pid_t pid = fork();
	cr_assert_geq(pid, 0);
	if (pid == 0) {
		close(ready[0]);
		run_loop_then_destroy(kind, ready[1]);
	}
	close(ready[1]);
	char c;
	cr_assert_eq(read(ready[0], &c, 1), 1, "the child reached destroy");
	uint64_t start = afe_now_ns();
	uint64_t deadline = start + (LOOP_GRACE_MS + 1000) * 1000000ull;
	int ws;
	pid_t got;
	while ((got = waitpid(pid, &ws, WNOHANG)) == 0 && afe_now_ns() < deadline)
		usleep(5000);
	struct destroy_outcome out = {.left = -1, .ms = (afe_now_ns() - start) / 1000000u};
	if (got == 0) {
		kill(pid, SIGKILL);
		cr_assert_eq(waitpid(pid, &ws, 0), pid);
		close(ready[0]);
		return out;
	}
	cr_assert_eq(got, pid);
	cr_assert(WIFEXITED(ws));
	out.left = WEXITSTATUS(ws);
	uint64_t ms;
	cr_assert_eq(read(ready[0], &ms, sizeof(ms)), (ssize_t)sizeof(ms), "destroy's time");
	close(ready[0]);
	out.ms = ms;
	return out;
}

#define assert_destroy_returns_beside(kind)                                            \
	do {                                                                           \
		struct destroy_outcome o = destroy_beside_an_ignoring_loop(kind);      \
		cr_assert_eq(o.left, 1, "destroy gave %d after %llu ms (-1: still "    \
			     "running after grace + 1 s, killed); want 1 task left",   \
			     o.left, o.ms);                                            \
		cr_assert_geq(o.ms, LOOP_GRACE_MS, "the task had its grace period");   \
	} while (0)

Test(runtime, destroy_returns_after_the_grace_beside_a_loop_ignoring_its_sleeps)
{
	assert_destroy_returns_beside(LOOP_ON_SLEEP);
}

Test(runtime, destroy_returns_after_the_grace_beside_a_loop_ignoring_its_reads)
{
	assert_destroy_returns_beside(LOOP_ON_READ);
}

Test(runtime, destroy_returns_after_the_grace_beside_a_loop_ignoring_its_jobs)
{
	assert_destroy_returns_beside(LOOP_ON_BLOCKING_JOB);
}
