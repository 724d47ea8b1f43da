/* SPDX-License-Identifier: MIT */
/* Ringing a bell once the worker's burst of tasks ends: see ipc_bell.h. */
#include "ipc_bell.h"

static void ring_signal(void *bell, uint32_t what)
{
	afe_ipc_bell_ring(bell, what);
}

void afe_ipc_bell_ring_later(struct afe_ipc_bell *bell, uint32_t what, bool more,
			     const struct afe_burst_wake_owner *owner, void *obj)
{
	/* A glance, not a promise: the peer may fall asleep or wake just
	 * after; either way the ring goes, only sooner or later. */
	uint32_t wants = atomic_load_explicit(&bell->wants, memory_order_relaxed);
	bool asleep = (wants & what) && (wants & AFE_IPC_ASLEEP);
	afe_burst_wake_defer(ring_signal, bell, what, more,
			asleep ? AFE_IPC_HOLD_ASLEEP_POLLS : AFE_BURST_MAX_POLLS, owner, obj);
}
