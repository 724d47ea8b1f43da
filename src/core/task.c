/* SPDX-License-Identifier: MIT */
/* The task state machine, spawning, and the join and cancel futures.
 * The protocol is described in task_internal.h. */
#include <assert.h>
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../../pool/clock.h"
#include "../../pool/give_way.h"
#include "afe/task.h"
#include "handle_stamps.h"
#include "runtime_internal.h"
#include "task_alloc.h"
#include "task_internal.h"

#define AFE_TASK_HEADER_SIZE \
	((sizeof(struct afe_task) + _Alignof(max_align_t) - 1) & ~(_Alignof(max_align_t) - 1))

_Static_assert(AFE_TASK_HEADER_SIZE == 48, "the task header stays small (see task_internal.h)");

static struct afe_future *future_of(struct afe_task *t)
{
	return (struct afe_future *)(void *)((char *)t + AFE_TASK_HEADER_SIZE + t->future_offset);
}

static struct afe_task_record *record_of(struct afe_task *t, uint64_t state);

/* ---- references ---------------------------------------------------- */

static void task_dealloc(struct afe_task *t)
{
	uint64_t state = atomic_load_explicit(&t->state, memory_order_relaxed);
	if (!(state & AFE_TASK_COMPLETE)) {
		/* Unreachable before finishing: nobody can wake it any more. */
		atomic_fetch_add_explicit(&t->rt->dropped, 1, memory_order_acq_rel);
	}
	afe_waker_drop(&t->join_waker);
	afe__task_free(t, t->alloc_size);
}

void afe__task_release(struct afe_task *t)
{
	/* acq_rel: every use of the task by this holder happens before the
	 * free done by whoever drops the last reference. */
	uint64_t prev = atomic_fetch_sub_explicit(&t->state, AFE_TASK_REF_ONE,
						  memory_order_acq_rel);
	assert(afe__task_refs(prev) >= 1);
	if (afe__task_refs(prev) == 1)
		task_dealloc(t);
}

static struct afe_task *task_of(struct afe_runnable *r)
{
	return afe_container_of(r, struct afe_task, link);
}

void afe__runnable_discard(struct afe_runnable *r)
{
	/* The queue's reference; the future is never polled again. */
	afe__task_release(task_of(r));
}

/* ---- the task's waker ------------------------------------------------ */

static void waker_clone(void *data)
{
	struct afe_task *t = data;
	/* Relaxed: the caller already holds a reference. */
	atomic_fetch_add_explicit(&t->state, AFE_TASK_REF_ONE, memory_order_relaxed);
}

static void waker_drop(void *data)
{
	afe__task_release(data);
}

/* Marks t notified. Returns true when the caller must queue it, having
 * provided the queue's reference (consume: the waker's own; else a new). */
static bool transition_to_notified(struct afe_task *t, bool consume)
{
	uint64_t s = atomic_load_explicit(&t->state, memory_order_acquire);
	for (;;) {
		uint64_t ns;
		bool queue = false;
		if (s & (AFE_TASK_COMPLETE | AFE_TASK_NOTIFIED)) {
			ns = consume ? s - AFE_TASK_REF_ONE : s;
		} else if (s & AFE_TASK_RUNNING) {
			/* The worker queues it again when the poll ends. */
			ns = (s | AFE_TASK_NOTIFIED) - (consume ? AFE_TASK_REF_ONE : 0);
		} else {
			ns = (s | AFE_TASK_NOTIFIED) + (consume ? 0 : AFE_TASK_REF_ONE);
			queue = true;
		}
		/* acq_rel: pairs with the worker's CAS that ends a poll, so a
		 * wake after the poll's reads is seen by that CAS or queues. */
		if (atomic_compare_exchange_weak_explicit(&t->state, &s, ns, memory_order_acq_rel,
							  memory_order_acquire)) {
			if (consume && afe__task_refs(ns) == 0)
				task_dealloc(t);
			return queue;
		}
	}
}

static void waker_wake(void *data)
{
	struct afe_task *t = data;
	if (transition_to_notified(t, true))
		afe_pool_schedule(&t->rt->pool, &t->link, AFE_SCHED_WAKE);
}

