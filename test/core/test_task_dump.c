/* SPDX-License-Identifier: MIT */
/* The task dump: afe_runtime_dump_tasks, config.task_dump and
 * $AFE_TASK_DUMP, and the dump on a signal (afe_task_dump_watch, alone
 * and through AFE_MAIN's config.task_dump_signal). */
#include <fcntl.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "helpers.h"

static struct afe_runtime *runtime_dumping(bool on)
{
	struct afe_runtime_config config;
	afe_runtime_config_default(&config);
	config.workers = 2;
	config.task_dump = on;
	struct afe_runtime *rt = NULL;
	cr_assert_eq(afe_runtime_create(&rt, &config), 0);
	return rt;
}

/* Yields `rounds` times, holding its thread spin_us before each, then
 * waits for the notify. */
struct waiter {
	struct afe_future base;
	struct afe_notify *notify;
	int rounds, i, spin_us;
	struct afe_notified wait;
};

static uint64_t now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* A poll that holds its thread for ns. */
static void busy(uint64_t ns)
{
	for (uint64_t until = now_ns() + ns; now_ns() < until;)
		;
}

static int waiter_poll(struct afe_future *f, struct afe_context *cx)
{
	struct waiter *self = afe_container_of(f, struct waiter, base);
	AFE_ASYNC_BEGIN(f, cx);
	for (self->i = 0; self->i < self->rounds; self->i++) {
		busy((uint64_t)self->spin_us * 1000u);
		AFE_YIELD();
	}
	afe_notified_init(&self->wait, self->notify);
	AFE_AWAIT(&self->wait.base);
	AFE_ASYNC_END;
}

static struct waiter waiter_make(struct afe_notify *n, int rounds)
{
	struct waiter w = {.notify = n, .rounds = rounds};
	afe_future_init(&w.base, waiter_poll);
	return w;
}

/* The dump of rt, read back through a pipe into buf. */
static int dump_into(struct afe_runtime *rt, char *buf, size_t size)
{
	int p[2];
	cr_assert_eq(pipe(p), 0);
	int n = afe_runtime_dump_tasks(rt, p[1]);
	close(p[1]);
	ssize_t got = read(p[0], buf, size - 1);
	buf[got > 0 ? got : 0] = 0;
	close(p[0]);
	return n;
}

static void pause_ms(long ms)
{
	struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = ms % 1000 * 1000000L};
	nanosleep(&ts, NULL);
}

static int count_of(const char *text, const char *word)
{
	int n = 0;
	for (const char *at = text; (at = strstr(at, word)) != NULL; at++)
		n++;
	return n;
}

/* Dumps rt into buf until `want` tasks are in state (" waiting,"); a
 * hang fails after 10 s. Returns the dump's count. */
static int dump_when(struct afe_runtime *rt, char *buf, size_t size, const char *state, int want)
{
	int n = dump_into(rt, buf, size);
	for (int tries = 0; count_of(buf, state) != want && tries < 1000; tries++) {
		pause_ms(10);
		n = dump_into(rt, buf, size);
	}
	return n;
}

/* Whether word is in the line that starts at line. */
static bool in_line(const char *line, const char *word)
{
	const char *at = line ? strstr(line, word) : NULL, *end = line ? strchr(line, '\n') : NULL;
	return at && (!end || at < end);
}

/* The line of the task named name in a dump, or NULL. */
static const char *line_of(const char *dump, const char *name)
{
	char quoted[48];
	snprintf(quoted, sizeof(quoted), "\"%s\"", name);
	return strstr(dump, quoted);
}

/* Spawns w named name: one spawn site, whoever calls it (not inlined, so
 * that no compiler makes one call per caller). */
static __attribute__((noinline)) void spawn_named(struct afe_runtime *rt, struct waiter *w,
						 struct afe_join_handle *h, const char *name)
{
	struct afe_spawn_options opts = {.name = name};
	cr_assert_eq(afe_spawn_with(rt, w, h, &opts), 0);
}

