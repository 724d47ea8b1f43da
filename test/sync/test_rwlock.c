/* SPDX-License-Identifier: MIT */
/* The read-write lock: shared reads, exclusive writes, FIFO fairness (a
 * waiting writer holds back later readers), cancellation before and after
 * the grant, select, and tasks holding it across awaits. */
#include "helpers.h"

#define POLL(fut, cx) afe_future_poll(&(fut)->base, (cx))

Test(rwlock, reads_share_writes_exclude_and_bad_unlocks_fail)
{
	struct afe_rwlock rw;
	afe_rwlock_init(&rw);
	cr_assert_eq(afe_rwlock_read_unlock(&rw), -EPERM, "not held");
	cr_assert_eq(afe_rwlock_write_unlock(&rw), -EPERM, "not held");
	cr_assert_eq(afe_rwlock_try_read(&rw), 0);
	cr_assert_eq(afe_rwlock_try_read(&rw), 0, "reads share");
	cr_assert_eq(afe_rwlock_try_write(&rw), -EBUSY);
	cr_assert_eq(afe_rwlock_write_unlock(&rw), -EPERM, "read-held, not write-held");
	cr_assert_eq(afe_rwlock_destroy(&rw), -EBUSY, "held");
	cr_assert_eq(afe_rwlock_read_unlock(&rw), 0);
	cr_assert_eq(afe_rwlock_read_unlock(&rw), 0);
	cr_assert_eq(afe_rwlock_read_unlock(&rw), -EPERM, "every hold given back");
	cr_assert_eq(afe_rwlock_try_write(&rw), 0);
	cr_assert_eq(afe_rwlock_try_write(&rw), -EBUSY);
	cr_assert_eq(afe_rwlock_try_read(&rw), -EBUSY);
	cr_assert_eq(afe_rwlock_read_unlock(&rw), -EPERM, "write-held, not read-held");
	cr_assert_eq(afe_rwlock_write_unlock(&rw), 0);
	cr_assert_eq(afe_rwlock_write_unlock(&rw), -EPERM);
	cr_assert_eq(afe_rwlock_destroy(&rw), 0);
}

Test(rwlock, futures_take_a_free_lock_at_once)
{
	struct counting_waker cw;
	counting_waker_init(&cw);
	struct afe_context cx = counting_context(&cw, false);
	struct afe_rwlock rw;
	afe_rwlock_init(&rw);
	struct afe_rwlock_read r1, r2;
	afe_rwlock_read_init(&r1, &rw);
	afe_rwlock_read_init(&r2, &rw);
	cr_assert_eq(POLL(&r1, &cx), AFE_READY);
	cr_assert_eq(r1.base.result, 0);
	cr_assert_eq(POLL(&r2, &cx), AFE_READY, "a second reader at once");
	cr_assert_eq(afe_rwlock_read_unlock(&rw), 0);
	cr_assert_eq(afe_rwlock_read_unlock(&rw), 0);
	struct afe_rwlock_write w;
	afe_rwlock_write_init(&w, &rw);
	cr_assert_eq(POLL(&w, &cx), AFE_READY);
	cr_assert_eq(w.base.result, 0);
	cr_assert_eq(afe_rwlock_try_read(&rw), -EBUSY);
	cr_assert_eq(afe_rwlock_write_unlock(&rw), 0);
	cr_assert_eq(atomic_load(&cw.refs), 0);
	cr_assert_eq(afe_rwlock_destroy(&rw), 0);
}

