/* SPDX-License-Identifier: MIT */
/* Shared by the tests: a runtime per test, a counting waker, and small
 * futures to build scenarios from. */
#ifndef AFE_TEST_HELPERS_H
#define AFE_TEST_HELPERS_H

#include <afe.h>
#include <criterion/criterion.h>
#include <dirent.h>
#include <sched.h>
#include <stdatomic.h>
#include <sys/wait.h>
#include <unistd.h>

/* The entries of directory path but . and .. (the fds of /proc/self/fd,
 * the threads of /proc/self/task). */
static inline int test_dir_entries(const char *path)
{
	DIR *d = opendir(path);
	cr_assert_not_null(d, "%s", path);
	int n = 0;
	for (struct dirent *e; (e = readdir(d));)
		n += e->d_name[0] != '.';
	closedir(d);
	return n;
}

static inline struct afe_runtime *test_runtime(unsigned workers)
{
	struct afe_runtime_config config;
	afe_runtime_config_default(&config);
	config.workers = workers;
	struct afe_runtime *rt = NULL;
	cr_assert_eq(afe_runtime_create(&rt, &config), 0);
	return rt;
}

/* A runtime whose idle workers search spin_us before they park (0: park
 * at once, so a test finds them parked). */
static inline struct afe_runtime *test_runtime_spinning(unsigned workers, unsigned spin_us)
{
	struct afe_runtime_config config;
	afe_runtime_config_default(&config);
	config.workers = workers;
	config.spin_us = spin_us;
	struct afe_runtime *rt = NULL;
	cr_assert_eq(afe_runtime_create(&rt, &config), 0);
	return rt;
}

static inline void test_runtime_destroy(struct afe_runtime *rt)
{
	cr_assert_eq(afe_runtime_destroy(rt), 0, "tasks left behind at destroy");
}

/* Runs fut (a struct with a base member) on rt and returns its result. */
#define test_block_on(rt, fut)                                          \
	__extension__({                                                \
		intptr_t test__r = -12345;                              \
		cr_assert_eq(afe_block_on((rt), (fut), &test__r), 0);   \
		test__r;                                                \
	})

/* Runs fn(arg) as a coroutine on rt and returns its result. */
static inline intptr_t test_block_on_coro(struct afe_runtime *rt, intptr_t (*fn)(void *), void *arg)
{
	struct afe_coro c;
	cr_assert_eq(afe_coro_init(&c, fn, arg, NULL), 0);
	return test_block_on(rt, &c);
}

/* Spawns fut on rt, waits until its poll set *started (so the cancel
 * finds it under way, not before its first poll), cancels it, and returns
 * what the cancel gave. */
#define test_spawn_then_cancel(rt, fut, started)                               \
	__extension__({                                                       \
		struct afe_join_handle test__h;                               \
		cr_assert_eq(afe_spawn((rt), (fut), &test__h), 0);            \
		while (!atomic_load(started))                                 \
			sched_yield();                                        \
		struct afe_cancel test__c;                                    \
		cr_assert_eq(afe_cancel_init(&test__c, &test__h), 0);         \
		test_block_on((rt), &test__c);                                \
	})

/* A waker that counts wakes; for polling futures by hand. */
struct counting_waker {
	struct afe_waker waker;
	atomic_int wakes, refs;
};

static void cw_clone(void *d) { atomic_fetch_add(&((struct counting_waker *)d)->refs, 1); }
static void cw_drop(void *d) { atomic_fetch_sub(&((struct counting_waker *)d)->refs, 1); }
static void cw_wake_by_ref(void *d) { atomic_fetch_add(&((struct counting_waker *)d)->wakes, 1); }
static void cw_wake(void *d)
{
	cw_wake_by_ref(d);
	cw_drop(d);
}
static const struct afe_waker_vtable counting_vtable = {cw_clone, cw_wake, cw_wake_by_ref,
							 cw_drop};

static inline void counting_waker_init(struct counting_waker *cw)
{
	cw->waker.vtable = &counting_vtable;
	cw->waker.data = cw;
	atomic_init(&cw->wakes, 0);
	atomic_init(&cw->refs, 0);
}

