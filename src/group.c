/* SPDX-License-Identifier: MIT */
/* Task groups: a growable array of join futures, awaited together. */
#include "afe/group.h"

#include <stdlib.h>

static int group_poll(struct afe_future *f, struct afe_context *cx)
{
	struct afe_group *g = afe_container_of(f, struct afe_group, base);
	g->waiting = true;
	bool all = true;
	for (size_t i = g->next_unfinished; i < g->count; i++) {
		struct afe_join *j = &g->joins[i];
		bool was_done = afe_future_is_done(&j->base);
		if (cx->cancel && !was_done) {
			/* Cancel the task itself, not only our interest in it. */
			j->handle.cancel_on_drop = true;
		}
		if (afe_future_poll(&j->base, cx) == AFE_PENDING) {
			all = false;
			continue;
		}
		if (!was_done && j->base.result < 0 && g->first_error == 0)
			g->first_error = j->base.result;
		if (all)
			g->next_unfinished = i + 1;
	}
	if (!all)
		return AFE_PENDING;
	f->result = cx->cancel && g->first_error == 0 ? -ECANCELED : g->first_error;
	return AFE_READY;
}

void afe_group_init(struct afe_group *g, struct afe_runtime *rt)
{
	afe_future_init(&g->base, group_poll);
	g->rt = rt;
	g->joins = NULL;
	g->count = g->capacity = 0;
	g->next_unfinished = 0;
	g->first_error = 0;
	g->waiting = false;
}

int afe_group_spawn_raw(struct afe_group *g, const void *obj, size_t size,
			const struct afe_future *base)
{
	if (!g)
		return -EINVAL;
	if (g->waiting)
		return -EBUSY;
	if (g->count >= INT32_MAX)
		return -ENOMEM;
	if (g->count == g->capacity) {
		size_t cap = g->capacity ? 2 * g->capacity : 8;
		struct afe_join *joins = realloc(g->joins, cap * sizeof(*joins));
		if (!joins)
			return -ENOMEM;
		g->joins = joins;
		g->capacity = cap;
	}
	struct afe_join_handle handle;
	int err = afe_spawn_raw(g->rt, obj, size, base, &handle);
	if (err < 0)
		return err;
	afe_join_init(&g->joins[g->count], &handle);
	return (int)g->count++;
}

intptr_t afe_group_result(const struct afe_group *g, size_t i)
{
	if (!g || i >= g->count)
		return -EINVAL;
	if (!afe_future_is_done(&g->joins[i].base))
		return -EBUSY;
	return g->joins[i].base.result;
}

void afe_group_destroy(struct afe_group *g)
{
	if (!g)
		return;
	for (size_t i = 0; i < g->count; i++)
		afe_join_handle_drop(&g->joins[i].handle);
	free(g->joins);
	g->joins = NULL;
	g->count = g->capacity = 0;
}
