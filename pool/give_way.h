/* SPDX-License-Identifier: MIT */
/* How a future refused for shutdown hands its result back. */
#ifndef AFE_POOL_GIVE_WAY_H
#define AFE_POOL_GIVE_WAY_H

#include "afe/future.h"

/*
 * For a future refused at its first poll because the runtime is shutting
 * down (-ESHUTDOWN, already stored): wakes the task and returns pending,
 * so the result is seen at the next poll. A task that loops on such a
 * future and ignores the result then goes back through its worker every
 * round, where destroy stops it when the grace period ends; were the
 * future ready at once, the loop would spin inside one poll and destroy
 * would wait for it for ever (issue 23).
 */
static inline int afe__give_way(struct afe_context *cx)
{
	afe_context_yield(cx);
	return AFE_PENDING;
}

#endif /* AFE_POOL_GIVE_WAY_H */
