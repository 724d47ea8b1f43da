/* SPDX-License-Identifier: MIT */
#ifndef AFE_RUNTIME_INTERNAL_H
#define AFE_RUNTIME_INTERNAL_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "afe/runtime.h"
#include "afe/task.h"
#include "../../pool/pool.h"
#include "../../uring/ring.h"

#define AFE_DEFAULT_RING_ENTRIES 256
#define AFE_DEFAULT_BLOCKING_THREADS 64
#define AFE_DEFAULT_BLOCKING_QUEUE 1024
#define AFE_MAX_RING_ENTRIES 32768
#define AFE_MAX_CQ_ENTRIES 65536 /* the kernel's bound */

struct afe_thread_parker;

/* A thread inside afe_block_on on this runtime. */
struct afe_block_on_waiter {
	struct afe_block_on_waiter *next;
	struct afe_thread_parker *parker;
	_Atomic bool runtime_gone;
};

struct afe_runtime {
	struct afe_runtime_config config;
	struct afe_pool pool;  /* the workers and the blocking threads */
	struct afe_ring *ring; /* the io_uring and its thread */
	_Atomic bool closed;   /* destroy has begun: no more spawns */
	_Atomic uint32_t external_spawns_in_flight; /* see spawn() in task.c */
	/* Threads inside afe_block_on, woken by destroy so none waits on a
	 * task that will never run again. */
	pthread_mutex_t block_on_lock;
	pthread_cond_t block_on_left;
	struct afe_block_on_waiter *block_ons;
	/* Counters of work that happens outside the workers. */
	_Atomic uint64_t external_spawned, dropped;
	/* The library's own tasks (IPC pumps and watchers, the signal
	 * reader), left out of the live count that exits wait on; see
	 * afe__spawn_system. May dip below 0 for a moment. */
	_Atomic int64_t system_tasks;
	struct afe_runtime *live_next; /* the live runtimes (live_runtimes.c) */
	bool list_tasks; /* config.task_dump: tasks carry a record, dumps find them */
};

/* Tasks spawned and not yet finished (never undercounts). */
uint64_t afe__runtime_live_tasks(const struct afe_runtime *rt);

/*
 * Spawns a task of the library's own (an IPC pump, sweeper or peer
 * watcher, a signal reader) on rt, as afe_spawn does (afe_spawn_child when
 * child), and counts it in system_tasks: exits do not wait for it, and
 * destroy lets it finish. It is counted after its spawn, so that
 * afe__runtime_live_tasks never takes it for one of the user's tasks
 * finished (an undercount could end an exit's wait early); if it ends
 * first, the count dips below 0 for a moment, which only overcounts the
 * live tasks. The task calls afe__system_task_done(rt) as its last act.
 * Returns what afe_spawn returns; nothing is counted on an error.
 */
int afe__spawn_system_raw(struct afe_runtime *rt, const void *obj, size_t size,
			  const struct afe_future *base, struct afe_join_handle *handle, bool child);
#define afe__spawn_system(rt, fut, handle, child) \
	afe__spawn_system_raw((rt), (fut), sizeof(*(fut)), &(fut)->base, (handle), (child))

/* A system task's last act: uncounts it (see afe__spawn_system). */
void afe__system_task_done(struct afe_runtime *rt);

#endif /* AFE_RUNTIME_INTERNAL_H */
