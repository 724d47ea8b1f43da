/* SPDX-License-Identifier: MIT */
/* The timer wheel: see timer_wheel.h. */
#include "timer_wheel.h"

#include <string.h>

#define SLOT_BITS 6
#define SLOT_MASK (AFE_WHEEL_SLOTS - 1)
/* How far ahead a timer is placed: a top-level slot short of a whole
 * turn, so a placed timer never lands in the top level's current slot. */
#define MAX_AHEAD ((uint64_t)(AFE_WHEEL_SLOTS - 1) << (SLOT_BITS * (AFE_WHEEL_LEVELS - 1)))

void afe_wheel_init(struct afe_timer_wheel *w)
{
	memset(w, 0, sizeof(*w));
}

/* The level whose slots tell `when` apart from `elapsed`: the highest
 * 6-bit group in which they differ. */
static unsigned level_for(uint64_t elapsed, uint64_t when)
{
	uint64_t masked = (elapsed ^ when) | SLOT_MASK;
	unsigned significant = 63u - (unsigned)__builtin_clzll(masked);
	unsigned level = significant / SLOT_BITS;
	return level < AFE_WHEEL_LEVELS ? level : AFE_WHEEL_LEVELS - 1;
}

static unsigned slot_for(uint64_t when, unsigned level)
{
	return (unsigned)(when >> (level * SLOT_BITS)) & SLOT_MASK;
}

void afe_timer_push(struct afe_timer **head, struct afe_timer *t)
{
	t->next = *head;
	if (*head)
		(*head)->pprev = &t->next;
	*head = t;
	t->pprev = head;
}

bool afe_wheel_insert(struct afe_timer_wheel *w, struct afe_timer *t, uint64_t when)
{
	if (when <= w->elapsed)
		return false;
	uint64_t place = when - w->elapsed > MAX_AHEAD ? w->elapsed + MAX_AHEAD : when;
	unsigned level = level_for(w->elapsed, place), slot = slot_for(place, level);
	t->when = when;
	afe_timer_push(&w->slots[level][slot], t);
	w->occupied[level] |= UINT64_C(1) << slot;
	return true;
}

void afe_wheel_remove(struct afe_timer_wheel *w, struct afe_timer *t)
{
	struct afe_timer **link = t->pprev;
	*link = t->next;
	if (t->next)
		t->next->pprev = link;
	t->next = NULL;
	t->pprev = NULL;
	/* A slot's head, now empty: its occupied bit goes. (Compared as
	 * integers: link may point outside the wheel.) */
	uintptr_t offset = (uintptr_t)link - (uintptr_t)&w->slots[0][0];
	if (offset < sizeof(w->slots) && !*link) {
		size_t index = offset / sizeof(*link);
		w->occupied[index / AFE_WHEEL_SLOTS] &= ~(UINT64_C(1) << (index % AFE_WHEEL_SLOTS));
	}
}

/* The earliest occupied slot: lower levels always come first, since a
 * timer sits at the lowest level that tells it apart from now. Slots of
 * the top level may lie behind the current one (timers beyond the span):
 * they come round on the next turn. */
static uint64_t next_slot(const struct afe_timer_wheel *w, unsigned *level_out,
			  unsigned *slot_out)
{
	for (unsigned level = 0; level < AFE_WHEEL_LEVELS; level++) {
		uint64_t occupied = w->occupied[level];
		if (!occupied)
			continue;
		unsigned shift = level * SLOT_BITS;
		unsigned now_slot = slot_for(w->elapsed, level);
		uint64_t rotated = now_slot ? (occupied >> now_slot) | (occupied << (64 - now_slot))
					    : occupied;
		unsigned slot = (now_slot + (unsigned)__builtin_ctzll(rotated)) & SLOT_MASK;
		uint64_t range = UINT64_C(1) << (shift + SLOT_BITS);
		uint64_t tick = (w->elapsed & ~(range - 1)) + ((uint64_t)slot << shift);
		if (slot < now_slot)
			tick += range;
		*level_out = level;
		*slot_out = slot;
		return tick > w->elapsed ? tick : w->elapsed;
	}
	return UINT64_MAX;
}

uint64_t afe_wheel_next_tick(const struct afe_timer_wheel *w)
{
	unsigned level, slot;
	return next_slot(w, &level, &slot);
}

void afe_wheel_advance(struct afe_timer_wheel *w, uint64_t now,
		       void (*fire)(struct afe_timer *t, void *arg), void *arg)
{
	unsigned level = 0, slot = 0;
	uint64_t tick;
	while ((tick = next_slot(w, &level, &slot)) <= now) {
		w->elapsed = tick;
		struct afe_timer *t = w->slots[level][slot];
		w->slots[level][slot] = NULL;
		w->occupied[level] &= ~(UINT64_C(1) << slot);
		while (t) {
			struct afe_timer *next = t->next;
			/* Due, or moved down to the level that now tells it
			 * apart from the present. */
			if (!afe_wheel_insert(w, t, t->when))
				fire(t, arg);
			t = next;
		}
	}
	if (now > w->elapsed)
		w->elapsed = now;
}

void afe_wheel_drain(struct afe_timer_wheel *w, void (*fire)(struct afe_timer *t, void *arg),
		     void *arg)
{
	for (unsigned level = 0; level < AFE_WHEEL_LEVELS; level++) {
		for (unsigned slot = 0; slot < AFE_WHEEL_SLOTS; slot++) {
			struct afe_timer *t = w->slots[level][slot];
			w->slots[level][slot] = NULL;
			while (t) {
				struct afe_timer *next = t->next;
				fire(t, arg);
				t = next;
			}
		}
		w->occupied[level] = 0;
	}
}
