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

/* Polls the losers with cancel set until every one has wound down. */
static bool cancel_losers(struct afe_select *s, struct afe_context *cx)
{
	struct afe_context cancel = *cx;
	cancel.cancel = true;
	bool all = true;
	for (size_t i = 0; i < s->n; i++)
		if ((intptr_t)i != s->winner && afe_future_poll(s->futures[i], &cancel) == AFE_PENDING)
			all = false;
	return all;
}

static int select_poll(struct afe_future *f, struct afe_context *cx)
{
	struct afe_select *s = afe_container_of(f, struct afe_select, base);
	if (!s->futures || !s->n) {
		f->result = -EINVAL;
		return AFE_READY;
	}
	if (s->winner < 0 && !cx->cancel) {
		for (size_t i = 0; i < s->n; i++) {
			if (afe_future_poll(s->futures[i], cx) == AFE_READY) {
				s->winner = (intptr_t)i;
				break;
			}
		}
		if (s->winner < 0)
			return AFE_PENDING;
	}
	/* Cancelled before any winner: every child is a loser (winner -1). */
	if (!cancel_losers(s, cx))
		return AFE_PENDING;
	f->result = s->winner >= 0 ? s->winner : -ECANCELED;
	return AFE_READY;
}

int afe_select_init(struct afe_select *f, struct afe_future **futures, size_t n)
{
	afe_future_init(&f->base, select_poll);
	f->futures = futures;
	f->n = n;
	f->winner = -1;
	return (!futures || !n) ? -EINVAL : 0;
}
