/* SPDX-License-Identifier: MIT */
/*
 * A bounded channel's ring: many pushers and many poppers without a lock,
 * after D. Vyukov's bounded MPMC queue (a sequence number per cell).
 *
 * Invariants:
 * - positions count pushes (tail) and pops (head) since init; position p
 *   lives in cell p % slots. head <= tail <= head + slots.
 * - a cell's seq says whose turn it is: seq == 2p, free for the push of
 *   p; seq == 2p + 1, holds the item of p for its pop; that pop sets it to
 *   2(p + slots), free for the push one lap later. Nothing else writes it.
 *   (Doubled so that a full cell never looks free, even with one slot.)
 * - a push (pop) owns its position from the CAS that moves tail (head)
 *   past it until its release store of the cell's seq: nobody else
 *   touches that cell meanwhile. An item is thus read only after its push
 *   published it, and overwritten only after its pop copied it out.
 * - the low bits of the words (tail, head):
 *   FROZEN: the channel's lock holder took that end for itself
 *   (ring_freeze_*): a lock-free push (pop) sees the bit or fails its CAS
 *   and takes the lock instead, so the holder may look at the cell, decide
 *   (claim a select's race) and only then move the end. Only the holder
 *   writes a frozen word (apart from the other bits' RMWs, also under the
 *   lock), and thaws it before it unlocks.
 *   WAITED: a receiver (in tail) or a sender (in head) is linked, waiting
 *   for the ring to get an item (room). Set and cleared under the lock by
 *   RMWs. A push (pop) whose CAS reads it serves the waiters after it.
 *   CLOSED (tail only): set under the lock, never cleared. No push
 *   succeeds after it, so once every position below tail is popped the
 *   channel is drained for good.
 * - no wake-up is lost, by the words' modification order alone (no
 *   fence): a waiter sets WAITED with an RMW while it holds its own end
 *   frozen, and from the position that RMW reads it knows whether the
 *   other end owes it an op already under way (it waits that op out and
 *   takes what it brings, ring_settle_*), or every later op's CAS comes
 *   after its RMW and so reads WAITED.
 * - positions are 64-bit: at a billion items a second they wrap after
 *   centuries (the words keep 61 bits of them, seq 63).
 *
 * Waiting is the channel's business (channel.c): a push or pop that finds
 * the ring full or empty takes the lock. The ring only reports.
 */
#ifndef AFE_SRC_CHAN_RING_H
#define AFE_SRC_CHAN_RING_H

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "afe/channel.h"
#include "../../pool/spinlock.h"

#define RING_FROZEN ((uint64_t)1)
#define RING_WAITED ((uint64_t)2)
#define RING_CLOSED ((uint64_t)4) /* tail only */
#define RING_SHIFT 3
#define RING_ONE ((uint64_t)1 << RING_SHIFT)

/* NONE: full (empty) as of now; LOCKED: take the lock (frozen, closed);
 * OK_WAITED: done, and the other end's waiters must be served. */
enum ring_outcome { RING_OK, RING_OK_WAITED, RING_NONE, RING_LOCKED };

/* The cell of position pos: its seq, then the item. */
static inline _Atomic uint64_t *ring_seq(const struct afe_chan *ch, uint64_t pos)
{
	uint64_t i = ch->ring_mask ? pos & ch->ring_mask : pos % ch->capacity;
	return (_Atomic uint64_t *)(void *)(ch->cells + i * ch->cell_size);
}

static inline unsigned char *ring_item(_Atomic uint64_t *seq)
{
	return (unsigned char *)seq + sizeof(uint64_t);
}

/* Copies an item: memcpy, inlined for the usual sizes (a word or two). */
static inline void ring_copy(void *dst, const void *src, size_t size)
{
	if (size == sizeof(uint64_t))
		memcpy(dst, src, sizeof(uint64_t));
	else if (size == 2 * sizeof(uint64_t))
		memcpy(dst, src, 2 * sizeof(uint64_t));
	else
		memcpy(dst, src, size);
}

/* Allocates the cells of a ring of ch->capacity items of ch->item_size
 * bytes. Returns 0 or -ENOMEM. */
static inline int ring_init(struct afe_chan *ch)
{
	size_t cell = (sizeof(uint64_t) + ch->item_size + sizeof(uint64_t) - 1) &
		      ~(sizeof(uint64_t) - 1);
	if (cell < ch->item_size || ch->capacity > SIZE_MAX / cell)
		return -ENOMEM;
	ch->cells = malloc(ch->capacity * cell);
	if (!ch->cells)
		return -ENOMEM;
	ch->cell_size = cell;
	ch->ring_mask = (ch->capacity & (ch->capacity - 1)) ? 0 : ch->capacity - 1;
	for (size_t i = 0; i < ch->capacity; i++)
		atomic_init(ring_seq(ch, i), 2 * (uint64_t)i);
	atomic_init(&ch->ring_tail, 0);
	atomic_init(&ch->ring_head, 0);
	return 0;
}

/* Without the lock: copies item into the ring. RING_NONE when full (as of
 * now), RING_LOCKED when the tail is frozen or closed (take the lock),
 * RING_OK_WAITED when receivers wait (serve them). */
