/* SPDX-License-Identifier: MIT */
/*
 * The live tasks of a runtime, for afe_runtime_dump_tasks. Kept only when
 * the runtime was created with config.task_dump: then every task carries
 * a record (below) that names a slot of one of SHARDS
 * tables, picked by the task's address, each under its own spinlock, so
 * spawns and frees on different workers rarely meet on one lock. A slot
 * holds its task, or chains the free slots: listing and unlisting touch
 * the table, never another task (a list's neighbours cost a cache miss
 * each).
 */
#ifndef AFE_CORE_TASK_REGISTRY_H
#define AFE_CORE_TASK_REGISTRY_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "../../pool/run_queue.h" /* AFE_CACHE_LINE */

struct afe_task;

/* What the registry keeps of a task, at the end of the task's allocation
 * (task_internal.h). The spawn writes the first two before it publishes
 * the task; the task's own polls store the counts (one poll at a time, so
 * no RMW), dumps read them: relaxed, a picture ordered by nothing. slot is
 * the registry's, under its shard's lock. */
struct afe_task_record {
	uint64_t spawned_ns;
	const void *spawned_at;	 /* the spawn's return address */
	_Atomic uint64_t polls, poll_ns; /* poll_ns: of the timed polls */
	_Atomic uint32_t timed_polls;	 /* about one in AFE_TASK_TIMED_EVERY (task.c) */
	uint32_t slot;			 /* AFE_TASK_UNLISTED: no room was had */
};

/* A worker times about one poll in this many of the listed tasks it
 * polls (task.c). */
#define AFE_TASK_TIMED_EVERY 128

#define AFE_TASK_UNLISTED UINT32_MAX
#define AFE_TASK_REGISTRY_SHARDS 16

struct afe_task_registry_shard {
	_Alignas(AFE_CACHE_LINE) atomic_flag lock;
	uintptr_t *slots;   /* a task, or (the next free slot << 1) | 1 */
	uint32_t used, cap; /* slots [0, used) were ever taken */
	uint32_t free_head; /* AFE_TASK_UNLISTED: none */
};

struct afe_task_registry {
	bool on; /* set at create, never changed */
	_Atomic uint64_t unlisted; /* tasks left out: their table could not grow */
	struct afe_task_registry_shard shards[AFE_TASK_REGISTRY_SHARDS];
};

void afe__task_registry_init(struct afe_task_registry *reg, bool on);

/* Frees the tables, once no task of the runtime is left. */
void afe__task_registry_free(struct afe_task_registry *reg);

/* Lists t (its record rec) from its spawn on; when its table cannot grow,
 * leaves it out (counted in unlisted). */
void afe__task_registry_add(struct afe_task_registry *reg, struct afe_task_record *rec,
			    struct afe_task *t);

/* Takes t off the list, before it is freed (every task of a runtime that
 * keeps them went through add). */
void afe__task_registry_remove(struct afe_task_registry *reg, struct afe_task_record *rec,
			       struct afe_task *t);

/* What a dump says of one task (filled under its shard's lock, so the
 * task is alive while it is read). */
struct afe_task_snapshot {
	char name[32];
	const char *state;
	uint64_t age_ns, polls, timed_polls, poll_ns; /* poll_ns: of the timed polls */
	void *poll_fn;
	const void *spawned_at;
};

/* Calls see(snapshot, arg) for each task listed, under its shard's lock;
 * describe fills the snapshot from the task (task.c). Returns the count. */
unsigned afe__task_registry_walk(struct afe_task_registry *reg,
				 void (*describe)(struct afe_task *t, struct afe_task_snapshot *out),
				 bool (*see)(const struct afe_task_snapshot *s, void *arg), void *arg);

#endif /* AFE_CORE_TASK_REGISTRY_H */
