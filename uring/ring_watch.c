/* SPDX-License-Identifier: MIT */
/* The ring's half of a watch (pool/watch.h): whether the ring can wait on
 * a futex word, and the wait itself. Here, above the pool, so that the
 * pool calls nothing of the I/O layer it did not declare itself. */
#include "../pool/watch.h"

#include "../pool/pool.h"
#include "afe/runtime.h"

bool afe__watch_ring_waits(const struct afe_pool *p)
{
	return afe_runtime_uring_features(p->owner) & AFE_URING_FUTEX;
}

void afe__watch_ring_wait_init(struct afe_io *io, const _Atomic uint32_t *word, uint32_t value,
			       unsigned flags)
{
	afe_io_futex_wait_init(io, word, value, flags);
}
