/* SPDX-License-Identifier: MIT */
/* The read-write lock, the barrier, the broadcast and the watch channel
 * under contention: many tasks on 2 workers, waits racing a yield in a
 * select so that they link and unlink all the time. A lost wake-up hangs
 * a test (bounded by its timeout); a missing happens-before shows under
 * TSan. Labelled stress; run under TSan by run-all.sh. */
#include "helpers.h"

#if defined(__SANITIZE_THREAD__)
#define SLOW 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define SLOW 1
#endif
#endif
#ifndef SLOW
#define SLOW 0
#endif

/* Joins every handle; returns the sum of the results. */
static long join_all(struct afe_runtime *rt, struct afe_join_handle *h, int n)
{
	long sum = 0;
	for (int i = 0; i < n; i++) {
		struct afe_join j;
		afe_join_init(&j, &h[i]);
		sum += test_block_on(rt, &j);
	}
	return sum;
}

/* Read-write lock: each round races a read or write acquire against a
 * yield; a won acquire works on the counter across a yield. */
struct rw_shared {
	struct afe_rwlock rw;
	long counter, writes;
	atomic_long torn;
};

struct rw_user {
	struct afe_future base;
	struct rw_shared *s;
	bool writer;
	long i, n, seen;
	struct afe_rwlock_read rd;
	struct afe_rwlock_write wr;
	struct afe_yield_now nap;
	struct afe_future *racers[2];
	struct afe_select sel;
};

static int rw_user_poll(struct afe_future *f, struct afe_context *cx)
{
	struct rw_user *self = afe_container_of(f, struct rw_user, base);
	AFE_ASYNC_BEGIN(f, cx);
	for (self->i = 0; self->i < self->n; self->i++) {
		afe_rwlock_read_init(&self->rd, &self->s->rw);
		afe_rwlock_write_init(&self->wr, &self->s->rw);
		afe_yield_now_init(&self->nap);
		self->racers[0] = self->writer ? &self->wr.base : &self->rd.base;
		self->racers[1] = &self->nap.base;
		afe_select_init(&self->sel, self->racers, 2);
		AFE_AWAIT(&self->sel.base);
		if (self->sel.winner != 0)
			continue;
		self->seen = self->s->counter;
		afe_yield_now_init(&self->nap);
		AFE_AWAIT(&self->nap.base);
		if (self->writer) {
			self->s->counter = self->seen + 1;
			self->s->writes++;
			cr_assert_eq(afe_rwlock_write_unlock(&self->s->rw), 0);
		} else {
			if (self->s->counter != self->seen)
				atomic_fetch_add(&self->s->torn, 1);
			cr_assert_eq(afe_rwlock_read_unlock(&self->s->rw), 0);
		}
	}
	AFE_RETURN(0);
	AFE_ASYNC_END;
}

Test(sync_stress, rwlock_acquires_race_yields, .timeout = 120)
{
	struct afe_runtime *rt = test_runtime(2);
	static struct rw_shared s;
	afe_rwlock_init(&s.rw);
	atomic_init(&s.torn, 0);
	enum { TASKS = 16 };
	long each = SLOW ? 1500 : 20000;
	struct afe_join_handle h[TASKS];
	for (int t = 0; t < TASKS; t++) {
		struct rw_user u = {.s = &s, .writer = t % 4 == 0, .n = each};
		afe_future_init(&u.base, rw_user_poll);
		cr_assert_eq(afe_spawn(rt, &u, &h[t]), 0);
	}
	cr_assert_eq(join_all(rt, h, TASKS), 0);
	cr_assert_eq(s.counter, s.writes, "no lost update");
	cr_assert_gt(s.writes, 0);
	cr_assert_eq(atomic_load(&s.torn), 0, "no write during a read");
	cr_assert_eq(afe_rwlock_destroy(&s.rw), 0, "nothing left held or linked");
	test_runtime_destroy(rt);
}

/* Barrier: every party races its wait against a yield until the wait
 * wins; a losing wait never counted, so each generation is all parties. */
enum { PARTIES = 16 };

struct meeting {
	struct afe_barrier b;
	long slot[PARTIES];
	long rounds;
	atomic_long leaders, behind;
};

