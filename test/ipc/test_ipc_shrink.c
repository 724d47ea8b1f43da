/* SPDX-License-Identifier: MIT */
/*
 * Another process of the same user shrinks (ftruncate) the shared object
 * under a live link, as a hostile or buggy one may. Whichever side touches
 * the object next must not die of SIGBUS: its guard grows the object back
 * (zeroed), the calls of the wiped link end with -EPIPE, and the consumer
 * restores its header and serves new producers.
 *
 * Children are forked before the test starts a runtime, die with the test
 * (fork_tied), and report through a pipe: a child cannot assert.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <sys/mman.h>
#include <sys/wait.h>

#include "../examples/ipc_calc_server.h"
#include "ipc_helpers.h"
#include "pool/watch.h"
#include "src/ipc/ipc_shm.h"

/* Shrinks the object of name to nothing; 0 or -errno (for children). */
static int shrink(const char *name)
{
	char path[100];
	snprintf(path, sizeof(path), "/%s", name);
	int fd = shm_open(path, O_RDWR, 0);
	if (fd < 0)
		return -errno;
	int err = ftruncate(fd, 0) < 0 ? -errno : 0;
	close(fd);
	return err;
}

static void shrink_object(const char *name)
{
	int err = shrink(name);
	cr_assert_eq(err, 0, "shrinking %s: %d", name, err);
}

static struct afe_ipc_producer_config patiently_over_shared_memory(void)
{
	struct afe_ipc_producer_config config = over_shared_memory();
	config.timeout_ms = 20000; /* far past the test's patience: -ETIMEDOUT fails it */
	return config;
}

/* Connects to name through the shared memory and checks one add. */
static void check_served(struct afe_runtime *rt, const char *name)
{
	struct afe_ipc_producer_config config = patiently_over_shared_memory();
	struct afe_ipc_producer *p = connect_retrying(rt, name, &config);
	struct afe_ipc_call call;
	afe_ipc_call_init(&call, p);
	int64_t sum = 0;
	cr_assert_eq(add_call(&call, 40, 1, 1), 0);
	cr_assert_eq(run_call(rt, &call), 0);
	cr_assert_eq(add_result(&call, &sum), 0);
	cr_assert_eq(sum, 42);
	afe_ipc_call_release(&call);
	afe_ipc_producer_close(p);
}

Test(ipc_shrink, a_consumer_that_finds_its_object_shrunk_survives_and_serves_on)
{
	const char *name = ipc_test_name("shrunk-consumer");
	int result[2];
	cr_assert_eq(pipe(result), 0);
	pid_t child = fork_tied();
	if (child == 0) {
		close(result[0]);
		_exit(producer_child(name, -1, result[1]));
	}
	close(result[1]);
	struct afe_runtime *rt = test_runtime(2);
	struct calc_serving served = serve_calc(rt, name);
	char code = -1;
	cr_assert_eq(read(result[0], &code, 1), 1, "the producer died");
	cr_assert_eq(code, 0, "the producer's call failed: %d", code);

	shrink_object(name);
	/* The producer's death rings our bell in the shrunk object: we
	 * fault, grow it back and find our header wiped. */
	kill(child, SIGKILL);
	cr_assert_eq(waitpid(child, NULL, 0), child);
	struct afe_ipc_stats st;
	for (uint64_t end = afe_now_ns() + 10000000000u;; usleep(1000)) {
		afe_ipc_consumer_stats(served.c, &st);
		if ((st.repairs >= 1 && st.peers_gone >= 1) || afe_now_ns() > end)
			break;
	}
	cr_assert_eq(st.repairs, 1);
	cr_assert_eq(st.peers_gone, 1);
	check_served(rt, name);

	stop_serving(rt, &served);
	test_runtime_destroy(rt);
	close(result[0]);
}

Test(ipc_shrink, a_producer_that_finds_its_object_shrunk_survives_and_connects_again)
{
	const char *name = ipc_test_name("shrunk-producer");
	pid_t consumer = start_consumer(name);
	struct afe_runtime *rt = test_runtime(2);
	check_served(rt, name);
	struct afe_ipc_producer_config config = patiently_over_shared_memory();
	struct afe_ipc_producer *p = connect_retrying(rt, name, &config);
	struct afe_ipc_call call;
	afe_ipc_call_init(&call, p);
	cr_assert_eq(add_call(&call, 1, 2, 3), 0);
	cr_assert_eq(run_call(rt, &call), 0);

	shrink_object(name);
	/* Whoever touches the object first faults, grows it back and rings
	 * every bell: our next request, or the consumer's workers still
	 * looking at their bells. The consumer finds its header wiped and
	 * drops us; the call of the wiped link ends, it does not time out. */
	int err = add_call(&call, 1, 2, 3);
	if (err == 0)
		err = (int)run_call(rt, &call);
	cr_assert_eq(err, -EPIPE, "the call of the wiped link: %d", err);
	afe_ipc_call_release(&call);
	afe_ipc_producer_close(p);
	check_served(rt, name);

	test_runtime_destroy(rt);
	stop_consumer(consumer, SIGTERM);
}

