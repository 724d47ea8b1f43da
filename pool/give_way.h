/* SPDX-License-Identifier: MIT */
/* How a future that has its result at its first poll hands it back
 * through the worker's queue. */
#ifndef AFE_POOL_GIVE_WAY_H
#define AFE_POOL_GIVE_WAY_H

#include "afe/future.h"

/*
 * For a future whose result is already stored at its first poll: wakes
 * the task and returns pending, so the result is seen at the next poll,
 * after the tasks queued before it. Used where a loop over such futures
 * would otherwise spin inside one poll: a future refused because the
 * runtime is shutting down (-ESHUTDOWN; a task that ignores it goes back
 * through its worker every round, where destroy stops it when the grace
 * period ends, issue 23), and every so many operations ended without the
 * ring (uring/io.c).
 */
static inline int afe__give_way(struct afe_context *cx)
{
	afe_context_yield(cx);
	return AFE_PENDING;
}

#endif /* AFE_POOL_GIVE_WAY_H */
