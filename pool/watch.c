/* SPDX-License-Identifier: MIT */
/* Watches: see watch.h. */
#define _GNU_SOURCE
#include "watch.h"

#include <errno.h>
#include <linux/futex.h>
#include <sched.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>


#include "futex.h"
#include "list.h"
#include "pool.h"
#include "wake_batch.h"
#include "worker.h"

enum { STATE_PENDING = 1, STATE_HELD, STATE_RING, STATE_ENDED };

/* Where a futex thread sleeping for a watch stands (its sleeper field). */
enum { THREAD_NOT_YET, THREAD_IN, THREAD_OUT };

/* The futex threads: at most this many asleep at once; further watches
 * wait their turn (a word that changes meanwhile is seen by the value
 * check of the sleep that follows). */
#define AFE_WATCH_MAX_THREADS 1024u

/* Where the watch's task stands (the task's own field, no lock). */
enum { PHASE_NEW, PHASE_LISTED, PHASE_RING, PHASE_DONE };


/* The two lists of watches (the listed ones, those on futex threads),
 * with the lock held. */
AFE_LIST_FUNCTIONS(watch_list, struct afe_watch_list, struct afe_watch)

static void link_watch(struct afe_watches *ws, struct afe_watch *w)
{
	watch_list_push_front(&ws->listed, w);
}

static void unlink_watch(struct afe_watches *ws, struct afe_watch *w)
{
	watch_list_remove(&ws->listed, w);
	if (w->state == STATE_PENDING)
		atomic_fetch_sub_explicit(&ws->pending, 1, memory_order_relaxed);
}

/* Unlinks w with its new state and takes its waker into b; the caller
 * flushes b (after unlocking) when it is full. With the lock held. */
static void end_watch(struct afe_watches *ws, struct afe_watch *w, uint8_t state, int32_t result,
		      struct afe_wake_batch *b)
{
	unlink_watch(ws, w);
	w->state = state;
	w->result = result;
	afe_wake_batch_add(b, afe_waker_take(&w->waker));
}


static bool word_changed(const struct afe_watch *w)
{
	return atomic_load_explicit(w->word, memory_order_acquire) != w->value;
}

/* ---- the future -------------------------------------------------------------- */

static int watch_poll(struct afe_future *f, struct afe_context *cx);

void afe_watch_init(struct afe_watch *w, const _Atomic uint32_t *word, uint32_t value,
		    unsigned flags)
{
	memset(w, 0, sizeof(*w));
	afe_future_init(&w->base, watch_poll);
	w->word = word;
	w->value = value;
	w->flags = flags;
}

void afe_watch_flag_sleep(struct afe_watch *w, _Atomic uint32_t *flags, uint32_t bit)
{
	w->sleep_flags = flags;
	w->sleep_bit = bit;
}

/* A thread is about to sleep in the kernel for w: see afe_watch_flag_sleep. */
static void flag_sleep(const struct afe_watch *w)
{
	if (w->sleep_flags)
		atomic_fetch_or(w->sleep_flags, w->sleep_bit);
}

static bool is_shared(const struct afe_watch *w)
{
	return !(w->flags & AFE_FUTEX_PRIVATE);
}

/* What a futex thread runs for w: one FUTEX_WAIT on its word. 0 (a wake,
 * the word differed, a signal: look again) or -errno. */
static intptr_t sleep_on_word(void *arg)
{
	struct afe_watch *w = arg;
	/* Seq_cst store, then load: pairs with interrupt_thread_sleep's store
	 * of interrupted then load of sleeper. Either we see interrupted and
	 * do not sleep, or it sees THREAD_IN and wakes the word. */
	atomic_store(&w->sleeper, THREAD_IN);
	int r = 0;
	if (!atomic_load(&w->interrupted))
		r = afe_futex_wait_on(w->word, w->value, NULL, is_shared(w));
	if (r == -EAGAIN || r == -EINTR)
		r = 0;
	atomic_store(&w->sleeper, THREAD_OUT); /* seq_cst: read by the same loop */
	return r;
}

/* Gets w's futex thread out of its sleep (w is listed on a thread). A
 * thread between its look at interrupted and its sleep is not there to be
 * woken yet: the wake is repeated until it has left, a few instructions'
 * wait (a yield each). Its pool completes the job, which wakes the task.
 *
 * A wake the kernel refuses with EFAULT found no page behind the word: a
 * shared object another process shrank. Reading the word then faults in
 * this thread, and the owner's guard grows the object back and wakes its
 * words (src/ipc/ipc_guard.h), so the next wake finds the sleeper. */