static void waker_wake_by_ref(void *data)
{
	struct afe_task *t = data;
	if (transition_to_notified(t, false))
		afe_pool_schedule(&t->rt->pool, &t->link, AFE_SCHED_WAKE);
}

static const struct afe_waker_vtable task_waker_vtable = {
	.clone = waker_clone,
	.wake = waker_wake,
	.wake_by_ref = waker_wake_by_ref,
	.drop = waker_drop,
};

/* ---- running ----------------------------------------------------------- */

static void complete(struct afe_task *t, struct afe_worker_counters *counters)
{
	/* Counted before COMPLETE is published, so whoever sees the task
	 * complete also sees the count. */
	afe_counter_add(&counters->completed, 1);
	uint64_t s = atomic_load_explicit(&t->state, memory_order_relaxed);
	uint64_t ns;
	do {
		ns = (s & ~(AFE_TASK_RUNNING | AFE_TASK_NOTIFIED)) | AFE_TASK_COMPLETE;
		/* Release publishes the result to the joiner's acquire load; acquire
		 * makes the joiner's waker write visible to us. */
	} while (!atomic_compare_exchange_weak_explicit(&t->state, &s, ns, memory_order_acq_rel,
							 memory_order_relaxed));
	afe_counter_add(&counters->finished, 1);
	if ((s & AFE_TASK_JOIN_INTEREST) && (s & AFE_TASK_JOIN_WAKER))
		afe_waker_wake_by_ref(&t->join_waker);
	afe__task_release(t); /* the queue's reference */
}

static const char *name_of(struct afe_task *t);

/*
 * t's poll returned pending, and nobody holds a waker of it or a handle:
 * nothing can ever poll it again. Always a bug of the future (a plain
 * `return 0;`, which reads as pending, where AFE_RETURN was meant; or a
 * wait that never registered the waker), and a silent hang of whoever
 * waits for what it does: said on stderr, and fatal in debug builds.
 */
static void lost(struct afe_task *t)
{
	const char *name = name_of(t);
	fprintf(stderr,
		"afe: task \"%s\" (poll function %p) returned pending with no waker kept and no "
		"handle: nothing can wake it again (a plain `return 0;` where AFE_RETURN was "
		"meant?)\n",
		name ? name : "(unnamed)", (void *)(uintptr_t)future_of(t)->poll);
#ifndef NDEBUG
	abort();
#endif
	task_dealloc(t);
}

/* t's poll was marked long by the long-poll detector (pool/long_polls.h)
 * and has just returned: names it while it is still alive. */
static void report_long_poll(struct afe_task *t, struct afe_worker_counters *counters)
{
	uint64_t since = atomic_load_explicit(&counters->flagged_since_ns, memory_order_relaxed);
	uint64_t now = afe_now_ns();
	const char *name = name_of(t);
	fprintf(stderr,
		"afe: task \"%s\" (poll function %p) held its thread for at least %llu ms in one "
		"poll: a poll must not block (blocking calls belong in afe_blocking jobs)\n",
		name ? name : "(unnamed)", (void *)(uintptr_t)future_of(t)->poll,
		(unsigned long long)((now > since ? now - since : 0) / 1000000u));
}

/*
 * What this thread's last listed spawn read, to spare the next ones: the
 * coarse clock, kept only within one task poll (afe__runnable_run marks
 * the poll and clears the reading before and after it), so a poll that
 * spawns a thousand tasks reads it once and an age is off by at most that
 * poll's length, while a spawn outside any poll reads it every time; and
 * its site's number (a loop spawns from one site). Reading the clock at
 * every spawn cost a listed spawn_join 5% (src/core/TASK_DUMP.md).
 */
static _Thread_local struct {
	bool in_poll, clock_valid;
	uint32_t ms;
	const void *site;
	uint32_t site_id;
} last_spawn;

