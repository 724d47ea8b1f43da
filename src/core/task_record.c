/* SPDX-License-Identifier: MIT */
/* The spawn sites of listed tasks, numbered: see task_record.h. */
#include "task_record.h"

#include <stddef.h>

enum {
	SITES = 4096,	/* a power of two */
	SITE_PROBES = 64, /* how far a lookup looks before it gives up (0) */
};

/* Open addressing, linear probes; a slot, once set, never changes. Only
 * the value is shared, so relaxed: a lookup that finds a slot empty and
 * loses the CAS for it reads the winner's value in the same step. */
static _Atomic(uintptr_t) sites[SITES];

uint32_t afe__task_site_id(const void *site)
{
	uintptr_t want = (uintptr_t)site;
	if (!want)
		return 0;
	/* Fibonacci hashing: the top bits of a multiply spread return
	 * addresses, which share their low and high bits. */
	uint32_t home = (uint32_t)(((uint64_t)want * UINT64_C(0x9E3779B97F4A7C15)) >> 52);
	for (uint32_t i = 0; i < SITE_PROBES; i++) {
		uint32_t at = (home + i) & (SITES - 1);
		uintptr_t held = atomic_load_explicit(&sites[at], memory_order_relaxed);
		if (held == 0 &&
		    atomic_compare_exchange_strong_explicit(&sites[at], &held, want,
							    memory_order_relaxed,
							    memory_order_relaxed))
			return at + 1;
		if (held == want)
			return at + 1;
	}
	return 0;
}

const void *afe__task_site(uint32_t id)
{
	if (id == 0 || id > SITES)
		return NULL;
	return (const void *)atomic_load_explicit(&sites[id - 1], memory_order_relaxed);
}