static void interrupt_thread_sleep(struct afe_watch *w)
{
	atomic_store(&w->interrupted, true); /* seq_cst: see sleep_on_word */
	while (atomic_load(&w->sleeper) == THREAD_IN) {
		if (afe_futex_wake_on(w->word, INT32_MAX, is_shared(w)) == -EFAULT)
			(void)atomic_load_explicit(w->word, memory_order_relaxed); /* the fault only */
		if (atomic_load(&w->sleeper) == THREAD_IN)
			sched_yield();
	}
}

/* Hands w's kernel sleep to a futex thread, with the lock held: queues
 * its job, polled with cx, and lists it on the threads (so that close can
 * get the thread out). Returns 1 when the sleep is under way, else the
 * end it met at once (-ESHUTDOWN after close, -ENOMEM, -ECANCELED). */
static int start_thread_sleep_locked(struct afe_watches *ws, struct afe_watch *w,
				     struct afe_context *cx)
{
	w->on_thread = true;
	if (ws->closed)
		return -ESHUTDOWN;
	atomic_init(&w->sleeper, THREAD_NOT_YET);
	atomic_init(&w->interrupted, false);
	afe__blocking_init_on(&w->thread_sleep, &ws->threads, sleep_on_word, w);
	if (afe_future_poll(&w->thread_sleep.base, cx) == AFE_READY)
		return (int)w->thread_sleep.base.result;
	watch_list_push_front(&ws->on_threads, w);
	return 1;
}

/* Unlists w from the threads once its job ended. */
static void end_thread_sleep(struct afe_watches *ws, struct afe_watch *w)
{
	pthread_mutex_lock(&ws->lock);
	watch_list_remove(&ws->on_threads, w);
	pthread_mutex_unlock(&ws->lock);
}

static int watch_done(struct afe_watch *w, int32_t result)
{
	w->base.resume = PHASE_DONE;
	w->base.result = result;
	return AFE_READY;
}

/* Lists w as PENDING on the current worker's runtime; false when it must
 * go through the ring instead. */
static bool watch_list(struct afe_watch *w, const struct afe_context *cx)
{
	/* Only a worker lists: it holds what it listed when it parks. A task
	 * the ring thread polls (afe_defer_wakes_deliver) goes through the
	 * ring, or a futex thread, as no parked worker would hold its word. */
	struct afe_worker *worker = afe_worker_current();
	if (!worker || !worker->pool->watches.usable)
		return false;
	struct afe_watches *ws = &worker->pool->watches;
	pthread_mutex_lock(&ws->lock);
	bool listed = !ws->closed;
	if (listed) {
		w->pool = worker->pool;
		w->armed_ns = afe_now_ns();
		w->state = STATE_PENDING;
		link_watch(ws, w);
		atomic_fetch_add_explicit(&ws->pending, 1, memory_order_relaxed);
		afe_waker_register(&w->waker, cx);
	}
	pthread_mutex_unlock(&ws->lock);
	return listed;
}

/* A listed watch polled again: AFE_PENDING while listed, else its end
 * (or PHASE_RING set when a worker handed it to the ring). */
static int watch_listed_poll(struct afe_watch *w, struct afe_context *cx)
{
	struct afe_watches *ws = &w->pool->watches;
	pthread_mutex_lock(&ws->lock);
	uint8_t state = w->state;
	if (state == STATE_PENDING || state == STATE_HELD) {
		if (!cx->cancel) {
			afe_waker_register(&w->waker, cx);
			pthread_mutex_unlock(&ws->lock);
			return AFE_PENDING;
		}
		unlink_watch(ws, w);
		w->state = STATE_ENDED;
		pthread_mutex_unlock(&ws->lock);
		afe_waker_drop(&w->waker);
		return watch_done(w, -ECANCELED);
	}
	pthread_mutex_unlock(&ws->lock);
	/* A worker unlinked it (and took its waker, or submitted its wait):
	 * it is ours alone now. */
	if (state == STATE_ENDED)
		return watch_done(w, w->result);
	w->base.resume = PHASE_RING;
	return AFE_READY; /* not an end: the caller polls the ring's wait */
}

/* The poll of a watch whose kernel sleep is a futex thread's. */
static int thread_sleep_poll(struct afe_watch *w, struct afe_context *cx)
{
	struct afe_future *job = &w->thread_sleep.base;
	if (cx->cancel)
		interrupt_thread_sleep(w);
	if (afe_future_poll(job, cx) == AFE_PENDING)
		return AFE_PENDING;
	end_thread_sleep(&w->pool->watches, w);
	return watch_done(w, (int32_t)job->result);
}

