/* SPDX-License-Identifier: MIT */
/*
 * The producer: connects to a consumer's object, sends calls, and matches
 * the replies to the calls waiting for them.
 *
 * A reply task (the pump) takes the replies off the ring and hands each to
 * its call through the pending table, where a call id names a slot and a
 * serial number: a reply to a call that already ended finds another id (or
 * none) there and is dropped and counted. When there is nothing to take it
 * sleeps on the producer's bell with a futex wait through the ring, wanting
 * replies (and room, while calls wait for it). A watcher task waits on a pidfd of
 * the consumer and fails every call with -EPIPE when it dies.
 *
 * Lifetime: the producer is counted by its user (until close), its two
 * tasks, and each call from its start to its end; the last one frees it.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <unistd.h>

#include "ipc_internal.h"
#include "runtime_internal.h"

_Thread_local unsigned char afe_ipc_scratch[AFE_IPC_MAX_PAYLOAD];
_Thread_local struct afe_ipc_writer afe_ipc_scratch_writer;

#define PENDING_MASK (AFE_IPC_MAX_PENDING - 1)
_Static_assert((AFE_IPC_MAX_PENDING & PENDING_MASK) == 0, "a power of two");

struct afe_ipc_producer {
	struct afe_runtime *rt;
	bool owns_rt; /* connect made rt for a caller outside any runtime */
	struct afe_ipc_header *hdr;
	struct afe_ipc_entry *entry;
	struct afe_ipc_ring requests, replies;
	int consumer_pidfd;
	_Atomic int refs;
	_Atomic bool gone, closed;
	_Atomic uint32_t room_waiters;
	struct afe_notify room;
	struct afe_join_handle watcher;
	pthread_mutex_t lock; /* the pending table, and the calls in it */
	struct afe_ipc_call *pending[AFE_IPC_MAX_PENDING];
	uint32_t free_slots[AFE_IPC_MAX_PENDING], n_free;
	uint64_t serial;
	_Atomic uint64_t n_calls, n_replies, late, malformed, timeouts;
	uint32_t timeout_ms[256];
};

enum { PHASE_IDLE, PHASE_ARMED, PHASE_SENDING, PHASE_WAITING, PHASE_DONE };

static void producer_unref(struct afe_ipc_producer *p)
{
	if (atomic_fetch_sub(&p->refs, 1) != 1)
		return;
	afe_notify_destroy(&p->room);
	pthread_mutex_destroy(&p->lock);
	close(p->consumer_pidfd);
	afe_ipc_shm_unmap(p->hdr);
	free(p);
}

/* ---- the pending table ----------------------------------------------------- */

/* Gives call an id and a slot. With p->lock held. 0 or -EBUSY. */
static int pending_add(struct afe_ipc_producer *p, struct afe_ipc_call *call)
{
	if (p->n_free == 0)
		return -EBUSY;
	uint32_t slot = p->free_slots[--p->n_free];
	call->id = (++p->serial << 12) | slot;
	p->pending[slot] = call;
	return 0;
}

/* With p->lock held; call is in the table. */
static void pending_remove(struct afe_ipc_producer *p, struct afe_ipc_call *call)
{
	uint32_t slot = (uint32_t)(call->id & PENDING_MASK);
	p->pending[slot] = NULL;
	p->free_slots[p->n_free++] = slot;
}

/* Ends call with status: out of the table, answered, its waker taken.
 * With p->lock held; wake the returned waker after unlocking. */
static struct afe_waker answer_locked(struct afe_ipc_producer *p, struct afe_ipc_call *call,
				      int32_t status)
{
	pending_remove(p, call);
	call->status = status;
	struct afe_waker w = call->waker;
	call->waker.vtable = NULL;
	atomic_store_explicit(&call->answered, 1, memory_order_release);
	return w;
}

static void wake_taken(struct afe_waker *w)
{
	if (afe_waker_is_set(w))
		afe_waker_wake(w);
}

/* Stores a reply's bytes in the call. With p->lock held. */
static int32_t keep_reply(struct afe_ipc_call *call, const void *bytes, uint32_t len)
{
	if (len > sizeof(call->ret_inline) && len > call->ret_cap) {
		unsigned char *buf = malloc(len);
		if (!buf)
			return -ENOMEM;
		if (call->ret != call->ret_inline)
			free(call->ret);
		call->ret = buf;
		call->ret_cap = len;
	}
	memcpy(call->ret, bytes, len);
	call->ret_len = len;
	return 0;
}

