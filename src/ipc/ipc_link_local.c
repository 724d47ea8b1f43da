/* SPDX-License-Identifier: MIT */
/*
 * The in-process link (see ipc_internal.h and ipc_producer.h): the names
 * the consumers of this process serve, and the producer's side of a link
 * to one of them.
 *
 * A call sent over it queues its id in the producer (under the producer's
 * lock, with the pending table); a receiver of the consumer takes the
 * oldest id whose call is still pending and copies its arguments. A call
 * that ends meanwhile (a timeout) leaves its id behind, and the receiver
 * skips it, so nothing ever points to a call that ended. The reply goes
 * to the pending table as one from the ring would, so late replies,
 * callbacks and the data-lifetime rule are the same on both links.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdio.h>

#include "ipc_producer.h"

/* ---- the registry ---------------------------------------------------------- */

struct registered {
	char name[AFE_IPC_NAME_MAX + 1];
	struct afe_ipc_consumer *consumer;
};

static pthread_mutex_t registry_lock = PTHREAD_MUTEX_INITIALIZER;
static struct registered *registry;
static size_t n_registered, registry_cap;

/* The consumer serving name, or NULL. With registry_lock held. */
static struct afe_ipc_consumer *find_locked(const char *name)
{
	for (size_t i = 0; i < n_registered; i++)
		if (!strcmp(registry[i].name, name))
			return registry[i].consumer;
	return NULL;
}

int afe_ipc_link_local_register(const char *name, struct afe_ipc_consumer *c)
{
	int err = 0;
	pthread_mutex_lock(&registry_lock);
	if (find_locked(name)) {
		err = -EADDRINUSE;
	} else if (n_registered == registry_cap) {
		size_t cap = registry_cap ? 2 * registry_cap : 8;
		struct registered *grown = realloc(registry, cap * sizeof(*grown));
		if (grown) {
			registry = grown;
			registry_cap = cap;
		} else {
			err = -ENOMEM;
		}
	}
	if (!err) {
		snprintf(registry[n_registered].name, sizeof(registry->name), "%s", name);
		registry[n_registered++].consumer = c;
	}
	pthread_mutex_unlock(&registry_lock);
	return err;
}

void afe_ipc_link_local_unregister(struct afe_ipc_consumer *c)
{
	pthread_mutex_lock(&registry_lock);
	for (size_t i = 0; i < n_registered; i++) {
		if (registry[i].consumer == c) {
			registry[i] = registry[--n_registered];
			break;
		}
	}
	pthread_mutex_unlock(&registry_lock);
}

/* ---- the producer's side ------------------------------------------------------- */

static int local_send(struct afe_ipc_producer *p, const struct afe_ipc_call *call)
{
	if (p->queue_tail - p->queue_head == AFE_IPC_MAX_PENDING) {
		/* Full of ids of calls that ended: keep the pending ones. */
		uint32_t kept = p->queue_head;
		for (uint32_t i = p->queue_head; i != p->queue_tail; i++) {
			uint64_t id = p->queue[i & AFE_IPC_PENDING_MASK];
			struct afe_ipc_call *queued = p->pending[id & AFE_IPC_PENDING_MASK];
			if (queued && queued->id == id)
				p->queue[kept++ & AFE_IPC_PENDING_MASK] = id;
		}
		p->queue_tail = kept;
	}
	/* At most AFE_IPC_MAX_PENDING calls are pending, call among them. */
	p->queue[p->queue_tail++ & AFE_IPC_PENDING_MASK] = call->id;
	return 0;
}

static void local_sent(struct afe_ipc_producer *p)
{
	afe__ipc_consumer_request_queued(p->consumer);
}

static bool local_gone(struct afe_ipc_producer *p)
{
	/* seq_cst: pairs with afe_ipc_link_local_consumer_gone's store, as
	 * on the other link (consumer_gone in ipc_link_shm.c). */
	return atomic_load_explicit(&p->gone, memory_order_seq_cst);
}

static void local_close(struct afe_ipc_producer *p)
{
	afe__ipc_consumer_forget_local(p->consumer, p);
	afe_ipc_link_local_consumer_gone(p);
}

static void local_free(struct afe_ipc_producer *p)
{
	afe__ipc_consumer_unref(p->consumer);
	free(p->queue);
}

static const struct afe_ipc_link_ops local_link = {
	.send = local_send,
	.sent = local_sent,
	.gone = local_gone,
	.close = local_close,
	.free = local_free,
};

int afe_ipc_link_local_connect(struct afe_ipc_producer *p, const char *name)
{
	if (!(p->queue = malloc(AFE_IPC_MAX_PENDING * sizeof(*p->queue))))
		return -ENOMEM;
	int err = -ECONNREFUSED;
	pthread_mutex_lock(&registry_lock);
	if ((p->consumer = find_locked(name)))
		err = afe__ipc_consumer_adopt_local(p->consumer, p);
	pthread_mutex_unlock(&registry_lock);
	if (err < 0) {
		free(p->queue);
		p->queue = NULL;
		p->consumer = NULL;
		return err;
	}
	p->link = &local_link;
	return 0;
}

/* ---- the consumer's use of it ----------------------------------------------- */

int afe_ipc_link_local_take(struct afe_ipc_producer *p, struct afe_ipc_request *req)
{
	pthread_mutex_lock(&p->lock);
	while (p->queue_head != p->queue_tail) {
		uint64_t id = p->queue[p->queue_head++ & AFE_IPC_PENDING_MASK];
		const struct afe_ipc_call *call = p->pending[id & AFE_IPC_PENDING_MASK];
		if (!call || call->id != id)
			continue; /* it ended before anyone took it */
		memcpy(req->args, call->args, call->args_len);
		req->len = call->args_len;
		req->fn = call->fn;
		req->streamed = call->on_reply != NULL;
		req->call_id = id;
		req->local = p;
		afe__ipc_producer_ref(p);
		pthread_mutex_unlock(&p->lock);
		return 0;
	}
	pthread_mutex_unlock(&p->lock);
	return -EAGAIN;
}

bool afe_ipc_link_local_has_request(struct afe_ipc_producer *p)
{
	pthread_mutex_lock(&p->lock);
	bool has = p->queue_head != p->queue_tail;
	pthread_mutex_unlock(&p->lock);
	return has;
}

int afe_ipc_link_local_reply(struct afe_ipc_producer *p, uint64_t call_id, int32_t status,
			     bool more, const void *bytes, uint32_t len)
{
	/* seq_cst, both: pair with afe_ipc_producer_close's store and
	 * afe_ipc_link_local_consumer_gone's. */
	if (atomic_load_explicit(&p->closed, memory_order_seq_cst) ||
	    atomic_load_explicit(&p->gone, memory_order_seq_cst))
		return -EPIPE; /* as over the ring: nobody takes it any more */
	afe__ipc_producer_deliver(p, call_id, status, more, bytes, len);
	return 0;
}

void afe_ipc_link_local_consumer_gone(struct afe_ipc_producer *p)
{
	/* seq_cst: pairs with local_gone's load, read under p->lock before
	 * a call is added (call_start), and with afe_ipc_link_local_reply's. */
	atomic_store_explicit(&p->gone, true, memory_order_seq_cst);
	afe__ipc_producer_fail_all(p, -EPIPE);
}