enum { SPUN_POLLS = 2560, SPIN_US = 20 };

/* A task polled 2,561 times, each poll holding its thread 20 us: one in
 * 128 is timed (the 64th, 192nd, ...: 20), and their time is at least
 * 20 us each. */
Test(task_dump, times_one_poll_in_128_and_what_they_took, .timeout = 20)
{
	struct afe_runtime *rt = runtime_dumping(true);
	struct afe_notify go;
	afe_notify_init(&go);
	struct afe_join_handle h;
	struct waiter w = waiter_make(&go, SPUN_POLLS);
	w.spin_us = SPIN_US;
	spawn_named(rt, &w, &h, "spinner");
	char dump[4096];
	cr_assert_eq(dump_when(rt, dump, sizeof(dump), " waiting,", 1), 1, "%s", dump);
	const char *line = line_of(dump, "spinner");
	unsigned long long polls = 0, timed = 0, us = 0;
	cr_assert_eq(sscanf(strstr(line, " ms, ") + 5, "%llu polls (%llu timed, taking %llu us)",
			    &polls, &timed, &us),
		     3, "%s", dump);
	cr_assert_eq(polls, SPUN_POLLS + 1, "%s", dump);
	cr_assert_eq(timed, 20, "%s", dump);
	cr_assert_geq(us, timed * (SPIN_US - 1), "%s", dump);
	cr_assert_eq(afe_notify_all(&go), 1);
	struct afe_join join;
	afe_join_init(&join, &h);
	cr_assert_eq(test_block_on(rt, &join), 0);
	test_runtime_destroy(rt);
}

Test(task_dump, lists_each_live_task_with_its_name_state_polls_and_poll_time, .timeout = 20)
{
	struct afe_runtime *rt = runtime_dumping(true);
	struct afe_notify go;
	afe_notify_init(&go);
	struct afe_join_handle h[3];
	const char *names[] = {"first", "second"};
	for (int i = 0; i < 2; i++) {
		struct waiter w = waiter_make(&go, 5 * i);
		spawn_named(rt, &w, &h[i], names[i]);
	}
	struct waiter plain = waiter_make(&go, 0);
	cr_assert_eq(afe_spawn(rt, &plain, &h[2]), 0);
	char dump[4096];
	cr_assert_eq(dump_when(rt, dump, sizeof(dump), " waiting,", 3), 3, "%s", dump);
	cr_assert(strstr(dump, "afe: 3 live task(s)\n"), "%s", dump);
	const char *first = line_of(dump, "first"), *second = line_of(dump, "second");
	cr_assert(first && second && line_of(dump, "(unnamed)"), "%s", dump);
	cr_assert(strncmp(first, "\"first\" waiting, age ", 21) == 0, "%s", dump);
	cr_assert(in_line(first, ", 1 polls ("), "%s", dump);
	cr_assert(in_line(second, ", 6 polls ("), "%s", dump);
	cr_assert(in_line(first, "poll function 0x"), "%s", dump);
	/* Where each was spawned: the two spawned by spawn_named say the
	 * same address, the third another. */
	void *at[3] = {0};
	const char *lines[3] = {first, second, line_of(dump, "(unnamed)")};
	for (int i = 0; i < 3; i++)
		cr_assert_eq(sscanf(strstr(lines[i], "spawned at ") + 11, "%p", &at[i]), 1, "%s", dump);
	cr_assert(at[0] && at[0] == at[1] && at[2] && at[2] != at[0], "%s", dump);

	/* Finished with their handles held: listed as complete until freed. */
	cr_assert_eq(afe_notify_all(&go), 3);
	cr_assert_eq(dump_when(rt, dump, sizeof(dump), " complete,", 3), 3, "%s", dump);
	cr_assert(in_line(line_of(dump, "first"), "\"first\" complete"), "%s", dump);
	for (int i = 0; i < 3; i++) {
		struct afe_join join;
		afe_join_init(&join, &h[i]);
		cr_assert_eq(test_block_on(rt, &join), 0);
	}
	/* Each is freed when its last reference goes, on a worker, maybe
	 * just after its join returned (block_on's own task too). */
	for (int tries = 0; dump_into(rt, dump, sizeof(dump)) > 0 && tries < 200; tries++)
		pause_ms(10);
	cr_assert(strstr(dump, "afe: 0 live task(s)\n"), "%s", dump);
	afe_notify_destroy(&go);
	test_runtime_destroy(rt);
}