/* Hands one reply to its call, or counts it as late. */
static void dispatch(struct afe_ipc_producer *p, const struct afe_ipc_frame *f,
		     const unsigned char *payload)
{
	if (f->kind != AFE_IPC_REPLY) {
		atomic_fetch_add(&p->malformed, 1);
		return;
	}
	bool more = f->flags & AFE_IPC_F_MORE;
	struct afe_waker w = {0};
	pthread_mutex_lock(&p->lock);
	struct afe_ipc_call *call = p->pending[f->call_id & PENDING_MASK];
	if (!call || call->id != f->call_id || (more && !call->on_reply)) {
		pthread_mutex_unlock(&p->lock);
		atomic_fetch_add(more && call && call->id == f->call_id ? &p->malformed : &p->late,
				 1);
		return;
	}
	int32_t status = f->status;
	if (call->on_reply) {
		struct afe_ipc_reader r;
		afe_ipc_reader_init(&r, payload, f->len);
		call->on_reply(call->on_reply_ctx, status, status == 0 ? &r : NULL, more);
	} else if (status == 0) {
		status = keep_reply(call, payload, f->len);
	}
	if (!more)
		w = answer_locked(p, call, status);
	pthread_mutex_unlock(&p->lock);
	atomic_fetch_add(&p->n_replies, 1);
	wake_taken(&w);
}

/* Takes every reply waiting in the ring. Returns how many. */
static unsigned drain(struct afe_ipc_producer *p)
{
	struct afe_ipc_frame f;
	unsigned char payload[AFE_IPC_MAX_PAYLOAD];
	unsigned n = 0;
	for (;;) {
		int err = afe_ipc_ring_pop(&p->replies, &f, payload);
		if (err == -EAGAIN)
			break;
		n++;
		if (err == 0)
			dispatch(p, &f, payload);
		else
			atomic_fetch_add(&p->malformed, 1);
	}
	if (n)
		afe_ipc_bell_ring(&p->hdr->bell, AFE_IPC_WANT_ROOM);
	return n;
}

/* Ends every pending call with err (the consumer is gone, or we close). */
static void fail_all(struct afe_ipc_producer *p, int32_t err)
{
	for (uint32_t slot = 0; slot < AFE_IPC_MAX_PENDING; slot++) {
		pthread_mutex_lock(&p->lock);
		struct afe_ipc_call *call = p->pending[slot];
		struct afe_waker w = {0};
		if (call) {
			if (call->on_reply)
				call->on_reply(call->on_reply_ctx, err, NULL, false);
			w = answer_locked(p, call, err);
		}
		pthread_mutex_unlock(&p->lock);
		wake_taken(&w);
	}
	afe_notify_all(&p->room);
}

static bool consumer_gone(struct afe_ipc_producer *p)
{
	return atomic_load(&p->gone) ||
	       atomic_load_explicit(&p->entry->state, memory_order_relaxed) !=
		       AFE_IPC_ENTRY_LIVE;
}

/* ---- the reply task ------------------------------------------------------- */

struct pump {
	struct afe_future base;
	struct afe_ipc_producer *p;
	uint32_t word;
	struct afe_watch wait; /* on the bell */
};

/* Replies always: wanting them only while calls are pending cost a pump
 * wake and re-arm at the start of every call after an idle spell. */
static uint32_t pump_wants(struct afe_ipc_producer *p)
{
	return afe_ipc_pump_wants(1, atomic_load(&p->room_waiters));
}