void afe__runnable_run(struct afe_runnable *r, struct afe_worker_counters *counters)
{
	struct afe_task *t = task_of(r);
	uint64_t s = atomic_load_explicit(&t->state, memory_order_relaxed);
	uint64_t ns;
	do {
		assert(s & AFE_TASK_NOTIFIED);
		ns = (s & ~AFE_TASK_NOTIFIED) | AFE_TASK_RUNNING;
		/* Acquire: what the waker wrote before waking is visible to the
		 * poll. */
	} while (!atomic_compare_exchange_weak_explicit(&t->state, &s, ns, memory_order_acquire,
							 memory_order_relaxed));
	if (AFE_UNLIKELY(s & AFE_TASK_COMPLETE)) {
		afe__task_release(t);
		return;
	}
	struct afe_waker waker = {.vtable = &task_waker_vtable, .data = t};
	struct afe_context cx = {
		.waker = &waker,
		.task = t,
		.cancel = (ns & AFE_TASK_CANCELLED) != 0,
	};
	/* Release pairs with the acquire loads of the metrics reader and
	 * the long-poll detector; this thread is the only writer. */
	uint64_t poll_no = atomic_load_explicit(&counters->polled, memory_order_relaxed) + 1;
	atomic_store_explicit(&counters->polled, poll_no, memory_order_release);
	/* A listed task counts its polls, and one in AFE_TASK_TIMED_EVERY
	 * is timed (two clock reads: timing every poll cost a yield 40%, the
	 * first of each task a spawn 15%). Only this poll writes them, so no
	 * RMW; relaxed: see the record. */
	struct afe_task_record *rec = NULL;
	uint64_t poll_began = 0;
	if (ns & AFE_TASK_LISTED) {
		rec = record_of(t, ns);
		uint32_t polls = atomic_load_explicit(&rec->polls, memory_order_relaxed);
		if (polls < AFE_TASK_COUNT_MAX)
			atomic_store_explicit(&rec->polls, polls + 1, memory_order_relaxed);
		if ((polls + 1) % AFE_TASK_TIMED_EVERY == AFE_TASK_TIMED_EVERY / 2)
			poll_began = afe_now_ns();
	}
	afe__poll_budget_reset();
	last_spawn.in_poll = true;
	last_spawn.clock_valid = false;
	int ready = afe_future_poll(future_of(t), &cx);
	last_spawn.in_poll = false;
	if (poll_began) { /* still RUNNING: the task is ours */
		uint64_t sum = atomic_load_explicit(&rec->timed_ns, memory_order_relaxed) +
			       (afe_now_ns() - poll_began);
		atomic_store_explicit(&rec->timed_ns,
				      (uint32_t)(sum < AFE_TASK_COUNT_MAX ? sum : AFE_TASK_COUNT_MAX),
				      memory_order_relaxed);
	}
	afe_counter_add(&counters->returned, 1);
	/* Acquire: pairs with the detector's release store of the mark. */
	if (AFE_UNLIKELY(atomic_load_explicit(&counters->flagged, memory_order_acquire) == poll_no))
		report_long_poll(t, counters);
	if (ready == AFE_READY) {
		complete(t, counters);
		return;
	}

	s = ns;
	bool again;
	do {
		again = (s & AFE_TASK_NOTIFIED) != 0;
		/* Woken while running: keep the queue's reference and requeue. */
		ns = (s & ~AFE_TASK_RUNNING) - (again ? 0 : AFE_TASK_REF_ONE);
		/* Release: the poll's writes happen before the next poll, which
		 * another worker may run; pairs with the acquire above. */
	} while (!atomic_compare_exchange_weak_explicit(&t->state, &s, ns, memory_order_acq_rel,
							 memory_order_relaxed));
	if (again)
		afe_pool_schedule(&t->rt->pool, &t->link, AFE_SCHED_YIELD);
	else if (afe__task_refs(ns) == 0)
		lost(t);
}

/* ---- spawning ------------------------------------------------------------ */

/* Where what a task carries after its future (task_internal.h) starts,
 * for a future of size bytes. */
static size_t tail_offset(size_t size)
{
	size_t end = AFE_TASK_HEADER_SIZE + size;
	size_t align = _Alignof(struct afe_task_named);
	_Static_assert(_Alignof(struct afe_task_record) <= _Alignof(struct afe_task_named) &&
			       sizeof(struct afe_task_record) % _Alignof(struct afe_task_named) == 0,
		       "the record and the named part after it both aligned");
	return (end + align - 1) & ~(align - 1);
}

