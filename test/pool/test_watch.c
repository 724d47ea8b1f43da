/* SPDX-License-Identifier: MIT */
/*
 * Watches: a task waiting for a futex word, slept on by a parked worker
 * or handed to the ring while the workers are busy, or to a futex thread
 * where neither may wait. Ping-pong with a
 * plain thread hunts lost wakes on both paths.
 */
#include <criterion/criterion.h>
#include <linux/futex.h>
#include <pthread.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "helpers.h"
#include "pool/watch.h"
#include "src/core/runtime_internal.h"

static void word_wake(_Atomic uint32_t *word)
{
	syscall(SYS_futex, word, FUTEX_WAKE_PRIVATE, 1, NULL, NULL, 0);
}

/* Awaits one watch of word for value, and gives its result. */
struct watch_once {
	struct afe_future base;
	_Atomic uint32_t *word;
	uint32_t value;
	_Atomic bool *started;
	_Atomic uint32_t *sleep_flags; /* if set: afe_watch_flag_sleep, bit 1 */
	_Atomic unsigned *ended;       /* if set: counts the ends */
	struct afe_watch watch;
};

static int watch_once_poll(struct afe_future *f, struct afe_context *cx)
{
	struct watch_once *self = afe_container_of(f, struct watch_once, base);
	AFE_ASYNC_BEGIN(f, cx);
	afe_watch_init(&self->watch, self->word, self->value, AFE_FUTEX_PRIVATE);
	if (self->sleep_flags)
		afe_watch_flag_sleep(&self->watch, self->sleep_flags, 1);
	if (self->started)
		atomic_store(self->started, true);
	AFE_AWAIT(&self->watch.base);
	if (self->ended)
		atomic_fetch_add(self->ended, 1);
	AFE_RETURN(self->watch.base.result);
	AFE_ASYNC_END;
}

static struct afe_runtime *quiet_runtime(unsigned workers)
{
	return test_runtime_spinning(workers, 0); /* park at once: a parked worker holds the watch */
}

/* Parked workers hold watches only with futex_waitv (5.16; not under
 * AFE_URING_FEATURES=5.15). */
static void skip_without_waitv(struct afe_runtime *rt)
{
	if (rt->pool.watches.usable)
		return;
	test_runtime_destroy(rt);
	cr_skip_test("no futex_waitv here: parked workers do not hold watches");
}

/* A runtime whose watches all sleep on futex threads: no worker holds
 * them (as without futex_waitv) and its backend cannot wait on a futex
 * (epoll here; io_uring before 6.7 likewise). */
static struct afe_runtime *futex_thread_runtime(unsigned workers)
{
	struct afe_runtime_config config;
	afe_runtime_config_default(&config);
	config.workers = workers;
	config.spin_us = 0;
	config.backend = AFE_BACKEND_EPOLL;
	config.quiet_fallback = true;
	struct afe_runtime *rt = NULL;
	cr_assert_eq(afe_runtime_create(&rt, &config), 0);
	rt->pool.watches.usable = false; /* before any task: spawning publishes it */
	return rt;
}

/* The futex threads asleep for rt's watches, and the threads alive. */
static unsigned watches_on_threads(struct afe_runtime *rt, unsigned *threads)
{
	unsigned n = 0;
	pthread_mutex_lock(&rt->pool.watches.lock);
	for (struct afe_watch *w = rt->pool.watches.on_threads.head; w; w = w->next)
		n++;
	pthread_mutex_unlock(&rt->pool.watches.lock);
	pthread_mutex_lock(&rt->pool.watches.threads.lock);
	*threads = rt->pool.watches.threads.threads;
	pthread_mutex_unlock(&rt->pool.watches.threads.lock);
	return n;
}

static uint64_t process_cpu_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

Test(watch, a_word_that_already_changed_ends_the_watch_at_once)
{
	struct afe_runtime *rt = quiet_runtime(1);
	static _Atomic uint32_t word = 5;
	struct watch_once w = {.word = &word, .value = 4};
	afe_future_init(&w.base, watch_once_poll);
	cr_assert_eq(test_block_on(rt, &w), 0);
	test_runtime_destroy(rt);
}

/* Changes the word and wakes it once the watcher started and a parked
 * worker had time to take the watch. */
struct changer {
	_Atomic uint32_t *word;
	_Atomic bool *started;
};

