/* SPDX-License-Identifier: MIT */
/*
 * Task groups and scopes.
 *
 * A group spawns several fallible tasks and awaits them: all together
 * (afe_group_wait: the first error, or success when every task
 * succeeded), or one by one as they finish (afe_group_next). A task fails
 * when its result is negative (an -errno). Every task's result stays
 * readable. A fail-fast group (afe_group_init_fail_fast) cancels the other
 * tasks at the first failure; its wait still awaits them before it
 * returns that error.
 *
 * A scope is a group whose tasks cannot outlive it: its end
 * (afe_scope_end) waits for every child, or cancels them all and waits,
 * as chosen at init. The caller holds no handle it could forget to drop.
 *
 * A group belongs to one task at a time: spawn, wait and next are not
 * safe to call from several threads at once. Tasks may be added while the
 * wait is pending (between its polls, or between calls to next), until
 * the wait completed.
 */
#ifndef AFE_GROUP_H
#define AFE_GROUP_H

#include <stddef.h>

#include "common.h"
#include "future.h"
#include "task.h"

struct afe_runtime;

/* One task of a group. */
struct afe_group_slot {
	/* Private. */
	struct afe_join join;
	bool reported; /* afe_group_next has handed it out */
};

struct afe_group {
	struct afe_future base; /* the wait future: see afe_group_wait */
	/* Private. */
	struct afe_runtime *rt;
	struct afe_group_slot *slots;
	size_t count, capacity;
	size_t next_unfinished; /* slots before this index are known finished */
	size_t next_unreported; /* slots before this index were reported */
	intptr_t first_error;	/* 0 until a task fails */
	bool fail_fast;		/* the first failure cancels the others */
	bool children;		/* a scope: handles cancel their task on drop */
	bool cancel_at_wait;	/* a scope that cancels its children at its end */
	bool cancelling;	/* the group cancelled its tasks: no more spawns */
};

/* Makes an empty group spawning on rt (NULL: the current runtime). */
AFE_EXPORT void afe_group_init(struct afe_group *g, struct afe_runtime *rt);

/* Like afe_group_init, but the group fails fast: the first task seen to
 * fail (by the wait or by next) gets every unfinished task cancelled (as
 * afe_join_handle_abort does), and later spawns are refused. */
AFE_EXPORT void afe_group_init_fail_fast(struct afe_group *g, struct afe_runtime *rt);

/*
 * Spawns a copy of the future at obj into the group. Returns its index in
 * the group (>= 0), or -ENOMEM, or the spawn error (-ESHUTDOWN, -EINVAL),
 * -EBUSY once the group's wait has completed, or -ECANCELED once the group
 * cancelled its tasks (fail fast, or a cancelling scope's end began).
 * Allowed while the wait is pending: the wait then also awaits this task.
 */
AFE_EXPORT int afe_group_spawn_raw(struct afe_group *g, const void *obj, size_t size,
				   const struct afe_future *base);
#define afe_group_spawn(g, fut) \
	afe_group_spawn_raw((g), (fut), sizeof(*(fut)), &(fut)->base)

/*
 * The future to await: &g->base. It is ready when every task finished; its
 * result is the first error observed (tasks that finish in the same wake are
 * taken in spawn order), or 0 when all succeeded. Cancelling the wait
 * cancels the tasks still running and waits for them; its result is then
 * the first error, or -ECANCELED.
 */
static inline struct afe_future *afe_group_wait(struct afe_group *g)
{
	return &g->base;
}

/*
 * join_next: a future ready with the index (>= 0) of a task that finished
 * and that no earlier next reported (the lowest such index when several
 * are), whose result afe_group_result then gives; or -ENOENT when every
 * task spawned so far was reported (spawn more, or stop). Cancelling it
 * gives -ECANCELED at once and leaves the tasks running. A group with n
 * tasks costs O(n) per poll. g must stay put while it is awaited.
 */
struct afe_group_next {
	struct afe_future base;
	/* Private. */
	struct afe_group *g;
};
AFE_EXPORT void afe_group_next_init(struct afe_group_next *next, struct afe_group *g);

/* The result of task i once the group saw it finish (the wait completed,
 * or next reported it); -EINVAL for a bad index, -EBUSY before that. */
AFE_EXPORT intptr_t afe_group_result(const struct afe_group *g, size_t i);

/* Number of tasks spawned into g. */
static inline size_t afe_group_size(const struct afe_group *g)
{
	return g->count;
}

/* Frees the group's memory. Tasks it has not joined are detached (in a
 * scope: cancelled, see afe_scope_destroy). */
AFE_EXPORT void afe_group_destroy(struct afe_group *g);

/* ---- scopes ------------------------------------------------------------ */

/* What a scope's end does with children still running. */
enum afe_scope_mode {
	AFE_SCOPE_WAIT,	  /* waits for them to finish */
	AFE_SCOPE_CANCEL, /* cancels them, then waits for them to wind down */
};

struct afe_scope {
	/* Private. */
	struct afe_group group;
};

/* Makes an empty scope spawning on rt (NULL: the current runtime) whose
 * end behaves as mode says. */
AFE_EXPORT void afe_scope_init(struct afe_scope *s, struct afe_runtime *rt,
			       enum afe_scope_mode mode);

/* Spawns a child into the scope: as afe_group_spawn_raw, same returns. */
AFE_EXPORT int afe_scope_spawn_raw(struct afe_scope *s, const void *obj, size_t size,
				   const struct afe_future *base);
#define afe_scope_spawn(s, fut) \
	afe_scope_spawn_raw((s), (fut), sizeof(*(fut)), &(fut)->base)

/*
 * The scope's end, to await (in the owner's AFE_CLEANUP section too, so a
 * cancelled owner still waits for its children). Ready once every child
 * finished, with the first error a child returned, or 0. In
 * AFE_SCOPE_CANCEL mode the -ECANCELED of the children it cancelled is no
 * error. Cancelling the end (the owner cancelled while awaiting it)
 * cancels the children and still waits for them.
 */
static inline struct afe_future *afe_scope_end(struct afe_scope *s)
{
	return &s->group.base;
}

/*
 * Asks every running child to cancel, without waiting (await the end for
 * that); later spawns are refused with -ECANCELED. NULL: nothing to do.
 */
AFE_EXPORT void afe_scope_cancel(struct afe_scope *s);

/*
 * Frees the scope's memory. Returns the number of children that had not
 * finished: they are cancelled, but nobody waits for them, so call this
 * only after the end completed (then it returns 0).
 */
AFE_EXPORT size_t afe_scope_destroy(struct afe_scope *s);

#endif /* AFE_GROUP_H */