struct party {
	struct afe_future base;
	struct meeting *m;
	int me;
	long round;
	struct afe_barrier_wait wait;
	struct afe_yield_now nap;
	struct afe_future *racers[2];
	struct afe_select sel;
};

static int party_poll(struct afe_future *f, struct afe_context *cx)
{
	struct party *self = afe_container_of(f, struct party, base);
	AFE_ASYNC_BEGIN(f, cx);
	for (self->round = 1; self->round <= 2 * self->m->rounds; self->round++) {
		if (self->round % 2)
			self->m->slot[self->me] = self->round;
		do {
			afe_barrier_wait_init(&self->wait, &self->m->b);
			afe_yield_now_init(&self->nap);
			self->racers[0] = &self->wait.base;
			self->racers[1] = &self->nap.base;
			afe_select_init(&self->sel, self->racers, 2);
			AFE_AWAIT(&self->sel.base);
		} while (self->sel.winner != 0);
		if (self->wait.base.result == 1)
			atomic_fetch_add(&self->m->leaders, 1);
		if (self->round % 2)
			for (int i = 0; i < PARTIES; i++)
				if (self->m->slot[i] != self->round)
					atomic_fetch_add(&self->m->behind, 1);
	}
	AFE_RETURN(0);
	AFE_ASYNC_END;
}

Test(sync_stress, barrier_waits_race_yields, .timeout = 120)
{
	struct afe_runtime *rt = test_runtime(2);
	static struct meeting m;
	cr_assert_eq(afe_barrier_init(&m.b, PARTIES), 0);
	m.rounds = SLOW ? 500 : 5000;
	atomic_init(&m.leaders, 0);
	atomic_init(&m.behind, 0);
	struct afe_join_handle h[PARTIES];
	for (int t = 0; t < PARTIES; t++) {
		struct party p = {.m = &m, .me = t};
		afe_future_init(&p.base, party_poll);
		cr_assert_eq(afe_spawn(rt, &p, &h[t]), 0);
	}
	cr_assert_eq(join_all(rt, h, PARTIES), 0);
	cr_assert_eq(atomic_load(&m.leaders), 2 * m.rounds, "one leader per generation: %ld",
		     atomic_load(&m.leaders));
	cr_assert_eq(atomic_load(&m.behind), 0, "every party in every generation");
	cr_assert_eq(afe_barrier_destroy(&m.b), 0);
	test_runtime_destroy(rt);
}

/* Broadcast: a sender task sends numbers into a small ring, then closes;
 * receivers race each receive against a yield. Each accounts for every
 * number, in order, taken or reported missed. */
enum { LISTENERS = 12 };

struct listener {
	struct afe_future base;
	struct afe_bcast_rx rx;
	long item, expect;
	struct afe_bcast_recv recv;
	struct afe_yield_now nap;
	struct afe_future *racers[2];
	struct afe_select sel;
};

static int listener_poll(struct afe_future *f, struct afe_context *cx)
{
	struct listener *self = afe_container_of(f, struct listener, base);
	AFE_ASYNC_BEGIN(f, cx);
	for (;;) {
		afe_bcast_recv_init(&self->recv, &self->rx, &self->item);
		afe_yield_now_init(&self->nap);
		self->racers[0] = &self->recv.base;
		self->racers[1] = &self->nap.base;
		afe_select_init(&self->sel, self->racers, 2);
		AFE_AWAIT(&self->sel.base);
		if (self->sel.winner != 0)
			continue;
		if (self->recv.base.result == -EPIPE)
			break;
		self->expect += (long)self->recv.missed;
		if (self->recv.base.result != 0 || self->item != self->expect)
			AFE_RETURN(-1);
		self->expect++;
	}
	AFE_RETURN(self->expect);
	AFE_ASYNC_END;
}

struct caster {
	struct afe_future base;
	struct afe_bcast *b;
	long i, n;
};

static int caster_poll(struct afe_future *f, struct afe_context *cx)
{
	struct caster *self = afe_container_of(f, struct caster, base);
	AFE_ASYNC_BEGIN(f, cx);
	for (self->i = 0; self->i < self->n; self->i++) {
		if (afe_bcast_send(self->b, &self->i) != 0)
			AFE_RETURN(-1);
		if (self->i % 4 == 0)
			AFE_YIELD();
	}
	AFE_RETURN(afe_bcast_close(self->b));
	AFE_ASYNC_END;
}