Test(rwlock, a_waiting_writer_holds_back_later_readers)
{
	struct counting_waker cw, cr;
	counting_waker_init(&cw);
	counting_waker_init(&cr);
	struct afe_context cxw = counting_context(&cw, false), cxr = counting_context(&cr, false);
	struct afe_rwlock rw;
	afe_rwlock_init(&rw);
	cr_assert_eq(afe_rwlock_try_read(&rw), 0);
	struct afe_rwlock_write w;
	struct afe_rwlock_read r;
	afe_rwlock_write_init(&w, &rw);
	afe_rwlock_read_init(&r, &rw);
	cr_assert_eq(POLL(&w, &cxw), AFE_PENDING, "a reader holds it");
	cr_assert_eq(POLL(&r, &cxr), AFE_PENDING, "read-held, but a writer waits first");
	cr_assert_eq(afe_rwlock_try_read(&rw), -EBUSY, "no barging past the writer");
	cr_assert_eq(afe_rwlock_destroy(&rw), -EBUSY);
	cr_assert_eq(afe_rwlock_read_unlock(&rw), 0);
	cr_assert_eq(atomic_load(&cw.wakes), 1, "the writer is next");
	cr_assert_eq(atomic_load(&cr.wakes), 0);
	cr_assert_eq(POLL(&r, &cxr), AFE_PENDING);
	cr_assert_eq(POLL(&w, &cxw), AFE_READY);
	cr_assert_eq(w.base.result, 0);
	cr_assert_eq(afe_rwlock_write_unlock(&rw), 0);
	cr_assert_eq(atomic_load(&cr.wakes), 1, "then the reader");
	cr_assert_eq(POLL(&r, &cxr), AFE_READY);
	cr_assert_eq(afe_rwlock_read_unlock(&rw), 0);
	cr_assert_eq(atomic_load(&cw.refs) + atomic_load(&cr.refs), 0);
	cr_assert_eq(afe_rwlock_destroy(&rw), 0);
}

Test(rwlock, readers_up_to_the_next_writer_go_together)
{
	enum { N = 5 }; /* read, read, write, read, write */
	static const bool writes[N] = {false, false, true, false, true};
	struct counting_waker cw[N];
	struct afe_context cx[N];
	struct afe_rwlock_read r[N];
	struct afe_rwlock_write w[N];
	struct afe_rwlock rw;
	afe_rwlock_init(&rw);
	cr_assert_eq(afe_rwlock_try_write(&rw), 0);
	for (int i = 0; i < N; i++) {
		counting_waker_init(&cw[i]);
		cx[i] = counting_context(&cw[i], false);
		afe_rwlock_read_init(&r[i], &rw);
		afe_rwlock_write_init(&w[i], &rw);
		int p = writes[i] ? POLL(&w[i], &cx[i]) : POLL(&r[i], &cx[i]);
		cr_assert_eq(p, AFE_PENDING);
	}
	cr_assert_eq(afe_rwlock_write_unlock(&rw), 0);
	int woken[N];
	for (int i = 0; i < N; i++)
		woken[i] = atomic_load(&cw[i].wakes);
	cr_assert(woken[0] && woken[1], "both readers before the writer");
	cr_assert(!woken[2] && !woken[3] && !woken[4], "the writer and those behind wait");
	cr_assert_eq(afe_rwlock_read_unlock(&rw), 0);
	cr_assert_eq(atomic_load(&cw[2].wakes), 0, "one reader still holds it");
	cr_assert_eq(afe_rwlock_read_unlock(&rw), 0);
	cr_assert_eq(atomic_load(&cw[2].wakes), 1);
	cr_assert_eq(afe_rwlock_write_unlock(&rw), 0);
	cr_assert_eq(atomic_load(&cw[3].wakes), 1);
	cr_assert_eq(atomic_load(&cw[4].wakes), 0);
	cr_assert_eq(afe_rwlock_read_unlock(&rw), 0);
	cr_assert_eq(atomic_load(&cw[4].wakes), 1);
	for (int i = 0; i < N; i++) {
		cr_assert_eq(writes[i] ? POLL(&w[i], &cx[i]) : POLL(&r[i], &cx[i]), AFE_READY);
		cr_assert_eq(writes[i] ? w[i].base.result : r[i].base.result, 0);
	}
	cr_assert_eq(afe_rwlock_write_unlock(&rw), 0);
	cr_assert_eq(afe_rwlock_destroy(&rw), 0);
}

