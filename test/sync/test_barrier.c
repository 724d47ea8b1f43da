/* SPDX-License-Identifier: MIT */
/* The barrier: one leader per generation, reuse, a cancelled waiter
 * leaving the count, select, and tasks meeting round after round. */
#include "helpers.h"

#define POLL(fut, cx) afe_future_poll(&(fut)->base, (cx))

Test(barrier, init_and_bad_input)
{
	struct counting_waker cw;
	counting_waker_init(&cw);
	struct afe_context cx = counting_context(&cw, false);
	struct afe_barrier b;
	cr_assert_eq(afe_barrier_init(&b, 0), -EINVAL);
	cr_assert_eq(afe_barrier_init(NULL, 1), -EINVAL);
	cr_assert_eq(afe_barrier_destroy(NULL), -EINVAL);
	cr_assert_eq(afe_barrier_waiting(NULL), 0);
	struct afe_barrier_wait w;
	afe_barrier_wait_init(&w, NULL);
	cr_assert_eq(POLL(&w, &cx), AFE_READY);
	cr_assert_eq(w.base.result, -EINVAL);
	cr_assert_eq(afe_barrier_init(&b, 1), 0);
	afe_barrier_wait_init(&w, &b);
	cr_assert_eq(POLL(&w, &cx), AFE_READY, "one party: through at once");
	cr_assert_eq(w.base.result, 1, "and the leader");
	cr_assert_eq(afe_barrier_destroy(&b), 0);
}

Test(barrier, one_leader_per_generation_and_reuse)
{
	enum { N = 3 };
	struct counting_waker cw[N];
	struct afe_context cx[N];
	struct afe_barrier_wait w[N];
	struct afe_barrier b;
	cr_assert_eq(afe_barrier_init(&b, N), 0);
	for (int gen = 0; gen < 3; gen++) {
		for (int i = 0; i < N; i++) {
			counting_waker_init(&cw[i]);
			cx[i] = counting_context(&cw[i], false);
			afe_barrier_wait_init(&w[i], &b);
		}
		for (int i = 0; i < N - 1; i++) {
			cr_assert_eq(POLL(&w[i], &cx[i]), AFE_PENDING);
			cr_assert_eq(afe_barrier_waiting(&b), (size_t)i + 1);
		}
		cr_assert_eq(afe_barrier_destroy(&b), -EBUSY);
		cr_assert_eq(afe_barrier_waiting(&b), N - 1, "the refused destroy changed nothing");
		cr_assert_eq(POLL(&w[N - 1], &cx[N - 1]), AFE_READY, "the last one fills it");
		cr_assert_eq(w[N - 1].base.result, 1, "the leader");
		cr_assert_eq(afe_barrier_waiting(&b), 0, "a new generation");
		for (int i = 0; i < N - 1; i++) {
			cr_assert_eq(atomic_load(&cw[i].wakes), 1);
			cr_assert_eq(POLL(&w[i], &cx[i]), AFE_READY);
			cr_assert_eq(w[i].base.result, 0, "not the leader");
			cr_assert_eq(atomic_load(&cw[i].refs), 0);
		}
	}
	cr_assert_eq(afe_barrier_destroy(&b), 0);
}

