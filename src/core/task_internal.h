/* SPDX-License-Identifier: MIT */
/*
 * The task: one allocation holding this header and a copy of the future.
 *
 * Its state word packs flags and a reference count:
 *   RUNNING        a worker is polling the future
 *   NOTIFIED       the task is queued, or must be queued again after the
 *                  poll in progress (a wake that arrives while running)
 *   COMPLETE       the future finished; output is valid
 *   CANCELLED      cancellation was requested: poll with cx->cancel
 *   JOIN_INTEREST  a join handle still exists
 *   JOIN_WAKER     join_waker holds the joiner's waker
 * References are held by the join handle, by the run queue while NOTIFIED,
 * and by every clone of the task's waker. The last release frees the task.
 *
 * No lost wakeup: a wake either finds the task idle and queues it (taking
 * a reference for the queue), finds it queued and does nothing, or finds it
 * RUNNING and sets NOTIFIED, which the worker sees in the same CAS that
 * ends the poll, and queues the task again.
 *
 * join_waker: the joiner writes it only while JOIN_WAKER is clear and the
 * task is not COMPLETE; the completing worker reads it only when it set
 * COMPLETE while JOIN_WAKER was set. The CASes on state hand it over.
 */
#ifndef AFE_TASK_INTERNAL_H
#define AFE_TASK_INTERNAL_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include "afe/future.h"
#include "afe/task.h"
#include "../../pool/runnable.h"
#include "task_record.h"

#define AFE_TASK_RUNNING (UINT64_C(1) << 0)
#define AFE_TASK_NOTIFIED (UINT64_C(1) << 1)
#define AFE_TASK_COMPLETE (UINT64_C(1) << 2)
#define AFE_TASK_CANCELLED (UINT64_C(1) << 3)
#define AFE_TASK_JOIN_INTEREST (UINT64_C(1) << 4)
#define AFE_TASK_JOIN_WAKER (UINT64_C(1) << 5)
/* Set at spawn, never changed: what ends the allocation (see below). */
#define AFE_TASK_NAMED (UINT64_C(1) << 6)  /* struct afe_task_named, last */
#define AFE_TASK_LISTED (UINT64_C(1) << 7) /* struct afe_task_record, before it */
#define AFE_TASK_REF_SHIFT 16
#define AFE_TASK_REF_ONE (UINT64_C(1) << AFE_TASK_REF_SHIFT)

struct afe_runtime;

struct afe_task {
	_Atomic uint64_t state;
	struct afe_runnable link; /* how the pool queues it */
	struct afe_runtime *rt;
	struct afe_waker join_waker;
	/* Kept small: with a 64-byte sleep a task is 112 bytes. The output
	 * is the future's result, read once the task is complete. */
	uint32_t future_offset; /* of the future's base, after the header */
	uint32_t alloc_size;	/* header and future: for afe__task_free */
};

/*
 * What a task may carry at the end of its allocation, so plain tasks stay
 * small: a task spawned with options (afe_spawn_with) ends with its name
 * and task-local value; a task of a runtime that keeps its tasks for
 * dumps (task_dump) has its dump record (task_record.h) before
 * that. name is written before the spawn publishes the task and never
 * again; local is read and written only by the task's own polls, which
 * the state word orders.
 */
struct afe_task_named {
	void *local;
	char name[AFE_TASK_NAME_MAX];
};

/* Releases one reference; frees the task when it was the last. */
void afe__task_release(struct afe_task *t);

static inline uint64_t afe__task_refs(uint64_t state)
{
	return state >> AFE_TASK_REF_SHIFT;
}

#endif /* AFE_TASK_INTERNAL_H */
