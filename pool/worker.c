/* SPDX-License-Identifier: MIT */
/*
 * The worker loop, task placement, stealing and parking.
 *
 * Where a queued task goes:
 * - woken by the task running on this worker: the LIFO slot, polled right
 *   after the current poll (a message handoff stays on one warm CPU); the
 *   slot's previous occupant moves to the local queue;
 * - spawned on, or yielding on, a worker: the back of its local queue;
 * - anything from another thread: the injection queue.
 * A task put where other workers can take it may wake a parked worker
 * (see idle.h for when).
 *
 * Fairness: the LIFO slot serves at most AFE_LIFO_BUDGET polls in a row,
 * and every AFE_GLOBAL_INTERVAL ticks the injection queue goes first.
 */
#define _GNU_SOURCE
#include "worker.h"

#include <errno.h>
#include <linux/futex.h>
#include <time.h>

#include "afe/sleep.h" /* afe_now_ns, defined in clock.c */
#include "futex.h"
#include "give_way.h"
#include "pool.h"
#include "runnable.h"
#include "burst_wakes.h"
#include "spinlock.h"

#define AFE_LIFO_BUDGET 3
#define AFE_GLOBAL_INTERVAL 61
#define AFE_STEAL_MAX (AFE_RQ_CAP / 2)

static _Thread_local struct afe_worker *current_worker;

_Thread_local unsigned afe__poll_budget_used; /* give_way.h */

struct afe_worker *afe_worker_current(void)
{
	return current_worker;
}

bool afe_worker_has_nothing_queued(void)
{
	struct afe_worker *w = current_worker;
	return w && !w->lifo && afe_rq_len(&w->queue) == 0 &&
	       afe_inject_len(&w->pool->inject) == 0;
}

/* The pool whose woken tasks this thread (the ring thread) is running
 * itself, between two reaps (see afe_defer_wakes_deliver); else NULL. */
static _Thread_local struct afe_pool *running_inline;

struct afe_pool *afe_pool_current(void)
{
	return current_worker ? current_worker->pool : running_inline;
}

struct afe_worker_counters *afe_pool_my_counters(struct afe_pool *p)
{
	struct afe_worker *w = current_worker;
	return w && w->pool == p ? &w->counters : NULL;
}

static bool shutting_down(const struct afe_pool *p)
{
	return atomic_load_explicit(&p->shutdown, memory_order_acquire);
}

static void unpark(struct afe_pool *p, int index)
{
	struct afe_worker *w = p->workers[index];
	/* Release pairs with the acquire in park(). */
	atomic_store_explicit(&w->park_word, 1, memory_order_release);
	afe_futex_wake(&w->park_word, 1);
}

static void notify_parked(struct afe_pool *p)
{
	int index = afe_idle_worker_to_notify(&p->idle);
	if (index >= 0)
		unpark(p, index);
}

void afe_workers_wake_all(struct afe_pool *p)
{
	for (uint32_t i = 0; i < p->num_workers; i++)
		unpark(p, (int)i);
}

/* Moves half of w's queue and t to the injection queue. */
static void push_overflow(struct afe_worker *w, struct afe_runnable *t)
{
	struct afe_runnable *batch[AFE_RQ_CAP / 2];
	uint32_t n = afe_rq_take_batch(&w->queue, batch, AFE_RQ_CAP / 2);
	for (uint32_t i = 0; i < n; i++)
		batch[i]->next = batch[i + 1 < n ? i + 1 : 0];
	if (n) {
		batch[n - 1]->next = t;
		(void)afe_inject_push_list(&w->pool->inject, batch[0], t, n + 1); /* open: we run */
	} else {
		(void)afe_inject_push_list(&w->pool->inject, t, t, 1); /* open: we run */
	}
}

static void push_local(struct afe_worker *w, struct afe_runnable *t)
{
	if (AFE_UNLIKELY(!afe_rq_push(&w->queue, t)))
		push_overflow(w, t);
}

