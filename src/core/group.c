/* SPDX-License-Identifier: MIT */
/* Task groups and scopes: a growable array of join futures, awaited
 * together (the wait) or one at a time (next). */
#include "afe/group.h"

#include <stdlib.h>

/* Asks every task not yet known finished to cancel; from now on spawns
 * are refused, so no task escapes the request. */
static void cancel_all(struct afe_group *g)
{
	g->cancelling = true;
	for (size_t i = g->next_unfinished; i < g->count; i++)
		afe_join_handle_abort(&g->slots[i].join.handle); /* empty once joined */
}

/* Notes that task i finished with result r: the first error, and under
 * fail fast the cancel of the others. The -ECANCELED of a task the group
 * itself cancelled is no error of its own. */
static void note_finished(struct afe_group *g, intptr_t r)
{
	if (r >= 0 || g->first_error != 0)
		return;
	if (g->cancelling && r == -ECANCELED)
		return;
	g->first_error = r;
	if (g->fail_fast)
		cancel_all(g);
}

/* Polls slot i's join; true once its task finished. */
static bool poll_slot(struct afe_group *g, size_t i, struct afe_context *cx)
{
	struct afe_join *j = &g->slots[i].join;
	if (afe_future_is_done(&j->base))
		return true;
	if (afe_future_poll(&j->base, cx) == AFE_PENDING)
		return false;
	note_finished(g, j->base.result);
	return true;
}

static int group_poll(struct afe_future *f, struct afe_context *cx)
{
	struct afe_group *g = afe_container_of(f, struct afe_group, base);
	if (g->cancel_at_wait && !g->cancelling)
		cancel_all(g);
	bool all = true;
	for (size_t i = g->next_unfinished; i < g->count; i++) {
		if (cx->cancel && !afe_future_is_done(&g->slots[i].join.base)) {
			/* Cancel the task itself, not only our interest in it. */
			g->slots[i].join.handle.cancel_on_drop = true;
		}
		if (!poll_slot(g, i, cx)) {
			all = false;
			continue;
		}
		if (all)
			g->next_unfinished = i + 1;
	}
	if (!all)
		return AFE_PENDING;
	f->result = cx->cancel && g->first_error == 0 ? -ECANCELED : g->first_error;
	return AFE_READY;
}

static void group_init(struct afe_group *g, struct afe_runtime *rt)
{
	afe_future_init(&g->base, group_poll);
	g->rt = rt;
	g->slots = NULL;
	g->count = g->capacity = 0;
	g->next_unfinished = g->next_unreported = 0;
	g->first_error = 0;
	g->fail_fast = g->children = g->cancel_at_wait = g->cancelling = false;
}

void afe_group_init(struct afe_group *g, struct afe_runtime *rt)
{
	group_init(g, rt);
}

void afe_group_init_fail_fast(struct afe_group *g, struct afe_runtime *rt)
{
	group_init(g, rt);
	g->fail_fast = true;
}

/* Makes room for one more slot. Returns 0 or -ENOMEM. */
static int reserve_slot(struct afe_group *g)
{
	if (g->count >= INT32_MAX)
		return -ENOMEM;
	if (g->count < g->capacity)
		return 0;
	size_t cap = g->capacity ? 2 * g->capacity : 8;
	/* Moving joins is fine: a task keeps the joiner's waker, never a
	 * pointer to the join. */
	struct afe_group_slot *slots = realloc(g->slots, cap * sizeof(*slots));
	if (!slots)
		return -ENOMEM;
	g->slots = slots;
	g->capacity = cap;
	return 0;
}

int afe_group_spawn_raw(struct afe_group *g, const void *obj, size_t size,
			const struct afe_future *base)
{
	if (!g)
		return -EINVAL;
	if (afe_future_is_done(&g->base))
		return -EBUSY;
	if (g->cancelling)
		return -ECANCELED;
	int err = reserve_slot(g);
	if (err < 0)
		return err;
	struct afe_join_handle handle;
	err = g->children ? afe_spawn_child_raw(g->rt, obj, size, base, &handle)
			  : afe_spawn_raw(g->rt, obj, size, base, &handle);
	if (err < 0)
		return err;
	struct afe_group_slot *slot = &g->slots[g->count];
	afe_join_init(&slot->join, &handle);
	slot->reported = false;
	return (int)g->count++;
}

static int next_poll(struct afe_future *f, struct afe_context *cx)
{
	struct afe_group_next *n = afe_container_of(f, struct afe_group_next, base);
	struct afe_group *g = n->g;
	if (cx->cancel) {
		f->result = -ECANCELED;
		return AFE_READY;
	}
	while (g->next_unreported < g->count && g->slots[g->next_unreported].reported)
		g->next_unreported++;
	if (g->next_unreported == g->count) {
		f->result = -ENOENT;
		return AFE_READY;
	}
	/* Polls every unreported join, so each holds our waker. */
	size_t found = g->count;
	for (size_t i = g->next_unreported; i < g->count; i++) {
		if (!g->slots[i].reported && poll_slot(g, i, cx) && found == g->count)
			found = i;
	}
	if (found == g->count)
		return AFE_PENDING;
	g->slots[found].reported = true;
	f->result = (intptr_t)found;
	return AFE_READY;
}

void afe_group_next_init(struct afe_group_next *next, struct afe_group *g)
{
	afe_future_init(&next->base, next_poll);
	next->g = g;
}

intptr_t afe_group_result(const struct afe_group *g, size_t i)
{
	if (!g || i >= g->count)
		return -EINVAL;
	if (!afe_future_is_done(&g->slots[i].join.base))
		return -EBUSY;
	return g->slots[i].join.base.result;
}

void afe_group_destroy(struct afe_group *g)
{
	if (!g)
		return;
	for (size_t i = 0; i < g->count; i++)
		afe_join_handle_drop(&g->slots[i].join.handle);
	free(g->slots);
	g->slots = NULL;
	g->count = g->capacity = 0;
}

/* ---- scopes ------------------------------------------------------------ */

void afe_scope_init(struct afe_scope *s, struct afe_runtime *rt, enum afe_scope_mode mode)
{
	group_init(&s->group, rt);
	s->group.children = true;
	s->group.cancel_at_wait = mode == AFE_SCOPE_CANCEL;
}

int afe_scope_spawn_raw(struct afe_scope *s, const void *obj, size_t size,
			const struct afe_future *base)
{
	return afe_group_spawn_raw(s ? &s->group : NULL, obj, size, base);
}

void afe_scope_cancel(struct afe_scope *s)
{
	if (s)
		cancel_all(&s->group);
}

size_t afe_scope_destroy(struct afe_scope *s)
{
	if (!s)
		return 0;
	size_t running = 0;
	for (size_t i = 0; i < s->group.count; i++)
		running += s->group.slots[i].join.handle.task &&
			   !afe_join_handle_is_finished(&s->group.slots[i].join.handle);
	/* Child handles: dropping them cancels what still runs. */
	afe_group_destroy(&s->group);
	return running;
}