static inline enum ring_outcome ring_push(struct afe_chan *ch, const void *item)
{
	/* Relaxed: the word only hands out positions; the cell's seq carries
	 * the data (Vyukov). */
	uint64_t word = atomic_load_explicit(&ch->ring_tail, memory_order_relaxed);
	for (;;) {
		if (word & (RING_FROZEN | RING_CLOSED))
			return RING_LOCKED;
		uint64_t pos = word >> RING_SHIFT;
		_Atomic uint64_t *seq = ring_seq(ch, pos);
		/* Acquire: pairs with the release store of the pop that freed
		 * the cell (ring_pop, ring_take_frozen): its copy is done. */
		int64_t dif = (int64_t)(atomic_load_explicit(seq, memory_order_acquire) - 2 * pos);
		if (dif < 0)
			return RING_NONE;
		if (dif > 0) { /* another push took pos: look again */
			word = atomic_load_explicit(&ch->ring_tail, memory_order_relaxed);
			continue;
		}
		/* Relaxed: only the word's modification order matters (see the
		 * invariants): this CAS fails on a freeze, a close or a mark,
		 * which change the word, and reads every earlier one. */
		if (atomic_compare_exchange_weak_explicit(&ch->ring_tail, &word, word + RING_ONE,
							  memory_order_relaxed,
							  memory_order_relaxed)) {
			ring_copy(ring_item(seq), item, ch->item_size);
			/* Release: pairs with the acquire load of the pop of pos. */
			atomic_store_explicit(seq, 2 * pos + 1, memory_order_release);
			return word & RING_WAITED ? RING_OK_WAITED : RING_OK;
		}
	}
}

/* Without the lock: takes the oldest item into out. RING_NONE when empty
 * (as of now), RING_LOCKED when the head is frozen, RING_OK_WAITED when
 * senders wait (serve them). */
static inline enum ring_outcome ring_pop(struct afe_chan *ch, void *out)
{
	/* Relaxed: as in ring_push. */
	uint64_t word = atomic_load_explicit(&ch->ring_head, memory_order_relaxed);
	for (;;) {
		if (word & RING_FROZEN)
			return RING_LOCKED;
		uint64_t pos = word >> RING_SHIFT;
		_Atomic uint64_t *seq = ring_seq(ch, pos);
		/* Acquire: pairs with the release store of the push of pos. */
		int64_t dif =
			(int64_t)(atomic_load_explicit(seq, memory_order_acquire) - (2 * pos + 1));
		if (dif < 0)
			return RING_NONE;
		if (dif > 0) {
			word = atomic_load_explicit(&ch->ring_head, memory_order_relaxed);
			continue;
		}
		/* Relaxed: as in ring_push. */
		if (atomic_compare_exchange_weak_explicit(&ch->ring_head, &word, word + RING_ONE,
							  memory_order_relaxed,
							  memory_order_relaxed)) {
			ring_copy(out, ring_item(seq), ch->item_size);
			/* Release: pairs with the acquire load of the push one
			 * lap later (ring_push, ring_has_room). */
			atomic_store_explicit(seq, 2 * (pos + ch->capacity), memory_order_release);
			return word & RING_WAITED ? RING_OK_WAITED : RING_OK;
		}
	}
}

/* ---- under the channel's lock --------------------------------------------- */

/* Freezes an end (&ch->ring_tail or &ch->ring_head); returns its position. */
static inline uint64_t ring_freeze(_Atomic uint64_t *end)
{
	/* Relaxed: an RMW, so no lock-free op can take the position it
	 * returns (its CAS fails); the cells' seq order the data. */
	return atomic_fetch_or_explicit(end, RING_FROZEN, memory_order_relaxed) >> RING_SHIFT;
}

/* Thaws a frozen end at position pos, keeping its other bits. */
static inline void ring_thaw(_Atomic uint64_t *end, uint64_t pos)
{
	/* Relaxed: while frozen, only this lock holder writes the word. */
	uint64_t bits = atomic_load_explicit(end, memory_order_relaxed) & (RING_WAITED | RING_CLOSED);
	atomic_store_explicit(end, pos << RING_SHIFT | bits, memory_order_relaxed);
}

/* Sets (clears) WAITED on an end; returns its position. */
static inline uint64_t ring_mark_waited(_Atomic uint64_t *end)
{
	/* Relaxed: see the invariants. Every lock-free CAS after it in the
	 * word's modification order reads the bit (and its op then serves
	 * under the lock, whose acquire orders it after our linking). */
	return atomic_fetch_or_explicit(end, RING_WAITED, memory_order_relaxed) >> RING_SHIFT;
}

static inline void ring_unmark_waited(_Atomic uint64_t *end)
{
	/* Relaxed: only lock holders change the bit; a CAS that read it set
	 * only serves for nothing. The load spares the line an RMW. */
	if (atomic_load_explicit(end, memory_order_relaxed) & RING_WAITED)
		atomic_fetch_and_explicit(end, ~RING_WAITED, memory_order_relaxed);
}