/* A task with AFE_TASK_NAMED: its name and local, last. */
static struct afe_task_named *named_of(struct afe_task *t)
{
	return (struct afe_task_named *)(void *)((char *)t + t->alloc_size -
						 sizeof(struct afe_task_named));
}

/* A task with AFE_TASK_LISTED (in state): its record, before the named
 * part if it has one. */
static struct afe_task_record *record_of(struct afe_task *t, uint64_t state)
{
	size_t end = t->alloc_size - (state & AFE_TASK_NAMED ? sizeof(struct afe_task_named) : 0);
	return (struct afe_task_record *)(void *)((char *)t + end - sizeof(struct afe_task_record));
}

/* t's named part, or NULL for a task spawned without options. The bit
 * never changes after spawn, so a relaxed load suffices. */
static struct afe_task_named *find_named(struct afe_task *t)
{
	uint64_t s = atomic_load_explicit(&t->state, memory_order_relaxed);
	return (s & AFE_TASK_NAMED) ? named_of(t) : NULL;
}

static void init_named(struct afe_task *t, const char *name)
{
	struct afe_task_named *x = named_of(t);
	x->local = NULL;
	x->name[0] = 0;
	if (name) {
		strncpy(x->name, name, sizeof(x->name) - 1);
		x->name[sizeof(x->name) - 1] = 0;
	}
}

/* Fills t's record; before t is published. */
static void init_record(struct afe_task *t, uint64_t state, const void *site)
{
	struct afe_task_record *rec = record_of(t, state);
	if (site != last_spawn.site || !last_spawn.site_id) {
		last_spawn.site = site;
		last_spawn.site_id = afe__task_site_id(site);
	}
	rec->site = last_spawn.site_id;
	if (!last_spawn.in_poll || !last_spawn.clock_valid) {
		last_spawn.ms = (uint32_t)(afe__now_coarse_ns() / 1000000u);
		last_spawn.clock_valid = last_spawn.in_poll;
	}
	rec->spawned_ms = last_spawn.ms;
	atomic_init(&rec->polls, 0);
	atomic_init(&rec->timed_ns, 0);
}

/* mine: the spawning worker's counters, or NULL from outside the pool. */
/* site: the code that called the spawn (a return address), for dumps. */
static int spawn_task(struct afe_runtime *rt, struct afe_worker_counters *mine,
		      const void *obj, size_t size, const struct afe_future *base,
		      struct afe_join_handle *handle, bool cancel_on_drop,
		      const struct afe_spawn_options *opts, const void *site)
{
	const char *start = obj, *b = (const char *)base;
	bool named = opts != NULL, listed = rt->list_tasks;
	size_t total = AFE_TASK_HEADER_SIZE + size;
	if (named || listed)
		total = tail_offset(size) + (listed ? sizeof(struct afe_task_record) : 0) +
			(named ? sizeof(struct afe_task_named) : 0);
	struct afe_task *t = afe__task_alloc(total);
	if (!t)
		return -ENOMEM;
	t->alloc_size = (uint32_t)total;
	char *storage = (char *)t + AFE_TASK_HEADER_SIZE;
	memcpy(storage, obj, size);
	t->link.next = NULL;
	t->rt = rt;
	t->future_offset = (uint32_t)(b - start);
	t->join_waker.vtable = NULL;
	t->join_waker.data = NULL;
	uint64_t state = AFE_TASK_NOTIFIED + AFE_TASK_REF_ONE; /* the queue's */
	if (named) {
		init_named(t, opts->name);
		state |= AFE_TASK_NAMED;
	}
	if (listed)
		state |= AFE_TASK_LISTED;
	if (handle) {
		state += AFE_TASK_JOIN_INTEREST + AFE_TASK_REF_ONE;
		handle->task = t;
		handle->cancel_on_drop = cancel_on_drop;
		handle->stamp = afe__handle_stamp_issue(t);
	}
	if (listed)
		init_record(t, state, site);
	/* Release: a dump walking the allocator's blocks (pin, below) that
	 * finds the task live sees all of it written. The block may be
	 * walked already, so a store, not an init. */
	atomic_store_explicit(&t->state, state, memory_order_release);
	if (mine)
		afe_counter_add(&mine->spawned, 1);
	else
		atomic_fetch_add_explicit(&rt->external_spawned, 1, memory_order_acq_rel);
	afe_pool_schedule(&rt->pool, &t->link, AFE_SCHED_SPAWN);
	return 0;
}