/* This thread's held-back wakes (see afe_defer_wakes_begin). */
static _Thread_local struct {
	bool active;
	struct afe_pool *pool;
	struct afe_runnable *first, *last;
	uint32_t n;
} deferred;

void afe_defer_wakes_begin(void)
{
	deferred.active = true;
}

/* Hands the n tasks first..last of p to the workers. */
static void hand_to_workers(struct afe_pool *p, struct afe_runnable *t, struct afe_runnable *last,
			    uint32_t n)
{
	if (!afe_inject_push_list(&p->inject, t, last, n)) {
		while (t) { /* the runtime was destroyed: they will never run */
			struct afe_runnable *next = t->next;
			afe__runnable_discard(t);
			t = next;
		}
		return;
	}
	atomic_fetch_add_explicit(&p->injected, n, memory_order_relaxed);
	/* One worker: once it finds work it wakes another (see search). */
	notify_parked(p);
}

/* Takes this thread's held-back wakes: their runtime, or NULL if none. */
static struct afe_pool *take_deferred(struct afe_runnable **first, struct afe_runnable **last,
					 uint32_t *n)
{
	struct afe_pool *p = deferred.pool;
	*first = deferred.first;
	*last = deferred.last;
	*n = deferred.n;
	deferred.pool = NULL;
	deferred.first = deferred.last = NULL;
	deferred.n = 0;
	return *n ? p : NULL;
}

void afe_defer_wakes_flush(void)
{
	struct afe_runnable *first, *last;
	uint32_t n;
	struct afe_pool *p = take_deferred(&first, &last, &n);
	if (p)
		hand_to_workers(p, first, last, n);
}

/*
 * Whether the ring thread runs a reap's woken tasks itself: when they are
 * few and every worker is parked, waking a worker would cost a thread
 * wake-up each way (its futex wake, then the doorbell of the I/O it
 * submits) where running here costs none. At most AFE_INLINE_MAX_TASKS per
 * reap, and no more once AFE_INLINE_MAX_NS have gone: the ring reaps
 * nothing while it polls. Not once destroy has begun (afe_pool_close):
 * the ring is stopping and the workers wind the tasks down.
 */
#define AFE_INLINE_MAX_TASKS 64
#define AFE_INLINE_MAX_NS 50000

static bool may_run_inline(struct afe_pool *p, uint32_t n)
{
	/* Acquire pairs with the release store in afe_pool_close. */
	return n <= AFE_INLINE_MAX_TASKS && !atomic_load_explicit(&p->closed, memory_order_acquire) &&
	       afe_idle_all_parked(&p->idle);
}

bool afe_defer_wakes_deliver(void)
{
	struct afe_runnable *t, *last;
	uint32_t n;
	struct afe_pool *p = take_deferred(&t, &last, &n);
	if (!p)
		return false;
	if (!may_run_inline(p, n)) {
		hand_to_workers(p, t, last, n);
		return false;
	}
	running_inline = p;
	uint64_t deadline = afe_now_ns() + AFE_INLINE_MAX_NS;
	/* Counted, not followed to NULL: the last task's next is stale. */
	while (n) {
		struct afe_runnable *next = t->next;
		afe__runnable_run(t, &p->inline_counters);
		t = next;
		if (--n && afe_now_ns() >= deadline) {
			hand_to_workers(p, t, last, n);
			break;
		}
	}
	running_inline = NULL;
	/* What those polls woke (a task they handed a message to, or one
	 * that yielded) goes to the workers: a chain of wakes never stays on
	 * the ring thread. */
	afe_defer_wakes_flush();
	return true;
}

/* Holds t back until the next flush. */
static void defer_wake(struct afe_pool *p, struct afe_runnable *t)
{
	if (deferred.pool != p)
		afe_defer_wakes_flush();
	deferred.pool = p;
	if (deferred.last)
		deferred.last->next = t;
	else
		deferred.first = t;
	deferred.last = t;
	deferred.n++;
}

