/* SPDX-License-Identifier: MIT */
/* Futex waits and wakes through the ring: within a process, across
 * processes, cancelled, and refused. */
#include <linux/futex.h>
#include <stdint.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "io_helpers.h"

/* A task that waits on *word while it holds expected, then says so. */
struct waiter {
	struct afe_future base;
	_Atomic uint32_t *word;
	unsigned flags;
	atomic_bool *started;
	struct afe_io io;
};

static int waiter_poll(struct afe_future *f, struct afe_context *cx)
{
	struct waiter *self = afe_container_of(f, struct waiter, base);
	AFE_ASYNC_BEGIN(f, cx);
	afe_io_futex_wait_init(&self->io, self->word, 0, self->flags);
	atomic_store(self->started, true);
	AFE_AWAIT(&self->io.base);
	AFE_RETURN(self->io.base.result);
	AFE_ASYNC_END;
}

static struct waiter waiter_of(_Atomic uint32_t *word, unsigned flags, atomic_bool *started)
{
	struct waiter w = {.word = word, .flags = flags, .started = started};
	afe_future_init(&w.base, waiter_poll);
	return w;
}

/* Wakes *word from a plain thread, as another process would. */
static long futex_wake_syscall(_Atomic uint32_t *word, bool shared)
{
	return syscall(SYS_futex, word, shared ? FUTEX_WAKE : FUTEX_WAKE_PRIVATE, 1, NULL, NULL,
		       0);
}

/* Keeps storing 1 and waking until the waiter's task finished: the wait
 * may not be queued in the kernel yet when the first wake goes out. */
static void wake_until_done(_Atomic uint32_t *word, bool shared, struct afe_join_handle *h)
{
	atomic_store(word, 1);
	while (!afe_join_handle_is_finished(h)) {
		futex_wake_syscall(word, shared);
		usleep(100);
	}
}

/* A runtime whose ring has futex operations (the epoll backend has them
 * too). Without them (an older kernel, or AFE_URING_FEATURES below 6.7) a
 * wait and a wake fail with -EOPNOTSUPP, and the test is skipped. */
static struct afe_runtime *futex_runtime(void)
{
	struct afe_runtime *rt = test_runtime(2);
	if ((afe_runtime_uring_features(rt) & AFE_URING_FUTEX) ||
	    afe_runtime_backend(rt) == AFE_BACKEND_EPOLL)
		return rt;
	_Atomic uint32_t word = 0;
	struct afe_io io;
	afe_io_futex_wait_init(&io, &word, 0, AFE_FUTEX_PRIVATE);
	cr_assert_eq(run_io(rt, &io), -EOPNOTSUPP);
	afe_io_futex_wake_init(&io, &word, 1, AFE_FUTEX_PRIVATE);
	cr_assert_eq(run_io(rt, &io), -EOPNOTSUPP);
	test_runtime_destroy(rt);
	cr_skip_test("no futex operations in this ring (they fail with -EOPNOTSUPP)");
}

Test(futex, a_changed_word_is_eagain_at_once)
{
	struct afe_runtime *rt = futex_runtime();
	_Atomic uint32_t word = 7;
	struct afe_io io;
	afe_io_futex_wait_init(&io, &word, 0, AFE_FUTEX_PRIVATE);
	cr_assert_eq(run_io(rt, &io), -EAGAIN);
	afe_io_futex_wait_init(&io, &word, 6, AFE_FUTEX_SHARED);
	cr_assert_eq(run_io(rt, &io), -EAGAIN);
	test_runtime_destroy(rt);
}

Test(futex, a_misaligned_word_is_einval)
{
	struct afe_runtime *rt = futex_runtime();
	_Alignas(8) unsigned char bytes[8] = {0};
	struct afe_io io;
	afe_io_futex_wait_init(&io, (_Atomic uint32_t *)(void *)(bytes + 1), 0, AFE_FUTEX_SHARED);
	cr_assert_eq(run_io(rt, &io), -EINVAL);
	test_runtime_destroy(rt);
}