Test(rwlock, a_cancelled_writer_lets_readers_through_and_a_cancelled_grant_gives_back)
{
	struct counting_waker a, b;
	counting_waker_init(&a);
	counting_waker_init(&b);
	struct afe_context ca = counting_context(&a, false), cb = counting_context(&b, false);
	struct afe_context cancel_a = counting_context(&a, true);
	struct afe_context cancel_b = counting_context(&b, true);
	struct afe_rwlock rw;
	afe_rwlock_init(&rw);
	cr_assert_eq(afe_rwlock_try_read(&rw), 0);
	struct afe_rwlock_write w;
	struct afe_rwlock_read r;
	afe_rwlock_write_init(&w, &rw);
	afe_rwlock_read_init(&r, &rw);
	cr_assert_eq(POLL(&w, &ca), AFE_PENDING);
	cr_assert_eq(POLL(&r, &cb), AFE_PENDING);
	cr_assert_eq(POLL(&w, &cancel_a), AFE_READY);
	cr_assert_eq(w.base.result, -ECANCELED);
	cr_assert_eq(atomic_load(&a.refs), 0, "its waker dropped");
	cr_assert_eq(atomic_load(&b.wakes), 1, "the reader behind it went in");
	cr_assert_eq(POLL(&r, &cb), AFE_READY);
	cr_assert_eq(afe_rwlock_read_unlock(&rw), 0);

	/* The writer is handed the lock but cancelled before it saw it: the
	 * reader behind it gets the lock instead. */
	afe_rwlock_write_init(&w, &rw);
	afe_rwlock_read_init(&r, &rw);
	cr_assert_eq(POLL(&w, &ca), AFE_PENDING);
	cr_assert_eq(POLL(&r, &cb), AFE_PENDING);
	cr_assert_eq(afe_rwlock_read_unlock(&rw), 0);
	cr_assert_eq(atomic_load(&a.wakes), 1, "the writer was handed it");
	cr_assert_eq(POLL(&w, &cancel_a), AFE_READY);
	cr_assert_eq(w.base.result, -ECANCELED);
	cr_assert_eq(atomic_load(&b.wakes), 2, "given back: the reader goes in");
	cr_assert_eq(POLL(&r, &cb), AFE_READY);
	cr_assert_eq(r.base.result, 0);

	/* A reader handed the lock and cancelled gives its hold back. */
	afe_rwlock_write_init(&w, &rw);
	cr_assert_eq(POLL(&w, &ca), AFE_PENDING);
	cr_assert_eq(afe_rwlock_read_unlock(&rw), 0);
	cr_assert_eq(POLL(&w, &ca), AFE_READY);
	afe_rwlock_read_init(&r, &rw);
	cr_assert_eq(POLL(&r, &cb), AFE_PENDING);
	cr_assert_eq(afe_rwlock_write_unlock(&rw), 0);
	cr_assert_eq(POLL(&r, &cancel_b), AFE_READY);
	cr_assert_eq(r.base.result, -ECANCELED);
	cr_assert_eq(afe_rwlock_try_write(&rw), 0, "no read hold left behind");
	cr_assert_eq(afe_rwlock_write_unlock(&rw), 0);
	cr_assert_eq(atomic_load(&a.refs) + atomic_load(&b.refs), 0);
	cr_assert_eq(afe_rwlock_destroy(&rw), 0);
}

Test(rwlock, a_losing_branch_never_holds_the_lock)
{
	struct counting_waker cw;
	counting_waker_init(&cw);
	struct afe_context cx = counting_context(&cw, false);
	struct afe_rwlock rw;
	struct afe_notify n;
	afe_rwlock_init(&rw);
	afe_notify_init(&n);
	cr_assert_eq(afe_rwlock_try_write(&rw), 0);
	struct afe_rwlock_read r;
	struct afe_rwlock_write w;
	struct afe_notified nd;
	afe_rwlock_read_init(&r, &rw);
	afe_rwlock_write_init(&w, &rw);
	afe_notified_init(&nd, &n);
	struct afe_future *branches[] = {&r.base, &w.base, &nd.base};
	struct afe_select s;
	cr_assert_eq(afe_select_init(&s, branches, 3), 0);
	cr_assert_eq(POLL(&s, &cx), AFE_PENDING);
	cr_assert_eq(afe_notify_one(&n), 1);
	cr_assert_eq(afe_rwlock_write_unlock(&rw), 0);
	cr_assert_eq(afe_rwlock_try_write(&rw), 0, "neither losing branch took the lock");
	cr_assert_eq(POLL(&s, &cx), AFE_READY);
	cr_assert_eq(s.base.result, 2, "the notify won");
	cr_assert_eq(r.base.result, -ECANCELED);
	cr_assert_eq(w.base.result, -ECANCELED);
	cr_assert_eq(afe_rwlock_write_unlock(&rw), 0);
	cr_assert_eq(atomic_load(&cw.refs), 0);
	cr_assert_eq(afe_rwlock_destroy(&rw), 0);
	cr_assert_eq(afe_notify_destroy(&n), 0);
}