Test(barrier, a_cancelled_waiter_leaves_the_count)
{
	struct counting_waker cw;
	counting_waker_init(&cw);
	struct afe_context cx = counting_context(&cw, false);
	struct afe_context cancel = counting_context(&cw, true);
	struct afe_barrier b;
	cr_assert_eq(afe_barrier_init(&b, 2), 0);
	struct afe_barrier_wait a, c, d;
	afe_barrier_wait_init(&a, &b);
	afe_barrier_wait_init(&c, &b);
	afe_barrier_wait_init(&d, &b);
	cr_assert_eq(POLL(&a, &cx), AFE_PENDING);
	cr_assert_eq(POLL(&a, &cancel), AFE_READY);
	cr_assert_eq(a.base.result, -ECANCELED);
	cr_assert_eq(afe_barrier_waiting(&b), 0, "a left");
	cr_assert_eq(POLL(&c, &cx), AFE_PENDING, "a no longer counts: c waits");
	cr_assert_eq(POLL(&d, &cx), AFE_READY);
	cr_assert_eq(d.base.result, 1);
	cr_assert_eq(POLL(&c, &cx), AFE_READY);
	cr_assert_eq(c.base.result, 0);

	/* Cancelled after its generation was released: -ECANCELED, and the
	 * generation went on without it. */
	afe_barrier_wait_init(&a, &b);
	afe_barrier_wait_init(&c, &b);
	cr_assert_eq(POLL(&a, &cx), AFE_PENDING);
	cr_assert_eq(POLL(&c, &cx), AFE_READY);
	cr_assert_eq(POLL(&a, &cancel), AFE_READY);
	cr_assert_eq(a.base.result, -ECANCELED);
	cr_assert_eq(afe_barrier_waiting(&b), 0);
	/* Cancelled before its first poll: it never arrived. */
	afe_barrier_wait_init(&a, &b);
	cr_assert_eq(POLL(&a, &cancel), AFE_READY);
	cr_assert_eq(a.base.result, -ECANCELED);
	cr_assert_eq(afe_barrier_waiting(&b), 0);
	cr_assert_eq(atomic_load(&cw.refs), 0);
	cr_assert_eq(afe_barrier_destroy(&b), 0);
}

Test(barrier, a_losing_branch_never_arrived)
{
	struct counting_waker cw, other;
	counting_waker_init(&cw);
	counting_waker_init(&other);
	struct afe_context cx = counting_context(&cw, false);
	struct afe_context ox = counting_context(&other, false);
	struct afe_barrier b;
	struct afe_notify n;
	cr_assert_eq(afe_barrier_init(&b, 2), 0);
	afe_notify_init(&n);
	struct afe_barrier_wait bw, late, last;
	struct afe_notified nd;
	afe_barrier_wait_init(&bw, &b);
	afe_notified_init(&nd, &n);
	struct afe_future *branches[] = {&bw.base, &nd.base};
	struct afe_select s;
	cr_assert_eq(afe_select_init(&s, branches, 2), 0);
	cr_assert_eq(POLL(&s, &cx), AFE_PENDING);
	cr_assert_eq(afe_barrier_waiting(&b), 1, "the branch waits");
	cr_assert_eq(afe_notify_one(&n), 1, "the notify wins the select");
	afe_barrier_wait_init(&late, &b);
	cr_assert_eq(POLL(&late, &ox), AFE_PENDING, "the losing branch does not count");
	cr_assert_eq(POLL(&s, &cx), AFE_READY);
	cr_assert_eq(s.base.result, 1);
	cr_assert_eq(bw.base.result, -ECANCELED);
	afe_barrier_wait_init(&last, &b);
	cr_assert_eq(POLL(&last, &ox), AFE_READY);
	cr_assert_eq(last.base.result, 1);
	cr_assert_eq(POLL(&late, &ox), AFE_READY);
	cr_assert_eq(late.base.result, 0);

	/* A branch that fills the generation wins its select. */
	afe_barrier_wait_init(&bw, &b);
	afe_notified_init(&nd, &n);
	cr_assert_eq(afe_select_init(&s, branches, 2), 0);
	afe_barrier_wait_init(&late, &b);
	cr_assert_eq(POLL(&late, &ox), AFE_PENDING);
	cr_assert_eq(POLL(&s, &cx), AFE_READY);
	cr_assert_eq(s.base.result, 0);
	cr_assert_eq(bw.base.result, 1);
	cr_assert_eq(POLL(&late, &ox), AFE_READY);
	cr_assert_eq(afe_notify_one(&n), 0, "the notify lost: a permit is left");
	cr_assert_eq(atomic_load(&cw.refs) + atomic_load(&other.refs), 0);
	cr_assert_eq(afe_barrier_destroy(&b), 0);
	cr_assert_eq(afe_notify_destroy(&n), 0);
}

/* Two selects wait on a barrier of 3 beside a notify each; the first
 * loses to its notify. A third arrival does not fill the generation, so
 * it must not commit the second select to the barrier: its notify can
 * still win. */