Test(futex, wake_with_nobody_waiting_wakes_none)
{
	struct afe_runtime *rt = futex_runtime();
	_Atomic uint32_t word = 0;
	struct afe_io io;
	afe_io_futex_wake_init(&io, &word, 1, AFE_FUTEX_SHARED);
	cr_assert_eq(run_io(rt, &io), 0);
	test_runtime_destroy(rt);
}

Test(futex, a_private_wait_is_woken_by_a_private_syscall_wake)
{
	struct afe_runtime *rt = futex_runtime();
	_Atomic uint32_t word = 0;
	atomic_bool started = false;
	struct waiter w = waiter_of(&word, AFE_FUTEX_PRIVATE, &started);
	struct afe_join_handle h;
	cr_assert_eq(afe_spawn(rt, &w, &h), 0);
	while (!atomic_load(&started))
		sched_yield();
	wake_until_done(&word, false, &h);
	struct afe_join join;
	afe_join_init(&join, &h);
	intptr_t r = test_block_on(rt, &join);
	cr_assert(r == 0 || r == -EAGAIN, "woken or saw the new value: %ld", (long)r);
	test_runtime_destroy(rt);
}

Test(futex, a_ring_wake_wakes_a_ring_wait)
{
	struct afe_runtime *rt = futex_runtime();
	if (afe_runtime_backend(rt) == AFE_BACKEND_EPOLL) {
		test_runtime_destroy(rt);
		cr_skip_test("on epoll a futex wait watches its word, not the kernel's "
			     "queue: a wake that leaves the word as it was neither ends "
			     "it nor counts it");
	}
	_Atomic uint32_t word = 0;
	atomic_bool started = false;
	struct waiter w = waiter_of(&word, AFE_FUTEX_SHARED, &started);
	struct afe_join_handle h;
	cr_assert_eq(afe_spawn(rt, &w, &h), 0);
	while (!atomic_load(&started))
		sched_yield();
	/* The wait may still be on its way to the ring: wake until one woke. */
	intptr_t woke = 0;
	for (int i = 0; i < 10000 && woke == 0; i++) {
		struct afe_io wake;
		afe_io_futex_wake_init(&wake, &word, 1, AFE_FUTEX_SHARED);
		woke = run_io(rt, &wake);
		if (woke == 0)
			usleep(100);
	}
	cr_assert_eq(woke, 1, "the ring wake found the ring wait");
	struct afe_join join;
	afe_join_init(&join, &h);
	cr_assert_eq(test_block_on(rt, &join), 0);
	test_runtime_destroy(rt);
}

Test(futex, a_shared_wait_is_woken_from_another_process)
{
	_Atomic uint32_t *word = mmap(NULL, 4096, PROT_READ | PROT_WRITE,
				      MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	cr_assert_neq(word, MAP_FAILED);
	atomic_store(word, 0);
	struct afe_runtime *rt = futex_runtime();
	atomic_bool started = false;
	struct waiter w = waiter_of(word, AFE_FUTEX_SHARED, &started);
	struct afe_join_handle h;
	cr_assert_eq(afe_spawn(rt, &w, &h), 0);
	while (!atomic_load(&started))
		sched_yield();
	pid_t child = fork();
	cr_assert_neq(child, -1);
	if (child == 0) {
		/* Wake once a waiter is there (the parent kills us after). */
		atomic_store(word, 1);
		for (;;) {
			futex_wake_syscall(word, true);
			usleep(100);
		}
	}
	struct afe_join join;
	afe_join_init(&join, &h);
	intptr_t r = test_block_on(rt, &join);
	kill(child, SIGKILL);
	waitpid(child, NULL, 0);
	cr_assert(r == 0 || r == -EAGAIN, "woken across processes: %ld", (long)r);
	test_runtime_destroy(rt);
	munmap((void *)word, 4096);
}

Test(futex, a_cancelled_wait_ends_with_ecanceled)
{
	struct afe_runtime *rt = futex_runtime();
	_Atomic uint32_t word = 0;
	atomic_bool started = false;
	struct waiter w = waiter_of(&word, AFE_FUTEX_SHARED, &started);
	intptr_t r = test_spawn_then_cancel(rt, &w, &started);
	cr_assert_eq(r, -ECANCELED);
	cr_assert_eq(atomic_load(&word), 0, "nobody stored to the word");
	test_runtime_destroy(rt);
}
