/* SPDX-License-Identifier: MIT */
/* ready, pending, yield_now, join_all and select. */
#include "afe/combinators.h"

static int ready_poll(struct afe_future *f, struct afe_context *cx)
{
	(void)cx;
	f->result = afe_container_of(f, struct afe_ready, base)->value;
	return AFE_READY;
}

void afe_ready_init(struct afe_ready *f, intptr_t value)
{
	afe_future_init(&f->base, ready_poll);
	f->value = value;
}

static int pending_poll(struct afe_future *f, struct afe_context *cx)
{
	if (!cx->cancel)
		return AFE_PENDING; /* nothing will ever wake it: that is the point */
	f->result = -ECANCELED;
	return AFE_READY;
}

void afe_pending_init(struct afe_pending *f)
{
	afe_future_init(&f->base, pending_poll);
}

static int yield_now_poll(struct afe_future *f, struct afe_context *cx)
{
	struct afe_yield_now *y = afe_container_of(f, struct afe_yield_now, base);
	if (cx->cancel) {
		f->result = -ECANCELED;
		return AFE_READY;
	}
	if (y->yielded) {
		f->result = 0;
		return AFE_READY;
	}
	y->yielded = true;
	afe_context_yield(cx);
	return AFE_PENDING;
}

void afe_yield_now_init(struct afe_yield_now *f)
{
	afe_future_init(&f->base, yield_now_poll);
	f->yielded = false;
}

/* Polls every unfinished child; true when all are done. */
static bool poll_all(struct afe_future **futures, size_t n, struct afe_context *cx)
{
	bool all = true;
	for (size_t i = 0; i < n; i++)
		if (afe_future_poll(futures[i], cx) == AFE_PENDING)
			all = false;
	return all;
}

static int join_all_poll(struct afe_future *f, struct afe_context *cx)
{
	struct afe_join_all *j = afe_container_of(f, struct afe_join_all, base);
	if (!j->futures && j->n) {
		f->result = -EINVAL;
		return AFE_READY;
	}
	if (!poll_all(j->futures, j->n, cx))
		return AFE_PENDING;
	f->result = cx->cancel ? -ECANCELED : 0;
	return AFE_READY;
}

int afe_join_all_init(struct afe_join_all *f, struct afe_future **futures, size_t n)
{
	afe_future_init(&f->base, join_all_poll);
	f->futures = futures;
	f->n = n;
	return (!futures && n) ? -EINVAL : 0;
}

/*
 * select. Its race (see struct afe_race) decides the winner once: a child
 * that completes from elsewhere claims it for its index before it does
 * anything; select claims it for a child that simply returned ready, for
 * the default branch, or for its own cancellation (the values past the
 * children). Once decided, the winner is polled to its end and every other
 * child is polled with cancel until it has wound down.
 */
static intptr_t race_default(const struct afe_select *s)
{
	return (intptr_t)s->n;
}

static intptr_t race_cancelled(const struct afe_select *s)
{
	return (intptr_t)s->n + 1;
}

/* Claims the race for v unless it is decided; returns the winner. */
static intptr_t race_decide(struct afe_select *s, intptr_t v)
{
	intptr_t open = AFE_RACE_OPEN;
	/* acq_rel: pairs with the claims of the children's completers. */
	if (atomic_compare_exchange_strong_explicit(&s->race.winner, &open, v,
						    memory_order_acq_rel, memory_order_acquire))
		return v;
	return open;
}

/* Polls child i, telling it that it is the select's child i, and whether
 * it is withdrawn as a loser. */
static int poll_child(struct afe_select *s, size_t i, struct afe_context *sub, bool withdrawing)
{
	s->race.polling = s->futures[i];
	s->race.index = (intptr_t)i;
	s->race.withdrawing = withdrawing;
	int r = afe_future_poll(s->futures[i], sub);
	s->race.polling = NULL;
	s->race.withdrawing = false;
	return r;
}

/* While undecided: polls the children in order; returns the race's state. */
static intptr_t poll_for_winner(struct afe_select *s, struct afe_context *sub)
{
	for (size_t i = 0; i < s->n; i++) {
		/* Acquire: pairs with a completer's claim. */
		if (atomic_load_explicit(&s->race.winner, memory_order_acquire) != AFE_RACE_OPEN)
			break;
		if (poll_child(s, i, sub, false) == AFE_READY)
			return race_decide(s, (intptr_t)i);
	}
	return atomic_load_explicit(&s->race.winner, memory_order_acquire);
}

static int select_poll(struct afe_future *f, struct afe_context *cx)
{
	struct afe_select *s = afe_container_of(f, struct afe_select, base);
	if ((!s->futures && s->n) || (!s->n && !s->has_default)) {
		f->result = -EINVAL;
		return AFE_READY;
	}
	struct afe_context sub = *cx;
	sub.race = &s->race;
	sub.cancel = false;
	intptr_t w = atomic_load_explicit(&s->race.winner, memory_order_acquire);
	if (w == AFE_RACE_OPEN && !cx->cancel)
		w = poll_for_winner(s, &sub);
	if (w == AFE_RACE_OPEN && s->has_default)
		w = race_decide(s, race_default(s));
	if (w == AFE_RACE_OPEN && cx->cancel)
		w = race_decide(s, race_cancelled(s));
	if (w == AFE_RACE_OPEN)
		return AFE_PENDING;
	bool has_winner = w >= 0 && w < (intptr_t)s->n;
	s->winner = has_winner ? w : -1;

	/* The winner runs to its end (cancelled only if we are); the others
	 * are withdrawn: as losers when a branch or the default won, else
	 * because we are cancelled. */
	bool all = true;
	bool lost = has_winner || w == race_default(s);
	for (size_t i = 0; i < s->n; i++) {
		sub.cancel = cx->cancel || (intptr_t)i != w;
		if (poll_child(s, i, &sub, lost && (intptr_t)i != w) == AFE_PENDING)
			all = false;
	}
	if (!all)
		return AFE_PENDING;
	if (!has_winner)
		f->result = w == race_default(s) ? -EAGAIN : -ECANCELED;
	else if (cx->cancel && s->futures[w]->result == -ECANCELED)
		f->result = -ECANCELED;
	else
		f->result = w;
	return AFE_READY;
}

static int select_setup(struct afe_select *f, struct afe_future **futures, size_t n,
			bool has_default)
{
	afe_future_init(&f->base, select_poll);
	f->futures = futures;
	f->n = n;
	f->winner = -1;
	f->has_default = has_default;
	atomic_init(&f->race.winner, AFE_RACE_OPEN);
	f->race.polling = NULL;
	f->race.index = 0;
	f->race.withdrawing = false;
	if (!futures && n)
		return -EINVAL;
	return (!n && !has_default) ? -EINVAL : 0;
}

int afe_select_init(struct afe_select *f, struct afe_future **futures, size_t n)
{
	return select_setup(f, futures, n, false);
}

int afe_select_init_default(struct afe_select *f, struct afe_future **futures, size_t n)
{
	return select_setup(f, futures, n, true);
}
