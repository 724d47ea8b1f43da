/* SPDX-License-Identifier: MIT */
/*
 * The bell's sleep/wake protocol, hunted for lost wakeups: a sleeper that
 * keeps changing what it wants (frames, room, both) between two wakers
 * ringing for each. Every event is answered before its waker makes the
 * next, so a lost wake leaves the sleeper waiting with work pending; the
 * sleeper's futex waits time out after 5 s and the test fails (a lost
 * wake never comes; 1 s once timed out a waker a loaded machine starved). As a
 * watch does, the sleeper flags itself AFE_IPC_ASLEEP before each futex
 * wait, and some rounds first watch the word without the flag for a
 * while, as a searching worker does: wakers skip the syscall then.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <time.h>

#include "src/ipc/ipc_bell.h"

#define EVENTS 300000u

struct bell_rig {
	struct afe_ipc_bell bell;
	_Atomic uint32_t made[2], taken[2];
	_Atomic bool lost;
};

struct waker_arg {
	struct bell_rig *b;
	unsigned kind; /* 0: frames, 1: room */
};

static uint32_t want_bit(unsigned kind)
{
	return kind ? AFE_IPC_WANT_ROOM : AFE_IPC_WANT_FRAME;
}

static void *waker(void *arg)
{
	struct waker_arg *w = arg;
	struct bell_rig *b = w->b;
	for (uint32_t i = 1; i <= EVENTS && !atomic_load(&b->lost); i++) {
		atomic_store(&b->made[w->kind], i);
		afe_ipc_bell_ring(&b->bell, want_bit(w->kind));
		while (atomic_load(&b->taken[w->kind]) < i && !atomic_load(&b->lost))
			sched_yield();
	}
	return NULL;
}

/* Takes what is there of the kinds in wants; returns whether it took any. */
static bool take(struct bell_rig *b, uint32_t wants)
{
	bool took = false;
	for (unsigned kind = 0; kind < 2; kind++) {
		uint32_t made = atomic_load(&b->made[kind]);
		if ((wants & want_bit(kind)) && atomic_load(&b->taken[kind]) < made) {
			atomic_store(&b->taken[kind], made);
			took = true;
		}
	}
	return took;
}

/* Whether every kind in wants has events still to come (a sleeper
 * wanting only finished kinds would wait for ever, rightly). */
static bool more_to_come(struct bell_rig *b, uint32_t wants)
{
	for (unsigned kind = 0; kind < 2; kind++)
		if ((wants & want_bit(kind)) && atomic_load(&b->taken[kind]) >= EVENTS)
			return false;
	return true;
}

/* Looks at the word without sleeping, as a searching worker does; returns
 * whether it left word. */
static bool watch_a_while(struct afe_ipc_bell *bell, uint32_t word)
{
	for (int i = 0; i < 2000; i++)
		if (atomic_load(&bell->word) != word)
			return true;
	return false;
}

Test(ipc_bell, a_sleeper_changing_what_it_wants_never_misses_a_wake)
{
	static struct bell_rig b;
	struct waker_arg args[2] = {{&b, 0}, {&b, 1}};
	pthread_t threads[2];
	for (unsigned k = 0; k < 2; k++)
		cr_assert_eq(pthread_create(&threads[k], NULL, waker, &args[k]), 0);
	static const uint32_t choices[3] = {AFE_IPC_WANT_FRAME | AFE_IPC_WANT_ROOM,
					    AFE_IPC_WANT_FRAME, AFE_IPC_WANT_ROOM};
	unsigned round = 0;
	while (atomic_load(&b.taken[0]) < EVENTS || atomic_load(&b.taken[1]) < EVENTS) {
		uint32_t wants = choices[round++ % 3];
		for (unsigned kind = 0; kind < 2; kind++)
			if (atomic_load(&b.taken[kind]) >= EVENTS)
				wants &= ~want_bit(kind);
		if (!wants)
			wants = AFE_IPC_WANT_FRAME | AFE_IPC_WANT_ROOM;
		uint32_t word = afe_ipc_bell_want(&b.bell, wants, round);
		/* Half the rounds sleep even after taking what the re-check
		 * found, as the consumer's pump does (it hands the frames to
		 * receivers, then sleeps): a wake that came between publishing
		 * wants and reading the word must not be lost then either. */
		if (take(&b, wants) && (round % 2 || !more_to_come(&b, wants))) {
			afe_ipc_bell_unwant(&b.bell, round);
			continue;
		}
		if (round % 4 == 0 && watch_a_while(&b.bell, word)) {
			afe_ipc_bell_unwant(&b.bell, round);
			continue;
		}
		atomic_fetch_or(&b.bell.wants, AFE_IPC_ASLEEP);
		struct timespec patience = {.tv_sec = 5};
		long r = syscall(SYS_futex, &b.bell.word, FUTEX_WAIT, word, &patience, NULL, 0);
		afe_ipc_bell_unwant(&b.bell, round);
		if (r < 0 && errno == ETIMEDOUT) {
			atomic_store(&b.lost, true);
			break;
		}
	}
	for (unsigned k = 0; k < 2; k++)
		pthread_join(threads[k], NULL);
	cr_assert_not(atomic_load(&b.lost), "a wake was lost: frames %u/%u, room %u/%u",
		      atomic_load(&b.taken[0]), atomic_load(&b.made[0]), atomic_load(&b.taken[1]),
		      atomic_load(&b.made[1]));
}

Test(ipc_bell, a_sleeper_withdraws_only_its_own_wants)
{
	/* An entry's last producer, waking from its close, and the next one
	 * that took the entry: the late unwant must leave the next one's
	 * wants (with the same bits) for its waker. */
	struct afe_ipc_bell bell = {0};
	uint32_t word = afe_ipc_bell_want(&bell, AFE_IPC_WANT_FRAME, 7);
	(void)afe_ipc_bell_want(&bell, AFE_IPC_WANT_FRAME | AFE_IPC_WANT_ANY, 8);
	afe_ipc_bell_unwant(&bell, 7);
	cr_assert_eq(afe_ipc_bell_ring(&bell, AFE_IPC_WANT_FRAME), 1, "the wake was lost");
	cr_assert_eq(atomic_load(&bell.word), word + 1);

	/* Its own, also once it flagged its sleep; a name past 24 bits is
	 * its low 24 bits. */
	uint32_t name = 0x5000009u;
	(void)afe_ipc_bell_want(&bell, AFE_IPC_WANT_ROOM, name);
	atomic_fetch_or(&bell.wants, AFE_IPC_ASLEEP);
	afe_ipc_bell_unwant(&bell, name);
	cr_assert_eq(atomic_load(&bell.wants), 0);
	cr_assert_eq(afe_ipc_bell_ring(&bell, AFE_IPC_WANT_ROOM), 0);
}
