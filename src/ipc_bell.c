/* SPDX-License-Identifier: MIT */
/* Ringing a bell once the worker's burst of tasks ends: see ipc_bell.h. */
#include "ipc_bell.h"

static void ring_signal(void *bell, uint32_t what)
{
	afe_ipc_bell_ring(bell, what);
}

void afe_ipc_bell_ring_later(struct afe_ipc_bell *bell, uint32_t what, bool more,
			     const struct afe_signal_owner *owner, void *obj)
{
	afe_hold_signal(ring_signal, bell, what, more, owner, obj);
}
