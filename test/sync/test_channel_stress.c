/* SPDX-License-Identifier: MIT */
/*
 * Stress: producers and consumers on one channel, each operation chosen at
 * random among an awaited send/receive, a try then await, a select against
 * a yield (the operation is often withdrawn) and a select with a default
 * branch; some tasks are cancelled mid-way and, in the second test, the
 * channel is closed mid-way. Every item whose send reported success must
 * be received exactly once, and no other item at all.
 */
#include <stdlib.h>
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
#define PER_PRODUCER 60000
#else
#define PER_PRODUCER 250000
#endif

#define PRODUCERS 4
#define CONSUMERS 4
#define FLAKY 2 /* extra producers and consumers that get cancelled */

struct stress {
	struct afe_chan ch;
	size_t n;
	_Atomic unsigned char *received;
	unsigned char *sent; /* written by the item's one producer */
};

static unsigned next_random(uint64_t *s)
{
	*s ^= *s << 13;
	*s ^= *s >> 7;
	*s ^= *s << 17;
	return (unsigned)(*s >> 32);
}

enum { PLAIN, TRY_FIRST, AGAINST_YIELD, WITH_DEFAULT, MODES };

/* ---- producers ------------------------------------------------------------ */

struct producer {
	struct afe_future base;
	struct stress *st;
	uint64_t rng;
	size_t next, end, item, send_item;
	int mode;
	intptr_t result;
	struct afe_chan_send send;
	struct afe_yield_now nap;
	struct afe_future *branches[2];
	struct afe_select sel;
};

/* Points the send future at the current item and the select at it. */
static void producer_arm(struct producer *p, int with)
{
	p->send_item = p->item;
	afe_chan_send_init(&p->send, &p->st->ch, &p->send_item);
	afe_yield_now_init(&p->nap);
	p->branches[0] = &p->send.base;
	p->branches[1] = &p->nap.base;
	if (with == AGAINST_YIELD)
		afe_select_init(&p->sel, p->branches, 2);
	else
		afe_select_init_default(&p->sel, p->branches, 1);
}

static int producer_poll(struct afe_future *f, struct afe_context *cx)
{
	struct producer *p = afe_container_of(f, struct producer, base);
	AFE_ASYNC_BEGIN(f, cx);
	while (p->next < p->end) {
		p->item = p->next;
		p->mode = (int)(next_random(&p->rng) % MODES);
		if (p->mode == TRY_FIRST) {
			p->result = afe_chan_try_send(&p->st->ch, &p->item);
			if (p->result == -EAGAIN)
				p->mode = PLAIN;
			else if (p->result == 0)
				p->st->sent[p->item] = 1;
		}
		if (p->mode == AGAINST_YIELD || p->mode == WITH_DEFAULT) {
			producer_arm(p, p->mode);
			AFE_AWAIT(&p->sel.base);
			if (p->sel.base.result != 0)
				continue; /* withdrawn: nothing was sent, try again */
			p->result = p->send.base.result;
		} else if (p->mode == PLAIN) {
			producer_arm(p, AGAINST_YIELD);
			AFE_AWAIT(&p->send.base);
			p->result = p->send.base.result;
		}
		if (p->result != 0)
			break; /* closed */
		p->st->sent[p->item] = 1;
		p->next++;
	}
	AFE_RETURN(p->result);
	AFE_CLEANUP;
	/* Cancelled: a send that completed still counts (marking is
	 * idempotent). */
	if (afe_future_is_done(&p->send.base) && p->send.base.result == 0 && p->send.chan)
		p->st->sent[p->send_item] = 1;
	afe_chan_drop_sender(&p->st->ch);
	AFE_ASYNC_END;
}

/* ---- consumers ----------------------------------------------------------- */

struct consumer {
	struct afe_future base;
	struct stress *st;
	uint64_t rng;
	uint64_t buf;
	int mode;
	bool armed; /* recv is the current receive, not yet counted */
	intptr_t result;
	struct afe_chan_recv recv;
	struct afe_yield_now nap;
	struct afe_future *branches[2];
	struct afe_select sel;
};

static void count(struct stress *st, uint64_t item)
{
	atomic_fetch_add_explicit(&st->received[item], 1, memory_order_relaxed);
}

static void consumer_arm(struct consumer *c, int with)
{
	afe_chan_recv_init(&c->recv, &c->st->ch, &c->buf);
	afe_yield_now_init(&c->nap);
	c->branches[0] = &c->recv.base;
	c->branches[1] = &c->nap.base;
	if (with == AGAINST_YIELD)
		afe_select_init(&c->sel, c->branches, 2);
	else
		afe_select_init_default(&c->sel, c->branches, 1);
	c->armed = true;
}