static int pump_poll(struct afe_future *f, struct afe_context *cx)
{
	struct pump *self = afe_container_of(f, struct pump, base);
	struct afe_ipc_producer *p = self->p;
	struct afe_ipc_bell *bell = &p->entry->bell;
	AFE_ASYNC_BEGIN(f, cx);
	for (;;) {
		drain(p);
		if (atomic_load(&p->closed) || consumer_gone(p))
			break;
		uint32_t wants = pump_wants(p);
		self->word = afe_ipc_bell_want(bell, wants);
		/* Re-check after publishing: see ipc_bell.h. */
		if (pump_wants(p) != wants || afe_ipc_ring_has_frame(&p->replies) ||
		    atomic_load(&p->closed) || consumer_gone(p)) {
			afe_ipc_bell_unwant(bell);
			continue;
		}
		if ((wants & AFE_IPC_WANT_ROOM) && afe_ipc_ring_has_room(&p->requests)) {
			afe_ipc_bell_unwant(bell);
			afe_notify_all(&p->room);
			if (!(wants & AFE_IPC_WANT_FRAME))
				continue;
			self->word = afe_ipc_bell_want(bell, wants & ~AFE_IPC_WANT_ROOM);
			if (afe_ipc_ring_has_frame(&p->replies)) {
				afe_ipc_bell_unwant(bell);
				continue;
			}
		}
		afe_watch_init(&self->wait, &bell->word, self->word, AFE_FUTEX_SHARED);
		AFE_AWAIT(&self->wait.base);
		afe_ipc_bell_unwant(bell);
		if (self->wait.base.result == -ECANCELED || self->wait.base.result == -ESHUTDOWN)
			break;
	}
	AFE_CLEANUP;
	atomic_store(&p->gone, true);
	fail_all(p, -EPIPE);
	atomic_fetch_sub(&p->rt->system_tasks, 1);
	producer_unref(p);
	AFE_ASYNC_END;
}

static void producer_release(void *p)
{
	producer_unref(p);
}

/* ---- connecting ------------------------------------------------------------ */

void afe_ipc_producer_config_default(struct afe_ipc_producer_config *config)
{
	memset(config, 0, sizeof(*config));
	config->timeout_ms = AFE_IPC_DEFAULT_TIMEOUT_MS;
}

/* Takes a free entry of h for this process and formats its rings. */
static int claim_entry(struct afe_ipc_header *h, struct afe_ipc_entry **out, unsigned *index)
{
	for (unsigned i = 0; i < AFE_IPC_MAX_PRODUCERS; i++) {
		struct afe_ipc_entry *e = &h->entries[i];
		uint32_t expected = AFE_IPC_ENTRY_FREE;
		if (!atomic_compare_exchange_strong(&e->state, &expected, AFE_IPC_ENTRY_CLAIMED))
			continue;
		afe_ipc_ring_format(afe_ipc_requests_of(h, i), AFE_IPC_RING_SLOTS);
		afe_ipc_ring_format(afe_ipc_replies_of(h, i), AFE_IPC_RING_SLOTS);
		atomic_store(&e->bell.wants, 0);
		atomic_store(&e->pid, getpid());
		atomic_fetch_add(&e->generation, 1);
		atomic_store_explicit(&e->state, AFE_IPC_ENTRY_LIVE, memory_order_release);
		*out = e;
		*index = i;
		return 0;
	}
	return -EBUSY;
}

static int check_config(const struct afe_ipc_producer_config *c)
{
	if (c->n_timeouts && !c->timeouts)
		return -EINVAL;
	return 0;
}

static int start_tasks(struct afe_ipc_producer *p)
{
	struct pump pump = {.p = p};
	afe_future_init(&pump.base, pump_poll);
	atomic_fetch_add(&p->refs, 2); /* the pump, the watcher */
	atomic_fetch_add(&p->rt->system_tasks, 1);
	int err = afe_spawn(p->rt, &pump, NULL);
	if (err < 0) {
		atomic_fetch_sub(&p->rt->system_tasks, 1);
		atomic_fetch_sub(&p->refs, 2);
		return err;
	}
	return afe_ipc_watch_peer(p->rt, p->consumer_pidfd, &p->gone, &p->entry->bell,
				  producer_release, p, &p->watcher);
}

static int connect_own_runtime(struct afe_ipc_producer **out, const char *name,
			       const struct afe_ipc_producer_config *config);

