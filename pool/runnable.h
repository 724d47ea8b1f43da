/* SPDX-License-Identifier: MIT */
/*
 * What the pool needs of a task, and nothing more: a link to queue it by,
 * a way to poll it once, and a way to drop it unpolled. The core's task
 * (src/core/task_internal.h) embeds a struct afe_runnable and implements
 * the two functions below, so the pool never sees a task's layout and the
 * includes go one way, as with Tokio's Schedule trait: the lower layer
 * states the interface, the upper one fulfils it.
 */
#ifndef AFE_POOL_RUNNABLE_H
#define AFE_POOL_RUNNABLE_H

struct afe_worker_counters;

struct afe_runnable {
	/* The link of the injection queue and of the held-back wakes; owned
	 * by whichever of them holds the runnable. */
	struct afe_runnable *next;
};

/* Polls r once, counting it in counters (its worker's, or the ring
 * thread's); r was taken from a queue, which held a reference. Queues it
 * again if it was woken while it ran. Implemented by the core. */
void afe__runnable_run(struct afe_runnable *r, struct afe_worker_counters *counters);

/* Drops the queue's reference of an r that will never run (its runtime
 * is destroyed). Implemented by the core. */
void afe__runnable_discard(struct afe_runnable *r);

#endif /* AFE_POOL_RUNNABLE_H */
