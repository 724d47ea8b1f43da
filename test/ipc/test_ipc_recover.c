/* SPDX-License-Identifier: MIT */
/*
 * A consumer recovers by itself from what dead or scribbling peers leave
 * in the shared memory: a bell whose `wants` a peer cleared while the
 * consumer slept on it.
 *
 * Children are forked before the test starts a runtime of its own, and
 * die with the test (fork_tied).
 */
#include <stdlib.h>

#include "ipc_helpers.h"
#include "src/ipc_shm.h"

static uint64_t now_ms(void)
{
	return afe_now_ns() / 1000000u;
}

/* Maps the object of name once its consumer set it up (10 s at most). */
static struct afe_ipc_header *map_object(const char *name)
{
	struct afe_ipc_header *h = NULL;
	int err = -ECONNREFUSED;
	for (uint64_t end = now_ms() + 10000; err == -ECONNREFUSED && now_ms() < end;)
		if ((err = afe_ipc_shm_open(name, &h)) == -ECONNREFUSED)
			usleep(1000);
	cr_assert_eq(err, 0, "open: %d", err);
	return h;
}

/* How many entries of h are not FREE. */
static unsigned entries_held(struct afe_ipc_header *h)
{
	unsigned n = 0;
	for (unsigned i = 0; i < AFE_IPC_MAX_PRODUCERS; i++)
		n += atomic_load(&h->entries[i].state) != AFE_IPC_ENTRY_FREE;
	return n;
}

/* ---- a consumer's bell whose wants a peer cleared ------------------------------ */

/* Clears the wants of h's consumer bell once its pump sleeps: they hold
 * AFE_IPC_WANT_ANY, and nobody publishes them again within 20 ms of the
 * clearing (a pump awake would). Up to 5 s of tries. */
static void clear_consumer_wants(struct afe_ipc_header *h)
{
	for (uint64_t end = now_ms() + 5000; now_ms() < end; usleep(1000)) {
		if (!(atomic_load(&h->bell.wants) & AFE_IPC_WANT_ANY))
			continue;
		atomic_store(&h->bell.wants, 0);
		usleep(20000);
		if (atomic_load(&h->bell.wants) == 0)
			return;
	}
	cr_assert(false, "the consumer's pump never slept");
}

Test(ipc_recover, a_consumer_whose_wants_a_peer_cleared_serves_again)
{
	const char *name = ipc_test_name("zeroed-wants");
	struct afe_runtime *rt = test_runtime(2);
	struct calc_serving s = serve_calc(rt, name);
	struct afe_ipc_header *h = map_object(name);
	struct afe_ipc_producer_config config = over_shared_memory();
	config.timeout_ms = 2000;
	struct afe_ipc_producer *p = connect_retrying(rt, name, &config);
	struct afe_ipc_call call;
	afe_ipc_call_init(&call, p);
	cr_assert_eq(add(&call, 1, 2, 3), 0);
	cr_assert_eq(run_call(rt, &call), 0);

	clear_consumer_wants(h);
	uint64_t start = now_ms();
	int64_t sum = 0;
	cr_assert_eq(add(&call, 40, 1, 1), 0);
	intptr_t err = run_call(rt, &call);
	uint64_t took = now_ms() - start;
	fprintf(stderr, "the call after the clearing: %ld in %llu ms\n", (long)err,
		    (unsigned long long)took);
	cr_assert_eq(err, 0, "the call after the clearing: %ld in %llu ms", (long)err,
		     (unsigned long long)took);
	cr_assert_eq(add_result(&call, &sum), 0);
	cr_assert_eq(sum, 42);

	afe_ipc_call_release(&call);
	afe_ipc_producer_close(p);
	afe_ipc_shm_unmap(h);
	stop_serving(rt, &s);
	test_runtime_destroy(rt);
}

Test(ipc_recover, a_consumer_whose_wants_a_peer_cleared_sees_a_producer_die)
{
	const char *name = ipc_test_name("zeroed-wants-death");
	int go[2], result[2];
	cr_assert_eq(pipe(go), 0);
	cr_assert_eq(pipe(result), 0);
	pid_t child = fork_tied();
	if (child == 0) {
		close(go[1]);
		close(result[0]);
		_exit(producer_child(name, go[0], result[1]));
	}
	close(go[0]);
	close(result[1]);
	struct afe_runtime *rt = test_runtime(2);
	struct calc_serving s = serve_calc(rt, name);
	struct afe_ipc_header *h = map_object(name);
	cr_assert_eq(write(go[1], "g", 1), 1);
	char code = -1;
	cr_assert_eq(read(result[0], &code, 1), 1, "the producer child died");
	cr_assert_eq(code, 0, "the producer child's call failed: %d", code);

	clear_consumer_wants(h);
	uint64_t start = now_ms();
	kill(child, SIGKILL);
	cr_assert_eq(waitpid(child, NULL, 0), child);
	struct afe_ipc_stats st;
	do {
		usleep(1000);
		afe_ipc_consumer_stats(s.c, &st);
	} while (st.peers_gone == 0 && now_ms() - start < 2000);
	uint64_t took = now_ms() - start;
	fprintf(stderr, "the producer's death seen after %llu ms (peers gone: %llu)\n",
		    (unsigned long long)took, (unsigned long long)st.peers_gone);
	cr_assert_eq(st.peers_gone, 1, "the death went unseen for %llu ms",
		     (unsigned long long)took);
	cr_assert_eq(entries_held(h), 0);

	close(go[1]);
	close(result[0]);
	afe_ipc_shm_unmap(h);
	stop_serving(rt, &s);
	test_runtime_destroy(rt);
}
