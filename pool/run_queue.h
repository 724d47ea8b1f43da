/* SPDX-License-Identifier: MIT */
/*
 * A worker's local run queue: a bounded single-producer, multi-consumer
 * ring (afe_rq_*). The owning worker pushes at the tail and pops at the
 * head; other workers steal batches from the head.
 *
 * Invariants:
 * - Only the owner writes tail and the slots. tail - head <= AFE_RQ_CAP.
 * - head only moves forward, by CAS, by the owner (pop) or a stealer.
 * - A slot in [head, tail) holds a task; the owner may overwrite a slot
 *   only after head has moved past it, so a stealer that copied slots and
 *   then fails its CAS on head has published nothing and simply retries.
 * - Slots are atomics (relaxed): a stealer may read a slot the owner is
 *   rewriting, and discards what it read when its CAS fails.
 */
#ifndef AFE_POOL_RUN_QUEUE_H
#define AFE_POOL_RUN_QUEUE_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define AFE_RQ_CAP 256u
#define AFE_RQ_MASK (AFE_RQ_CAP - 1)
#define AFE_CACHE_LINE 64

struct afe_runnable;

struct afe_run_queue {
	_Alignas(AFE_CACHE_LINE) _Atomic uint32_t head; /* consumers' end */
	_Alignas(AFE_CACHE_LINE) _Atomic uint32_t tail; /* owner's end */
	_Atomic(struct afe_runnable *) slots[AFE_RQ_CAP];
};

static inline void afe_rq_init(struct afe_run_queue *q)
{
	atomic_init(&q->head, 0);
	atomic_init(&q->tail, 0);
	for (unsigned i = 0; i < AFE_RQ_CAP; i++)
		atomic_init(&q->slots[i], NULL);
}

/* Number of queued tasks; exact for the owner, a hint for others. */
static inline uint32_t afe_rq_len(struct afe_run_queue *q)
{
	uint32_t tail = atomic_load_explicit(&q->tail, memory_order_acquire);
	uint32_t head = atomic_load_explicit(&q->head, memory_order_acquire);
	return tail - head;
}

/* Owner only. Pushes t; returns false when the ring is full. */
static inline bool afe_rq_push(struct afe_run_queue *q, struct afe_runnable *t)
{
	uint32_t tail = atomic_load_explicit(&q->tail, memory_order_relaxed);
	/* Acquire pairs with the release CAS on head by a stealer: its reads
	 * of the slots it took happen before we overwrite them. */
	uint32_t head = atomic_load_explicit(&q->head, memory_order_acquire);
	if (tail - head >= AFE_RQ_CAP)
		return false;
	atomic_store_explicit(&q->slots[tail & AFE_RQ_MASK], t, memory_order_relaxed);
	/* Release publishes the slot to stealers' acquire load of tail. */
	atomic_store_explicit(&q->tail, tail + 1, memory_order_release);
	return true;
}

/* Owner only. Pops the oldest task, or NULL when empty. */
static inline struct afe_runnable *afe_rq_pop(struct afe_run_queue *q)
{
	uint32_t head = atomic_load_explicit(&q->head, memory_order_acquire);
	for (;;) {
		uint32_t tail = atomic_load_explicit(&q->tail, memory_order_relaxed);
		if (head == tail)
			return NULL;
		struct afe_runnable *t =
			atomic_load_explicit(&q->slots[head & AFE_RQ_MASK], memory_order_relaxed);
		/* Races stealers for the slot; on failure head is reloaded. */
		if (atomic_compare_exchange_weak_explicit(&q->head, &head, head + 1,
							  memory_order_acq_rel,
							  memory_order_acquire))
			return t;
	}
}

/*
 * Any thread. Takes up to max tasks from the head of q into out[]: half of
 * what q holds, at least one. Returns how many were taken.
 */
static inline uint32_t afe_rq_take_batch(struct afe_run_queue *q, struct afe_runnable **out,
					  uint32_t max)
{
	uint32_t head = atomic_load_explicit(&q->head, memory_order_acquire);
	for (;;) {
		/* Acquire pairs with the owner's release store of tail. */
		uint32_t tail = atomic_load_explicit(&q->tail, memory_order_acquire);
		uint32_t avail = tail - head;
		if (avail > AFE_RQ_CAP) { /* head moved on after we read it */
			head = atomic_load_explicit(&q->head, memory_order_acquire);
			continue;
		}
		if (avail == 0)
			return 0;
		uint32_t n = avail - avail / 2;
		if (n > max)
			n = max;
		for (uint32_t i = 0; i < n; i++)
			out[i] = atomic_load_explicit(&q->slots[(head + i) & AFE_RQ_MASK],
						      memory_order_relaxed);
		/* Release: our slot reads happen before the owner reuses them. */
		if (atomic_compare_exchange_weak_explicit(&q->head, &head, head + n,
							  memory_order_acq_rel,
							  memory_order_acquire))
			return n;
	}
}

#endif /* AFE_POOL_RUN_QUEUE_H */