static int spawn(struct afe_runtime *rt, const void *obj, size_t size,
		 const struct afe_future *base, struct afe_join_handle *handle,
		 bool cancel_on_drop, const struct afe_spawn_options *opts, const void *site)
{
	if (handle)
		*handle = (struct afe_join_handle){0};
	if (!rt)
		rt = afe_runtime_current();
	if (!rt || !obj || !base || !base->poll)
		return -EINVAL;
	const char *start = obj, *b = (const char *)base;
	if (b < start || size < sizeof(*base) || (size_t)(b - start) > size - sizeof(*base))
		return -EINVAL;
	/* alloc_size is 32 bits */
	if (size > UINT32_MAX - AFE_TASK_HEADER_SIZE - sizeof(struct afe_task_record) -
			   sizeof(struct afe_task_named) - _Alignof(struct afe_task_named))
		return -ENOMEM;
	/* A spawn from outside the workers announces itself before it checks
	 * closed, so destroy (which sets closed, then waits for these to
	 * drain) never frees the runtime under it. Seq_cst on both sides. */
	struct afe_worker_counters *mine = afe_pool_my_counters(&rt->pool);
	bool external = !mine;
	if (external)
		atomic_fetch_add(&rt->external_spawns_in_flight, 1);
	int err = 0;
	if (atomic_load(&rt->closed))
		err = -ESHUTDOWN;
	else
		err = spawn_task(rt, mine, obj, size, base, handle, cancel_on_drop, opts, site);
	if (external)
		atomic_fetch_sub(&rt->external_spawns_in_flight, 1);
	return err;
}

int afe_spawn_raw(struct afe_runtime *rt, const void *obj, size_t size,
		  const struct afe_future *base, struct afe_join_handle *handle)
{
	return spawn(rt, obj, size, base, handle, false, NULL, __builtin_return_address(0));
}

int afe_spawn_child_raw(struct afe_runtime *rt, const void *obj, size_t size,
			const struct afe_future *base, struct afe_join_handle *handle)
{
	if (!handle)
		return -EINVAL; /* a child without a handle could never be cancelled */
	return spawn(rt, obj, size, base, handle, true, NULL, __builtin_return_address(0));
}

int afe_spawn_with_raw(struct afe_runtime *rt, const void *obj, size_t size,
		       const struct afe_future *base, struct afe_join_handle *handle,
		       const struct afe_spawn_options *opts)
{
	if (!opts || (opts->child && !handle)) {
		if (handle)
			*handle = (struct afe_join_handle){0};
		return -EINVAL;
	}
	return spawn(rt, obj, size, base, handle, opts->child, opts, __builtin_return_address(0));
}

/* ---- names and task-local storage ------------------------------------ */

static const char *name_of(struct afe_task *t)
{
	struct afe_task_named *x = t ? find_named(t) : NULL;
	return x && x->name[0] ? x->name : NULL;
}

const char *afe_task_name(const struct afe_join_handle *handle)
{
	if (!handle || !handle->task || !afe__handle_stamp_is_live(handle, __func__))
		return NULL;
	return name_of(handle->task);
}

const char *afe_task_current_name(const struct afe_context *cx)
{
	return cx ? name_of(cx->task) : NULL;
}

int afe_task_local_set(const struct afe_context *cx, void *value)
{
	struct afe_task_named *x = cx && cx->task ? find_named(cx->task) : NULL;
	if (!x)
		return -EINVAL;
	x->local = value;
	return 0;
}

void *afe_task_local_get(const struct afe_context *cx)
{
	struct afe_task_named *x = cx && cx->task ? find_named(cx->task) : NULL;
	return x ? x->local : NULL;
}

/* ---- handles ------------------------------------------------------------- */