static int consumer_poll(struct afe_future *f, struct afe_context *cx)
{
	struct consumer *c = afe_container_of(f, struct consumer, base);
	AFE_ASYNC_BEGIN(f, cx);
	for (;;) {
		c->mode = (int)(next_random(&c->rng) % MODES);
		if (c->mode == TRY_FIRST) {
			c->result = afe_chan_try_recv(&c->st->ch, &c->buf);
			if (c->result == -EAGAIN)
				c->mode = PLAIN;
		}
		if (c->mode == AGAINST_YIELD || c->mode == WITH_DEFAULT) {
			consumer_arm(c, c->mode);
			AFE_AWAIT(&c->sel.base);
			c->armed = false;
			if (c->sel.base.result != 0)
				continue; /* withdrawn: took nothing */
			c->result = c->recv.base.result;
		} else if (c->mode == PLAIN) {
			consumer_arm(c, AGAINST_YIELD);
			AFE_AWAIT(&c->recv.base);
			c->armed = false;
			c->result = c->recv.base.result;
		}
		if (c->result != 0)
			break;
		count(c->st, c->buf);
	}
	AFE_RETURN(c->result == -EPIPE ? 0 : c->result);
	AFE_CLEANUP;
	if (c->armed && afe_future_is_done(&c->recv.base) && c->recv.base.result == 0)
		count(c->st, c->buf); /* received just before the cancel */
	AFE_ASYNC_END;
}

/* ---- the runs --------------------------------------------------------------- */

static void run(struct afe_runtime *rt, size_t capacity, bool close_midway, uint64_t seed)
{
	struct stress st = {.n = (size_t)(PRODUCERS + FLAKY) * PER_PRODUCER};
	cr_assert_eq(afe_chan_init(&st.ch, sizeof(uint64_t), capacity), 0);
	st.received = calloc(st.n, 1);
	st.sent = calloc(st.n, 1);
	cr_assert(st.received && st.sent);
	for (int i = 1; i < PRODUCERS + FLAKY; i++)
		cr_assert_eq(afe_chan_add_sender(&st.ch), 0);

	struct afe_join_handle keep[PRODUCERS + CONSUMERS], flaky[2 * FLAKY];
	int nkeep = 0, nflaky = 0;
	for (int i = 0; i < CONSUMERS + FLAKY; i++) {
		struct consumer c = {.st = &st, .rng = seed * 7919 + (uint64_t)i + 1};
		afe_future_init(&c.base, consumer_poll);
		afe_chan_recv_init(&c.recv, NULL, NULL);
		struct afe_join_handle *h = i < CONSUMERS ? &keep[nkeep++] : &flaky[nflaky++];
		cr_assert_eq(afe_spawn(rt, &c, h), 0);
	}
	for (int i = 0; i < PRODUCERS + FLAKY; i++) {
		struct producer p = {.st = &st,
				     .rng = seed * 104729 + (uint64_t)i + 1,
				     .next = (size_t)i * PER_PRODUCER,
				     .end = (size_t)(i + 1) * PER_PRODUCER};
		afe_future_init(&p.base, producer_poll);
		afe_chan_send_init(&p.send, NULL, NULL);
		struct afe_join_handle *h = i < PRODUCERS ? &keep[nkeep++] : &flaky[nflaky++];
		cr_assert_eq(afe_spawn(rt, &p, h), 0);
	}

	usleep(1000 + (useconds_t)(seed % 5000));
	for (int i = 0; i < nflaky; i++) {
		struct afe_cancel cancel;
		cr_assert_eq(afe_cancel_init(&cancel, &flaky[i]), 0);
		test_block_on(rt, &cancel);
	}
	if (close_midway)
		afe_chan_close(&st.ch);
	for (int i = 0; i < nkeep; i++) {
		struct afe_join join;
		afe_join_init(&join, &keep[i]);
		intptr_t r = test_block_on(rt, &join);
		cr_assert(r == 0 || (close_midway && r == -EPIPE), "task %d ended with %ld", i,
			  (long)r);
	}

	size_t delivered = 0;
	for (size_t i = 0; i < st.n; i++) {
		unsigned got = atomic_load(&st.received[i]);
		cr_assert_eq(got, st.sent[i], "item %zu: sent %u, received %u times (capacity %zu)",
			     i, st.sent[i], got, capacity);
		delivered += got;
	}
	if (!close_midway)
		for (size_t i = 0; i < (size_t)PRODUCERS * PER_PRODUCER; i++)
			cr_assert_eq(st.sent[i], 1, "a steady producer's item %zu was not sent", i);
	cr_assert_gt(delivered, 0);
	cr_assert_eq(afe_chan_destroy(&st.ch), 0, "no waiter left behind");
	free(st.received);
	free(st.sent);
}

static const size_t capacities[] = {0, 1, 7, 1024, AFE_CHAN_UNBOUNDED};

Test(channel_stress, every_item_sent_is_received_exactly_once, .timeout = 600)
{
	struct afe_runtime *rt = test_runtime(4);
	for (size_t i = 0; i < sizeof(capacities) / sizeof(capacities[0]); i++)
		run(rt, capacities[i], false, i + 1);
	test_runtime_destroy(rt);
}

Test(channel_stress, closing_midway_loses_and_duplicates_nothing, .timeout = 600)
{
	struct afe_runtime *rt = test_runtime(4);
	for (size_t i = 0; i < sizeof(capacities) / sizeof(capacities[0]); i++)
		run(rt, capacities[i], true, i + 11);
	test_runtime_destroy(rt);
}