enum { MANY = 5000 }; /* runs of 64 blocks: many of them */

/* Spawns MANY waiters on go into h and waits until all wait. */
static void spawn_many(struct afe_runtime *rt, struct afe_notify *go, struct afe_join_handle *h,
		       int null_fd)
{
	for (int i = 0; i < MANY; i++) {
		struct waiter w = waiter_make(go, 0);
		cr_assert_eq(afe_spawn(rt, &w, &h[i]), 0);
	}
	int listed = afe_runtime_dump_tasks(rt, null_fd);
	for (int tries = 0; listed != MANY && tries < 1000; tries++) {
		pause_ms(10);
		listed = afe_runtime_dump_tasks(rt, null_fd);
	}
	cr_assert_eq(listed, MANY);
}

static void finish_many(struct afe_runtime *rt, struct afe_notify *go, struct afe_join_handle *h)
{
	while (afe_notify_all(go) > 0) /* any not waiting yet are told on the next round */
		pause_ms(1);
	for (int i = 0; i < MANY; i++) {
		struct afe_join join;
		afe_join_init(&join, &h[i]);
		cr_assert_eq(test_block_on(rt, &join), 0);
	}
}

Test(task_dump, lists_thousands_of_tasks_and_none_once_freed, .timeout = 60)
{
	struct afe_runtime *rt = runtime_dumping(true);
	int null_fd = open("/dev/null", O_WRONLY | O_CLOEXEC);
	cr_assert_geq(null_fd, 0);
	struct afe_notify go;
	afe_notify_init(&go);
	static struct afe_join_handle h[MANY];
	for (int round = 0; round < 2; round++) {
		spawn_many(rt, &go, h, null_fd);
		finish_many(rt, &go, h);
		/* A task's last reference may drop on a worker just after. */
		int left = afe_runtime_dump_tasks(rt, null_fd);
		for (int tries = 0; left != 0 && tries < 1000; tries++) {
			pause_ms(1);
			left = afe_runtime_dump_tasks(rt, null_fd);
		}
		cr_assert_eq(left, 0, "round %d", round);
	}
	close(null_fd);
	test_runtime_destroy(rt);
}

/* The age in ms of the task named name in dump (-1: not found). */
static long age_of(const char *dump, const char *name)
{
	const char *line = line_of(dump, name);
	const char *at = line ? strstr(line, ", age ") : NULL;
	return at ? strtol(at + 6, NULL, 10) : -1;
}

/* Two spawns from outside any task, 300 ms apart: each task's age is
 * its own (a clock reading is kept only within one task's poll). */
Test(task_dump, tasks_spawned_apart_have_their_own_ages, .timeout = 20)
{
	struct afe_runtime *rt = runtime_dumping(true);
	struct afe_notify go;
	afe_notify_init(&go);
	struct afe_join_handle h[2];
	struct waiter w = waiter_make(&go, 0);
	spawn_named(rt, &w, &h[0], "older");
	pause_ms(300);
	spawn_named(rt, &w, &h[1], "younger");
	char dump[4096];
	cr_assert_eq(dump_when(rt, dump, sizeof(dump), " waiting,", 2), 2, "%s", dump);
	long older = age_of(dump, "older"), younger = age_of(dump, "younger");
	cr_assert(younger >= 0 && older >= younger + 250, "%s", dump);
	cr_assert_eq(afe_notify_all(&go), 2);
	for (int i = 0; i < 2; i++) {
		struct afe_join join;
		afe_join_init(&join, &h[i]);
		cr_assert_eq(test_block_on(rt, &join), 0);
	}
	afe_notify_destroy(&go);
	test_runtime_destroy(rt);
}

