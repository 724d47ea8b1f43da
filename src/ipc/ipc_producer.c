/* SPDX-License-Identifier: MIT */
/*
 * The producer's call layer: connects over a link (ipc_producer.h), sends
 * calls, and matches the replies to the calls waiting for them.
 *
 * The link hands each reply to its call through the pending table, where
 * a call id names a slot and a serial number: a reply to a call that
 * already ended finds another id (or none) there and is dropped and
 * counted.
 *
 * Lifetime: the producer is counted by its user (until close), its link's
 * tasks, and each call from its start to its end; the last one frees it.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <unistd.h>

#include "ipc_producer.h"
#include "../core/runtime_internal.h"

_Thread_local unsigned char afe_ipc_scratch[AFE_IPC_MAX_PAYLOAD];
_Thread_local struct afe_ipc_writer afe_ipc_scratch_writer;

/* DIALING: a call of a producer that reconnects waits for a reconnect. */
enum { PHASE_IDLE, PHASE_ARMED, PHASE_DIALING, PHASE_SENDING, PHASE_WAITING, PHASE_DONE };

void afe__ipc_producer_ref(struct afe_ipc_producer *p)
{
	/* Relaxed: a count taken while the caller holds one; the last
	 * decrement's acq_rel orders the free. */
	atomic_fetch_add_explicit(&p->refs, 1, memory_order_relaxed);
}

void afe__ipc_producer_unref(struct afe_ipc_producer *p)
{
	/* acq_rel: pairs with every other holder's decrement, so the last
	 * one sees all they did with p before it frees p. */
	if (atomic_fetch_sub_explicit(&p->refs, 1, memory_order_acq_rel) != 1)
		return;
	if (p->link)
		p->link->free(p);
	afe_notify_destroy(&p->room);
	pthread_mutex_destroy(&p->lock);
	free(p->pending);
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
	if (slot >= p->slots_used)
		p->slots_used = slot + 1;
	return 0;
}

/* With p->lock held; call is in the table. */
static void pending_remove(struct afe_ipc_producer *p, struct afe_ipc_call *call)
{
	uint32_t slot = (uint32_t)(call->id & AFE_IPC_PENDING_MASK);
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
	struct afe_waker w = afe_waker_take(&call->waker);
	atomic_store_explicit(&call->answered, 1, memory_order_release);
	return w;
}

