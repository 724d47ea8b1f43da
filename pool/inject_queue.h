/* SPDX-License-Identifier: MIT */
/*
 * The runtime-wide injection queue: tasks woken or spawned from outside the
 * workers, and the overflow of full local queues. A mutex-guarded intrusive
 * FIFO threaded through task->next; len is readable without the lock so
 * that workers can skip an empty queue cheaply.
 */
#ifndef AFE_POOL_INJECT_QUEUE_H
#define AFE_POOL_INJECT_QUEUE_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

struct afe_runnable;

struct afe_inject_queue {
	pthread_mutex_t lock;
	struct afe_runnable *head, *tail;
	_Atomic uint32_t len; /* written under lock, read without */
	bool closed;	      /* the runtime is gone: pushes are refused */
};

void afe_inject_init(struct afe_inject_queue *q);
void afe_inject_destroy(struct afe_inject_queue *q);

/* Appends the n tasks first..last, already linked through ->next.
 * Returns false, taking nothing, once the queue is closed. */
bool afe_inject_push_list(struct afe_inject_queue *q, struct afe_runnable *first,
			  struct afe_runnable *last, uint32_t n);

/* Refuses every later push; the runtime's workers are gone. */
void afe_inject_close(struct afe_inject_queue *q);

/* Removes up to max tasks into out[]; returns how many. */
uint32_t afe_inject_pop_batch(struct afe_inject_queue *q, struct afe_runnable **out, uint32_t max);

static inline uint32_t afe_inject_len(struct afe_inject_queue *q)
{
	return atomic_load_explicit(&q->len, memory_order_acquire);
}

#endif /* AFE_POOL_INJECT_QUEUE_H */