Test(barrier, a_wait_is_claimed_only_when_its_generation_fills)
{
	struct counting_waker cw;
	counting_waker_init(&cw);
	struct afe_context cx = counting_context(&cw, false);
	struct afe_barrier b;
	struct afe_notify n[2];
	cr_assert_eq(afe_barrier_init(&b, 3), 0);
	struct afe_barrier_wait bw[2], late;
	struct afe_notified nd[2];
	struct afe_future *branches[2][2];
	struct afe_select s[2];
	for (int i = 0; i < 2; i++) {
		afe_notify_init(&n[i]);
		afe_barrier_wait_init(&bw[i], &b);
		afe_notified_init(&nd[i], &n[i]);
		branches[i][0] = &bw[i].base;
		branches[i][1] = &nd[i].base;
		cr_assert_eq(afe_select_init(&s[i], branches[i], 2), 0);
		cr_assert_eq(POLL(&s[i], &cx), AFE_PENDING);
	}
	cr_assert_eq(afe_notify_one(&n[0]), 1, "the first select goes to its notify");
	afe_barrier_wait_init(&late, &b);
	cr_assert_eq(POLL(&late, &cx), AFE_PENDING, "two live arrivals of three");
	cr_assert_eq(afe_notify_one(&n[1]), 1, "the second select is still open");
	for (int i = 0; i < 2; i++) {
		cr_assert_eq(POLL(&s[i], &cx), AFE_READY);
		cr_assert_eq(s[i].base.result, 1);
		cr_assert_eq(bw[i].base.result, -ECANCELED);
	}
	cr_assert_eq(afe_barrier_waiting(&b), 1, "only the late wait is left");
	struct afe_context cancel = counting_context(&cw, true);
	cr_assert_eq(POLL(&late, &cancel), AFE_READY);
	cr_assert_eq(atomic_load(&cw.refs), 0);
	cr_assert_eq(afe_barrier_destroy(&b), 0);
	for (int i = 0; i < 2; i++)
		cr_assert_eq(afe_notify_destroy(&n[i]), 0);
}

/* Tasks meet at the barrier round after round; each writes its slot
 * before the wait and reads every slot after it. */
enum { TASKS = 8, ROUNDS = 500 };

struct meeting {
	struct afe_barrier b;
	long slot[TASKS];
	atomic_long leaders, behind;
};

struct party {
	struct afe_future base;
	struct meeting *m;
	int me;
	long round;
	struct afe_barrier_wait wait;
};

static int party_poll(struct afe_future *f, struct afe_context *cx)
{
	struct party *self = afe_container_of(f, struct party, base);
	AFE_ASYNC_BEGIN(f, cx);
	for (self->round = 1; self->round <= ROUNDS; self->round++) {
		self->m->slot[self->me] = self->round;
		afe_barrier_wait_init(&self->wait, &self->m->b);
		AFE_AWAIT(&self->wait.base);
		if (self->wait.base.result == 1)
			atomic_fetch_add(&self->m->leaders, 1);
		for (int i = 0; i < TASKS; i++)
			if (self->m->slot[i] < self->round)
				atomic_fetch_add(&self->m->behind, 1);
		/* Nobody writes the next round's slot before all have read. */
		afe_barrier_wait_init(&self->wait, &self->m->b);
		AFE_AWAIT(&self->wait.base);
		if (self->wait.base.result == 1)
			atomic_fetch_add(&self->m->leaders, 1);
	}
	AFE_RETURN(0);
	AFE_ASYNC_END;
}

Test(barrier, tasks_meet_round_after_round)
{
	struct afe_runtime *rt = test_runtime(2);
	static struct meeting m;
	cr_assert_eq(afe_barrier_init(&m.b, TASKS), 0);
	atomic_init(&m.leaders, 0);
	atomic_init(&m.behind, 0);
	struct afe_join_handle h[TASKS];
	for (int t = 0; t < TASKS; t++) {
		struct party p = {.m = &m, .me = t};
		afe_future_init(&p.base, party_poll);
		cr_assert_eq(afe_spawn(rt, &p, &h[t]), 0);
	}
	for (int t = 0; t < TASKS; t++) {
		struct afe_join j;
		afe_join_init(&j, &h[t]);
		cr_assert_eq(test_block_on(rt, &j), 0);
	}
	cr_assert_eq(atomic_load(&m.leaders), 2 * ROUNDS, "one leader per generation: %ld",
		     atomic_load(&m.leaders));
	cr_assert_eq(atomic_load(&m.behind), 0, "nobody passed before all arrived");
	cr_assert_eq(afe_barrier_destroy(&m.b), 0);
	test_runtime_destroy(rt);
}