Test(sync_stress, broadcast_receives_race_yields, .timeout = 120)
{
	struct afe_runtime *rt = test_runtime(2);
	static struct afe_bcast b;
	cr_assert_eq(afe_bcast_init(&b, sizeof(long), 4), 0);
	struct afe_join_handle h[LISTENERS];
	for (int i = 0; i < LISTENERS; i++) {
		struct listener l = {.expect = 0};
		afe_bcast_subscribe(&b, &l.rx);
		afe_future_init(&l.base, listener_poll);
		cr_assert_eq(afe_spawn(rt, &l, &h[i]), 0);
	}
	struct caster c = {.b = &b, .n = SLOW ? 20000 : 200000};
	afe_future_init(&c.base, caster_poll);
	cr_assert_eq(test_block_on(rt, &c), 0);
	cr_assert_eq(join_all(rt, h, LISTENERS), LISTENERS * c.n, "every item accounted for");
	cr_assert_eq(afe_bcast_destroy(&b), 0, "nothing left linked");
	test_runtime_destroy(rt);
}

/* Watch: a sender task counts up, then closes; watchers race each changed
 * future against a yield. Each sees rising values and, before -EPIPE,
 * the last one. */
struct watcher {
	struct afe_future base;
	struct afe_wchan_rx rx;
	long value, last;
	struct afe_wchan_changed changed;
	struct afe_yield_now nap;
	struct afe_future *racers[2];
	struct afe_select sel;
};

static int watcher_poll(struct afe_future *f, struct afe_context *cx)
{
	struct watcher *self = afe_container_of(f, struct watcher, base);
	AFE_ASYNC_BEGIN(f, cx);
	for (;;) {
		afe_wchan_changed_init(&self->changed, &self->rx, &self->value);
		afe_yield_now_init(&self->nap);
		self->racers[0] = &self->changed.base;
		self->racers[1] = &self->nap.base;
		afe_select_init(&self->sel, self->racers, 2);
		AFE_AWAIT(&self->sel.base);
		if (self->sel.winner != 0)
			continue;
		if (self->changed.base.result == -EPIPE)
			break;
		if (self->changed.base.result != 0 || self->value <= self->last)
			AFE_RETURN(-1);
		self->last = self->value;
	}
	AFE_RETURN(self->last);
	AFE_ASYNC_END;
}

struct counter {
	struct afe_future base;
	struct afe_wchan *w;
	long i, n;
};

static int counter_poll(struct afe_future *f, struct afe_context *cx)
{
	struct counter *self = afe_container_of(f, struct counter, base);
	AFE_ASYNC_BEGIN(f, cx);
	for (self->i = 1; self->i <= self->n; self->i++) {
		if (afe_wchan_send(self->w, &self->i) != 0)
			AFE_RETURN(-1);
		if (self->i % 4 == 0)
			AFE_YIELD();
	}
	AFE_RETURN(afe_wchan_close(self->w));
	AFE_ASYNC_END;
}

Test(sync_stress, watch_changes_race_yields, .timeout = 120)
{
	struct afe_runtime *rt = test_runtime(2);
	static struct afe_wchan w;
	long zero = 0;
	cr_assert_eq(afe_wchan_init(&w, sizeof(long), &zero), 0);
	struct afe_join_handle h[LISTENERS];
	for (int i = 0; i < LISTENERS; i++) {
		struct watcher wt = {.last = 0};
		afe_wchan_subscribe(&w, &wt.rx);
		afe_future_init(&wt.base, watcher_poll);
		cr_assert_eq(afe_spawn(rt, &wt, &h[i]), 0);
	}
	struct counter c = {.w = &w, .n = SLOW ? 20000 : 200000};
	afe_future_init(&c.base, counter_poll);
	cr_assert_eq(test_block_on(rt, &c), 0);
	cr_assert_eq(join_all(rt, h, LISTENERS), LISTENERS * c.n, "each saw the last value");
	cr_assert_eq(afe_wchan_destroy(&w), 0, "nothing left linked");
	test_runtime_destroy(rt);
}
