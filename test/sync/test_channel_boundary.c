/* SPDX-License-Identifier: MIT */
/*
 * Stress at a bounded channel's empty and full boundaries, where its
 * lock-free ring hands over to waiter lists. With capacity 1 and 2, many
 * tasks on four workers wait on one side while plain threads outside the
 * runtime work the other side with try_send or try_recv, which never wait
 * and take the lock only when they find it taken: a wake-up the ring owes
 * the waiting side and loses is not made good by anyone, and shows as a
 * stall (no item received for STALL_MS while some are still owed). The
 * channel stays open until every item has arrived, so that no close
 * rescues a lost waiter either. Then tasks on both sides, and the
 * threads, all at once. Every item must be received exactly once, and
 * each receiver must see each sender's items in the order they were sent.
 */
#include <pthread.h>
#include <sched.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

#include "helpers.h"

#if defined(__SANITIZE_THREAD__) || defined(__SANITIZE_ADDRESS__)
#define SANITIZED 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer) || __has_feature(address_sanitizer)
#define SANITIZED 1
#endif
#endif
#ifdef SANITIZED
#define ITEMS 250000 /* per run */
#else
#define ITEMS 1000000
#endif

#define TASKS 12 /* waiting producers or consumers */
#define MAX_PRODUCERS (TASKS + THREADS)
#define THREADS 2 /* producers or consumers doing try_send, try_recv */
#define STALL_MS 5000

struct boundary {
	struct afe_chan ch;
	size_t n;
	_Atomic unsigned char *received;
	uint64_t share;	     /* items per producer: item / share is its producer */
	atomic_size_t total; /* items received, for the stall watch */
	atomic_int out_of_order;
};

/* What one receiver saw last of each producer (item + 1; 0: nothing). */
struct seen {
	uint64_t last[MAX_PRODUCERS];
};

static void take(struct boundary *b, struct seen *seen, uint64_t item)
{
	uint64_t *last = &seen->last[item / b->share];
	if (item + 1 <= *last)
		atomic_fetch_add(&b->out_of_order, 1);
	*last = item + 1;
	/* Relaxed: counts, read after the joins (or for the watch only). */
	atomic_fetch_add_explicit(&b->received[item], 1, memory_order_relaxed);
	atomic_fetch_add_explicit(&b->total, 1, memory_order_relaxed);
}

struct producer {
	struct afe_future base;
	struct boundary *b;
	uint64_t next, end, item;
	intptr_t result;
	struct afe_chan_send send;
};

static int producer_poll(struct afe_future *f, struct afe_context *cx)
{
	struct producer *p = afe_container_of(f, struct producer, base);
	AFE_ASYNC_BEGIN(f, cx);
	for (; p->next < p->end; p->next++) {
		p->item = p->next;
		afe_chan_send_init(&p->send, &p->b->ch, &p->item);
		AFE_AWAIT(&p->send.base);
		p->result = p->send.base.result;
		if (p->result)
			break;
	}
	afe_chan_drop_sender(&p->b->ch);
	AFE_RETURN(p->result);
	AFE_ASYNC_END;
}

struct consumer {
	struct afe_future base;
	struct boundary *b;
	uint64_t item;
	struct seen seen;
	struct afe_chan_recv recv;
};

static int consumer_poll(struct afe_future *f, struct afe_context *cx)
{
	struct consumer *c = afe_container_of(f, struct consumer, base);
	AFE_ASYNC_BEGIN(f, cx);
	for (;;) {
		afe_chan_recv_init(&c->recv, &c->b->ch, &c->item);
		AFE_AWAIT(&c->recv.base);
		if (c->recv.base.result)
			break;
		take(c->b, &c->seen, c->item);
	}
	AFE_RETURN(c->recv.base.result == -EPIPE ? 0 : c->recv.base.result);
	AFE_ASYNC_END;
}

/* A plain thread's sends: try_send, yielding while the ring is full. */
struct raw_producer {
	struct boundary *b;
	uint64_t first, end;
	int result;
};

static void *raw_produce(void *arg)
{
	struct raw_producer *p = arg;
	for (uint64_t item = p->first; item < p->end && !p->result;) {
		p->result = afe_chan_try_send(&p->b->ch, &item);
		if (p->result == -EAGAIN) {
			p->result = 0;
			sched_yield();
		} else if (p->result == 0) {
			item++;
		}
	}
	afe_chan_drop_sender(&p->b->ch);
	return NULL;
}

/* A plain thread's receives: try_recv, yielding while the ring is empty,
 * until the channel is closed and drained. */
