/* SPDX-License-Identifier: MIT */
/*
 * A ring of fixed-size slots in memory two processes share, carrying
 * frames from the threads of one process to the threads of the other.
 *
 * Each slot has a sequence number (the scheme of Vyukov's bounded queue):
 * a writer claims position p when slot p % n holds seq p, fills it, then
 * publishes seq p + 1; a reader takes it at seq p + 1 and frees it with
 * seq p + n. A half-written slot is never read.
 *
 * The cursors (the next position to write, the next to read) live in each
 * process's private view, not in the shared memory: the other process can
 * corrupt slots, never our cursors. Of the sequence numbers behind the
 * cursor, only those of a full (empty) ring, or of a slot a thread of ours
 * is half-way through, can be there; any other value, ahead or behind, is
 * reported as -EPROTO rather than taken for a full or empty ring, which
 * would stall the ring for good. After one, the ring is spoilt: the slot
 * stays claimed and the other side may never see what went into it. It
 * never makes us read or write outside the ring.
 *
 * A frame's content (its call id, its payload) is not checked: altered
 * bytes that still form a well-formed frame are delivered as they are.
 */
#ifndef AFE_IPC_SLOTS_H
#define AFE_IPC_SLOTS_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "ipc_frame.h"

#define AFE_IPC_SLOT_SIZE 4096u

struct afe_ipc_slot {
	_Atomic uint64_t seq;
	struct afe_ipc_frame frame;
	unsigned char payload[AFE_IPC_MAX_PAYLOAD];
};
_Static_assert(sizeof(struct afe_ipc_slot) == AFE_IPC_SLOT_SIZE, "a slot is a page");

/* One process's view of a ring: the shared slots and its own cursor. */
struct afe_ipc_slots {
	struct afe_ipc_slot *slots;
	uint32_t mask;
	_Atomic uint64_t cursor; /* writer: next position to claim; reader: to take */
};

/* Sets the slots' sequence numbers for an empty ring of n (a power of two)
 * slots. Only while no other process uses the ring. */
void afe_ipc_slots_format(struct afe_ipc_slot *slots, uint32_t n);

/* A view from position 0 of a ring just formatted. */
void afe_ipc_slots_attach(struct afe_ipc_slots *r, struct afe_ipc_slot *slots, uint32_t n);

/*
 * Writes a frame (f->len payload bytes). Thread-safe among the threads of
 * the writing process. 0; -EAGAIN when the ring is full; -EMSGSIZE when
 * f->len is past AFE_IPC_MAX_PAYLOAD; -EPROTO when the reader corrupted the
 * slot's sequence number.
 */
int afe_ipc_slots_push(struct afe_ipc_slots *r, const struct afe_ipc_frame *f,
		       const void *payload);

/*
 * Takes the next frame into *f and payload (room for AFE_IPC_MAX_PAYLOAD
 * bytes). Thread-safe among the threads of the reading process. 0;
 * -EAGAIN when empty; -EBADMSG when the slot held a malformed frame, and
 * -EPROTO when it held a corrupt sequence number (the ring is spoilt): the
 * slot was dropped either way, and the next call goes on past it.
 */
int afe_ipc_slots_pop(struct afe_ipc_slots *r, struct afe_ipc_frame *f, void *payload);

/* Whether a push (writer's view) or a pop (reader's view) would not
 * return -EAGAIN now. */
bool afe_ipc_slots_has_room(struct afe_ipc_slots *r);
bool afe_ipc_slots_has_frame(struct afe_ipc_slots *r);

#endif /* AFE_IPC_SLOTS_H */