Test(rwlock, bad_input)
{
	struct counting_waker cw;
	counting_waker_init(&cw);
	struct afe_context cx = counting_context(&cw, false);
	cr_assert_eq(afe_rwlock_destroy(NULL), -EINVAL);
	cr_assert_eq(afe_rwlock_try_read(NULL), -EINVAL);
	cr_assert_eq(afe_rwlock_try_write(NULL), -EINVAL);
	cr_assert_eq(afe_rwlock_read_unlock(NULL), -EINVAL);
	cr_assert_eq(afe_rwlock_write_unlock(NULL), -EINVAL);
	struct afe_rwlock_read r;
	struct afe_rwlock_write w;
	afe_rwlock_read_init(&r, NULL);
	afe_rwlock_write_init(&w, NULL);
	cr_assert_eq(POLL(&r, &cx), AFE_READY);
	cr_assert_eq(r.base.result, -EINVAL);
	cr_assert_eq(POLL(&w, &cx), AFE_READY);
	cr_assert_eq(w.base.result, -EINVAL);
}

/* Writers increment a counter non-atomically across a yield; readers read
 * it twice across a yield. A lost update or a torn read shows a race. */
struct shared {
	struct afe_rwlock rw;
	long counter;
	atomic_long torn;
};

struct user {
	struct afe_future base;
	struct shared *s;
	bool writer;
	long i, n, seen;
	struct afe_rwlock_read rd;
	struct afe_rwlock_write wr;
	struct afe_yield_now nap;
};

static int user_poll(struct afe_future *f, struct afe_context *cx)
{
	struct user *self = afe_container_of(f, struct user, base);
	AFE_ASYNC_BEGIN(f, cx);
	for (self->i = 0; self->i < self->n; self->i++) {
		if (self->writer) {
			afe_rwlock_write_init(&self->wr, &self->s->rw);
			AFE_AWAIT(&self->wr.base);
		} else {
			afe_rwlock_read_init(&self->rd, &self->s->rw);
			AFE_AWAIT(&self->rd.base);
		}
		self->seen = self->s->counter;
		afe_yield_now_init(&self->nap);
		AFE_AWAIT(&self->nap.base);
		if (self->writer) {
			self->s->counter = self->seen + 1;
			afe_rwlock_write_unlock(&self->s->rw);
		} else {
			if (self->s->counter != self->seen)
				atomic_fetch_add(&self->s->torn, 1);
			afe_rwlock_read_unlock(&self->s->rw);
		}
	}
	AFE_RETURN(0);
	AFE_ASYNC_END;
}

Test(rwlock, tasks_hold_it_across_awaits)
{
	struct afe_runtime *rt = test_runtime(2);
	struct shared s = {.counter = 0};
	atomic_init(&s.torn, 0);
	afe_rwlock_init(&s.rw);
	enum { TASKS = 8, EACH = 1000 };
	struct afe_join_handle h[TASKS];
	for (int t = 0; t < TASKS; t++) {
		struct user u = {.s = &s, .writer = t % 2 == 0, .n = EACH};
		afe_future_init(&u.base, user_poll);
		cr_assert_eq(afe_spawn(rt, &u, &h[t]), 0);
	}
	for (int t = 0; t < TASKS; t++) {
		struct afe_join j;
		afe_join_init(&j, &h[t]);
		cr_assert_eq(test_block_on(rt, &j), 0);
	}
	cr_assert_eq(s.counter, TASKS / 2 * EACH, "no lost update");
	cr_assert_eq(atomic_load(&s.torn), 0, "no write during a read");
	cr_assert_eq(afe_rwlock_destroy(&s.rw), 0);
	test_runtime_destroy(rt);
}
