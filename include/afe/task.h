/* SPDX-License-Identifier: MIT */
/*
 * Tasks, join handles, and the join and cancel futures.
 *
 * Spawning copies a future into a new task (one allocation holding the task
 * header and the future) and queues it on a runtime. The caller may keep a
 * join handle; a task whose handle is dropped is detached and runs to
 * completion: detached tasks are never cancelled.
 *
 * A join handle is a counted reference to the task. The join and cancel
 * futures take the handle over (the caller's handle is emptied), so using a
 * handle twice gets a clear -EINVAL instead of a double release. Do not copy
 * a handle: a copy used once the original was consumed would touch a task
 * that may be freed. Debug builds (NDEBUG not defined) catch that copy
 * wherever a handle is taken, refuse it as an empty handle (-EINVAL) and
 * say so on stderr; release builds cannot tell it.
 */
#ifndef AFE_TASK_H
#define AFE_TASK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common.h"
#include "future.h"

struct afe_runtime;

struct afe_join_handle {
	/* Private. */
	struct afe_task *task; /* NULL: empty (never filled, or taken) */
	bool cancel_on_drop;   /* a child handle: dropping it cancels the task */
	uint32_t stamp;	       /* private: tells the live handle from copies */
};

/*
 * Spawns a copy of the future struct at obj (size bytes; base is its
 * embedded struct afe_future) on rt, or on the current task's runtime when
 * rt is NULL. The task owns the copy; obj may be reused at once.
 * If handle is not NULL it receives a join handle, else the task is
 * detached. Callable from any thread.
 * Returns 0, -EINVAL (no runtime, null future, base outside obj),
 * -ENOMEM, or -ESHUTDOWN once the runtime is being destroyed.
 */
AFE_EXPORT int afe_spawn_raw(struct afe_runtime *rt, const void *obj, size_t size,
			     const struct afe_future *base, struct afe_join_handle *handle);

/* afe_spawn(rt, &my_future, &handle): my_future is a struct with a
 * `struct afe_future base` member. */
#define afe_spawn(rt, fut, handle) \
	afe_spawn_raw((rt), (fut), sizeof(*(fut)), &(fut)->base, (handle))

/* Like afe_spawn, but the handle cancels the task when dropped: for
 * structured code whose children must not outlive it. */
#define afe_spawn_child(rt, fut, handle) \
	afe_spawn_child_raw((rt), (fut), sizeof(*(fut)), &(fut)->base, (handle))
AFE_EXPORT int afe_spawn_child_raw(struct afe_runtime *rt, const void *obj, size_t size,
				   const struct afe_future *base,
				   struct afe_join_handle *handle);

/* Longest task name kept, with its terminating NUL. */
#define AFE_TASK_NAME_MAX 32

/* How afe_spawn_with spawns. A task spawned with options also has a
 * task-local slot (afe_task_local_set); a plain task has none. */
struct afe_spawn_options {
	const char *name; /* copied (cut to AFE_TASK_NAME_MAX - 1 bytes); NULL: none */
	bool child;	  /* the handle cancels the task when dropped (needs one) */
};

/*
 * Spawns like afe_spawn_raw (or afe_spawn_child_raw when opts->child),
 * with a name and a task-local slot; the task is AFE_TASK_NAME_MAX + 8
 * bytes larger. Same returns, and -EINVAL for null opts.
 */
AFE_EXPORT int afe_spawn_with_raw(struct afe_runtime *rt, const void *obj, size_t size,
				  const struct afe_future *base, struct afe_join_handle *handle,
				  const struct afe_spawn_options *opts);
#define afe_spawn_with(rt, fut, handle, opts) \
	afe_spawn_with_raw((rt), (fut), sizeof(*(fut)), &(fut)->base, (handle), (opts))

/* The name the task of handle was spawned with; NULL for an empty handle
 * or a task without a name. Valid while the handle holds the task. */
AFE_EXPORT const char *afe_task_name(const struct afe_join_handle *handle);

/* The name of the task being polled with cx; NULL outside a task or for a
 * task without a name. Valid during the poll. */
AFE_EXPORT const char *afe_task_current_name(const struct afe_context *cx);

/*
 * Task-local storage: one pointer per task, read and written by the
 * task's own polls through their context. It starts as NULL; the task
 * owns what it points to (free it in the task's cleanup: nothing frees it
 * for you). Set returns 0, or -EINVAL outside a task or in a task spawned
 * without options (which has no slot). Get returns the value, or NULL.
 */
AFE_EXPORT int afe_task_local_set(const struct afe_context *cx, void *value);
AFE_EXPORT void *afe_task_local_get(const struct afe_context *cx);

/*
 * Drops the handle and empties it. A plain handle detaches the task (it
 * runs to completion); a child handle requests its cancellation.
 * An empty handle is left as it is.
 */
AFE_EXPORT void afe_join_handle_drop(struct afe_join_handle *handle);

/*
 * Asks the task to stop at its next suspension, like the cancel future,
 * but does not wait: the handle stays filled, so join it (or drop it) as
 * usual; the join then gives what the cancelled future returned (by
 * convention -ECANCELED), or the real output if the task had already
 * finished. Asking twice, or after the task finished, changes nothing.
 * Callable from any thread. Returns 0, or -EINVAL for an empty handle.
 */
AFE_EXPORT int afe_join_handle_abort(struct afe_join_handle *handle);

/* True when the task has finished (completed or cancelled). */
AFE_EXPORT bool afe_join_handle_is_finished(const struct afe_join_handle *handle);

/*
 * The join future: ready with the task's result (its future's result, or
 * -ECANCELED if it was cancelled before finishing). It takes the handle
 * over. Returns 0, or -EINVAL for an empty handle, in which case the
 * future still works and completes at once with -EINVAL.
 * Cancelling the join future: with a plain handle, the handle is dropped
 * (the task is detached and runs on) and the join completes at once with
 * -ECANCELED; with a child handle (afe_spawn_child) the task is cancelled
 * and the join completes once the task finished, with its result.
 */
struct afe_join {
	struct afe_future base;
	/* Private. */
	struct afe_join_handle handle;
	bool cancel_requested;
};
AFE_EXPORT int afe_join_init(struct afe_join *join, struct afe_join_handle *handle);

/*
 * The cancel future: asks the task to stop at its next suspension (its
 * future is polled once more with cancel set, which lets it cancel and
 * await what it has in flight), then completes with the task's result:
 * the real output if the task had already finished, else what its
 * cancelled future returned (by convention -ECANCELED).
 * Takes the handle over. Returns 0, or -EINVAL for an empty handle (the
 * future then completes at once with -EINVAL). Cancelling the cancel
 * future changes nothing: it still waits for the task to finish.
 */
struct afe_cancel {
	struct afe_future base;
	/* Private. */
	struct afe_join_handle handle;
	bool requested;
};
AFE_EXPORT int afe_cancel_init(struct afe_cancel *cancel, struct afe_join_handle *handle);

#endif /* AFE_TASK_H */
