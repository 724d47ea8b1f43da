/* SPDX-License-Identifier: MIT */
/* What the blocking-style calls (co_calls.c) need of the coroutine layer. */
#ifndef AFE_CORO_INTERNAL_H
#define AFE_CORO_INTERNAL_H

#include <afe/blocking.h>
#include <afe/channel.h>
#include <afe/combinators.h>
#include <afe/io.h>
#include <afe/mutex.h>
#include <afe/net.h>
#include <afe/socket.h>
#include <afe/semaphore.h>
#include <afe/sleep.h>
#include <afe/token.h>

/*
 * Where a call keeps the future it awaits: in the coroutine's control
 * block, not on its stack. A coroutine on a shared stack is swapped out
 * while it waits, and the ring thread, a waker or the task's next poll
 * reach the future meanwhile: it must stay where they look. One call
 * waits at a time, so one slot serves them all.
 */
union afe__co_slot {
	struct afe_io io;
	struct afe_sleep sleep;
	struct afe_send_all send_all;
	struct afe_chan_send chan_send;
	struct afe_chan_recv chan_recv;
	struct afe_mutex_lock lock;
	struct afe_sem_acquire acquire;
	struct afe_token_wait token;
	struct afe_blocking job;
	struct afe_token_until until;
};

/* The calling coroutine's slot; NULL outside a coroutine. */
union afe__co_slot *afe__co_slot(void);

/* Whether [buf, buf + len) lies on the calling coroutine's stack while it
 * is a shared one: memory that is not in place while the coroutine waits,
 * so no operation may use it then (the kernel would write into another
 * coroutine's frames). */
bool afe__co_on_shared_stack(const void *buf, size_t len);

#endif /* AFE_CORO_INTERNAL_H */