/* A future too large for the allocator's size classes (from malloc, on
 * a list of their own): listed all the same. */
struct big_waiter {
	struct waiter w;
	char ballast[4096];
};

/* The allocator serves every runtime of the process: a dump lists its
 * own runtime's tasks only, and large ones too. */
Test(task_dump, lists_its_own_runtimes_tasks_only_large_ones_too, .timeout = 20)
{
	struct afe_runtime *mine = runtime_dumping(true), *other = runtime_dumping(true);
	struct afe_notify go;
	afe_notify_init(&go);
	struct afe_join_handle h[3];
	struct waiter w = waiter_make(&go, 0);
	spawn_named(mine, &w, &h[0], "mine");
	spawn_named(other, &w, &h[1], "other's");
	struct big_waiter big = {.w = waiter_make(&go, 0)};
	struct afe_spawn_options opts = {.name = "large"};
	cr_assert_eq(afe_spawn_with_raw(mine, &big, sizeof(big), &big.w.base, &h[2], &opts), 0);
	char dump[4096];
	cr_assert_eq(dump_when(mine, dump, sizeof(dump), " waiting,", 2), 2, "%s", dump);
	cr_assert(line_of(dump, "mine") && line_of(dump, "large"), "%s", dump);
	cr_assert_null(line_of(dump, "other's"), "%s", dump);
	cr_assert_eq(dump_when(other, dump, sizeof(dump), " waiting,", 1), 1, "%s", dump);
	cr_assert(line_of(dump, "other's"), "%s", dump);
	cr_assert_eq(afe_notify_all(&go), 3);
	struct afe_runtime *of[3] = {mine, other, mine};
	for (int i = 0; i < 3; i++) {
		struct afe_join join;
		afe_join_init(&join, &h[i]);
		cr_assert_eq(test_block_on(of[i], &join), 0);
	}
	afe_notify_destroy(&go);
	test_runtime_destroy(mine);
	test_runtime_destroy(other);
}

/* Spawns waves of CHURN_WAVE tasks that yield once and end, and joins
 * each wave, until *stop. */
enum { CHURN_WAVE = 256 };
struct churn {
	struct afe_future base;
	atomic_bool *stop;
	int i;
	atomic_long *waves;
	struct afe_join_handle h[CHURN_WAVE];
	struct afe_join join;
};

static int churn_poll(struct afe_future *f, struct afe_context *cx)
{
	struct churn *self = afe_container_of(f, struct churn, base);
	AFE_ASYNC_BEGIN(f, cx);
	while (!atomic_load(self->stop)) {
		for (self->i = 0; self->i < CHURN_WAVE; self->i++) {
			struct afe_yield_now y; /* pending once, then done */
			afe_yield_now_init(&y);
			if (afe_spawn(NULL, &y, &self->h[self->i]) < 0)
				AFE_RETURN(-ENOMEM);
		}
		for (self->i = 0; self->i < CHURN_WAVE; self->i++) {
			afe_join_init(&self->join, &self->h[self->i]);
			AFE_AWAIT(&self->join.base);
		}
		atomic_fetch_add(self->waves, 1);
	}
	AFE_RETURN(0);
	AFE_ASYNC_END;
}

/* Tasks spawned and freed on both workers while another thread dumps,
 * over and over: each dump takes a reference on every live task it
 * finds and gives it back, so none is freed under it or kept alive
 * after (ThreadSanitizer and AddressSanitizer watch the blocks). */
