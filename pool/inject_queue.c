/* SPDX-License-Identifier: MIT */
#include "inject_queue.h"

#include "runnable.h"

void afe_inject_init(struct afe_inject_queue *q)
{
	pthread_mutex_init(&q->lock, NULL);
	q->head = q->tail = NULL;
	atomic_init(&q->len, 0);
	q->closed = false;
}

void afe_inject_close(struct afe_inject_queue *q)
{
	pthread_mutex_lock(&q->lock);
	q->closed = true;
	pthread_mutex_unlock(&q->lock);
}

void afe_inject_destroy(struct afe_inject_queue *q)
{
	pthread_mutex_destroy(&q->lock);
}

bool afe_inject_push_list(struct afe_inject_queue *q, struct afe_runnable *first,
			  struct afe_runnable *last, uint32_t n)
{
	last->next = NULL;
	pthread_mutex_lock(&q->lock);
	if (q->closed) {
		pthread_mutex_unlock(&q->lock);
		return false;
	}
	if (q->tail)
		q->tail->next = first;
	else
		q->head = first;
	q->tail = last;
	/* Release pairs with the acquire in afe_inject_len: a worker that sees
	 * the new length will find the tasks once it takes the lock. */
	atomic_store_explicit(&q->len, atomic_load_explicit(&q->len, memory_order_relaxed) + n,
			      memory_order_release);
	pthread_mutex_unlock(&q->lock);
	return true;
}

uint32_t afe_inject_pop_batch(struct afe_inject_queue *q, struct afe_runnable **out, uint32_t max)
{
	if (afe_inject_len(q) == 0)
		return 0;
	uint32_t n = 0;
	pthread_mutex_lock(&q->lock);
	while (n < max && q->head) {
		out[n++] = q->head;
		q->head = q->head->next;
	}
	if (!q->head)
		q->tail = NULL;
	atomic_store_explicit(&q->len, atomic_load_explicit(&q->len, memory_order_relaxed) - n,
			      memory_order_release);
	pthread_mutex_unlock(&q->lock);
	return n;
}