void afe_pool_schedule(struct afe_pool *p, struct afe_runnable *t, enum afe_schedule_kind kind)
{
	struct afe_worker *w = current_worker;
	if (w && w->pool == p) {
		if (kind == AFE_SCHED_WAKE) {
			struct afe_runnable *prev = w->lifo;
			w->lifo = t;
			if (!prev)
				return;
			t = prev;
		}
		push_local(w, t);
	} else if (deferred.active) {
		defer_wake(p, t);
		return;
	} else {
		if (!afe_inject_push_list(&p->inject, t, t, 1)) {
			/* The runtime was destroyed: the task will never run. */
			afe__runnable_discard(t);
			return;
		}
		atomic_fetch_add_explicit(&p->injected, 1, memory_order_relaxed);
	}
	notify_parked(p);
}

/* Takes a batch from the injection queue: runs the first, queues the rest. */
static struct afe_runnable *take_from_inject(struct afe_worker *w)
{
	struct afe_pool *p = w->pool;
	uint32_t len = afe_inject_len(&p->inject);
	if (len == 0)
		return NULL;
	uint32_t want = len / p->num_workers + 1;
	uint32_t room = AFE_RQ_CAP - afe_rq_len(&w->queue);
	if (want > room / 2 + 1)
		want = room / 2 + 1;
	if (want > 64)
		want = 64;
	struct afe_runnable *batch[64];
	uint32_t n = afe_inject_pop_batch(&p->inject, batch, want);
	for (uint32_t i = 1; i < n; i++)
		push_local(w, batch[i]);
	return n ? batch[0] : NULL;
}

static uint64_t next_random(struct afe_worker *w)
{
	/* xorshift64: only spreads steal attempts, needs no quality. */
	w->rng ^= w->rng << 13;
	w->rng ^= w->rng >> 7;
	w->rng ^= w->rng << 17;
	return w->rng;
}

static struct afe_runnable *steal(struct afe_worker *w)
{
	struct afe_pool *p = w->pool;
	uint32_t n = p->num_workers;
	uint32_t start = (uint32_t)(next_random(w) % n);
	for (uint32_t i = 0; i < n; i++) {
		struct afe_worker *victim = p->workers[(start + i) % n];
		if (victim == w)
			continue;
		struct afe_runnable *batch[AFE_STEAL_MAX];
		uint32_t got = afe_rq_take_batch(&victim->queue, batch, AFE_STEAL_MAX);
		if (!got)
			continue;
		for (uint32_t k = 1; k < got; k++)
			push_local(w, batch[k]);
		afe_counter_add(&w->counters.stolen, got);
		return batch[0];
	}
	return take_from_inject(w);
}

static struct afe_runnable *next_task(struct afe_worker *w)
{
	struct afe_runnable *t;
	if (++w->tick % AFE_GLOBAL_INTERVAL == 0 && (t = take_from_inject(w)))
		return t;
	if ((t = afe_rq_pop(&w->queue)))
		return t;
	return take_from_inject(w);
}

/* Polls t, then whatever its poll put in the LIFO slot, within budget. */
static void run(struct afe_worker *w, struct afe_runnable *t)
{
	for (unsigned lifo_polls = 0;; lifo_polls++) {
		afe__runnable_run(t, &w->counters);
		t = w->lifo;
		if (!t)
			return;
		w->lifo = NULL;
		if (lifo_polls + 1 >= AFE_LIFO_BUDGET) {
			/* Let the queue's older tasks run first. No wake: this
			 * worker takes it again soon, as Tokio does too. */
			push_local(w, t);
			return;
		}
	}
}

static bool work_anywhere(struct afe_pool *p)
{
	if (afe_inject_len(&p->inject))
		return true;
	for (uint32_t i = 0; i < p->num_workers; i++)
		if (afe_rq_len(&p->workers[i]->queue))
			return true;
	return false;
}

bool afe_pool_is_quiet(struct afe_pool *p)
{
	return !work_anywhere(p) && afe_idle_all_parked(&p->idle);
}

/* The task a watch that ended put in w's LIFO slot, if any. */
static struct afe_runnable *take_lifo(struct afe_worker *w)
{
	struct afe_runnable *t = w->lifo;
	w->lifo = NULL;
	return t;
}

