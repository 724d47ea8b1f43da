/* SPDX-License-Identifier: MIT */
/* How a future that has its result at its first poll hands it back
 * through the worker's queue, and the budget of such results per poll. */
#ifndef AFE_POOL_GIVE_WAY_H
#define AFE_POOL_GIVE_WAY_H

#include <stdbool.h>

#include "afe/future.h"

/*
 * For a future whose result is already stored at its first poll: wakes
 * the task and returns pending, so the result is seen at the next poll,
 * after the tasks queued before it. Used where a loop over such futures
 * would otherwise spin inside one poll: a future refused because the
 * runtime is shutting down (-ESHUTDOWN; a task that ignores it goes back
 * through its worker every round, where destroy stops it when the grace
 * period ends, issue 23), and once a poll has spent its budget of
 * operations ended without the ring (below).
 */
static inline int afe__give_way(struct afe_context *cx)
{
	afe_context_yield(cx);
	return AFE_PENDING;
}

/*
 * Operations a task's poll may end without waiting (uring/io.c: a cached
 * file read, a datagram sent at once) before the next one gives way: a
 * loop over such operations, or over a socket that never runs dry, would
 * otherwise keep its worker (or the ring thread, running it inline) from
 * everything else. Per poll, as Tokio's cooperative budget (also 128): a
 * task that waits has given way already. At 64, a datagram stream of 64
 * buffers gave way whenever it was full, and its echo loop left the ring
 * thread for a worker (pool/HANDOFF.md). afe__runnable_run starts each
 * poll's count; so does an operation that waits for the ring (for
 * afe_block_on's polls, which are no task's).
 */
#define AFE_POLL_BUDGET 128

/* This thread's count of the current poll's operations ended at once. */
extern _Thread_local unsigned afe__poll_budget_used;

static inline void afe__poll_budget_reset(void)
{
	afe__poll_budget_used = 0;
}

/* Whether the current poll has ended an operation at once: it is working
 * through a batch (a stream's queued datagrams) rather than reacting to
 * one completion of the ring. */
static inline bool afe__poll_ended_at_once(void)
{
	return afe__poll_budget_used != 0;
}

/* Counts one operation ended at once: true when the poll's budget is
 * spent and the caller gives way (the count starts again). */
static inline bool afe__poll_budget_spend(void)
{
	if (++afe__poll_budget_used < AFE_POLL_BUDGET)
		return false;
	afe__poll_budget_used = 0;
	return true;
}

#endif /* AFE_POOL_GIVE_WAY_H */