Test(ipc_shrink, a_sleeper_on_a_bell_wakes_when_the_object_is_wiped)
{
	/* The bell rang once, so a sleeper waits for its word to leave 1.
	 * The object is shrunk; a waker's look at the bell faults and the
	 * guard grows it back, zeroed: the word must not read 1 again (the
	 * zeroed word bumped once would), or the sleeper waits on. */
	const char *name = ipc_test_name("wiped-bell");
	struct afe_ipc_header *h;
	cr_assert_eq(afe_ipc_shm_create(name, &h), 0);
	atomic_fetch_add(&h->bell.word, 1);
	struct afe_runtime *rt = test_runtime(1);
	shrink_object(name);
	(void)atomic_load_explicit(&h->bell.wants, memory_order_relaxed);
	cr_assert_eq(afe_ipc_shm_repairs(h), 1);
	struct afe_watch watch;
	afe_watch_init(&watch, &h->bell.word, 1, AFE_FUTEX_SHARED);
	struct afe_timeout limited;
	afe_timeout_init(&limited, &watch.base, 5000000000ull);
	cr_assert_eq(test_block_on(rt, &limited), 0, "the sleeper was not woken");
	test_runtime_destroy(rt);
	afe_ipc_shm_unmap(h);
}

Test(ipc_shrink, an_idle_consumer_whose_object_is_shrunk_is_healed_by_the_next_producer)
{
	/* The consumer sleeps on its bell (a futex wait the shrink does not
	 * end) and touches nothing: it would never learn of the shrink, and
	 * producers would find a short object, for ever. The next producer
	 * that tries grows the object back and rings its bells. */
	const char *name = ipc_test_name("idle-shrunk");
	struct afe_runtime *rt = test_runtime(1);
	struct calc_serving served = serve_calc(rt, name);
	check_served(rt, name);
	usleep(200 * 1000); /* all that the producer's close set off is done */

	shrink_object(name);
	check_served(rt, name); /* refused once, then served */
	struct afe_ipc_stats st;
	afe_ipc_consumer_stats(served.c, &st);
	cr_assert_eq(st.repairs, 1);

	stop_serving(rt, &served);
	test_runtime_destroy(rt);
}

/* In a child: the first access after each shrink is a sequentially
 * consistent read-modify-write, as a waker's ring of the bell makes. */
static int atomics_through_shrinks(const char *name)
{
	struct afe_ipc_header *h;
	if (afe_ipc_shm_create(name, &h) < 0 || shrink(name) < 0)
		return 1;
	atomic_fetch_add(&h->bell.word, 1);
	if (shrink(name) < 0)
		return 1;
	uint32_t wants = 0;
	atomic_compare_exchange_strong(&h->bell.wants, &wants, 1);
	return afe_ipc_shm_repairs(h) == 2 ? 0 : 2;
}

Test(ipc_shrink, an_atomic_that_faults_goes_on)
{
	/* Under ThreadSanitizer such an atomic faults inside the sanitizer,
	 * holding its lock of the word: a guard that touched the word itself
	 * would wait for that lock forever (and SIGTERM could not end it). */
	const char *name = ipc_test_name("faulting-atomic");
	pid_t child = fork_tied();
	if (child == 0)
		_exit(atomics_through_shrinks(name));
	int status = 0;
	pid_t done = 0;
	for (uint64_t end = afe_now_ns() + 10000000000u; !done && afe_now_ns() < end; usleep(1000))
		done = waitpid(child, &status, WNOHANG);
	if (!done) {
		kill(child, SIGKILL);
		waitpid(child, &status, 0);
	}
	cr_assert(done, "the child hangs");
	cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0, "status %#x", status);
}

enum { SETUP_FAILED = 90, SWALLOWED = 91 };

Test(ipc_shrink, a_fault_outside_every_object_still_kills)
{
	/* The guard is installed by the first mapping. */
	struct afe_runtime *rt = test_runtime(1);
	struct afe_ipc_consumer *c;
	cr_assert_eq(afe_ipc_consumer_serve(&c, rt, ipc_test_name("foreign-fault"), NULL), 0);
	pid_t child = fork();
	cr_assert_neq(child, -1);
	if (child == 0) {
		/* A file mapping of our own, read past the file's end. */
		char path[] = "/tmp/afe-test-sigbus-XXXXXX";
		int fd = mkstemp(path);
		unlink(path);
		volatile char *p = mmap(NULL, 4096, PROT_READ, MAP_SHARED, fd, 0);
		if (fd < 0 || p == MAP_FAILED)
			_exit(SETUP_FAILED);
		_exit(SWALLOWED + p[0]); /* the read went on */
	}
	int status;
	cr_assert_eq(waitpid(child, &status, 0), child);
	cr_assert(!WIFEXITED(status) || WEXITSTATUS(status) != SETUP_FAILED);
	cr_assert(!WIFEXITED(status) || WEXITSTATUS(status) != SWALLOWED,
		  "the fault was swallowed");
	/* A sanitizer's handler before ours reports and exits; else the
	 * default action kills. */
	if (WIFSIGNALED(status))
		cr_assert_eq(WTERMSIG(status), SIGBUS);
	afe_ipc_consumer_destroy(c);
	test_runtime_destroy(rt);
}
