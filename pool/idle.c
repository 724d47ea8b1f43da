/* SPDX-License-Identifier: MIT */
#include "idle.h"

#include <errno.h>
#include <stdlib.h>

int afe_idle_init(struct afe_idle *idle, uint32_t num_workers)
{
	idle->sleepers = calloc(num_workers, sizeof(*idle->sleepers));
	if (!idle->sleepers)
		return -ENOMEM;
	atomic_init(&idle->state, num_workers * AFE_IDLE_UNPARKED_ONE);
	idle->num_workers = num_workers;
	idle->num_sleepers = 0;
	pthread_mutex_init(&idle->lock, NULL);
	return 0;
}

void afe_idle_destroy(struct afe_idle *idle)
{
	pthread_mutex_destroy(&idle->lock);
	free(idle->sleepers);
}

static bool needs_wake(uint32_t state, uint32_t num_workers)
{
	return (state & AFE_IDLE_SEARCHING_MASK) == 0 &&
	       state / AFE_IDLE_UNPARKED_ONE < num_workers;
}

int afe_idle_worker_to_notify(struct afe_idle *idle)
{
	/* Pairs with the seq_cst RMW in afe_idle_park: the caller's queue push
	 * is ordered before this load (see the file comment). */
	atomic_thread_fence(memory_order_seq_cst);
	if (!needs_wake(atomic_load_explicit(&idle->state, memory_order_seq_cst),
			idle->num_workers))
		return -1;
	int index = -1;
	pthread_mutex_lock(&idle->lock);
	if (needs_wake(atomic_load_explicit(&idle->state, memory_order_seq_cst),
		       idle->num_workers) &&
	    idle->num_sleepers > 0) {
		index = (int)idle->sleepers[--idle->num_sleepers];
		/* The woken worker starts out awake and searching. */
		atomic_fetch_add_explicit(&idle->state, AFE_IDLE_UNPARKED_ONE + 1,
					  memory_order_seq_cst);
	}
	pthread_mutex_unlock(&idle->lock);
	return index;
}

bool afe_idle_try_start_searching(struct afe_idle *idle)
{
	uint32_t state = atomic_load_explicit(&idle->state, memory_order_seq_cst);
	if (2 * (state & AFE_IDLE_SEARCHING_MASK) >= idle->num_workers)
		return false;
	atomic_fetch_add_explicit(&idle->state, 1, memory_order_seq_cst);
	return true;
}

bool afe_idle_stop_searching(struct afe_idle *idle)
{
	uint32_t prev = atomic_fetch_sub_explicit(&idle->state, 1, memory_order_seq_cst);
	return (prev & AFE_IDLE_SEARCHING_MASK) == 1;
}

bool afe_idle_park(struct afe_idle *idle, uint32_t index, bool searching)
{
	uint32_t dec = AFE_IDLE_UNPARKED_ONE + (searching ? 1 : 0);
	pthread_mutex_lock(&idle->lock);
	uint32_t prev = atomic_fetch_sub_explicit(&idle->state, dec, memory_order_seq_cst);
	idle->sleepers[idle->num_sleepers++] = index;
	pthread_mutex_unlock(&idle->lock);
	return searching && (prev & AFE_IDLE_SEARCHING_MASK) == 1;
}

bool afe_idle_unpark_self(struct afe_idle *idle, uint32_t index)
{
	bool found = false;
	pthread_mutex_lock(&idle->lock);
	for (uint32_t i = 0; i < idle->num_sleepers; i++) {
		if (idle->sleepers[i] == index) {
			idle->sleepers[i] = idle->sleepers[--idle->num_sleepers];
			atomic_fetch_add_explicit(&idle->state, AFE_IDLE_UNPARKED_ONE,
						  memory_order_seq_cst);
			found = true;
			break;
		}
	}
	pthread_mutex_unlock(&idle->lock);
	return found;
}