Test(task_dump, dumps_while_tasks_are_spawned_and_freed, .timeout = 60)
{
	struct afe_runtime *rt = runtime_dumping(true);
	int null_fd = open("/dev/null", O_WRONLY | O_CLOEXEC);
	cr_assert_geq(null_fd, 0);
	atomic_bool stop = false;
	atomic_long waves = 0;
	struct churn c = {.stop = &stop, .waves = &waves};
	afe_future_init(&c.base, churn_poll);
	struct afe_join_handle h;
	cr_assert_eq(afe_spawn(rt, &c, &h), 0);
	/* At least 300 dumps and 5 waves, and until a dump caught a wave
	 * (on a loaded machine this thread may sleep through several), for
	 * at most 10 s. */
	int most = 0;
	uint64_t until = now_ns() + 10 * 1000000000ull;
	for (int i = 0; i < 300 || ((atomic_load(&waves) < 5 || most <= 1) && now_ns() < until);
	     i++) {
		int n = afe_runtime_dump_tasks(rt, null_fd);
		cr_assert_geq(n, 0);
		most = n > most ? n : most;
	}
	atomic_store(&stop, true);
	struct afe_join join;
	afe_join_init(&join, &h);
	cr_assert_eq(test_block_on(rt, &join), 0);
	cr_assert_geq(atomic_load(&waves), 5);
	cr_assert_gt(most, 1, "the dumps saw the waves (most %d, waves %ld)", most, (long)atomic_load(&waves));
	/* A wave and the root; and a task of the wave before, joined, whose
	 * worker had not yet let go of its queue's reference (a worker
	 * preempted between completing it and that release), one per worker
	 * at most: on a loaded machine a dump caught one. */
	cr_assert_leq(most, CHURN_WAVE + 1 + 2,
		      "no task beyond a wave, the root and two finishing (most %d)", most);
	int left = afe_runtime_dump_tasks(rt, null_fd);
	for (int tries = 0; left != 0 && tries < 1000; tries++) {
		pause_ms(1);
		left = afe_runtime_dump_tasks(rt, null_fd);
	}
	cr_assert_eq(left, 0, "every reference a dump took was given back");
	close(null_fd);
	test_runtime_destroy(rt);
}

Test(task_dump, says_why_it_cannot)
{
	cr_assert_eq(afe_runtime_dump_tasks(NULL, STDERR_FILENO), -EINVAL);
	struct afe_runtime *rt = runtime_dumping(false);
	cr_assert_eq(afe_runtime_dump_tasks(rt, -1), -EINVAL);
	cr_assert_eq(afe_runtime_dump_tasks(rt, STDERR_FILENO), -EOPNOTSUPP);
	test_runtime_destroy(rt);
	rt = runtime_dumping(true);
	cr_assert_eq(afe_runtime_dump_tasks(rt, 1000000), -EBADF);
	test_runtime_destroy(rt);
}

Test(task_dump, the_environment_turns_it_on)
{
	struct afe_runtime_config config;
	setenv("AFE_TASK_DUMP", "1", 1);
	afe_runtime_config_default(&config);
	cr_assert(config.task_dump);
	cr_assert_eq(config.task_dump_signal, 0);
	setenv("AFE_TASK_DUMP", "10", 1);
	afe_runtime_config_default(&config);
	cr_assert(config.task_dump);
	cr_assert_eq(config.task_dump_signal, 10);
	setenv("AFE_TASK_DUMP", "soon", 1); /* ignored, with a line on stderr */
	afe_runtime_config_default(&config);
	cr_assert(!config.task_dump);
	unsetenv("AFE_TASK_DUMP");
	afe_runtime_config_default(&config);
	cr_assert(!config.task_dump);
	cr_assert_eq(config.task_dump_signal, 0);
}

/* AFE_MAIN's program with task_dump_signal: the root signals itself, and
 * its task (and the watch's) are dumped on stderr. */
struct signals_itself {
	struct afe_future base;
	struct afe_sleep nap;
};