static void *change_later(void *arg)
{
	struct changer *c = arg;
	while (!atomic_load(c->started))
		sched_yield();
	usleep(20 * 1000);
	atomic_fetch_add(c->word, 1);
	word_wake(c->word);
	return NULL;
}

Test(watch, a_parked_worker_wakes_the_task_when_the_word_is_woken)
{
	struct afe_runtime *rt = quiet_runtime(1);
	skip_without_waitv(rt);
	static _Atomic uint32_t word = 0;
	static _Atomic bool started = false;
	struct changer c = {&word, &started};
	pthread_t thread;
	cr_assert_eq(pthread_create(&thread, NULL, change_later, &c), 0);
	struct watch_once w = {.word = &word, .value = 0, .started = &started};
	afe_future_init(&w.base, watch_once_poll);
	cr_assert_eq(test_block_on(rt, &w), 0);
	pthread_join(thread, NULL);
	test_runtime_destroy(rt);
}

/* Keeps its worker busy for 100 ms, the word changing in the middle;
 * ends 0 when no watch was listed then (the watch had gone to the ring). */
struct busy {
	struct afe_future base;
	struct afe_runtime *rt;
	_Atomic bool *running;
};

static int busy_poll(struct afe_future *f, struct afe_context *cx)
{
	struct busy *self = afe_container_of(f, struct busy, base);
	(void)cx;
	atomic_store(self->running, true);
	uint64_t deadline = afe_now_ns() + 100000000ull;
	while (afe_now_ns() < deadline)
		;
	pthread_mutex_lock(&self->rt->pool.watches.lock);
	f->result = self->rt->pool.watches.listed.head == NULL ? 0 : -EBUSY;
	pthread_mutex_unlock(&self->rt->pool.watches.lock);
	return AFE_READY;
}

/* Waits up to 5 s for bit 1 in flags. */
static bool flagged_soon(_Atomic uint32_t *flags)
{
	for (int i = 0; i < 5000 && !(atomic_load(flags) & 1); i++)
		usleep(1000);
	return atomic_load(flags) & 1;
}

/* Also: each thread that sleeps in the kernel for a flagged watch (the
 * parked worker, then the ring) flags itself first. */
Test(watch, a_worker_that_gets_busy_hands_its_watch_to_the_ring)
{
	struct afe_runtime *rt = quiet_runtime(1);
	skip_without_waitv(rt);
	static _Atomic uint32_t word = 0, flags = 0;
	static _Atomic bool started = false, running = false;
	struct watch_once w = {.word = &word, .value = 0, .started = &started,
			       .sleep_flags = &flags};
	afe_future_init(&w.base, watch_once_poll);
	struct afe_join_handle watcher;
	cr_assert_eq(afe_spawn(rt, &w, &watcher), 0);
	while (!atomic_load(&started))
		sched_yield();
	/* The worker parks, holding the watch. */
	cr_assert(flagged_soon(&flags), "the parked worker flagged its sleep");
	usleep(10 * 1000); /* the watch is older than AFE_WATCH_BUSY_NS */
	atomic_store(&flags, 0);
	struct busy b = {.rt = rt, .running = &running};
	afe_future_init(&b.base, busy_poll);
	struct afe_join_handle busy_handle;
	cr_assert_eq(afe_spawn(rt, &b, &busy_handle), 0);
	while (!atomic_load(&running))
		sched_yield();
	/* Handed to the ring before the busy task ran. */
	cr_assert(atomic_load(&flags) & 1, "the ring's wait was flagged");
	usleep(20 * 1000);
	atomic_fetch_add(&word, 1);
	word_wake(&word); /* meets the ring's wait: the worker is busy */
	struct afe_join j;
	afe_join_init(&j, &busy_handle);
	cr_assert_eq(test_block_on(rt, &j), 0, "the watch was on the ring while the worker was busy");
	afe_join_init(&j, &watcher);
	cr_assert_eq(test_block_on(rt, &j), 0);
	test_runtime_destroy(rt);
}

/* A watch no worker may hold (as without futex_waitv) goes to the ring at
 * its first poll, flagged; a waker that wakes only flagged sleepers, as a
 * bell does, ends it. */