static int watch_poll(struct afe_future *f, struct afe_context *cx)
{
	struct afe_watch *w = afe_container_of(f, struct afe_watch, base);
	if (f->resume == PHASE_NEW) {
		if (cx->cancel)
			return watch_done(w, -ECANCELED);
		if (watch_list(w, cx)) {
			f->resume = PHASE_LISTED;
			return AFE_PENDING;
		}
		f->resume = PHASE_RING;
		flag_sleep(w);
		struct afe_pool *p = afe_pool_current();
		if (p && !afe__watch_ring_waits(p)) {
			w->pool = p;
			pthread_mutex_lock(&w->pool->watches.lock);
			int started = start_thread_sleep_locked(&w->pool->watches, w, cx);
			pthread_mutex_unlock(&w->pool->watches.lock);
			return started == 1 ? AFE_PENDING : watch_done(w, started);
		}
		afe__watch_ring_wait_init(&w->io, w->word, w->value, w->flags);
	}
	if (f->resume == PHASE_LISTED && watch_listed_poll(w, cx) == AFE_PENDING)
		return AFE_PENDING;
	if (f->resume == PHASE_RING) {
		if (w->on_thread)
			return thread_sleep_poll(w, cx);
		if (afe_future_poll(&w->io.base, cx) == AFE_PENDING)
			return AFE_PENDING;
		int32_t r = (int32_t)w->io.base.result;
		return watch_done(w, r == -EAGAIN ? 0 : r);
	}
	return AFE_READY; /* PHASE_DONE: base.result holds the end */
}

/* ---- the runtime's side ---------------------------------------------------- */

static long futex_waitv(struct futex_waitv *vec, unsigned n)
{
	return syscall(SYS_futex_waitv, vec, n, 0, NULL, CLOCK_MONOTONIC);
}

int afe_watches_init(struct afe_watches *ws, bool with_waitv)
{
	memset(ws, 0, sizeof(*ws));
	int err = afe_blocking_pool_init(&ws->threads, "afe-futex", AFE_WATCH_MAX_THREADS, 0);
	if (err < 0)
		return err;
	pthread_mutex_init(&ws->lock, NULL);
	/* The probe: a word that differs from the value given must give
	 * EAGAIN; an older kernel (before 5.16) says ENOSYS, as does a
	 * valgrind that does not know the call, and every watch then goes
	 * to the kernel (the ring, or a futex thread) at once. */
	uint32_t word = 1;
	struct futex_waitv probe = {.val = 0, .uaddr = (uintptr_t)&word,
				    .flags = FUTEX_32 | FUTEX_PRIVATE_FLAG};
	ws->usable = with_waitv && futex_waitv(&probe, 1) < 0 && errno == EAGAIN;
	return 0;
}

void afe_watches_destroy(struct afe_watches *ws)
{
	afe_blocking_pool_destroy(&ws->threads);
	pthread_mutex_destroy(&ws->lock);
}

void afe_watches_close(struct afe_watches *ws)
{
	struct afe_wake_batch b;
	afe_wake_batch_init(&b);
	pthread_mutex_lock(&ws->lock);
	ws->closed = true;
	while (ws->listed.head) {
		end_watch(ws, ws->listed.head, STATE_ENDED, -ESHUTDOWN, &b);
		if (afe_wake_batch_full(&b)) {
			pthread_mutex_unlock(&ws->lock);
			afe_wake_batch_run(&b);
			pthread_mutex_lock(&ws->lock);
		}
	}
	/* The futex threads' sleeps end (0: their tasks look again, and find
	 * the watches closed); none starts after closed. */
	for (struct afe_watch *w = ws->on_threads.head; w; w = w->next)
		interrupt_thread_sleep(w);
	pthread_mutex_unlock(&ws->lock);
	afe_wake_batch_run(&b);
	afe_blocking_pool_shutdown(&ws->threads);
}

/* Submits w's futex wait to the ring for its task: the ring's completion
 * wakes the task, which finds the wait under way. With the lock held (the
 * task's next poll takes it, so it never polls the wait at the same time). */
