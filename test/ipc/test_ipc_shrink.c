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

static void shrink_object(const char *name)
{
	char path[100];
	snprintf(path, sizeof(path), "/%s", name);
	int fd = shm_open(path, O_RDWR, 0);
	cr_assert_geq(fd, 0, "shm_open %s: %d", path, errno);
	cr_assert_eq(ftruncate(fd, 0), 0);
	close(fd);
}

static struct afe_ipc_producer_config over_shared_memory(void)
{
	struct afe_ipc_producer_config config;
	afe_ipc_producer_config_default(&config);
	config.transport = AFE_IPC_SHARED_MEMORY;
	config.timeout_ms = 20000; /* far past the test's patience: -ETIMEDOUT fails it */
	return config;
}

/* Connects to name through the shared memory and checks one add. */
static void check_served(struct afe_runtime *rt, const char *name)
{
	struct afe_ipc_producer_config config = over_shared_memory();
	struct afe_ipc_producer *p = connect_retrying(rt, name, &config);
	struct afe_ipc_call call;
	afe_ipc_call_init(&call, p);
	int64_t sum = 0;
	cr_assert_eq(add(&call, 40, 1, 1), 0);
	cr_assert_eq(run_call(rt, &call), 0);
	cr_assert_eq(add_result(&call, &sum), 0);
	cr_assert_eq(sum, 42);
	afe_ipc_call_release(&call);
	afe_ipc_producer_close(p);
}

/* In a child: connects, makes one call, reports its result (0: fine),
 * then waits to be killed. */
static int connected_producer(const char *name, int result)
{
	struct afe_runtime *rt = test_runtime(1);
	struct afe_ipc_producer_config config = over_shared_memory();
	struct afe_ipc_producer *p = NULL;
	int err = -ECONNREFUSED;
	for (int i = 0; i < 1000 && err == -ECONNREFUSED; i++)
		if ((err = afe_ipc_producer_connect(&p, rt, name, &config)) == -ECONNREFUSED)
			usleep(10000);
	struct afe_ipc_call call;
	if (err == 0) {
		afe_ipc_call_init(&call, p);
		err = add(&call, 1, 2, 3);
		err = err ? err : (int)run_call(rt, &call);
	}
	char code = (char)(err < 0 ? -err : 0);
	if (write(result, &code, 1) != 1)
		return 1;
	pause();
	return 0;
}

Test(ipc_shrink, a_consumer_that_finds_its_object_shrunk_survives_and_serves_on)
{
	const char *name = ipc_test_name("shrunk-consumer");
	int result[2];
	cr_assert_eq(pipe(result), 0);
	pid_t child = fork_tied();
	if (child == 0) {
		close(result[0]);
		_exit(connected_producer(name, result[1]));
	}
	close(result[1]);
	struct afe_runtime *rt = test_runtime(2);
	struct afe_ipc_consumer *c;
	cr_assert_eq(afe_ipc_consumer_serve(&c, rt, name, NULL), 0);
	struct calc_server server = calc_server_make(c);
	struct afe_join_handle handle;
	cr_assert_eq(afe_spawn(rt, &server, &handle), 0);
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
		afe_ipc_consumer_stats(c, &st);
		if ((st.repairs >= 1 && st.peers_gone >= 1) || afe_now_ns() > end)
			break;
	}
	cr_assert_eq(st.repairs, 1);
	cr_assert_eq(st.peers_gone, 1);
	check_served(rt, name);

	afe_ipc_consumer_close(c);
	struct afe_join join;
	afe_join_init(&join, &handle);
	cr_assert_eq(test_block_on(rt, &join), 0);
	afe_ipc_consumer_destroy(c);
	test_runtime_destroy(rt);
	close(result[0]);
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