static void *raw_consume(void *arg)
{
	struct boundary *b = arg;
	uint64_t item;
	struct seen seen = {{0}};
	int err;
	while ((err = afe_chan_try_recv(&b->ch, &item)) != -EPIPE) {
		if (err == 0)
			take(b, &seen, item);
		else
			sched_yield();
	}
	return NULL;
}

static uint64_t now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* Waits until *count reaches want; fails when no item arrives for
 * STALL_MS meanwhile. */
static void watch(struct boundary *b, atomic_size_t *count, size_t want, const char *what)
{
	size_t last = 0;
	uint64_t since = now_ms();
	while (atomic_load(count) < want) {
		usleep(2000);
		size_t total = atomic_load_explicit(&b->total, memory_order_relaxed);
		if (total != last) {
			last = total;
			since = now_ms();
		}
		cr_assert_lt(now_ms() - since, STALL_MS,
			     "%s, capacity %zu: stalled with %zu of %zu items received, %zu "
			     "buffered: a wake-up was lost",
			     what, b->ch.capacity, total, b->n, afe_chan_len(&b->ch));
	}
}

/* One run: producer and consumer tasks (each 0 or TASKS) and threads
 * (each 0 or THREADS); ITEMS split evenly among the producers. */
static void run(struct afe_runtime *rt, size_t capacity, int ptasks, int ctasks, int pthreads,
		int cthreads, const char *what)
{
	int producers = ptasks + pthreads;
	uint64_t share = ITEMS / producers;
	struct boundary b = {.n = (size_t)(share * producers), .share = share};
	cr_assert_eq(afe_chan_init(&b.ch, sizeof(uint64_t), capacity), 0);
	b.received = calloc(b.n, 1);
	cr_assert(b.received);
	for (int i = 0; i < producers; i++) /* the init's handle stays ours */
		cr_assert_eq(afe_chan_add_sender(&b.ch), 0);

	struct afe_join_handle h[2 * TASKS];
	pthread_t t[2 * THREADS];
	struct raw_producer rp[THREADS];
	for (int i = 0; i < ctasks; i++) {
		struct consumer c = {.b = &b};
		afe_future_init(&c.base, consumer_poll);
		cr_assert_eq(afe_spawn(rt, &c, &h[i]), 0);
	}
	for (int i = 0; i < cthreads; i++)
		cr_assert_eq(pthread_create(&t[i], NULL, raw_consume, &b), 0);
	for (int i = 0; i < ptasks; i++) {
		struct producer p = {.b = &b,
				     .next = (uint64_t)i * share,
				     .end = (uint64_t)(i + 1) * share};
		afe_future_init(&p.base, producer_poll);
		cr_assert_eq(afe_spawn(rt, &p, &h[ctasks + i]), 0);
	}
	for (int i = 0; i < pthreads; i++) {
		rp[i] = (struct raw_producer){.b = &b,
					      .first = (uint64_t)(ptasks + i) * share,
					      .end = (uint64_t)(ptasks + i + 1) * share};
		cr_assert_eq(pthread_create(&t[cthreads + i], NULL, raw_produce, &rp[i]), 0);
	}

	watch(&b, &b.total, b.n, what);
	cr_assert_eq(afe_chan_drop_sender(&b.ch), 0); /* our handle: now it closes */
	for (int i = 0; i < ctasks + ptasks; i++) {
		struct afe_join join;
		afe_join_init(&join, &h[i]);
		cr_assert_eq(test_block_on(rt, &join), 0, "%s: task %d", what, i);
	}
	for (int i = 0; i < cthreads + pthreads; i++)
		pthread_join(t[i], NULL);
	for (int i = 0; i < pthreads; i++)
		cr_assert_eq(rp[i].result, 0);

	cr_assert_eq(atomic_load(&b.out_of_order), 0, "%s: a sender's items out of order", what);
	for (size_t i = 0; i < b.n; i++)
		cr_assert_eq(atomic_load(&b.received[i]), 1, "%s: item %zu received %u times",
			     what, i, (unsigned)atomic_load(&b.received[i]));
	cr_assert_eq(afe_chan_destroy(&b.ch), 0, "no waiter left behind");
	free(b.received);
}

Test(channel_boundary, no_wake_up_is_lost_at_empty_or_full, .timeout = 300)
{
	struct afe_runtime *rt = test_runtime(4);
	for (size_t capacity = 1; capacity <= 2; capacity++) {
		run(rt, capacity, 0, TASKS, THREADS, 0, "receivers wait, try_send fills");
		run(rt, capacity, TASKS, 0, 0, THREADS, "senders wait, try_recv drains");
		run(rt, capacity, TASKS, TASKS, THREADS, THREADS, "both");
	}
	test_runtime_destroy(rt);
}
