/* SPDX-License-Identifier: MIT */
/*
 * Signals read through the ring, streams, and the shutdown token's policy.
 * Each test runs in its own process (Criterion and the TSan runner fork
 * per test), so process-wide signal state starts fresh in each; tests
 * whose outcome is the process ending run it in a forked child.
 */
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "helpers.h"

static void sleep_ms(long ms)
{
	struct timespec t = {ms / 1000, (ms % 1000) * 1000000};
	nanosleep(&t, NULL);
}

/* Awaits the next delivery of a stream that lives elsewhere. */
struct next_of {
	struct afe_future base;
	struct afe_signal_stream *stream;
};

static int next_of_poll(struct afe_future *f, struct afe_context *cx)
{
	struct next_of *self = afe_container_of(f, struct next_of, base);
	AFE_ASYNC_BEGIN(f, cx);
	AFE_AWAIT(afe_signal_stream_next(self->stream));
	AFE_RETURN(self->stream->base.result);
	AFE_ASYNC_END;
}

static struct next_of next_of_make(struct afe_signal_stream *s)
{
	struct next_of n = {.stream = s};
	afe_future_init(&n.base, next_of_poll);
	return n;
}

/* Awaits a token. */
struct wait_token {
	struct afe_future base;
	struct afe_token *token;
	struct afe_token_wait wait;
};

static int wait_token_poll(struct afe_future *f, struct afe_context *cx)
{
	struct wait_token *self = afe_container_of(f, struct wait_token, base);
	AFE_ASYNC_BEGIN(f, cx);
	afe_token_wait_init(&self->wait, self->token);
	AFE_AWAIT(&self->wait.base);
	AFE_RETURN(self->wait.base.result);
	AFE_ASYNC_END;
}

static struct wait_token wait_token_make(struct afe_token *t)
{
	struct wait_token w = {.token = t};
	afe_future_init(&w.base, wait_token_poll);
	return w;
}

static void *kill_later(void *arg)
{
	sleep_ms(20);
	kill(getpid(), (int)(intptr_t)arg);
	return NULL;
}

/* Runs fn in a forked child and returns its wait status. */
static int in_child(void (*fn)(void))
{
	fflush(NULL);
	pid_t pid = fork();
	cr_assert_geq(pid, 0);
	if (pid == 0) {
		alarm(60);
		fn();
		_exit(99);
	}
	int status;
	cr_assert_eq(waitpid(pid, &status, 0), pid);
	return status;
}

Test(signal, bad_input)
{
	struct afe_signal_stream s;
	cr_assert_eq(afe_signal_stream_open(NULL, SIGUSR1), -EINVAL);
	int bad[] = {0, -1, _NSIG, SIGKILL, SIGSTOP, SIGSEGV, SIGBUS, SIGFPE, SIGILL, 32};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		cr_assert_eq(afe_signal_stream_open(&s, bad[i]), -EINVAL, "signal %d", bad[i]);
		cr_assert_eq(afe_signal_block(bad[i]), -EINVAL, "signal %d", bad[i]);
	}
	cr_assert_eq(afe_signal_stream_close(NULL), -EINVAL);
	cr_assert_eq(afe_signal_stream_open(&s, SIGUSR1), 0);
	cr_assert_eq(afe_signal_stream_close(&s), 0);
	cr_assert_eq(afe_signal_stream_close(&s), -EINVAL, "closed twice");

	struct counting_waker cw;
	counting_waker_init(&cw);
	struct afe_context cx = counting_context(&cw, false);
	struct afe_future *next = afe_signal_stream_next(&s);
	cr_assert_eq(afe_future_poll(next, &cx), AFE_READY);
	cr_assert_eq(next->result, -EBADF, "next on a closed stream");
}

