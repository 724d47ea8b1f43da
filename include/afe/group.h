/* SPDX-License-Identifier: MIT */
/*
 * Task groups: spawn several fallible tasks, await them all, and learn the
 * first error (or success when every task succeeded). A task fails when its
 * result is negative (an -errno). Every task's result stays readable.
 */
#ifndef AFE_GROUP_H
#define AFE_GROUP_H

#include <stddef.h>

#include "common.h"
#include "future.h"
#include "task.h"

struct afe_runtime;

struct afe_group {
	struct afe_future base; /* the wait future: see afe_group_wait */
	struct afe_runtime *rt;
	struct afe_join *joins;
	size_t count, capacity;
	size_t next_unfinished; /* joins before this index are known finished */
	intptr_t first_error;	/* 0 until a task fails */
	bool waiting;		/* the wait has been polled: no more spawns */
};

/* Makes an empty group spawning on rt (NULL: the current runtime). */
AFE_EXPORT void afe_group_init(struct afe_group *g, struct afe_runtime *rt);

/*
 * Spawns a copy of the future at obj into the group. Returns its index in
 * the group (>= 0), or -ENOMEM, or the spawn error (-ESHUTDOWN, -EINVAL).
 * Not once the group's wait has started (-EBUSY).
 */
AFE_EXPORT int afe_group_spawn_raw(struct afe_group *g, const void *obj, size_t size,
				   const struct afe_future *base);
#define afe_group_spawn(g, fut) \
	afe_group_spawn_raw((g), (fut), sizeof(*(fut)), &(fut)->base)

/*
 * The future to await: &g->base. It is ready when every task finished; its
 * result is the first error observed (tasks that finish in the same wake are
 * taken in spawn order), or 0 when all succeeded. Cancelling the wait
 * cancels the tasks still running and waits for them.
 */
static inline struct afe_future *afe_group_wait(struct afe_group *g)
{
	return &g->base;
}

/* The result of task i once the wait completed; -EINVAL for a bad index,
 * -EBUSY while the wait has not completed. */
AFE_EXPORT intptr_t afe_group_result(const struct afe_group *g, size_t i);

/* Number of tasks spawned into g. */
static inline size_t afe_group_size(const struct afe_group *g)
{
	return g->count;
}

/* Frees the group's memory. Tasks it has not joined are detached. */
AFE_EXPORT void afe_group_destroy(struct afe_group *g);

#endif /* AFE_GROUP_H */