int afe_ipc_producer_connect(struct afe_ipc_producer **out, struct afe_runtime *rt,
			     const char *name, const struct afe_ipc_producer_config *config)
{
	struct afe_ipc_producer_config defaults;
	if (!config) {
		afe_ipc_producer_config_default(&defaults);
		config = &defaults;
	}
	if (!out || check_config(config) < 0)
		return -EINVAL;
	if (!rt && !(rt = afe_runtime_current()))
		return connect_own_runtime(out, name, config);
	struct afe_ipc_header *h;
	int err = afe_ipc_shm_open(name, &h);
	if (err < 0)
		return err;
	struct afe_ipc_producer *p = calloc(1, sizeof(*p));
	if (!p) {
		afe_ipc_shm_unmap(h);
		return -ENOMEM;
	}
	p->consumer_pidfd = afe_ipc_pidfd_open(h->consumer_pid);
	if (p->consumer_pidfd < 0) {
		err = p->consumer_pidfd == -ESRCH ? -ECONNREFUSED : p->consumer_pidfd;
		free(p);
		afe_ipc_shm_unmap(h);
		return err;
	}
	unsigned index;
	if ((err = claim_entry(h, &p->entry, &index)) < 0) {
		close(p->consumer_pidfd);
		free(p);
		afe_ipc_shm_unmap(h);
		return err;
	}
	p->rt = rt;
	p->hdr = h;
	afe_ipc_ring_attach(&p->requests, afe_ipc_requests_of(h, index), AFE_IPC_RING_SLOTS);
	afe_ipc_ring_attach(&p->replies, afe_ipc_replies_of(h, index), AFE_IPC_RING_SLOTS);
	atomic_init(&p->refs, 1);
	afe_notify_init(&p->room);
	pthread_mutex_init(&p->lock, NULL);
	for (uint32_t i = 0; i < AFE_IPC_MAX_PENDING; i++)
		p->free_slots[i] = AFE_IPC_MAX_PENDING - 1 - i;
	p->n_free = AFE_IPC_MAX_PENDING;
	uint32_t ms = config->timeout_ms ? config->timeout_ms : AFE_IPC_DEFAULT_TIMEOUT_MS;
	for (unsigned i = 0; i < 256; i++)
		p->timeout_ms[i] = ms;
	for (size_t i = 0; i < config->n_timeouts; i++)
		p->timeout_ms[config->timeouts[i].fn] = config->timeouts[i].ms;
	if ((err = start_tasks(p)) < 0) {
		atomic_store(&p->entry->state, AFE_IPC_ENTRY_GONE);
		producer_unref(p);
		return err;
	}
	/* Tell the consumer a producer came. */
	afe_ipc_bell_ring(&h->bell, AFE_IPC_WANT_ANY);
	*out = p;
	return 0;
}

void afe_ipc_producer_close(struct afe_ipc_producer *p)
{
	if (!p)
		return;
	struct afe_runtime *own = p->owns_rt ? p->rt : NULL; /* p may be freed below */
	atomic_store(&p->closed, true);
	atomic_store(&p->entry->state, AFE_IPC_ENTRY_GONE);
	afe_ipc_bell_ring(&p->hdr->bell, AFE_IPC_WANT_ANY);
	afe_ipc_bell_ring(&p->entry->bell, AFE_IPC_WANT_ANY);
	afe_join_handle_drop(&p->watcher); /* a child handle: cancels it */
	producer_unref(p);
	if (own)
		afe_runtime_destroy(own); /* waits for the producer's tasks */
}

bool afe_ipc_producer_is_gone(const struct afe_ipc_producer *p)
{
	return atomic_load(&p->gone);
}

void afe_ipc_producer_stats(const struct afe_ipc_producer *p, struct afe_ipc_stats *out)
{
	memset(out, 0, sizeof(*out));
	out->calls = atomic_load(&p->n_calls);
	out->replies = atomic_load(&p->n_replies);
	out->late_replies = atomic_load(&p->late);
	out->malformed = atomic_load(&p->malformed);
	out->timeouts = atomic_load(&p->timeouts);
}

/* ---- calls ----------------------------------------------------------------- */

static int call_poll(struct afe_future *f, struct afe_context *cx);

void afe_ipc_call_init(struct afe_ipc_call *call, struct afe_ipc_producer *p)
{
	memset(call, 0, sizeof(*call));
	afe_future_init(&call->base, call_poll);
	call->producer = p;
	call->args = call->args_inline;
	call->ret = call->ret_inline;
}

