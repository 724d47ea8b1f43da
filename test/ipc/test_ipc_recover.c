/* SPDX-License-Identifier: MIT */
/*
 * A consumer recovers by itself from what dead or scribbling peers leave
 * in the shared memory: entries of producers killed while they connected,
 * entries holding garbage, and a bell whose `wants` a peer cleared while
 * the consumer slept on it.
 *
 * Children are forked before the test starts a runtime of its own, and
 * die with the test (fork_tied).
 */
#include <stdlib.h>

#include "ipc_helpers.h"
#include "src/ipc/ipc_shm.h"

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

/* Waits up to ms for every entry of h to be FREE; returns how many are
 * still held, and in *took how long it waited. */
static unsigned wait_all_free(struct afe_ipc_header *h, uint64_t ms, uint64_t *took)
{
	uint64_t start = now_ms();
	unsigned held;
	while ((held = entries_held(h)) && now_ms() - start < ms)
		usleep(1000);
	*took = now_ms() - start;
	return held;
}

/* Connects over shared memory and makes one call, on a runtime of this
 * process; 0 or the error. */
static int connect_and_call(struct afe_runtime *rt, const char *name)
{
	struct afe_ipc_producer_config config = over_shared_memory();
	struct afe_ipc_producer *p = connect_retrying(rt, name, &config);
	struct afe_ipc_call call;
	afe_ipc_call_init(&call, p);
	int64_t sum = 0;
	cr_assert_eq(add_call(&call, 1, 2, 3), 0);
	int err = (int)run_call(rt, &call);
	if (err == 0 && (add_result(&call, &sum) < 0 || sum != 6))
		err = -EBADMSG;
	afe_ipc_call_release(&call);
	afe_ipc_producer_close(p);
	return err;
}

/* ---- producers killed while they connect --------------------------------------- */

/* In a child: starts a runtime, says so on ready, connects, and waits to
 * be killed. */
static int connecting_child(const char *name, int ready)
{
	struct afe_runtime *rt = test_runtime(1);
	struct afe_ipc_producer_config config = over_shared_memory();
	struct afe_ipc_producer *p = NULL;
	if (write(ready, "r", 1) != 1)
		return 1;
	afe_ipc_producer_connect(&p, rt, name, &config);
	pause();
	return 0;
}

#define CONNECT_KILLS 60

Test(ipc_recover, producers_killed_while_they_connect_leave_every_entry_free)
{
	const char *name = ipc_test_name("connect-kill");
	pid_t consumer = start_consumer(name);
	struct afe_ipc_header *h = map_object(name);
	srand((unsigned)getpid());
	for (int k = 0; k < CONNECT_KILLS; k++) {
		int ready[2];
		cr_assert_eq(pipe(ready), 0);
		pid_t child = fork_tied();
		if (child == 0) {
			close(ready[0]);
			_exit(connecting_child(name, ready[1]));
		}
		close(ready[1]);
		char byte;
		cr_assert_eq(read(ready[0], &byte, 1), 1, "the connecting child died");
		close(ready[0]);
		usleep((useconds_t)(rand() % 600)); /* into its connect, or past it */
		kill(child, SIGKILL);
		cr_assert_eq(waitpid(child, NULL, 0), child);
	}
	unsigned held_after_loop = entries_held(h);
	uint64_t took;
	unsigned held = wait_all_free(h, 3000, &took);
	fprintf(stderr, "after %d kills: %u entries held, %u still held %llu ms later\n",
		    CONNECT_KILLS, held_after_loop, held, (unsigned long long)took);
	cr_assert_eq(held, 0, "%u of %u entries still held after 3 s (states %u %u %u %u)", held,
		     AFE_IPC_MAX_PRODUCERS, atomic_load(&h->entries[0].state),
		     atomic_load(&h->entries[1].state), atomic_load(&h->entries[2].state),
		     atomic_load(&h->entries[3].state));

	struct afe_runtime *rt = test_runtime(2);
	cr_assert_eq(connect_and_call(rt, name), 0);
	test_runtime_destroy(rt);
	afe_ipc_shm_unmap(h);
	stop_consumer(consumer, SIGTERM);
}

/* ---- garbage in the entries ------------------------------------------------------ */

/* A pid that names no process: a child's, reaped. */
static pid_t dead_pid(void)
{
	pid_t pid = fork_tied();
	if (pid == 0)
		_exit(0);
	cr_assert_eq(waitpid(pid, NULL, 0), pid);
	return pid;
}