struct afe_waker afe__ipc_producer_fail_locked(struct afe_ipc_producer *p,
					       struct afe_ipc_call *call, int32_t err)
{
	if (call->on_reply)
		call->on_reply(call->on_reply_ctx, err, NULL, false);
	return answer_locked(p, call, err);
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

void afe__ipc_producer_deliver(struct afe_ipc_producer *p, uint64_t call_id, int32_t status,
			       bool more, const void *payload, uint32_t len)
{
	struct afe_waker w = {0};
	pthread_mutex_lock(&p->lock);
	struct afe_ipc_call *call = p->pending[call_id & AFE_IPC_PENDING_MASK];
	if (!call || call->id != call_id || (more && !call->on_reply)) {
		/* Read under the lock: once it is released, the call's
		 * future may end and its memory go. */
		bool ours = call && call->id == call_id;
		pthread_mutex_unlock(&p->lock);
		atomic_fetch_add_explicit(more && ours ? &p->malformed : &p->late, 1,
					  memory_order_relaxed); /* a count */
		return;
	}
	if (call->on_reply) {
		struct afe_ipc_reader r;
		afe_ipc_reader_init(&r, payload, len);
		call->on_reply(call->on_reply_ctx, status, status == 0 ? &r : NULL, more);
	} else if (status == 0) {
		status = keep_reply(call, payload, len);
	}
	if (!more)
		w = answer_locked(p, call, status);
	pthread_mutex_unlock(&p->lock);
	atomic_fetch_add_explicit(&p->n_replies, 1, memory_order_relaxed); /* a count */
	afe_waker_wake_if_set(&w);
}

void afe__ipc_producer_fail_all(struct afe_ipc_producer *p, int32_t err)
{
	for (uint32_t slot = 0; slot < AFE_IPC_MAX_PENDING; slot++) {
		pthread_mutex_lock(&p->lock);
		struct afe_ipc_call *call = p->pending[slot];
		struct afe_waker w = {0};
		if (call)
			w = afe__ipc_producer_fail_locked(p, call, err);
		pthread_mutex_unlock(&p->lock);
		afe_waker_wake_if_set(&w);
	}
	afe_notify_all(&p->room);
}

/* ---- connecting ------------------------------------------------------------ */

void afe_ipc_producer_config_default(struct afe_ipc_producer_config *config)
{
	memset(config, 0, sizeof(*config));
	config->timeout_ms = AFE_IPC_DEFAULT_TIMEOUT_MS;
}

static int check_config(const struct afe_ipc_producer_config *c)
{
	if ((c->n_timeouts && !c->timeouts) || (unsigned)c->transport > AFE_IPC_IN_PROCESS)
		return -EINVAL;
	return 0;
}

static int connect_own_runtime(struct afe_ipc_producer **out, const char *name,
			       const struct afe_ipc_producer_config *config);

struct afe_ipc_producer *afe__ipc_producer_new(struct afe_runtime *rt,
					       const struct afe_ipc_producer_config *config,
					       bool with_table)
{
	struct afe_ipc_producer *p = calloc(1, sizeof(*p));
	if (!p)
		return NULL;
	/* One block: the calls' slots, then the list of free ones. */
	if (with_table && !(p->pending = calloc(AFE_IPC_MAX_PENDING,
						sizeof(*p->pending) + sizeof(*p->free_slots)))) {
		free(p);
		return NULL;
	}
	p->rt = rt;
	p->consumer_pidfd = -1;
	atomic_init(&p->refs, 1);
	afe_notify_init(&p->room);
	pthread_mutex_init(&p->lock, NULL);
	if (with_table) {
		p->free_slots = (uint32_t *)(p->pending + AFE_IPC_MAX_PENDING);
		for (uint32_t i = 0; i < AFE_IPC_MAX_PENDING; i++)
			p->free_slots[i] = AFE_IPC_MAX_PENDING - 1 - i;
		p->n_free = AFE_IPC_MAX_PENDING;
	}
	uint32_t ms = config->timeout_ms ? config->timeout_ms : AFE_IPC_DEFAULT_TIMEOUT_MS;
	for (unsigned i = 0; i < 256; i++)
		p->timeout_ms[i] = ms;
	for (size_t i = 0; i < config->n_timeouts; i++)
		p->timeout_ms[config->timeouts[i].fn] = config->timeouts[i].ms;
	return p;
}

int afe_ipc_producer_connect(struct afe_ipc_producer **out, struct afe_runtime *rt,
			     const char *name, const struct afe_ipc_producer_config *config)
{
	struct afe_ipc_producer_config defaults;
	if (!config) {
		afe_ipc_producer_config_default(&defaults);
		config = &defaults;
	}
	char path[AFE_IPC_NAME_MAX + 2];
	if (!out || check_config(config) < 0 || afe_ipc_shm_path(path, sizeof(path), name) < 0)
		return -EINVAL;
	if (!rt && !(rt = afe_runtime_current()))
		return connect_own_runtime(out, name, config);
	struct afe_ipc_producer *p;
	int err = config->connect_wait_ms ? afe__ipc_connect_waiting(&p, rt, name, config)
					  : afe__ipc_connect_once(&p, rt, name, config);
	if (err == 0 && config->reconnect_wait_ms)
		err = afe__ipc_redial_wrap(&p, name, config);
	if (err == 0)
		*out = p;
	return err;
}

int afe__ipc_connect_once(struct afe_ipc_producer **out, struct afe_runtime *rt, const char *name,
			  const struct afe_ipc_producer_config *config)
{
	struct afe_ipc_producer *p = afe__ipc_producer_new(rt, config, true);
	if (!p)
		return -ENOMEM;
	int err = afe_ipc_deadlines_start(p);
	if (err < 0) {
		afe__ipc_producer_unref(p);
		return err;
	}
	err = -ECONNREFUSED;
	if (config->transport != AFE_IPC_SHARED_MEMORY)
		err = afe_ipc_link_local_connect(p, name);
	if (err == -ECONNREFUSED && config->transport != AFE_IPC_IN_PROCESS)
		err = afe_ipc_link_shm_connect(p, name);
	if (err < 0) {
		afe_join_handle_drop(&p->deadlines);
		afe__ipc_producer_unref(p);
		return err;
	}
	*out = p;
	return 0;
}

void afe_ipc_producer_close(struct afe_ipc_producer *p)
{
	if (!p)
		return;
	struct afe_runtime *own = p->owns_rt ? p->rt : NULL; /* p may be freed below */
	/* seq_cst: pairs with call_start's look under the lock, and with the
	 * pump's look after publishing wants, against link->close's ring of
	 * its bell (Dekker); not weakened. */
	atomic_store_explicit(&p->closed, true, memory_order_seq_cst);
	p->link->close(p);
	afe_join_handle_drop(&p->deadlines);
	afe__ipc_producer_unref(p);
	if (own)
		afe_runtime_destroy(own); /* waits for the producer's tasks */
}

bool afe_ipc_producer_is_gone(const struct afe_ipc_producer *p)
{
	if (!p) /* no producer: nothing to call */
		return true;
	if (p->redial) /* it looks under p's lock: not a change of p */
		return afe__ipc_redial_gone((struct afe_ipc_producer *)p);
	/* seq_cst: pairs with the links' stores of gone. */
	return atomic_load_explicit(&p->gone, memory_order_seq_cst);
}

void afe_ipc_producer_stats(const struct afe_ipc_producer *p, struct afe_ipc_stats *out)
{
	if (!out)
		return;
	if (!p) {
		memset(out, 0, sizeof(*out));
		return;
	}
	if (p->redial) { /* as is_gone */
		afe__ipc_redial_stats((struct afe_ipc_producer *)p, out);
		return;
	}
	memset(out, 0, sizeof(*out));
	/* Relaxed, all: counts, bumped relaxed; they order nothing. */
	out->calls = atomic_load_explicit(&p->n_calls, memory_order_relaxed);
	out->replies = atomic_load_explicit(&p->n_replies, memory_order_relaxed);
	out->late_replies = atomic_load_explicit(&p->late, memory_order_relaxed);
	out->malformed = atomic_load_explicit(&p->malformed, memory_order_relaxed);
	out->timeouts = atomic_load_explicit(&p->timeouts, memory_order_relaxed);
	out->repairs = p->hdr ? afe_ipc_shm_repairs(p->hdr) : 0;
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
	if (call) /* an id past 255 stays one (arm refuses it), never wraps */
		call->fn = (uint16_t)(fn > 255 ? 256 : fn);
	return afe_ipc_scratch_begin();
}

int afe_ipc_call_arm(struct afe_ipc_call *call)
{
	if (!call)
		return -EINVAL;
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
	if (!r)
		return -EINVAL;
	if (!call) {
		afe_ipc_reader_init(r, NULL, 0);
		return -EINVAL;
	}
	afe_ipc_reader_init(r, call->ret, call->ret_len);
	if (call->phase != PHASE_DONE)
		return -EINVAL;
	return call->status;
}

/* Sends the request over the link, with p->lock held: 0 sent (then
 * call_sent once unlocked), -EAGAIN full, or an error. */
static int call_send_locked(struct afe_ipc_call *call)
{
	struct afe_ipc_producer *p = call->conn;
	int err = p->link->send(p, call);
	if (err == 0)
		atomic_fetch_add_explicit(&p->n_calls, 1, memory_order_relaxed); /* a count */
	return err;
}

static void call_sent(struct afe_ipc_call *call)
{
	call->conn->link->sent(call->conn);
}

/* Takes the call into the table of its connection, with its deadline and
 * the task's waker, and tries its first send in the same hold of the lock
 * (*sent: what call_send_locked returned). 0 or an error. */
static int call_start(struct afe_ipc_call *call, const struct afe_context *cx, int *sent)
{
	struct afe_ipc_producer *p = call->conn;
	uint64_t now = afe_now_ns();
	struct afe_waker sweeper = {0};
	/* Looked at under the lock: a call added after the link went away
	 * would be missed by the fail_all that ends the others. */
	pthread_mutex_lock(&p->lock);
	/* closed: seq_cst, pairs with afe_ipc_producer_close's store. */
	int err = atomic_load_explicit(&p->closed, memory_order_seq_cst) ? -EPIPE
		  : p->link->gone(p)	  ? afe__ipc_producer_gone_error(p)
					  : pending_add(p, call);
	if (err == 0) {
		sweeper = afe_ipc_deadline_set(p, call, now);
		afe_waker_register(&call->waker, cx);
		*sent = call_send_locked(call);
	}
	pthread_mutex_unlock(&p->lock);
	if (err < 0)
		return err;
	if (*sent == 0)
		call_sent(call);
	afe_waker_wake_if_set(&sweeper);
	return 0;
}

/* Sends the request again, once there may be room. */
static int call_send(struct afe_ipc_call *call)
{
	struct afe_ipc_producer *p = call->conn;
	pthread_mutex_lock(&p->lock);
	int err = call_send_locked(call);
	pthread_mutex_unlock(&p->lock);
	if (err == 0)
		call_sent(call);
	return err;
}

/* Waits for room in the request ring (only the shared-memory link runs
 * out): AFE_PENDING, or AFE_READY to try again. */
static int call_wait_room(struct afe_ipc_call *call, struct afe_context *cx)
{
	struct afe_ipc_producer *p = call->conn;
	return afe_ipc_wait(&call->waiting_room, &call->room, &p->room, &p->room_waiters,
			    &p->entry->bell, AFE_IPC_WANT_ROOM, cx);
}

static void call_stop_waiting_room(struct afe_ipc_call *call, const struct afe_context *cx)
{
	afe_ipc_wait_end(&call->waiting_room, &call->room, &call->conn->room_waiters, cx);
}

/* Ends the call with err unless a reply already did. */
static void call_end_early(struct afe_ipc_call *call, int32_t err)
{
	struct afe_ipc_producer *p = call->conn;
	struct afe_waker w = {0};
	pthread_mutex_lock(&p->lock);
	if (!atomic_load_explicit(&call->answered, memory_order_relaxed))
		w = afe__ipc_producer_fail_locked(p, call, err);
	pthread_mutex_unlock(&p->lock);
	afe_waker_drop(&w);
}

/* Registers the task's waker, unless the answer is in. */
static void call_register(struct afe_ipc_call *call, const struct afe_context *cx)
{
	struct afe_ipc_producer *p = call->conn;
	if (atomic_load_explicit(&call->answered, memory_order_acquire))
		return; /* the usual case: polled again because it is answered */
	pthread_mutex_lock(&p->lock);
	if (!atomic_load_explicit(&call->answered, memory_order_relaxed))
		afe_waker_register(&call->waker, cx);
	pthread_mutex_unlock(&p->lock);
}

/* Finds the connection the call runs on (call->conn), counted until the
 * call ends: its producer, or the connection of one that reconnects,
 * which may first wait for a reconnect. AFE_PENDING, or AFE_READY with
 * *err 0 or the error the call ends with. */
static int call_connect(struct afe_ipc_call *call, struct afe_context *cx, int *err)
{
	*err = 0;
	if (!call->producer->redial) {
		call->conn = call->producer;
		afe__ipc_producer_ref(call->conn);
		return AFE_READY;
	}
	call->phase = PHASE_DIALING;
	if (!cx->cancel)
		return afe__ipc_redial_poll(call, cx, err);
	afe__ipc_redial_stop_waiting(call, cx);
	*err = -ECANCELED;
	return AFE_READY;
}

static int call_poll(struct afe_future *f, struct afe_context *cx)
{
	struct afe_ipc_call *call = afe_container_of(f, struct afe_ipc_call, base);
	int err, first_send = 0;
	bool started = false, first_send_due = false;
	switch (call->phase) {
	case PHASE_IDLE:
		f->result = -EINVAL;
		return AFE_READY;
	case PHASE_DONE:
		f->result = call->status;
		return AFE_READY;
	case PHASE_ARMED:
	case PHASE_DIALING:
		if (call_connect(call, cx, &err) == AFE_PENDING)
			return AFE_PENDING;
		started = true;
		if (err == 0 && (err = cx->cancel ? -ECANCELED : call_start(call, cx, &first_send)))
			afe__ipc_producer_unref(call->conn);
		if (err < 0) {
			call->status = err;
			call->phase = PHASE_DONE;
			f->result = err;
			return AFE_READY;
		}
		call->phase = PHASE_SENDING;
		first_send_due = true;
		break;
	default:
		break;
	}
	if (cx->cancel) {
		call_end_early(call, -ECANCELED);
		goto done;
	}
	while (call->phase == PHASE_SENDING) {
		err = first_send_due ? first_send : call_send(call);
		first_send_due = false;
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
	if (!started) /* call_start registered this poll's waker */
		call_register(call, cx);
	if (!atomic_load_explicit(&call->answered, memory_order_acquire))
		return AFE_PENDING;
done:
	call_stop_waiting_room(call, cx);
	call->phase = PHASE_DONE;
	call->on_reply = NULL;
	f->result = call->status;
	afe__ipc_producer_unref(call->conn);
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