void afe_ipc_call_release(struct afe_ipc_call *call)
{
	if (call->ret != call->ret_inline)
		free(call->ret);
	if (call->args != call->args_inline)
		free(call->args);
	call->ret = call->ret_inline;
	call->args = call->args_inline;
	call->ret_len = call->ret_cap = call->args_len = 0;
}

void afe_ipc_call_on_reply(struct afe_ipc_call *call, afe_ipc_reply_fn *fn, void *ctx)
{
	call->on_reply = fn;
	call->on_reply_ctx = ctx;
}

struct afe_ipc_writer *afe_ipc_call_begin(struct afe_ipc_call *call, unsigned fn)
{
	call->fn = (uint16_t)fn;
	return afe_ipc_scratch_begin();
}

int afe_ipc_call_arm(struct afe_ipc_call *call)
{
	afe_future_init(&call->base, call_poll);
	call->status = 0;
	call->ret_len = 0;
	call->waiting_room = false;
	atomic_store_explicit(&call->answered, 0, memory_order_relaxed);
	int err = afe_ipc_scratch_take(&call->args, call->args_inline, sizeof(call->args_inline),
				       &call->args_len);
	if (err == 0 && (!call->producer || call->fn > 255))
		err = -EINVAL;
	call->status = err;
	call->phase = err ? PHASE_DONE : PHASE_ARMED;
	return err;
}

int afe_ipc_call_result(const struct afe_ipc_call *call, struct afe_ipc_reader *r)
{
	afe_ipc_reader_init(r, call->ret, call->ret_len);
	if (call->phase != PHASE_DONE)
		return -EINVAL;
	return call->status;
}

/* Takes the call into the table and starts its timer. 0 or an error. */
static int call_start(struct afe_ipc_call *call)
{
	struct afe_ipc_producer *p = call->producer;
	if (atomic_load(&p->closed) || consumer_gone(p))
		return -EPIPE;
	pthread_mutex_lock(&p->lock);
	int err = pending_add(p, call);
	pthread_mutex_unlock(&p->lock);
	if (err < 0)
		return err;
	atomic_fetch_add(&p->refs, 1);
	afe_sleep_init(&call->timer, (uint64_t)p->timeout_ms[call->fn] * 1000000u);
	return 0;
}

/* Puts the request in the ring. 0 sent, -EAGAIN full, or an error. */
static int call_send(struct afe_ipc_call *call)
{
	struct afe_ipc_producer *p = call->producer;
	struct afe_ipc_frame frame = {
		.call_id = call->id,
		.len = call->args_len,
		.fn = call->fn,
		.kind = AFE_IPC_REQUEST,
		.flags = call->on_reply ? AFE_IPC_F_STREAM : 0,
	};
	int err = afe_ipc_ring_push(&p->requests, &frame, call->args);
	if (err == 0) {
		atomic_fetch_add(&p->n_calls, 1);
		afe_ipc_bell_ring(&p->hdr->bell, AFE_IPC_WANT_FRAME);
	}
	return err;
}

/* Waits for room in the request ring: AFE_PENDING, or AFE_READY to try
 * again. */
static int call_wait_room(struct afe_ipc_call *call, struct afe_context *cx)
{
	struct afe_ipc_producer *p = call->producer;
	return afe_ipc_wait(&call->waiting_room, &call->room, &p->room, &p->room_waiters,
			    &p->entry->bell, AFE_IPC_WANT_ROOM, cx);
}

static void call_stop_waiting_room(struct afe_ipc_call *call, const struct afe_context *cx)
{
	afe_ipc_wait_end(&call->waiting_room, &call->room, &call->producer->room_waiters, cx);
}

/* Ends the call with err unless a reply already did. */
static void call_end_early(struct afe_ipc_call *call, int32_t err)
{
	struct afe_ipc_producer *p = call->producer;
	struct afe_waker w = {0};
	pthread_mutex_lock(&p->lock);
	if (!atomic_load_explicit(&call->answered, memory_order_relaxed)) {
		if (call->on_reply)
			call->on_reply(call->on_reply_ctx, err, NULL, false);
		w = answer_locked(p, call, err);
		if (err == -ETIMEDOUT)
			atomic_fetch_add(&p->timeouts, 1);
	}
	pthread_mutex_unlock(&p->lock);
	afe_waker_drop(&w);
}