static inline struct afe_context counting_context(struct counting_waker *cw, bool cancel)
{
	return (struct afe_context){.waker = &cw->waker, .task = NULL, .cancel = cancel};
}

/* A counting waker that also calls on_wake(arg, n) at its n-th wake:
 * stands in for a woken task that runs at once on another worker, while
 * the waking call is still under way. */
struct hook_waker {
	struct counting_waker cw; /* first: the vtable's data is the hook */
	void (*on_wake)(void *arg, int nth);
	void *arg;
};

static void hw_wake_by_ref(void *d)
{
	struct hook_waker *hw = d;
	int nth = atomic_fetch_add(&hw->cw.wakes, 1) + 1;
	if (hw->on_wake)
		hw->on_wake(hw->arg, nth);
}
static void hw_wake(void *d)
{
	hw_wake_by_ref(d);
	cw_drop(d);
}
static const struct afe_waker_vtable hook_vtable = {cw_clone, hw_wake, hw_wake_by_ref, cw_drop};

static inline void hook_waker_init(struct hook_waker *hw, void (*on_wake)(void *, int), void *arg)
{
	counting_waker_init(&hw->cw);
	hw->cw.waker.vtable = &hook_vtable;
	hw->cw.waker.data = hw;
	hw->on_wake = on_wake;
	hw->arg = arg;
}

/* A future that yields `rounds` times, then returns `value`. */
struct yielder {
	struct afe_future base;
	int rounds, done;
	intptr_t value;
};

static int yielder_poll(struct afe_future *f, struct afe_context *cx)
{
	struct yielder *self = afe_container_of(f, struct yielder, base);
	AFE_ASYNC_BEGIN(f, cx);
	for (self->done = 0; self->done < self->rounds; self->done++)
		AFE_YIELD();
	AFE_RETURN(self->value);
	AFE_ASYNC_END;
}

static inline struct yielder yielder_make(int rounds, intptr_t value)
{
	struct yielder y = {.rounds = rounds, .value = value};
	afe_future_init(&y.base, yielder_poll);
	return y;
}

/* A future that yields until cancelled, then takes 100 more yields to
 * wind down before it counts itself finished in *wound_down. */
struct slow_to_stop {
	struct afe_future base;
	int i;
	atomic_int *wound_down;
};

static int slow_to_stop_poll(struct afe_future *f, struct afe_context *cx)
{
	struct slow_to_stop *self = afe_container_of(f, struct slow_to_stop, base);
	AFE_ASYNC_BEGIN(f, cx);
	for (;;)
		AFE_YIELD();
	AFE_CLEANUP;
	for (self->i = 0; self->i < 100; self->i++)
		AFE_YIELD();
	atomic_fetch_add(self->wound_down, 1);
	AFE_ASYNC_END;
}

static inline struct slow_to_stop slow_to_stop_make(atomic_int *wound_down)
{
	struct slow_to_stop s = {.wound_down = wound_down};
	afe_future_init(&s.base, slow_to_stop_poll);
	return s;
}

/* Runs body() in a forked child whose stderr is captured into said (size
 * bytes, NUL-terminated); returns the child's wait status. For code that
 * must die with a message: body should not return. */
static inline int test_child_stderr(void (*body)(void), char *said, size_t size)
{
	int err[2];
	cr_assert_eq(pipe(err), 0);
	pid_t child = fork();
	cr_assert_neq(child, -1);
	if (child == 0) {
		dup2(err[1], STDERR_FILENO);
		body();
		_exit(3);
	}
	close(err[1]);
	size_t n = 0;
	ssize_t got;
	while (n < size - 1 && (got = read(err[0], said + n, size - 1 - n)) > 0)
		n += (size_t)got;
	said[n] = 0;
	close(err[0]);
	int status;
	cr_assert_eq(waitpid(child, &status, 0), child);
	return status;
}

#endif /* AFE_TEST_HELPERS_H */