Test(watch, a_watch_that_goes_to_the_ring_at_once_flags_its_sleep)
{
	struct afe_runtime *rt = quiet_runtime(1);
	rt->pool.watches.usable = false; /* before any task: spawning publishes it */
	static _Atomic uint32_t word = 0, flags = 0;
	static _Atomic bool started = false;
	struct watch_once w = {.word = &word, .value = 0, .started = &started,
			       .sleep_flags = &flags};
	afe_future_init(&w.base, watch_once_poll);
	struct afe_join_handle watcher;
	cr_assert_eq(afe_spawn(rt, &w, &watcher), 0);
	bool flagged = flagged_soon(&flags);
	atomic_fetch_add(&word, 1);
	if ((atomic_exchange(&flags, 0) & 1) || !flagged) /* unflagged: end the test */
		word_wake(&word);
	struct afe_join j;
	afe_join_init(&j, &watcher);
	cr_assert_eq(test_block_on(rt, &j), 0);
	cr_assert(flagged, "the ring's wait was flagged");
	test_runtime_destroy(rt);
}

/* A parked worker sleeps on AFE_WATCH_MAX_HELD words at most: it hands
 * the other watches to the ring, so every watch still ends when its word
 * is woken. */
Test(watch, more_watches_than_a_parked_worker_holds_all_end)
{
	enum { N = AFE_WATCH_MAX_HELD + 5 };
	struct afe_runtime *rt = quiet_runtime(1);
	static _Atomic uint32_t words[N];
	static _Atomic bool started[N];
	static _Atomic unsigned ended;
	struct afe_join_handle handles[N];
	for (unsigned i = 0; i < N; i++) {
		struct watch_once w = {.word = &words[i], .value = 0, .started = &started[i],
				       .ended = &ended};
		afe_future_init(&w.base, watch_once_poll);
		cr_assert_eq(afe_spawn(rt, &w, &handles[i]), 0);
	}
	for (unsigned i = 0; i < N; i++)
		while (!atomic_load(&started[i]))
			sched_yield();
	/* One word at a time, the worker parked again before each: waking
	 * any held word would let it look at every word. */
	for (unsigned i = 0; i < N; i++) {
		usleep(10 * 1000); /* the worker parks */
		atomic_fetch_add(&words[i], 1);
		word_wake(&words[i]);
		for (int ms = 0; ms < 2000 && atomic_load(&ended) <= i; ms++)
			usleep(1000);
		if (atomic_load(&ended) <= i)
			break;
	}
	unsigned seen = atomic_load(&ended);
	test_runtime_destroy(rt); /* ends any watch left waiting */
	for (unsigned i = 0; i < N; i++)
		afe_join_handle_drop(&handles[i]);
	cr_assert_eq(seen, N, "%u of %u watches ended", seen, (unsigned)N);
}

Test(watch, cancelling_a_held_watch_ends_it_with_ecanceled)
{
	struct afe_runtime *rt = quiet_runtime(1);
	static _Atomic uint32_t word = 0;
	static _Atomic bool started = false;
	struct watch_once w = {.word = &word, .value = 0, .started = &started};
	afe_future_init(&w.base, watch_once_poll);
	intptr_t r = test_spawn_then_cancel(rt, &w, &started);
	cr_assert_eq(r, -ECANCELED);
	test_runtime_destroy(rt);
}

Test(watch, destroying_the_runtime_ends_a_waiting_watch)
{
	struct afe_runtime *rt = quiet_runtime(2);
	static _Atomic uint32_t word = 0;
	static _Atomic bool started = false;
	struct watch_once w = {.word = &word, .value = 0, .started = &started};
	afe_future_init(&w.base, watch_once_poll);
	struct afe_join_handle h;
	cr_assert_eq(afe_spawn(rt, &w, &h), 0);
	while (!atomic_load(&started))
		sched_yield();
	usleep(10 * 1000);
	cr_assert_eq(afe_runtime_destroy(rt), 0, "the watch ended, and its task with it");
	afe_join_handle_drop(&h);
}

/* ---- without a kernel that lets the ring or a worker wait: futex threads -- */

/* The watch sleeps on a futex thread, which uses no CPU while it waits
 * (no polling of the word), and wakes the task when the word is woken. */
