/* SPDX-License-Identifier: MIT */
/* The task each side runs to learn, through a pidfd or, without pidfds,
 * by looking at its pid now and then, that its peer process died: see
 * ipc_peer_watch.h. */
#define _GNU_SOURCE
#include <poll.h>
#include <unistd.h>

#include "ipc_peer_watch.h"
#include "ipc_shm.h"
#include "../core/runtime_internal.h"

struct peer_watch {
	struct afe_future base;
	struct afe_runtime *rt;
	int pidfd; /* -1: watched by pid */
	bool close_pidfd;
	pid_t pid;
	uint64_t start; /* pid's start time (afe_ipc_process_start), or 0 */
	_Atomic bool *died;
	struct afe_ipc_bell *bell;
	struct afe_notify *kick;
	void (*release)(void *owner);
	void *owner;
	struct afe_io poll;
	struct afe_sleep nap; /* by pid: until the next look */
};

static void report_death(struct peer_watch *self)
{
	/* seq_cst: pairs with the owner's look at died after the kick or
	 * the bell below (the consumer's sync_peers and roster_changed, the
	 * producer's consumer_gone); not weakened. */
	atomic_store_explicit(self->died, true, memory_order_seq_cst);
	if (self->kick)
		afe_notify_one(self->kick);
	else
		afe_ipc_bell_ring(self->bell, AFE_IPC_WANT_ANY);
}

static int peer_watch_poll(struct afe_future *f, struct afe_context *cx)
{
	struct peer_watch *self = afe_container_of(f, struct peer_watch, base);
	AFE_ASYNC_BEGIN(f, cx);
	if (self->pidfd >= 0) {
		afe_io_poll_init(&self->poll, self->pidfd, POLLIN);
		AFE_AWAIT(&self->poll.base);
		if (self->poll.base.result > 0)
			report_death(self);
	} else {
		do {
			afe_sleep_init(&self->nap, AFE_IPC_PEER_RECHECK_NS);
			AFE_AWAIT(&self->nap.base);
		} while (self->nap.base.result == 0 &&
			 !afe_ipc_process_ended(self->pid, self->start));
		if (self->nap.base.result == 0)
			report_death(self);
	}
	AFE_CLEANUP;
	if (self->close_pidfd && self->pidfd >= 0)
		close(self->pidfd);
	afe__system_task_done(self->rt);
	self->release(self->owner);
	AFE_ASYNC_END;
}

int afe_ipc_peer_watch_start(struct afe_runtime *rt, int pidfd, pid_t pid, bool close_pidfd,
			     _Atomic bool *died, struct afe_ipc_bell *bell, struct afe_notify *kick,
			     void (*release)(void *owner), void *owner,
			     struct afe_join_handle *handle)
{
	struct peer_watch w = {.rt = rt, .pidfd = pidfd, .close_pidfd = close_pidfd, .pid = pid,
			    .died = died, .bell = bell, .kick = kick, .release = release,
			    .owner = owner};
	if (pidfd < 0)
		w.start = afe_ipc_process_start(pid);
	afe_future_init(&w.base, peer_watch_poll);
	int err = afe__spawn_system(rt, &w, handle, true);
	if (err < 0) {
		if (close_pidfd && pidfd >= 0)
			close(pidfd);
		release(owner);
	}
	return err;
}