/* An end's position, as of now (any thread). */
static inline uint64_t ring_pos(const _Atomic uint64_t *end)
{
	/* Relaxed: a count for reporting, or the closed tail read under the
	 * lock (it no longer moves). */
	return atomic_load_explicit(end, memory_order_relaxed) >> RING_SHIFT;
}

/* True when the frozen tail at pos has a free cell. */
static inline bool ring_has_room(const struct afe_chan *ch, uint64_t pos)
{
	/* Acquire: pairs with the pop's release store that freed the cell. */
	return atomic_load_explicit(ring_seq(ch, pos), memory_order_acquire) == 2 * pos;
}

/* True when the frozen head at pos has a published item. */
static inline bool ring_has_item(const struct afe_chan *ch, uint64_t pos)
{
	/* Acquire: pairs with the push's release store that published it. */
	return atomic_load_explicit(ring_seq(ch, pos), memory_order_acquire) == 2 * pos + 1;
}

/*
 * Under the lock, before freezing: false when the head (tail) has no item
 * (room) now, exactly as a freeze would have found it; true when it may
 * have one. A freeze sends lock-free ops to the lock: it is worth it only
 * when there may be something to move. A cell's seq only grows: one past
 * what the position wants means the end moved on meanwhile (maybe).
 */
static inline bool ring_peek_item(const struct afe_chan *ch)
{
	uint64_t pos = ring_pos(&ch->ring_head);
	/* Acquire: as in ring_has_item. */
	return (int64_t)(atomic_load_explicit(ring_seq(ch, pos), memory_order_acquire) -
			 (2 * pos + 1)) >= 0;
}

static inline bool ring_peek_room(const struct afe_chan *ch)
{
	uint64_t pos = ring_pos(&ch->ring_tail);
	/* Acquire: as in ring_has_room. */
	return (int64_t)(atomic_load_explicit(ring_seq(ch, pos), memory_order_acquire) -
			 2 * pos) >= 0;
}

/* Waits until ready(ch, pos): for an op at the other end that already
 * moved its word past pos and now only copies an item. It never waits
 * for anything, but its thread may be preempted: spin, then yield. */
static inline void ring_await(const struct afe_chan *ch, uint64_t pos,
			      bool (*ready)(const struct afe_chan *, uint64_t))
{
	for (unsigned spins = 0; !ready(ch, pos); spins++) {
		if (spins < 64)
			afe_cpu_relax();
		else
			sched_yield();
	}
}

/*
 * With a receiver just linked and the head frozen at pos: marks the tail
 * WAITED. If a push had already taken pos, its item is waited for: then
 * ring_has_item(pos) holds. Otherwise the ring is empty and every later
 * push reads the mark (see the invariants).
 */
static inline void ring_settle_head(struct afe_chan *ch, uint64_t pos)
{
	if (ring_mark_waited(&ch->ring_tail) != pos)
		ring_await(ch, pos, ring_has_item);
}

/* With a sender just linked and the tail frozen at pos: marks the head
 * WAITED. If a pop had already freed pos's cell, its copy is waited for:
 * then ring_has_room(pos) holds. Otherwise the ring is full and every
 * later pop reads the mark. */
static inline void ring_settle_tail(struct afe_chan *ch, uint64_t pos)
{
	if (pos - ring_mark_waited(&ch->ring_head) != ch->capacity)
		ring_await(ch, pos, ring_has_room);
}

/* Puts item into the free cell at the frozen tail pos and thaws it. */
static inline void ring_put_frozen(struct afe_chan *ch, uint64_t pos, const void *item)
{
	_Atomic uint64_t *seq = ring_seq(ch, pos);
	ring_copy(ring_item(seq), item, ch->item_size);
	/* Release: pairs with the acquire load of the pop of pos. */
	atomic_store_explicit(seq, 2 * pos + 1, memory_order_release);
	ring_thaw(&ch->ring_tail, pos + 1);
}

/* Takes the item at the frozen head pos into out and thaws it. */
static inline void ring_take_frozen(struct afe_chan *ch, uint64_t pos, void *out)
{
	_Atomic uint64_t *seq = ring_seq(ch, pos);
	ring_copy(out, ring_item(seq), ch->item_size);
	/* Release: pairs with the acquire load of the push one lap later. */
	atomic_store_explicit(seq, 2 * (pos + ch->capacity), memory_order_release);
	ring_thaw(&ch->ring_head, pos + 1);
}

/* Closes the tail for good: no push succeeds after this. */
static inline void ring_close(struct afe_chan *ch)
{
	/* Release: pairs with the acquire in ring_is_closed. A push's CAS on
	 * the old word fails after it. */
	atomic_fetch_or_explicit(&ch->ring_tail, RING_CLOSED, memory_order_release);
}

/* True once ring_close ran (any thread). */
static inline bool ring_is_closed(const struct afe_chan *ch)
{
	/* Acquire: pairs with the release in ring_close. */
	return atomic_load_explicit(&ch->ring_tail, memory_order_acquire) & RING_CLOSED;
}

#endif /* AFE_SRC_CHAN_RING_H */