static void submit_for_task(struct afe_watches *ws, struct afe_watch *w, struct afe_wake_batch *b)
{
	unlink_watch(ws, w);
	w->state = STATE_RING;
	flag_sleep(w);
	struct afe_context cx = {.waker = &w->waker};
	int ready;
	if (!afe__watch_ring_waits(w->pool)) {
		int started = start_thread_sleep_locked(ws, w, &cx);
		ready = started == 1 ? AFE_PENDING : AFE_READY;
		if (ready == AFE_READY) {
			w->state = STATE_ENDED; /* the task takes the end from here */
			w->result = started;
		}
	} else {
		afe__watch_ring_wait_init(&w->io, w->word, w->value, w->flags);
		ready = afe_future_poll(&w->io.base, &cx);
	}
	if (ready == AFE_READY) {
		afe_wake_batch_add(b, afe_waker_take(&w->waker)); /* ended at once: the task looks */
	} else {
		afe_waker_drop(&w->waker); /* the wait holds its own */
	}
}

/* Ends the PENDING watches whose word changed; when busy, also hands to
 * the ring those armed AFE_WATCH_BUSY_NS ago. Returns how many ended. */
static unsigned scan_pending(struct afe_watches *ws, bool busy)
{
	struct afe_wake_batch b;
	afe_wake_batch_init(&b);
	unsigned ended = 0;
	uint64_t now = busy ? afe_now_ns() : 0;
	pthread_mutex_lock(&ws->lock);
	for (struct afe_watch *w = ws->listed.head, *next; w && !afe_wake_batch_full(&b); w = next) {
		next = w->next;
		if (w->state != STATE_PENDING)
			continue;
		if (word_changed(w)) {
			end_watch(ws, w, STATE_ENDED, 0, &b);
			ended++;
		} else if (busy && now - w->armed_ns >= AFE_WATCH_BUSY_NS) {
			submit_for_task(ws, w, &b);
		}
	}
	pthread_mutex_unlock(&ws->lock);
	afe_wake_batch_run(&b);
	return ended;
}

void afe_watches_between_tasks(struct afe_watches *ws)
{
	scan_pending(ws, true);
}

unsigned afe_watches_hold(struct afe_watches *ws, uint32_t worker, struct futex_waitv *vec,
			  unsigned max)
{
	struct afe_wake_batch b;
	afe_wake_batch_init(&b);
	unsigned n = 0;
	pthread_mutex_lock(&ws->lock);
	for (struct afe_watch *w = ws->listed.head, *next; w; w = next) {
		next = w->next;
		if (w->state != STATE_PENDING)
			continue;
		if (n == max) {
			/* No room in our sleep, and perhaps nobody else is
			 * awake to look at it: the ring watches it. */
			if (afe_wake_batch_full(&b)) {
				pthread_mutex_unlock(&ws->lock);
				afe_wake_batch_run(&b);
				pthread_mutex_lock(&ws->lock);
				next = ws->listed.head; /* the list may have changed */
				continue;
			}
			submit_for_task(ws, w, &b);
			continue;
		}
		atomic_fetch_sub_explicit(&ws->pending, 1, memory_order_relaxed);
		w->state = STATE_HELD;
		w->holder = worker;
		flag_sleep(w); /* the caller sleeps on the word next */
		vec[n++] = (struct futex_waitv){
			.val = w->value,
			.uaddr = (uintptr_t)w->word,
			.flags = FUTEX_32 | (w->flags & AFE_FUTEX_PRIVATE ? FUTEX_PRIVATE_FLAG : 0),
		};
	}
	pthread_mutex_unlock(&ws->lock);
	afe_wake_batch_run(&b);
	return n;
}

unsigned afe_watches_release(struct afe_watches *ws, uint32_t worker)
{
	struct afe_wake_batch b;
	afe_wake_batch_init(&b);
	unsigned ended = 0;
	pthread_mutex_lock(&ws->lock);
	for (struct afe_watch *w = ws->listed.head, *next; w; w = next) {
		next = w->next;
		if (w->state != STATE_HELD || w->holder != worker)
			continue;
		if (word_changed(w) && !afe_wake_batch_full(&b)) {
			end_watch(ws, w, STATE_ENDED, 0, &b);
			ended++;
		} else {
			w->state = STATE_PENDING;
			atomic_fetch_add_explicit(&ws->pending, 1, memory_order_relaxed);
		}
	}
	pthread_mutex_unlock(&ws->lock);
	afe_wake_batch_run(&b);
	return ended;
}

unsigned afe_watches_fire_changed(struct afe_watches *ws)
{
	return scan_pending(ws, false);
}

int afe_watches_sleep(_Atomic uint32_t *park_word, struct futex_waitv *vec, unsigned n)
{
	vec[0] = (struct futex_waitv){
		.val = 0,
		.uaddr = (uintptr_t)park_word,
		.flags = FUTEX_32 | FUTEX_PRIVATE_FLAG,
	};
	return futex_waitv(vec, n + 1) < 0 ? -errno : 0;
}