Test(watch_thread, a_watch_sleeps_on_a_futex_thread_until_its_word_is_woken)
{
	struct afe_runtime *rt = futex_thread_runtime(1);
	static _Atomic uint32_t word = 0;
	static _Atomic bool started = false;
	struct watch_once w = {.word = &word, .value = 0, .started = &started};
	afe_future_init(&w.base, watch_once_poll);
	struct afe_join_handle watcher;
	cr_assert_eq(afe_spawn(rt, &w, &watcher), 0);
	while (!atomic_load(&started))
		sched_yield();
	usleep(20 * 1000); /* the thread is asleep */
	unsigned threads = 0;
	cr_assert_eq(watches_on_threads(rt, &threads), 1);
	cr_assert_eq(threads, 1);
	/* Half a second asleep: a thread that polled the word, or a task
	 * that looped on an error, would take most of it. */
	uint64_t cpu = process_cpu_ns();
	usleep(500 * 1000);
	cpu = process_cpu_ns() - cpu;
	atomic_fetch_add(&word, 1);
	word_wake(&word);
	struct afe_join j;
	afe_join_init(&j, &watcher);
	cr_assert_eq(test_block_on(rt, &j), 0);
	cr_assert_eq(watches_on_threads(rt, &threads), 0, "the ended watch is unlisted");
	test_runtime_destroy(rt);
	cr_assert_lt(cpu, 100 * 1000000ull, "%.1f ms of CPU in 500 ms asleep", (double)cpu / 1e6);
}

/* A cancel gets the thread out of its sleep (the word never changes),
 * many times over, so some cancels meet the thread between its look at
 * the cancel and its sleep. */
Test(watch_thread, cancelling_a_watch_on_a_futex_thread_gets_the_thread_out)
{
	struct afe_runtime *rt = futex_thread_runtime(2);
	static _Atomic uint32_t word = 0;
	for (int i = 0; i < 500; i++) {
		static _Atomic bool started;
		atomic_store(&started, false);
		struct watch_once w = {.word = &word, .value = 0, .started = &started};
		afe_future_init(&w.base, watch_once_poll);
		intptr_t r = test_spawn_then_cancel(rt, &w, &started);
		cr_assert_eq(r, -ECANCELED, "round %d: %d", i, (int)r);
	}
	unsigned threads = 0;
	cr_assert_eq(watches_on_threads(rt, &threads), 0);
	test_runtime_destroy(rt);
}

Test(watch_thread, destroying_the_runtime_gets_the_futex_threads_out)
{
	enum { N = 8 };
	struct afe_runtime *rt = futex_thread_runtime(2);
	static _Atomic uint32_t words[N];
	static _Atomic bool started[N];
	struct afe_join_handle handles[N];
	for (unsigned i = 0; i < N; i++) {
		struct watch_once w = {.word = &words[i], .value = 0, .started = &started[i]};
		afe_future_init(&w.base, watch_once_poll);
		cr_assert_eq(afe_spawn(rt, &w, &handles[i]), 0);
	}
	for (unsigned i = 0; i < N; i++)
		while (!atomic_load(&started[i]))
			sched_yield();
	usleep(20 * 1000);
	unsigned threads = 0;
	cr_assert_eq(watches_on_threads(rt, &threads), N);
	cr_assert_eq(threads, N, "one thread per sleeping watch");
	cr_assert_eq(afe_runtime_destroy(rt), 0, "the sleeps ended, and their tasks with them");
	for (unsigned i = 0; i < N; i++)
		afe_join_handle_drop(&handles[i]);
}

/* ---- ping-pong: a task and a thread, each waking the other ----------------- */

#define ROUNDS 200000u

struct pong_words {
	_Atomic uint32_t ping, pong;
	bool flagged;		  /* the pinger's watches flag their sleeps */
	_Atomic uint32_t flags;	  /* where, bit 1 */
	_Atomic uint64_t skipped; /* pongs that needed no wake syscall */
};

static void *pong_thread(void *arg)
{
	struct pong_words *pw = arg;
	for (uint32_t i = 1; i <= ROUNDS; i++) {
		while (atomic_load(&pw->ping) < i)
			syscall(SYS_futex, &pw->ping, FUTEX_WAIT_PRIVATE, i - 1, NULL, NULL, 0);
		if (!pw->flagged) {
			atomic_store(&pw->pong, i);
			word_wake(&pw->pong);
			continue;
		}
		/* Wake only a sleeper, as a bell does: take the flag, change
		 * the word, look at the flag again. The take comes first: one
		 * after the change could take the flag of the pinger's next
		 * sleep, which waits for the next change, and that change's
		 * take would find none. */
		bool asleep = atomic_exchange(&pw->flags, 0) & 1;
		atomic_store(&pw->pong, i);
		if (asleep || (atomic_load(&pw->flags) & 1))
			word_wake(&pw->pong);
		else
			atomic_fetch_add(&pw->skipped, 1);
	}
	return NULL;
}