static void request_cancel(struct afe_task *t)
{
	uint64_t s = atomic_load_explicit(&t->state, memory_order_acquire);
	uint64_t ns;
	bool queue;
	do {
		if (s & (AFE_TASK_COMPLETE | AFE_TASK_CANCELLED))
			return;
		queue = false;
		if (s & (AFE_TASK_RUNNING | AFE_TASK_NOTIFIED)) {
			ns = s | AFE_TASK_CANCELLED | AFE_TASK_NOTIFIED;
		} else {
			ns = (s | AFE_TASK_CANCELLED | AFE_TASK_NOTIFIED) + AFE_TASK_REF_ONE;
			queue = true;
		}
	} while (!atomic_compare_exchange_weak_explicit(&t->state, &s, ns, memory_order_acq_rel,
							 memory_order_acquire));
	if (queue)
		afe_pool_schedule(&t->rt->pool, &t->link, AFE_SCHED_WAKE);
}

void afe_join_handle_drop(struct afe_join_handle *handle)
{
	if (!handle || !handle->task)
		return;
	bool live = afe__handle_stamp_is_live(handle, __func__);
	if (live)
		afe__handle_stamp_retire(handle);
	struct afe_task *t = handle->task;
	handle->task = NULL;
	if (!live)
		return; /* a stale copy: its reference was released already */
	if (handle->cancel_on_drop)
		request_cancel(t);
	uint64_t s = atomic_load_explicit(&t->state, memory_order_relaxed);
	uint64_t ns;
	do {
		ns = (s & ~AFE_TASK_JOIN_INTEREST) - AFE_TASK_REF_ONE;
	} while (!atomic_compare_exchange_weak_explicit(&t->state, &s, ns, memory_order_acq_rel,
							 memory_order_relaxed));
	if (afe__task_refs(ns) == 0)
		task_dealloc(t);
}

int afe_join_handle_abort(struct afe_join_handle *handle)
{
	if (!handle || !handle->task || !afe__handle_stamp_is_live(handle, __func__))
		return -EINVAL;
	request_cancel(handle->task);
	return 0;
}

bool afe_join_handle_is_finished(const struct afe_join_handle *handle)
{
	if (!handle || !handle->task || !afe__handle_stamp_is_live(handle, __func__))
		return false;
	return (atomic_load_explicit(&handle->task->state, memory_order_acquire) &
		AFE_TASK_COMPLETE) != 0;
}

/* Stores the joiner's waker unless t completed meanwhile.
 * Returns true when t is complete (its output readable). */
static bool register_join_waker(struct afe_task *t, const struct afe_context *cx)
{
	uint64_t s = atomic_load_explicit(&t->state, memory_order_acquire);
	if (s & AFE_TASK_COMPLETE)
		return true;
	if (s & AFE_TASK_JOIN_WAKER) {
		if (afe_waker_will_wake(&t->join_waker, cx->waker))
			return false;
		/* Take the slot back before rewriting it. */
		do {
			if (s & AFE_TASK_COMPLETE)
				return true;
		} while (!atomic_compare_exchange_weak_explicit(
			&t->state, &s, s & ~AFE_TASK_JOIN_WAKER, memory_order_acq_rel,
			memory_order_acquire));
		afe_waker_drop(&t->join_waker);
	}
	afe_waker_clone(&t->join_waker, cx->waker);
	s = atomic_load_explicit(&t->state, memory_order_acquire);
	do {
		if (s & AFE_TASK_COMPLETE) {
			afe_waker_drop(&t->join_waker);
			return true;
		}
		/* Release hands the slot to the completing worker's acquire. */
	} while (!atomic_compare_exchange_weak_explicit(&t->state, &s, s | AFE_TASK_JOIN_WAKER,
							 memory_order_acq_rel,
							 memory_order_acquire));
	return false;
}

/*
 * Shared by join and cancel: ready once the task finished, with its output.
 * Under cancellation a plain handle is dropped at once (the task is
 * detached and runs on); a child handle, or a cancel future, asks the task
 * to cancel (once: *requested) and still waits for it to finish, so
 * nothing it uses is freed under it.
 */
