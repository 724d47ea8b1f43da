/* SPDX-License-Identifier: MIT */
/*
 * The consumer's side of the in-process link (see ipc_link_local.c): the
 * producers of this process that linked to it, whose queued calls its
 * receivers take in turn, and whose calls end with -EPIPE once it closes.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>

#include "ipc_consumer.h"

int afe__ipc_consumer_adopt_local(struct afe_ipc_consumer *c, struct afe_ipc_producer *p)
{
	int err = 0;
	pthread_mutex_lock(&c->local_lock);
	/* ready: acquire, pairs with serve's release store. closed: seq_cst
	 * as close's store (fail_locals' hold of local_lock after it orders
	 * it too). */
	if (!atomic_load_explicit(&c->ready, memory_order_acquire) ||
	    atomic_load_explicit(&c->closed, memory_order_seq_cst)) {
		err = -ECONNREFUSED;
	} else if (c->n_locals == c->locals_cap) {
		uint32_t cap = c->locals_cap ? 2 * c->locals_cap : 4;
		struct afe_ipc_producer **grown = realloc(c->locals, cap * sizeof(*grown));
		if (grown) {
			c->locals = grown;
			c->locals_cap = cap;
		} else {
			err = -ENOMEM;
		}
	}
	if (!err) {
		c->locals[c->n_locals++] = p;
		/* seq_cst: see afe__ipc_consumer_take_local. */
		atomic_store_explicit(&c->has_locals, true, memory_order_seq_cst);
		/* p's, until it is freed. Relaxed: taken under local_lock
		 * while c's user holds c (see afe__ipc_consumer_unref). */
		atomic_fetch_add_explicit(&c->refs, 1, memory_order_relaxed);
	}
	pthread_mutex_unlock(&c->local_lock);
	return err;
}

void afe__ipc_consumer_forget_local(struct afe_ipc_consumer *c, struct afe_ipc_producer *p)
{
	pthread_mutex_lock(&c->local_lock);
	for (uint32_t i = 0; i < c->n_locals; i++) {
		if (c->locals[i] == p) {
			c->locals[i] = c->locals[--c->n_locals];
			break;
		}
	}
	/* seq_cst: see afe__ipc_consumer_take_local. */
	atomic_store_explicit(&c->has_locals, c->n_locals > 0, memory_order_seq_cst);
	pthread_mutex_unlock(&c->local_lock);
}

void afe__ipc_consumer_request_queued(struct afe_ipc_consumer *c)
{
	/* The queue's lock was released before: a receiver that counted
	 * itself idle after this load looks at the queue once more. */
	atomic_thread_fence(memory_order_seq_cst);
	if (atomic_load_explicit(&c->idle, memory_order_relaxed))
		afe_notify_one(&c->work);
}

/* Takes the oldest request queued by one of the producers of this process,
 * starting with a different one each time. 0 or -EAGAIN. */
int afe__ipc_consumer_take_local(struct afe_ipc_consumer *c, struct afe_ipc_request *req)
{
	/* A hint, stored under local_lock. seq_cst, as the stores: a
	 * receiver looks here after counting itself idle (seq_cst, in
	 * afe_ipc_wait), against a new producer's queue, fence and look at
	 * idle (request_queued): a store->load handshake, not weakened. */
	if (!atomic_load_explicit(&c->has_locals, memory_order_seq_cst))
		return -EAGAIN;
	int err = -EAGAIN;
	pthread_mutex_lock(&c->local_lock);
	for (uint32_t k = 0; k < c->n_locals && err; k++)
		err = afe_ipc_link_local_take(c->locals[(c->next_local + k) % c->n_locals], req);
	c->next_local++;
	pthread_mutex_unlock(&c->local_lock);
	if (err == 0)
		req->peer = AFE_IPC_MAX_PRODUCERS; /* none of the shared memory's */
	return err;
}

bool afe__ipc_consumer_any_local_request(struct afe_ipc_consumer *c)
{
	/* seq_cst: see afe__ipc_consumer_take_local. */
	if (!atomic_load_explicit(&c->has_locals, memory_order_seq_cst))
		return false;
	bool has = false;
	pthread_mutex_lock(&c->local_lock);
	for (uint32_t i = 0; i < c->n_locals && !has; i++)
		has = afe_ipc_link_local_has_request(c->locals[i]);
	pthread_mutex_unlock(&c->local_lock);
	return has;
}

/* The consumer closed: its producers of this process end their calls with
 * -EPIPE. */
void afe__ipc_consumer_fail_locals(struct afe_ipc_consumer *c)
{
	pthread_mutex_lock(&c->local_lock);
	struct afe_ipc_producer **gone = c->locals;
	uint32_t n = c->n_locals;
	c->locals = NULL;
	c->n_locals = c->locals_cap = 0;
	/* seq_cst: see afe__ipc_consumer_take_local. */
	atomic_store_explicit(&c->has_locals, false, memory_order_seq_cst);
	for (uint32_t i = 0; i < n; i++)
		afe__ipc_producer_ref(gone[i]); /* they may close meanwhile */
	pthread_mutex_unlock(&c->local_lock);
	for (uint32_t i = 0; i < n; i++) {
		afe_ipc_link_local_consumer_gone(gone[i]);
		afe__ipc_producer_unref(gone[i]);
	}
	free(gone);
}
