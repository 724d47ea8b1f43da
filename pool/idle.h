/* SPDX-License-Identifier: MIT */
/*
 * Which workers are awake, searching for work, or parked.
 *
 * state packs (unparked << 16) | searching. A producer that queued work
 * wakes a parked worker only when no worker is searching and not all are
 * awake: a searcher will find the work, so there is no thundering herd and
 * no futex call when nobody sleeps.
 *
 * No lost wakeup: the producer queues, then (seq_cst fence) reads state.
 * A searcher that gives up decrements searching (seq_cst RMW), then reads
 * every queue again if it was the last searcher. One of the two sees the
 * other's write.
 */
#ifndef AFE_POOL_IDLE_H
#define AFE_POOL_IDLE_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#define AFE_IDLE_UNPARKED_ONE (UINT32_C(1) << 16)
#define AFE_IDLE_SEARCHING_MASK (AFE_IDLE_UNPARKED_ONE - 1)

struct afe_idle {
	_Alignas(64) _Atomic uint32_t state;
	uint32_t num_workers;
	pthread_mutex_t lock; /* guards sleepers */
	uint32_t num_sleepers;
	uint32_t *sleepers; /* stack of parked worker indices */
};

int afe_idle_init(struct afe_idle *idle, uint32_t num_workers);
void afe_idle_destroy(struct afe_idle *idle);

/* Returns the index of a parked worker that should be woken (and counts it
 * as awake and searching), or -1 when no wake is needed. */
int afe_idle_worker_to_notify(struct afe_idle *idle);

/* A worker with no local work asks to search; false when enough already
 * search (at most half the workers do). */
bool afe_idle_try_start_searching(struct afe_idle *idle);

/* A searcher found work. Returns true when it was the last searcher, in
 * which case the caller wakes another worker to keep looking. */
bool afe_idle_stop_searching(struct afe_idle *idle);

/* Worker index goes to sleep. Returns true when it was the last searcher:
 * the caller must then check every queue once more. */
bool afe_idle_park(struct afe_idle *idle, uint32_t index, bool searching);

/* After a shutdown or spurious wake: take worker index off the sleepers
 * list if it is still there (counting it awake). Returns true if it was. */
bool afe_idle_unpark_self(struct afe_idle *idle, uint32_t index);

/* True when every worker is parked. */
static inline bool afe_idle_all_parked(struct afe_idle *idle)
{
	return atomic_load_explicit(&idle->state, memory_order_seq_cst) / AFE_IDLE_UNPARKED_ONE == 0;
}

#endif /* AFE_POOL_IDLE_H */