static int poll_finished(struct afe_future *f, struct afe_join_handle *h, bool *requested,
			 struct afe_context *cx)
{
	if (!h->task) {
		f->result = -EINVAL;
		return AFE_READY;
	}
	if (cx->cancel && !h->cancel_on_drop && !*requested) {
		afe_join_handle_drop(h);
		f->result = -ECANCELED;
		return AFE_READY;
	}
	if (cx->cancel && !*requested) {
		request_cancel(h->task);
		*requested = true;
	}
	if (!register_join_waker(h->task, cx))
		return AFE_PENDING;
	f->result = future_of(h->task)->result;
	/* A finished task has nothing left to cancel: release it plainly. */
	h->cancel_on_drop = false;
	afe_join_handle_drop(h);
	return AFE_READY;
}

static int join_poll(struct afe_future *f, struct afe_context *cx)
{
	struct afe_join *j = afe_container_of(f, struct afe_join, base);
	return poll_finished(f, &j->handle, &j->cancel_requested, cx);
}

int afe_join_init(struct afe_join *join, struct afe_join_handle *handle)
{
	afe_future_init(&join->base, join_poll);
	join->handle = (struct afe_join_handle){0};
	join->cancel_requested = false;
	if (!handle || !handle->task || !afe__handle_stamp_is_live(handle, __func__)) {
		if (handle)
			handle->task = NULL;
		return -EINVAL;
	}
	join->handle = *handle;
	join->handle.stamp = afe__handle_stamp_issue(handle->task); /* copies go stale */
	handle->task = NULL;
	return 0;
}

static int cancel_poll(struct afe_future *f, struct afe_context *cx)
{
	struct afe_cancel *c = afe_container_of(f, struct afe_cancel, base);
	if (c->handle.task && !c->requested) {
		request_cancel(c->handle.task);
		c->requested = true;
	}
	return poll_finished(f, &c->handle, &c->requested, cx);
}

int afe_cancel_init(struct afe_cancel *cancel, struct afe_join_handle *handle)
{
	afe_future_init(&cancel->base, cancel_poll);
	cancel->handle = (struct afe_join_handle){0};
	cancel->requested = false;
	if (!handle || !handle->task || !afe__handle_stamp_is_live(handle, __func__)) {
		if (handle)
			handle->task = NULL;
		return -EINVAL;
	}
	cancel->handle = *handle;
	cancel->handle.stamp = afe__handle_stamp_issue(handle->task); /* copies go stale */
	handle->task = NULL;
	return 0;
}

/* ---- dumps ----------------------------------------------------------------- */

/*
 * Takes a reference on the task in a block of the task allocator if the
 * block holds a live one (a reference count above zero): then it stays
 * alive, and all of it is readable, until afe__task_release. A block
 * being freed or reused meanwhile fails the CAS or counts as the new task
 * (which is live too, and published: acquire pairs with the spawn's
 * release store of state). Returns whether it took one. When the dump's
 * reference turns out to be the last, the dump frees the task, as its
 * last holder would have (a task left pending with nothing to wake it is
 * then counted as dropped, without lost()'s report).
 */
static bool pin(struct afe_task *t)
{
	uint64_t s = atomic_load_explicit(&t->state, memory_order_acquire);
	while (afe__task_refs(s) > 0)
		if (atomic_compare_exchange_weak_explicit(&t->state, &s, s + AFE_TASK_REF_ONE,
							 memory_order_acquire, memory_order_acquire))
			return true;
	return false;
}

/* The tasks a walk pinned: every live one, of any runtime. */
struct pinned {
	struct afe_task **at;
	size_t n, cap;
	bool full; /* the walk stopped: no memory to hold more */
};

/* afe__task_alloc_walk's visit: pins a live task. Under the allocator's
 * lock at times, so it frees nothing (see task_alloc.h): room for the
 * pointer is made before the pin, which is never given back here. */
static void pin_block(void *block, void *arg)
{
	struct pinned *all = arg;
	if (all->full)
		return;
	if (all->n == all->cap) {
		size_t cap = all->cap ? all->cap * 2 : 1024;
		struct afe_task **grown = realloc(all->at, cap * sizeof(*grown));
		if (!grown) {
			all->full = true;
			return;
		}
		all->at = grown;
		all->cap = cap;
	}
	if (pin(block))
		all->at[all->n++] = block;
}

