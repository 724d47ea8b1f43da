/* SPDX-License-Identifier: MIT */
/* The live tasks of a runtime: see task_registry.h. */
#include "task_registry.h"

#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "../../pool/spinlock.h"

/* A table's first size, in slots; it doubles from there. */
#define FIRST_SLOTS 256u

void afe__task_registry_init(struct afe_task_registry *reg, bool on)
{
	memset(reg, 0, sizeof(*reg));
	reg->on = on;
	atomic_init(&reg->unlisted, 0);
	for (unsigned i = 0; i < AFE_TASK_REGISTRY_SHARDS; i++) {
		atomic_flag_clear(&reg->shards[i].lock);
		reg->shards[i].free_head = AFE_TASK_UNLISTED;
	}
}

void afe__task_registry_free(struct afe_task_registry *reg)
{
	for (unsigned i = 0; i < AFE_TASK_REGISTRY_SHARDS; i++) {
		free(reg->shards[i].slots);
		reg->shards[i].slots = NULL;
	}
}

/* A task's shard: its address, past the bits every allocation shares. */
static unsigned shard_of(const struct afe_task *t)
{
	return (unsigned)(((uintptr_t)t >> 6) % AFE_TASK_REGISTRY_SHARDS);
}

static bool is_free(uintptr_t slot)
{
	return slot & 1u;
}

void afe__task_registry_add(struct afe_task_registry *reg, struct afe_task_record *rec,
			    struct afe_task *t)
{
	unsigned i = shard_of(t);
	struct afe_task_registry_shard *s = &reg->shards[i];
	afe_spin_lock(&s->lock);
	uint32_t at = s->free_head;
	if (at != AFE_TASK_UNLISTED) {
		s->free_head = (uint32_t)(s->slots[at] >> 1);
	} else if (s->used < s->cap) {
		at = s->used++;
	} else {
		/* Grown under the lock, rarely (doubling): a dump walking the
		 * table holds it too. */
		uint32_t cap = s->cap ? s->cap * 2 : FIRST_SLOTS;
		uintptr_t *grown = cap > s->cap ? realloc(s->slots, cap * sizeof(*grown)) : NULL;
		if (grown) {
			s->slots = grown;
			s->cap = cap;
			at = s->used++;
		}
	}
	if (at != AFE_TASK_UNLISTED)
		s->slots[at] = (uintptr_t)t;
	afe_spin_unlock(&s->lock);
	rec->slot = at;
	if (at == AFE_TASK_UNLISTED)
		atomic_fetch_add_explicit(&reg->unlisted, 1, memory_order_relaxed);
}

void afe__task_registry_remove(struct afe_task_registry *reg, struct afe_task_record *rec,
			       struct afe_task *t)
{
	if (rec->slot == AFE_TASK_UNLISTED) {
		atomic_fetch_sub_explicit(&reg->unlisted, 1, memory_order_relaxed);
		return;
	}
	struct afe_task_registry_shard *s = &reg->shards[shard_of(t)];
	afe_spin_lock(&s->lock);
	s->slots[rec->slot] = ((uintptr_t)s->free_head << 1) | 1u;
	s->free_head = rec->slot;
	afe_spin_unlock(&s->lock);
}

unsigned afe__task_registry_walk(struct afe_task_registry *reg,
				 void (*describe)(struct afe_task *t, struct afe_task_snapshot *out),
				 bool (*see)(const struct afe_task_snapshot *s, void *arg), void *arg)
{
	unsigned count = 0;
	bool more = true;
	for (unsigned i = 0; i < AFE_TASK_REGISTRY_SHARDS && more; i++) {
		struct afe_task_registry_shard *s = &reg->shards[i];
		afe_spin_lock(&s->lock);
		for (uint32_t at = 0; at < s->used && more; at++) {
			if (is_free(s->slots[at]))
				continue;
			struct afe_task_snapshot snap;
			describe((struct afe_task *)s->slots[at], &snap);
			more = see(&snap, arg);
			count++;
		}
		afe_spin_unlock(&s->lock);
	}
	return count;
}
