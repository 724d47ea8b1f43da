/* SPDX-License-Identifier: MIT */
/* The peer watch: the task each side of a shared-memory link runs to
 * learn that the process at the other end died (ipc_peer_watch.c). */
#ifndef AFE_IPC_PEER_WATCH_H
#define AFE_IPC_PEER_WATCH_H

#include <afe.h>
#include <stdbool.h>
#include <sys/types.h>

#include "ipc_bell.h"

/* How often a peer watched without a pidfd is looked at (a read of its
 * /proc/<pid>/stat): its death is seen within this long. */
#define AFE_IPC_PEER_RECHECK_NS (250 * 1000000ull)

/*
 * Spawns a child task (handle: dropping it cancels the task) that waits
 * on pidfd, or with pidfd -1 (pidfds missing) looks at process pid every
 * AFE_IPC_PEER_RECHECK_NS (afe_ipc_process_ended, with its start time
 * taken now): when the process exits it sets *died and, with kick NULL,
 * rings bell with AFE_IPC_WANT_ANY; else it notifies kick instead (a
 * sleeper that must hear of it whatever a peer wrote into the bell's
 * wants, see afe_ipc_consumer's pump). The task holds a count of its
 * owner, taken by the caller beforehand and given back with
 * release(owner) when it ends (or at once when the spawn fails); with
 * close_pidfd, it closes pidfd then too (only once its wait is over:
 * closed under a wait still being submitted, the number could name
 * another file by then). 0 or the spawn's error.
 */
int afe_ipc_peer_watch_start(struct afe_runtime *rt, int pidfd, pid_t pid, bool close_pidfd,
			     _Atomic bool *died, struct afe_ipc_bell *bell, struct afe_notify *kick,
			     void (*release)(void *owner), void *owner,
			     struct afe_join_handle *handle);

#endif /* AFE_IPC_PEER_WATCH_H */