/* What a dump says of one task. */
struct afe_task_snapshot {
	char name[32];
	const char *state;
	uint64_t age_ns, polls, poll_ns; /* poll_ns: of the timed polls */
	void *poll_fn;
	const void *spawned_at;
};

/* t is pinned: a picture of it. */
static void describe(struct afe_task *t, struct afe_task_snapshot *out)
{
	/* Relaxed: a picture of a moment, which may be stale at once. */
	uint64_t s = atomic_load_explicit(&t->state, memory_order_relaxed);
	struct afe_task_record *rec = record_of(t, s);
	out->state = s & AFE_TASK_COMPLETE   ? "complete"
		     : s & AFE_TASK_RUNNING  ? "running"
		     : s & AFE_TASK_NOTIFIED ? "queued"
					     : "waiting";
	out->name[0] = 0;
	if (s & AFE_TASK_NAMED) {
		memcpy(out->name, named_of(t)->name, sizeof(out->name));
		out->name[sizeof(out->name) - 1] = 0;
	}
	/* Modulo 2^32 ms, as spawned_ms: right for 49 days. */
	uint32_t now_ms = (uint32_t)(afe__now_coarse_ns() / 1000000u);
	out->age_ns = (uint64_t)(uint32_t)(now_ms - rec->spawned_ms) * 1000000u;
	out->polls = atomic_load_explicit(&rec->polls, memory_order_relaxed);
	out->poll_ns = atomic_load_explicit(&rec->timed_ns, memory_order_relaxed);
	out->poll_fn = (void *)(uintptr_t)future_of(t)->poll;
	out->spawned_at = afe__task_site(rec->site);
}

static int print_snapshot(int fd, const struct afe_task_snapshot *s)
{
	const char *more = s->polls == AFE_TASK_COUNT_MAX ? "+" : "";
	const char *longer = s->poll_ns == AFE_TASK_COUNT_MAX ? "+" : "";
	return dprintf(fd,
		       "afe:   \"%s\" %s, age %llu ms, %llu%s polls (%llu timed, taking %llu%s us), "
		       "poll function %p, spawned at %p\n",
		       s->name[0] ? s->name : "(unnamed)", s->state,
		       (unsigned long long)(s->age_ns / 1000000u), (unsigned long long)s->polls, more,
		       (unsigned long long)afe_task_timed_polls((uint32_t)s->polls),
		       (unsigned long long)(s->poll_ns / 1000u),
		       longer, s->poll_fn, s->spawned_at) < 0
		       ? -errno
		       : 0;
}

int afe_runtime_dump_tasks(struct afe_runtime *rt, int fd)
{
	if (!rt || fd < 0)
		return -EINVAL;
	if (!rt->list_tasks)
		return -EOPNOTSUPP;
	/* Every live task is pinned while the walk lasts, then the
	 * runtime's are described and all released before anything is
	 * written: a slow fd must not keep tasks from being freed. */
	struct pinned all = {0};
	afe__task_alloc_walk(pin_block, &all);
	struct afe_task_snapshot *snaps = malloc((all.n ? all.n : 1) * sizeof(*snaps));
	unsigned n = 0;
	for (size_t i = 0; i < all.n; i++) {
		struct afe_task *t = all.at[i];
		/* Relaxed: LISTED is set before publication, never changed. */
		uint64_t s = atomic_load_explicit(&t->state, memory_order_relaxed);
		if (snaps && t->rt == rt && (s & AFE_TASK_LISTED))
			describe(t, &snaps[n++]);
		afe__task_release(t);
	}
	free(all.at);
	if (!snaps)
		return -ENOMEM;
	int err = dprintf(fd, "afe: %u live task(s)\n", n) < 0 ? -errno : 0;
	for (unsigned i = 0; i < n && err == 0; i++)
		err = print_snapshot(fd, &snaps[i]);
	if (err == 0 && all.full &&
	    dprintf(fd, "afe:   and maybe more, left out (no memory to hold them)\n") < 0)
		err = -errno;
	free(snaps);
	return err < 0 ? err : (int)n;
}