Test(signal, kill_to_the_process_is_awaited)
{
	struct afe_signal_stream s;
	cr_assert_eq(afe_signal_stream_open(&s, SIGUSR1), 0); /* blocks it in main */
	struct afe_runtime *rt = test_runtime(2);
	for (int i = 0; i < 5; i++) {
		pthread_t th;
		pthread_create(&th, NULL, kill_later, (void *)(intptr_t)SIGUSR1);
		struct next_of n = next_of_make(&s);
		intptr_t r = test_block_on(rt, &n);
		cr_assert_eq(r, SIGUSR1);
		pthread_join(th, NULL);
	}
	cr_assert_eq(afe_runtime_wait_idle(rt, 0), 0, "the reader is not a task to wait for");
	cr_assert_eq(afe_signal_stream_close(&s), 0);
	test_runtime_destroy(rt);
}

Test(signal, deliveries_are_counted_until_taken)
{
	struct afe_signal_stream a, b;
	cr_assert_eq(afe_signal_stream_open(&a, SIGUSR1), 0);
	cr_assert_eq(afe_signal_stream_open(&b, SIGUSR1), 0);
	struct afe_runtime *rt = test_runtime(2);
	for (int i = 0; i < 3; i++) {
		kill(getpid(), SIGUSR1);
		/* Let the reader take it, so the next is not merged with it. */
		for (int spin = 0; spin < 2000; spin++) {
			sleep_ms(1);
			sigset_t pending;
			sigpending(&pending);
			if (!sigismember(&pending, SIGUSR1))
				break;
		}
	}
	for (int i = 0; i < 3; i++) {
		struct next_of na = next_of_make(&a), nb = next_of_make(&b);
		intptr_t ra = test_block_on(rt, &na);
		intptr_t rb = test_block_on(rt, &nb);
		cr_assert_eq(ra, SIGUSR1);
		cr_assert_eq(rb, SIGUSR1, "every stream sees every delivery");
	}
	cr_assert_eq(a.pending, 0);
	afe_signal_stream_close(&a);
	afe_signal_stream_close(&b);
	test_runtime_destroy(rt);
}

Test(signal, pending_before_the_stream_opens_is_taken)
{
	/* Blocked, sent, nobody reading: it waits in the kernel. */
	cr_assert_eq(afe_signal_block(SIGUSR2), 0);
	kill(getpid(), SIGUSR2);
	struct afe_runtime *rt = test_runtime(2);
	/* A reader is already in flight for SIGUSR1: opening SIGUSR2 adds
	 * to the mask of a waiting read, and the pending one must still be
	 * found. */
	struct afe_signal_stream one, two;
	cr_assert_eq(afe_signal_stream_open(&one, SIGUSR1), 0);
	sleep_ms(20);
	cr_assert_eq(afe_signal_stream_open(&two, SIGUSR2), 0);
	struct next_of n = next_of_make(&two);
	intptr_t r = test_block_on(rt, &n);
	cr_assert_eq(r, SIGUSR2);
	afe_signal_stream_close(&one);
	afe_signal_stream_close(&two);
	test_runtime_destroy(rt);
}

Test(signal, reader_moves_when_its_runtime_is_destroyed)
{
	struct afe_signal_stream s;
	cr_assert_eq(afe_signal_stream_open(&s, SIGUSR1), 0);
	struct afe_runtime *first = test_runtime(1), *second = test_runtime(1);
	sleep_ms(10);
	test_runtime_destroy(second); /* the newest runtime holds the reader */
	test_runtime_destroy(first);
	struct afe_runtime *third = test_runtime(2), *fourth = test_runtime(1);
	test_runtime_destroy(fourth);
	pthread_t th;
	pthread_create(&th, NULL, kill_later, (void *)(intptr_t)SIGUSR1);
	struct next_of n = next_of_make(&s);
	intptr_t r = test_block_on(third, &n);
	cr_assert_eq(r, SIGUSR1);
	pthread_join(th, NULL);
	afe_signal_stream_close(&s);
	test_runtime_destroy(third);
}

/* glibc 2.36's sigisemptyset misses real-time signals: a stream on one
 * must still be read. */