/* Searches other queues (and watched words) for up to spin_us before
 * giving up. */
static struct afe_runnable *search(struct afe_worker *w)
{
	uint64_t deadline = 0;
	for (;;) {
		struct afe_runnable *t = steal(w);
		if (t || shutting_down(w->pool))
			return t;
		if (afe_watches_pending(&w->pool->watches) &&
		    afe_watches_fire_changed(&w->pool->watches))
			return take_lifo(w);
		uint64_t now = afe_now_ns();
		if (!deadline)
			deadline = now + (uint64_t)w->pool->spin_us * 1000u;
		else if (now >= deadline)
			return NULL;
		for (int i = 0; i < 32; i++)
			afe_cpu_relax();
	}
}

static void park(struct afe_worker *w)
{
	struct afe_pool *p = w->pool;
	bool last_searcher = afe_idle_park(&p->idle, w->index, w->searching);
	w->searching = false;
	/* Store-buffering with producers: they push then fence then read the
	 * idle state; we wrote the state, so fence, then read the queues. One
	 * of the two sees the other's write. */
	atomic_thread_fence(memory_order_seq_cst);
	if (last_searcher && work_anywhere(p))
		notify_parked(p);
	afe_counter_add(&w->counters.parks, 1);
	while (atomic_load_explicit(&w->park_word, memory_order_acquire) == 0 &&
	       !shutting_down(p)) {
		/* Sleep on the watched words too: a watch that ends puts its
		 * task in our LIFO slot, and we leave to run it. */
		struct futex_waitv vec[1 + AFE_WATCH_MAX_HELD];
		unsigned n = afe_watches_hold(&p->watches, w->index, vec + 1, AFE_WATCH_MAX_HELD);
		if (w->lifo) {
			/* A watch it handed to the ring ended at once: its
			 * task is ours to run. */
			afe_watches_release(&p->watches, w->index);
			break;
		}
		if (n == 0) {
			afe_futex_wait(&w->park_word, 0, NULL);
			continue;
		}
		afe_watches_sleep(&w->park_word, vec, n);
		if (afe_watches_release(&p->watches, w->index))
			break;
	}
	if (atomic_exchange_explicit(&w->park_word, 0, memory_order_acq_rel)) {
		/* Whoever set park_word counted us awake and searching. */
		w->searching = true;
		afe_counter_add(&w->counters.unparks, 1);
	} else if (!afe_idle_unpark_self(&p->idle, w->index)) {
		/* We left on our own (a watch ended, or shutdown) just as a
		 * notifier took us off the sleepers and counted us awake and
		 * searching: take its park_word now, or the next park would
		 * read it as a wake and count us twice. */
		while (!atomic_exchange_explicit(&w->park_word, 0, memory_order_acq_rel) &&
		       !shutting_down(p))
			afe_cpu_relax();
		w->searching = true;
		afe_counter_add(&w->counters.unparks, 1);
	}
}

void *afe_worker_main(void *arg)
{
	struct afe_worker *w = arg;
	struct afe_pool *p = w->pool;
	current_worker = w;
	while (!shutting_down(p)) {
		struct afe_runnable *t = next_task(w);
		if (!t) {
			afe_burst_wakes_flush(); /* a burst of tasks ended */
			if (!w->searching)
				w->searching = afe_idle_try_start_searching(&p->idle);
			if (w->searching)
				t = search(w);
		}
		if (!t) {
			park(w);
			t = take_lifo(w); /* a watch that ended woke its task */
			if (!t)
				continue;
		}
		/* Busy: a watch must not wait long for us to park. */
		if (afe_watches_pending(&p->watches))
			afe_watches_between_tasks(&p->watches);
		if (w->searching) {
			w->searching = false;
			if (afe_idle_stop_searching(&p->idle))
				notify_parked(p);
		}
		run(w, t);
		afe_burst_wakes_after_poll();
	}
	afe_burst_wakes_flush();
	current_worker = NULL;
	return NULL;
}