/* Writes state into free entry i of h, as a peer scribbling would. */
static void scribble(struct afe_ipc_header *h, unsigned i, uint32_t state)
{
	uint32_t free_state = AFE_IPC_ENTRY_FREE;
	cr_assert(atomic_compare_exchange_strong(&h->entries[i].state, &free_state, state));
}

Test(ipc_recover, entries_holding_garbage_or_a_claim_nobody_finishes_are_freed)
{
	const char *name = ipc_test_name("garbage");
	pid_t gone = dead_pid();
	pid_t consumer = start_consumer(name);
	struct afe_ipc_header *h = map_object(name);
	scribble(h, 0, 0xdeadbeefu);			 /* no state at all */
	scribble(h, 1, 7);				 /* nor this */
	scribble(h, 2, AFE_IPC_ENTRY_CLAIMED);		 /* a claim naming nobody */
	scribble(h, 3, afe_ipc_claim(gone));		 /* a dead claimer's */
	scribble(h, 4, afe_ipc_claim(getpid()));	 /* one that runs but never ends */
	scribble(h, 5, afe_ipc_claim((1 << 22) + 5));	 /* a pid past any pid_max */
	/* All but entry 4 are free within a re-check or two of the pump. */
	uint64_t start = now_ms(), took;
	unsigned held;
	for (;; usleep(1000)) {
		bool claim_held = atomic_load(&h->entries[4].state) != AFE_IPC_ENTRY_FREE;
		held = entries_held(h) - claim_held;
		if (!held || now_ms() - start >= 1000)
			break;
	}
	took = now_ms() - start;
	fprintf(stderr, "garbage and dead claims: %u held after %llu ms\n", held,
		(unsigned long long)took);
	cr_assert_eq(held, 0, "%u entries still held after %llu ms (states %x %x %x %x %x)", held,
		     (unsigned long long)took, atomic_load(&h->entries[0].state),
		     atomic_load(&h->entries[1].state), atomic_load(&h->entries[2].state),
		     atomic_load(&h->entries[3].state), atomic_load(&h->entries[5].state));
	/* A claimer that runs keeps its claim a while, then loses it: its pid
	 * may be another process's since. */
	cr_assert_eq(atomic_load(&h->entries[4].state), afe_ipc_claim(getpid()));
	while (atomic_load(&h->entries[4].state) != AFE_IPC_ENTRY_FREE && now_ms() - start < 5000)
		usleep(1000);
	took = now_ms() - start;
	fprintf(stderr, "a claim by a process that runs freed after %llu ms\n",
		(unsigned long long)took);
	cr_assert_eq(atomic_load(&h->entries[4].state), AFE_IPC_ENTRY_FREE,
		     "a claim held for %llu ms", (unsigned long long)took);
	cr_assert_geq(took, 1500);
	afe_ipc_shm_unmap(h);
	stop_consumer(consumer, SIGTERM);
}

/* ---- a consumer's bell whose wants a peer cleared ------------------------------ */

/* Clears the wants of h's consumer bell once its pump sleeps: they hold
 * AFE_IPC_WANT_ANY, and nobody publishes them again within 20 ms of the
 * clearing (a pump awake would). AFE_IPC_ASLEEP alone is no publishing: a
 * thread that takes the pump's watch a moment after its wants went out
 * flags itself asleep (a worker kept busy by other tasks hands it on
 * late, as without pidfds when the watchers' looks come with the pump's
 * re-check). Up to 5 s of tries. */
static void clear_consumer_wants(struct afe_ipc_header *h)
{
	for (uint64_t end = now_ms() + 5000; now_ms() < end; usleep(1000)) {
		if (!(atomic_load(&h->bell.wants) & AFE_IPC_WANT_ANY))
			continue;
		atomic_store(&h->bell.wants, 0);
		usleep(20000);
		if ((atomic_load(&h->bell.wants) & ~AFE_IPC_ASLEEP) == 0)
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
	cr_assert_eq(add_call(&call, 1, 2, 3), 0);
	cr_assert_eq(run_call(rt, &call), 0);

	clear_consumer_wants(h);
	uint64_t start = now_ms();
	int64_t sum = 0;
	cr_assert_eq(add_call(&call, 40, 1, 1), 0);
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
	/* The pump counts the peer gone, then frees its entry: wait for that
	 * (a slow run, under ThreadSanitizer, read the entry in between). */
	cr_assert_eq(wait_all_free(h, 2000, &took), 0, "the entry still held after %llu ms",
		     (unsigned long long)took);

	close(go[1]);
	close(result[0]);
	afe_ipc_shm_unmap(h);
	stop_serving(rt, &s);
	test_runtime_destroy(rt);
}