Test(signal, a_real_time_signal_is_awaited)
{
	int signo = SIGRTMIN + 1;
	struct afe_signal_stream s;
	cr_assert_eq(afe_signal_stream_open(&s, signo), 0);
	struct afe_runtime *rt = test_runtime(2);
	pthread_t th;
	pthread_create(&th, NULL, kill_later, (void *)(intptr_t)signo);
	struct next_of n = next_of_make(&s);
	intptr_t r = test_block_on(rt, &n);
	cr_assert_eq(r, signo);
	pthread_join(th, NULL);
	afe_signal_stream_close(&s);
	test_runtime_destroy(rt);
}

/* Real-time signals queue: each one sent while the reader moves from
 * runtime to runtime is delivered exactly once. */
Test(signal, no_signal_is_lost_while_the_reader_moves, .timeout = 120)
{
	int signo = SIGRTMIN + 2;
	enum { SENT = 400 };
	struct afe_signal_stream s;
	cr_assert_eq(afe_signal_stream_open(&s, signo), 0);
	struct afe_runtime_config config;
	afe_runtime_config_default(&config);
	config.workers = 1;
	config.grace_ms = 0; /* destroy gives its own tasks no time */
	struct afe_runtime *old = NULL;
	cr_assert_eq(afe_runtime_create(&old, &config), 0);
	for (int i = 0; i < SENT; i++) {
		union sigval v = {.sival_int = i};
		cr_assert_eq(sigqueue(getpid(), signo, v), 0);
		struct afe_runtime *next = NULL;
		cr_assert_eq(afe_runtime_create(&next, &config), 0);
		cr_assert_eq(afe_runtime_destroy(old), 0);
		old = next;
	}
	long counted = 0;
	while (counted < SENT) {
		struct next_of n = next_of_make(&s);
		intptr_t r = test_block_on(old, &n);
		cr_assert_eq(r, signo);
		counted++;
	}
	afe_signal_stream_close(&s);
	test_runtime_destroy(old);
}

/* With no grace, destroy still lets the woken reader end before it counts:
 * a task left waiting is reported, and the runtime it needs stays. */
struct oneshot_waiter {
	struct afe_future base;
	struct afe_oneshot *oneshot;
	struct afe_oneshot_recv recv;
};

static int oneshot_waiter_poll(struct afe_future *f, struct afe_context *cx)
{
	struct oneshot_waiter *self = afe_container_of(f, struct oneshot_waiter, base);
	AFE_ASYNC_BEGIN(f, cx);
	afe_oneshot_recv_init(&self->recv, self->oneshot);
	AFE_AWAIT(&self->recv.base);
	AFE_ASYNC_END;
}

Test(signal, destroy_without_grace_counts_a_waiting_task_beside_the_reader)
{
	struct afe_signal_stream s;
	cr_assert_eq(afe_signal_stream_open(&s, SIGUSR1), 0); /* a reader runs */
	struct afe_runtime_config config;
	afe_runtime_config_default(&config);
	config.workers = 1;
	config.grace_ms = 0;
	static struct afe_oneshot oneshots[20];
	for (int i = 0; i < 20; i++) {
		struct afe_runtime *rt = NULL;
		cr_assert_eq(afe_runtime_create(&rt, &config), 0);
		afe_oneshot_init(&oneshots[i]);
		struct oneshot_waiter w = {.oneshot = &oneshots[i]};
		afe_future_init(&w.base, oneshot_waiter_poll);
		cr_assert_eq(afe_spawn(rt, &w, NULL), 0);
		sleep_ms(5);
		cr_assert_eq(afe_runtime_destroy(rt), 1, "the waiting task is left");
		afe_oneshot_send(&oneshots[i], 1); /* wakes it: its runtime must still exist */
	}
	afe_signal_stream_close(&s);
}

/* A forked child's own runtime starts its own reader: the parent's
 * runtimes have no threads there. */
