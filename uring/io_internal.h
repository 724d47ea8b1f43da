/* SPDX-License-Identifier: MIT */
/* Between the operation futures (io.c) and the ring thread (ring.c). */
#ifndef AFE_URING_IO_INTERNAL_H
#define AFE_URING_IO_INTERNAL_H

#include <stdbool.h>

#include "afe/io.h"
#include "../pool/pool.h"
#include "../pool/worker.h"

/*
 * Ring thread: every completion of io arrived (io->completed). Publishes
 * the result and wakes the poller, after which the ring thread must not
 * touch io. Returns false, doing nothing, while a cancel request the
 * poller queued has not been taken yet; the ring thread calls it again
 * when it takes that request.
 */
bool afe__io_finish(struct afe_io *io);

/* IORING_OP_FTRUNCATE (Linux 6.9), for afe_io_ftruncate (fs.c): only on a
 * runtime with AFE_URING_FTRUNCATE. */
void afe__io_ftruncate_init(struct afe_io *io, int fd, int64_t length);

/* Whether this thread is the ring thread running woken tasks itself (in a
 * pool, on no worker): an operation that would hold it (a write that
 * waits, a splice) moves its task to a worker first, by giving way. */
static inline bool afe__io_on_the_ring_thread(void)
{
	return afe_pool_current() && !afe_worker_current();
}

#endif /* AFE_URING_IO_INTERNAL_H */