static int signals_itself_poll(struct afe_future *f, struct afe_context *cx)
{
	struct signals_itself *self = afe_container_of(f, struct signals_itself, base);
	AFE_ASYNC_BEGIN(f, cx);
	kill(getpid(), SIGUSR1);
	afe_sleep_init(&self->nap, 200 * 1000000u);
	AFE_AWAIT(&self->nap.base);
	AFE_RETURN(7);
	AFE_ASYNC_END;
}

static void main_with_dump_signal(void)
{
	struct afe_runtime_config config;
	afe_runtime_config_default(&config);
	config.workers = 2;
	config.task_dump_signal = SIGUSR1;
	struct signals_itself root;
	afe_future_init(&root.base, signals_itself_poll);
	_exit(afe_main_run(&root, sizeof(root), &root.base, &config));
}

Test(task_dump, afe_main_dumps_on_the_signal_it_was_given, .timeout = 20)
{
	char said[4096];
	int status = test_child_stderr(main_with_dump_signal, said, sizeof(said));
	cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 7, "status %#x: %s", status, said);
	cr_assert(strstr(said, "live task(s)\n"), "%s", said);
	cr_assert(strstr(said, " running, age "), "%s", said); /* the watch itself */
}

/* Reads what fd has until text has come (or 5 s have passed) into buf,
 * appending after its first *len bytes. */
static void read_until(int fd, char *buf, size_t size, size_t *len, const char *text, int count)
{
	for (int waited = 0; waited < 5000 && count_of(buf, text) < count; waited++) {
		ssize_t got = read(fd, buf + *len, size - 1 - *len);
		if (got > 0)
			*len += (size_t)got;
		buf[*len] = 0;
		if (got <= 0)
			pause_ms(1);
	}
}

Test(task_dump, a_watch_dumps_each_time_its_signal_comes_until_cancelled, .timeout = 20)
{
	cr_assert_eq(afe_signal_block(SIGUSR2), 0);
	int err[2], saved = dup(STDERR_FILENO);
	cr_assert_eq(pipe(err), 0);
	cr_assert_eq(fcntl(err[0], F_SETFL, O_NONBLOCK), 0);
	cr_assert_eq(dup2(err[1], STDERR_FILENO), STDERR_FILENO);
	struct afe_runtime *rt = runtime_dumping(true);
	struct afe_task_dump_watch w;
	afe_task_dump_watch_init(&w, SIGUSR2);
	struct afe_join_handle h;
	cr_assert_eq(afe_spawn(rt, &w, &h), 0);
	static char said[16384];
	size_t len = 0;
	for (int i = 1; i <= 2; i++) { /* one signal at a time: pending ones merge */
		cr_assert_eq(kill(getpid(), SIGUSR2), 0);
		read_until(err[0], said, sizeof(said), &len, "live task(s)\n", i);
	}
	struct afe_cancel cancel;
	cr_assert_eq(afe_cancel_init(&cancel, &h), 0);
	intptr_t result = test_block_on(rt, &cancel);
	test_runtime_destroy(rt);
	dup2(saved, STDERR_FILENO);
	close(saved);
	close(err[0]);
	close(err[1]);
	cr_assert_eq(count_of(said, "live task(s)\n"), 2, "%s", said);
	cr_assert(strstr(said, " running, age "), "the watch itself: %s", said);
	cr_assert_eq(result, -ECANCELED);
}

Test(task_dump, a_watch_on_a_signal_it_cannot_take_ends_with_einval)
{
	struct afe_runtime *rt = runtime_dumping(true);
	const int refused[] = {0, SIGKILL, SIGSTOP, 1000};
	for (unsigned i = 0; i < sizeof(refused) / sizeof(refused[0]); i++) {
		struct afe_task_dump_watch w;
		afe_task_dump_watch_init(&w, refused[i]);
		cr_assert_eq(test_block_on(rt, &w), -EINVAL, "signal %d", refused[i]);
	}
	test_runtime_destroy(rt);
}