struct pinger {
	struct afe_future base;
	struct pong_words *pw;
	uint32_t i;
	struct afe_watch watch;
};

static int pinger_poll(struct afe_future *f, struct afe_context *cx)
{
	struct pinger *self = afe_container_of(f, struct pinger, base);
	AFE_ASYNC_BEGIN(f, cx);
	for (self->i = 1; self->i <= ROUNDS; self->i++) {
		atomic_store(&self->pw->ping, self->i);
		word_wake(&self->pw->ping);
		while (atomic_load(&self->pw->pong) < self->i) {
			afe_watch_init(&self->watch, &self->pw->pong, self->i - 1, AFE_FUTEX_PRIVATE);
			if (self->pw->flagged)
				afe_watch_flag_sleep(&self->watch, &self->pw->flags, 1);
			AFE_AWAIT(&self->watch.base);
			if (self->watch.base.result < 0)
				AFE_RETURN(self->watch.base.result);
		}
	}
	AFE_RETURN(0);
	AFE_ASYNC_END;
}

/* Yields forever (until told): keeps a second worker coming and going so
 * watches also take the ring path. */
struct churn {
	struct afe_future base;
	_Atomic bool *stop;
};

static int churn_poll(struct afe_future *f, struct afe_context *cx)
{
	struct churn *self = afe_container_of(f, struct churn, base);
	if (atomic_load(self->stop))
		return AFE_READY;
	if ((afe_now_ns() / 1000) % 7 == 0)
		usleep(50);
	afe_waker_wake_by_ref(cx->waker);
	return AFE_PENDING;
}

/* Returns how many pongs skipped the wake syscall. */
static uint64_t ping_pong_on(struct afe_runtime *rt, bool with_churn, bool flagged)
{
	static struct pong_words pw;
	atomic_store(&pw.ping, 0);
	atomic_store(&pw.pong, 0);
	atomic_store(&pw.flags, 0);
	atomic_store(&pw.skipped, 0);
	pw.flagged = flagged;
	pthread_t thread;
	cr_assert_eq(pthread_create(&thread, NULL, pong_thread, &pw), 0);
	static _Atomic bool stop;
	atomic_store(&stop, false);
	struct afe_join_handle churn_handle;
	if (with_churn) {
		struct churn c = {.stop = &stop};
		afe_future_init(&c.base, churn_poll);
		cr_assert_eq(afe_spawn(rt, &c, &churn_handle), 0);
	}
	struct pinger p = {.pw = &pw};
	afe_future_init(&p.base, pinger_poll);
	cr_assert_eq(test_block_on(rt, &p), 0);
	atomic_store(&stop, true);
	if (with_churn) {
		struct afe_join j;
		afe_join_init(&j, &churn_handle);
		test_block_on(rt, &j);
	}
	pthread_join(thread, NULL);
	test_runtime_destroy(rt);
	return atomic_load(&pw.skipped);
}

static uint64_t ping_pong(unsigned workers, unsigned spin_us, bool with_churn, bool flagged)
{
	return ping_pong_on(test_runtime_spinning(workers, spin_us), with_churn, flagged);
}

Test(watch_stress, ping_pong_with_a_thread_on_one_parking_worker, .timeout = 120)
{
	ping_pong(1, 0, false, false);
}

Test(watch_stress, ping_pong_while_another_task_keeps_workers_busy, .timeout = 120)
{
	ping_pong(2, 0, true, false);
}

/* The waker skips the syscall unless the watch flagged a sleep: a lost
 * wake hangs the pinger. With a spin, a searching worker sees most pongs
 * itself. */
Test(watch_stress, flagged_ping_pong_on_a_parking_worker, .timeout = 120)
{
	ping_pong(1, 0, false, true);
}

Test(watch_stress, flagged_ping_pong_on_a_spinning_worker, .timeout = 120)
{
	uint64_t skipped = ping_pong(1, 50, false, true);
	cr_assert_gt(skipped, 0, "no pong found the pinger's worker awake");
}

Test(watch_stress, flagged_ping_pong_while_another_task_keeps_workers_busy, .timeout = 120)
{
	ping_pong(2, 0, true, true);
}

/* Every pong through a futex thread: a wake lost between the thread and
 * the task hangs the pinger. */
Test(watch_stress, flagged_ping_pong_through_futex_threads, .timeout = 120)
{
	ping_pong_on(futex_thread_runtime(2), true, true);
}
