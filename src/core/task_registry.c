/* SPDX-License-Identifier: MIT */
/* The live tasks of a runtime: see task_registry.h. */
#include "task_registry.h"

#include <stddef.h>
#include <string.h>

#include "../../pool/spinlock.h"

void afe__task_registry_init(struct afe_task_registry *reg, bool on)
{
	memset(reg, 0, sizeof(*reg));
	reg->on = on;
	for (unsigned i = 0; i < AFE_TASK_REGISTRY_SHARDS; i++)
		atomic_flag_clear(&reg->shards[i].lock);
}

/* A task's shard: its address, past the bits every allocation shares. */
static unsigned shard_of(const struct afe_task_record *rec)
{
	return (unsigned)(((uintptr_t)rec->task >> 6) % AFE_TASK_REGISTRY_SHARDS);
}

void afe__task_registry_add(struct afe_task_registry *reg, struct afe_task_record *rec,
			    struct afe_task *t)
{
	rec->task = t;
	unsigned i = shard_of(rec);
	afe_spin_lock(&reg->shards[i].lock);
	rec->prev = NULL;
	rec->next = reg->shards[i].head;
	if (rec->next)
		rec->next->prev = rec;
	reg->shards[i].head = rec;
	afe_spin_unlock(&reg->shards[i].lock);
}

void afe__task_registry_remove(struct afe_task_registry *reg, struct afe_task_record *rec)
{
	unsigned i = shard_of(rec);
	afe_spin_lock(&reg->shards[i].lock);
	if (rec->prev)
		rec->prev->next = rec->next;
	else
		reg->shards[i].head = rec->next;
	if (rec->next)
		rec->next->prev = rec->prev;
	afe_spin_unlock(&reg->shards[i].lock);
}

unsigned afe__task_registry_walk(struct afe_task_registry *reg,
				 void (*describe)(struct afe_task *t, struct afe_task_snapshot *out),
				 bool (*see)(const struct afe_task_snapshot *s, void *arg), void *arg)
{
	unsigned count = 0;
	bool more = true;
	for (unsigned i = 0; i < AFE_TASK_REGISTRY_SHARDS && more; i++) {
		afe_spin_lock(&reg->shards[i].lock);
		for (struct afe_task_record *rec = reg->shards[i].head; rec && more;
		     rec = rec->next) {
			struct afe_task_snapshot s;
			describe(rec->task, &s);
			more = see(&s, arg);
			count++;
		}
		afe_spin_unlock(&reg->shards[i].lock);
	}
	return count;
}
