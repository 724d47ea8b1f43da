/* SPDX-License-Identifier: MIT */
/*
 * What a runtime that keeps its tasks for dumps (config.task_dump) keeps
 * of each: a 16-byte record at the end of the task's allocation
 * (task_internal.h), and the spawn sites, numbered. There is no list of
 * the live tasks: a dump walks the task allocator's blocks
 * (afe__task_alloc_walk) and takes a reference on each live one of its
 * runtime (task.c), so spawning and freeing take no lock and touch no
 * shared line for the dump. src/core/TASK_DUMP.md has the figures.
 */
#ifndef AFE_CORE_TASK_RECORD_H
#define AFE_CORE_TASK_RECORD_H

#include <stdatomic.h>
#include <stdint.h>

/* A task's record. The spawn writes it before it publishes the task
 * (the release store of its state); the task's own polls store the
 * counts (one poll at a time, so no RMW); dumps read them: relaxed, a
 * picture ordered by nothing. The counts saturate (a dump says so). */
struct afe_task_record {
	uint32_t site;		     /* afe__task_site_id of the spawn's caller */
	uint32_t spawned_ms;	     /* the coarse clock, in ms, modulo 2^32 */
	_Atomic uint32_t polls;	     /* saturating */
	_Atomic uint32_t timed_ns;   /* of the timed polls; saturating */
};

/* A task's polls number i from 1; the timed ones (two clock reads each)
 * are those with i % AFE_TASK_TIMED_EVERY == AFE_TASK_TIMED_EVERY / 2,
 * so a task that was polled n times had afe_task_timed_polls(n) timed. */
#define AFE_TASK_TIMED_EVERY 128u
#define AFE_TASK_COUNT_MAX UINT32_MAX

static inline uint32_t afe_task_timed_polls(uint32_t polls)
{
	return (uint32_t)(((uint64_t)polls + AFE_TASK_TIMED_EVERY / 2) / AFE_TASK_TIMED_EVERY);
}

/* The number of site (a return address) in a table the process shares:
 * from 1; 0 for a null site, or when the table has no room (4096 sites).
 * Lock-free, and a spawn site's number is found in one or two loads. */
uint32_t afe__task_site_id(const void *site);

/* The site numbered id, NULL for 0. */
const void *afe__task_site(uint32_t id);

#endif /* AFE_CORE_TASK_RECORD_H */