/* Registers the task's waker, unless the answer is in. */
static void call_register(struct afe_ipc_call *call, const struct afe_context *cx)
{
	struct afe_ipc_producer *p = call->producer;
	pthread_mutex_lock(&p->lock);
	if (!atomic_load_explicit(&call->answered, memory_order_relaxed))
		afe_waker_register(&call->waker, cx);
	pthread_mutex_unlock(&p->lock);
}

static int call_poll(struct afe_future *f, struct afe_context *cx)
{
	struct afe_ipc_call *call = afe_container_of(f, struct afe_ipc_call, base);
	int err;
	switch (call->phase) {
	case PHASE_IDLE:
		f->result = -EINVAL;
		return AFE_READY;
	case PHASE_DONE:
		f->result = call->status;
		return AFE_READY;
	case PHASE_ARMED:
		err = cx->cancel ? -ECANCELED : call_start(call);
		if (err < 0) {
			call->status = err;
			call->phase = PHASE_DONE;
			f->result = err;
			return AFE_READY;
		}
		call->phase = PHASE_SENDING;
		break;
	default:
		break;
	}
	if (cx->cancel) {
		call_end_early(call, -ECANCELED);
		goto done;
	}
	while (call->phase == PHASE_SENDING) {
		err = call_send(call);
		if (err == 0) {
			call_stop_waiting_room(call, cx);
			call->phase = PHASE_WAITING;
		} else if (err != -EAGAIN) {
			call_end_early(call, err);
			goto done;
		} else if (atomic_load_explicit(&call->answered, memory_order_acquire)) {
			goto done; /* failed while waiting for room */
		} else if (call_wait_room(call, cx) == AFE_PENDING) {
			break;
		}
	}
	if (call->phase == PHASE_WAITING)
		call_register(call, cx);
	if (afe_future_poll(&call->timer.base, cx) == AFE_READY)
		call_end_early(call, call->timer.base.result == 0 ? -ETIMEDOUT
								  : (int32_t)call->timer.base.result);
	if (!atomic_load_explicit(&call->answered, memory_order_acquire))
		return AFE_PENDING;
done:
	call_stop_waiting_room(call, cx);
	afe_ipc_withdraw(&call->timer.base, cx);
	call->phase = PHASE_DONE;
	call->on_reply = NULL;
	f->result = call->status;
	producer_unref(call->producer);
	return AFE_READY;
}

/* ---- without a runtime ------------------------------------------------------ */

/* A runtime of the producer's own, for a caller outside any: one worker
 * runs its two tasks and the calls afe_ipc_call_wait makes. */
static int connect_own_runtime(struct afe_ipc_producer **out, const char *name,
			       const struct afe_ipc_producer_config *config)
{
	struct afe_runtime_config rc;
	afe_runtime_config_default(&rc);
	rc.workers = 1;
	struct afe_runtime *rt;
	int err = afe_runtime_create(&rt, &rc);
	if (err < 0)
		return err;
	if ((err = afe_ipc_producer_connect(out, rt, name, config)) < 0) {
		afe_runtime_destroy(rt);
		return err;
	}
	(*out)->owns_rt = true;
	return 0;
}

/* Awaits a call that stays where its caller keeps it. */
struct call_waiter {
	struct afe_future base;
	struct afe_ipc_call *call;
};

static int call_waiter_poll(struct afe_future *f, struct afe_context *cx)
{
	struct call_waiter *self = afe_container_of(f, struct call_waiter, base);
	AFE_ASYNC_BEGIN(f, cx);
	AFE_AWAIT(&self->call->base);
	AFE_RETURN(self->call->base.result);
	AFE_ASYNC_END;
}

int afe_ipc_call_wait(struct afe_ipc_call *call)
{
	if (!call || call->phase == PHASE_IDLE)
		return -EINVAL;
	if (call->phase == PHASE_DONE) /* ended, or its arguments were refused */
		return call->status;
	struct call_waiter waiter = {.call = call};
	afe_future_init(&waiter.base, call_waiter_poll);
	intptr_t result;
	int err = afe_block_on(call->producer->rt, &waiter, &result); /* -EDEADLK on a worker */
	return err < 0 ? err : (int)result;
}