static void child_reads_a_signal(void)
{
	struct afe_signal_stream s;
	struct afe_runtime *rt = NULL;
	struct afe_runtime_config config;
	afe_runtime_config_default(&config);
	config.workers = 1;
	if (afe_signal_stream_open(&s, SIGUSR2) != 0 || afe_runtime_create(&rt, &config) != 0)
		_exit(2);
	kill(getpid(), SIGUSR2);
	struct next_of n = next_of_make(&s);
	intptr_t r = -1;
	afe_block_on(rt, &n, &r);
	_exit(r == SIGUSR2 ? 0 : 3);
}

/* ThreadSanitizer cannot start threads in the child of a threaded process. */
#if defined(__SANITIZE_THREAD__)
#define CHILD_CAN_START_THREADS 0
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define CHILD_CAN_START_THREADS 0
#endif
#endif
#ifndef CHILD_CAN_START_THREADS
#define CHILD_CAN_START_THREADS 1
#endif

Test(signal, a_forked_child_with_its_own_runtime_reads_signals)
{
	if (!CHILD_CAN_START_THREADS)
		return;
	struct afe_signal_stream s;
	cr_assert_eq(afe_signal_stream_open(&s, SIGUSR1), 0);
	struct afe_runtime *rt = test_runtime(1); /* the parent's reader */
	sleep_ms(10);
	int status = in_child(child_reads_a_signal);
	cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0, "child status %d", status);
	afe_signal_stream_close(&s);
	test_runtime_destroy(rt);
}

Test(signal, cancelled_next_keeps_the_stream)
{
	struct afe_signal_stream s;
	cr_assert_eq(afe_signal_stream_open(&s, SIGUSR1), 0);
	struct counting_waker cw;
	counting_waker_init(&cw);
	struct afe_context cx = counting_context(&cw, false);
	cr_assert_eq(afe_future_poll(afe_signal_stream_next(&s), &cx), AFE_PENDING);
	cr_assert_eq(atomic_load(&cw.refs), 1);
	cx.cancel = true;
	cr_assert_eq(afe_future_poll(&s.base, &cx), AFE_READY);
	cr_assert_eq(s.base.result, -ECANCELED);
	cr_assert_eq(atomic_load(&cw.refs), 0);
	/* No runtime yet: the signal waits in the kernel until one reads it. */
	kill(getpid(), SIGUSR1);
	struct afe_runtime *rt = test_runtime(1);
	struct next_of n = next_of_make(&s);
	intptr_t r = test_block_on(rt, &n);
	cr_assert_eq(r, SIGUSR1);
	afe_signal_stream_close(&s);
	test_runtime_destroy(rt);
}

/* ---- the shutdown token ----------------------------------------------------- */

Test(shutdown, signal_before_the_reader_exists_fires_the_token)
{
	struct afe_token *t = afe_shutdown_token();
	cr_assert_eq(afe_shutdown_init(), 0);
	cr_assert_eq(afe_shutdown_init(), 0, "idempotent");
	kill(getpid(), SIGTERM); /* blocked: pending until a runtime reads */
	sleep_ms(10);
	cr_assert_not(afe_token_is_cancelled(t));
	struct afe_runtime *rt = test_runtime(2);
	struct wait_token w = wait_token_make(t);
	intptr_t r = test_block_on(rt, &w);
	cr_assert_eq(r, 0);
	cr_assert(afe_token_is_cancelled(t));
	struct afe_token *late;
	cr_assert_eq(afe_token_new_child(t, &late), 0);
	cr_assert(afe_token_is_cancelled(late), "born cancelled");
	afe_token_release(late);
	afe_token_release(t); /* ignored: it lives for ever */
	cr_assert(afe_token_is_cancelled(afe_shutdown_token()));
	test_runtime_destroy(rt);
}

