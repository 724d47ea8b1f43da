/* SPDX-License-Identifier: MIT */
/*
 * The bell sleep: one sleep of a pump (the consumer's, or a producer's
 * shared-memory link's) on its bell, following ipc_bell.h's protocol:
 *
 *   1. publish what the pump wants (afe_ipc_bell_want);
 *   2. look again: its wants unchanged and no work there yet, else
 *      withdraw them and end at once (the pump looks again);
 *   3. hand on, to the pump's local waiters, what came before the wants
 *      were published; wants already met are withdrawn (the producer:
 *      room freed before it wanted room), their waiters woken, and the
 *      rest published anew and looked at again, a waiter for what was
 *      met that armed meanwhile included;
 *   4. watch the bell's word (and whatever else wakes the pump) and await;
 *   5. withdraw the wants (afe_ipc_bell_unwant).
 *
 * A pump inits one, awaits it, then goes round its loop again, until the
 * result says it ends for good.
 */
#ifndef AFE_IPC_BELL_SLEEP_H
#define AFE_IPC_BELL_SLEEP_H

#include <afe.h>
#include <stdbool.h>
#include <stdint.h>

#include "ipc_bell.h"

/* What a pump tells its sleep. Each gets the pump passed at init. */
struct afe_ipc_bell_sleep_ops {
	/* What the pump wants now (AFE_IPC_WANT_*). Called before publishing
	 * and again after: a change (a waiter came meanwhile) ends the sleep. */
	uint32_t (*wants)(void *pump);
	/* After publishing: whether there is work already (the sleep ends). */
	bool (*has_work)(void *pump);
	/* Optional. Wants published, no work found, just before the sleep:
	 * wakes the pump's local waiters for what came before the wants were
	 * published. Returns the wants that are met already (0 for none):
	 * the sleep withdraws its wants, calls on_met, and publishes the rest
	 * anew. */
	uint32_t (*before_sleep)(void *pump, uint32_t wants);
	/* With wants met (see before_sleep), once they are withdrawn: wakes
	 * their waiters. */
	void (*on_met)(void *pump, uint32_t met);
	/* With before_sleep: after on_met and the rest published anew,
	 * whether a waiter for met is waiting again (one that armed while
	 * the wants were withdrawn found no sleeper to ring): the sleep then
	 * ends and the pump looks again, rather than sleep without met. */
	bool (*met_wanted_again)(void *pump, uint32_t met);
	/* Optional: arms up to AFE_IPC_BELL_SLEEP_ALSO more futures that end
	 * the sleep (the consumer's kick and re-check), into racers; returns
	 * how many. */
	unsigned (*also)(void *pump, struct afe_future **racers);
};

#define AFE_IPC_BELL_SLEEP_ALSO 2

struct afe_ipc_bell_sleep {
	struct afe_future base;
	const struct afe_ipc_bell_sleep_ops *ops;
	void *pump;
	struct afe_ipc_bell *bell;
	uint32_t sleeper; /* the name it publishes under (afe_ipc_bell_want) */
	uint32_t word;	  /* the word's value to wait on */
	struct afe_watch watch;
	struct afe_future *racers[1 + AFE_IPC_BELL_SLEEP_ALSO];
	struct afe_select race; /* the watch and the others, when there are others */
	struct afe_future *wait; /* &watch.base or &race.base */
};

/*
 * Sets up one sleep of pump on bell, publishing under the name sleeper.
 * Its result: 0 once the pump should look again (it found work, or was
 * woken), or a negative errno when the pump or its runtime goes away
 * (-ECANCELED, -ESHUTDOWN, or the select's error): the pump ends.
 */
void afe_ipc_bell_sleep_init(struct afe_ipc_bell_sleep *s, struct afe_ipc_bell *bell,
			     uint32_t sleeper, const struct afe_ipc_bell_sleep_ops *ops,
			     void *pump);

#endif /* AFE_IPC_BELL_SLEEP_H */
