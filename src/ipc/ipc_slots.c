/* SPDX-License-Identifier: MIT */
/* The shared-memory slot ring: see ipc_slots.h. */
#include "ipc_slots.h"

#include <errno.h>
#include <string.h>

void afe_ipc_slots_format(struct afe_ipc_slot *slots, uint32_t n)
{
	for (uint32_t i = 0; i < n; i++)
		atomic_store_explicit(&slots[i].seq, i, memory_order_relaxed);
	atomic_thread_fence(memory_order_release);
}

void afe_ipc_slots_attach(struct afe_ipc_slots *r, struct afe_ipc_slot *slots, uint32_t n)
{
	r->slots = slots;
	r->mask = n - 1;
	atomic_init(&r->cursor, 0);
}

/*
 * Whether a sequence number diff behind what a claim wants (diff < 0) is one
 * the two processes can leave there: the ring is full or empty, or a
 * thread of ours is half-way through the slot's previous lap. A writer at
 * p finds p - n (a writer of ours fills it) or p - n + 1 (unread); a
 * reader at p (ahead 1, diff counted from p + 1) finds p (not written yet)
 * or p - n + 1 (a reader of ours copies it out). Any other value behind
 * was written by neither side's rules: no claim would ever take the slot.
 */
static bool plausibly_behind(int64_t diff, uint64_t ahead, uint32_t n)
{
	return diff == -(int64_t)n || diff == (ahead ? -1 : 1 - (int64_t)n);
}

/*
 * Claims the slot at the cursor once its sequence number is pos + ahead
 * (ahead 0 for a writer: freed; 1 for a reader: published). -EAGAIN when it
 * is behind as a full (empty) ring leaves it. When it is ahead, another
 * thread of ours claimed it and moved the cursor on; if the cursor did not
 * move, or the slot is behind by a value no claim explains, the other
 * process (or a third) wrote a sequence number of its own: -EPROTO, with
 * *pos set to the slot, claimed, so that a reader can drop it.
 */
static int claim(struct afe_ipc_slots *r, uint64_t ahead, uint64_t *pos)
{
	uint64_t p = atomic_load_explicit(&r->cursor, memory_order_relaxed);
	for (;;) {
		struct afe_ipc_slot *slot = &r->slots[p & r->mask];
		uint64_t seq = atomic_load_explicit(&slot->seq, memory_order_acquire);
		int64_t diff = (int64_t)(seq - (p + ahead));
		if (diff < 0 && plausibly_behind(diff, ahead, r->mask + 1))
			return -EAGAIN;
		if (diff == 0) {
			if (atomic_compare_exchange_weak_explicit(&r->cursor, &p, p + 1,
								  memory_order_relaxed,
								  memory_order_relaxed)) {
				*pos = p;
				return 0;
			}
			continue;
		}
		uint64_t now = atomic_load_explicit(&r->cursor, memory_order_relaxed);
		if (now != p) {
			p = now;
			continue;
		}
		if (atomic_compare_exchange_strong_explicit(&r->cursor, &p, p + 1,
							    memory_order_relaxed,
							    memory_order_relaxed)) {
			*pos = p;
			return -EPROTO;
		}
	}
}

int afe_ipc_slots_push(struct afe_ipc_slots *r, const struct afe_ipc_frame *f, const void *payload)
{
	if (f->len > AFE_IPC_MAX_PAYLOAD)
		return -EMSGSIZE;
	uint64_t pos;
	int err = claim(r, 0, &pos);
	if (err == -EPROTO)
		return -EPROTO; /* the slot stays claimed: the ring is spoilt from here */
	if (err < 0)
		return err;
	struct afe_ipc_slot *slot = &r->slots[pos & r->mask];
	slot->frame = *f;
	if (f->len)
		memcpy(slot->payload, payload, f->len);
	atomic_store_explicit(&slot->seq, pos + 1, memory_order_release);
	return 0;
}

int afe_ipc_slots_pop(struct afe_ipc_slots *r, struct afe_ipc_frame *f, void *payload)
{
	uint64_t pos;
	int err = claim(r, 1, &pos);
	if (err == -EAGAIN)
		return err;
	struct afe_ipc_slot *slot = &r->slots[pos & r->mask];
	if (err == 0) {
		/* Check a private copy: the writer may still scribble on the slot. */
		*f = slot->frame;
		err = afe_ipc_frame_check(f) == 0 ? 0 : -EBADMSG;
		if (err == 0)
			memcpy(payload, slot->payload, f->len);
	}
	atomic_store_explicit(&slot->seq, pos + r->mask + 1, memory_order_release);
	return err;
}

/* Whether a claim at the cursor would not return -EAGAIN. */
static bool claimable(struct afe_ipc_slots *r, uint64_t ahead)
{
	uint64_t p = atomic_load_explicit(&r->cursor, memory_order_relaxed);
	uint64_t seq = atomic_load_explicit(&r->slots[p & r->mask].seq, memory_order_acquire);
	int64_t diff = (int64_t)(seq - (p + ahead));
	return diff >= 0 || !plausibly_behind(diff, ahead, r->mask + 1);
}

bool afe_ipc_slots_has_room(struct afe_ipc_slots *r)
{
	return claimable(r, 0);
}

bool afe_ipc_slots_has_frame(struct afe_ipc_slots *r)
{
	return claimable(r, 1);
}