Test(shutdown, children_of_the_token_see_sigint)
{
	cr_assert_eq(afe_shutdown_init(), 0);
	struct afe_token *sub;
	cr_assert_eq(afe_token_new_child(afe_shutdown_token(), &sub), 0);
	struct afe_runtime *rt = test_runtime(2);
	pthread_t th;
	pthread_create(&th, NULL, kill_later, (void *)(intptr_t)SIGINT);
	struct wait_token w = wait_token_make(sub);
	intptr_t r = test_block_on(rt, &w);
	cr_assert_eq(r, 0);
	pthread_join(th, NULL);
	afe_token_release(sub);
	test_runtime_destroy(rt);
}

static void unwanted_sigint(void)
{
	/* Installed, but nobody asked for the token: ordinary disposition. */
	afe_shutdown_init();
	struct afe_runtime *rt = NULL;
	afe_runtime_create(&rt, NULL);
	kill(getpid(), SIGINT);
	sleep_ms(5000);
	_exit(0);
}

Test(shutdown, sigint_nobody_waits_for_ends_the_process_by_that_signal)
{
	int status = in_child(unwanted_sigint);
	cr_assert(WIFSIGNALED(status), "status %#x", status);
	cr_assert_eq(WTERMSIG(status), SIGINT);
}

static void second_signal(int signo)
{
	struct afe_token *t = afe_shutdown_token();
	afe_shutdown_init();
	struct afe_runtime *rt = NULL;
	afe_runtime_create(&rt, NULL);
	kill(getpid(), SIGINT);
	for (int i = 0; i < 5000 && !afe_token_is_cancelled(t); i++)
		sleep_ms(1);
	if (!afe_token_is_cancelled(t))
		_exit(3);
	kill(getpid(), signo);
	sleep_ms(5000);
	_exit(4);
}

static void second_sigint(void)
{
	second_signal(SIGINT);
}

static void sigterm_after_sigint(void)
{
	second_signal(SIGTERM);
}

Test(shutdown, second_sigint_exits_130_and_sigterm_143)
{
	int status = in_child(second_sigint);
	cr_assert(WIFEXITED(status), "status %#x", status);
	cr_assert_eq(WEXITSTATUS(status), 130);
	status = in_child(sigterm_after_sigint);
	cr_assert(WIFEXITED(status), "status %#x", status);
	cr_assert_eq(WEXITSTATUS(status), 143);
}

/* The child of a fork gets back the mask AFE changed: exec'd programs are
 * not left deaf to SIGINT and SIGTERM. */
static int child_blocks(int signo)
{
	fflush(NULL);
	pid_t pid = fork();
	if (pid == 0) {
		sigset_t now;
		pthread_sigmask(SIG_BLOCK, NULL, &now);
		_exit(sigismember(&now, signo) ? 1 : 0);
	}
	int status;
	waitpid(pid, &status, 0);
	return WIFEXITED(status) ? WEXITSTATUS(status) : 2;
}

struct fork_in_task {
	struct afe_future base;
};

static int fork_in_task_poll(struct afe_future *f, struct afe_context *cx)
{
	(void)cx;
	f->result = child_blocks(SIGTERM) * 10 + child_blocks(SIGUSR2);
	return AFE_READY;
}

Test(shutdown, forked_children_get_an_ordinary_mask)
{
	cr_assert_eq(afe_shutdown_init(), 0);
	sigset_t now;
	pthread_sigmask(SIG_BLOCK, NULL, &now);
	cr_assert(sigismember(&now, SIGINT), "blocked in this thread");
	cr_assert_eq(child_blocks(SIGINT), 0);
	cr_assert_eq(child_blocks(SIGTERM), 0);
	/* From a worker, which blocks every asynchronous signal. */
	struct afe_runtime *rt = test_runtime(1);
	struct fork_in_task f;
	afe_future_init(&f.base, fork_in_task_poll);
	intptr_t r = test_block_on(rt, &f);
	cr_assert_eq(r, 0);
	test_runtime_destroy(rt);
}
