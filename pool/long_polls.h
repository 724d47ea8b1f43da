/* SPDX-License-Identifier: MIT */
/*
 * The long-poll detector: a thread that notices a poll holding its thread
 * (a worker, or the ring thread running woken tasks) longer than a bound,
 * which starves every task queued behind it; usually a blocking call made
 * in a poll. Off unless asked for (afe_runtime_config.long_poll_ms or
 * $AFE_LONG_POLL_MS).
 *
 * Polling costs the threads no clock read: each counts the polls it
 * started (polled) and the polls that returned (returned). Every half
 * bound the detector reads both; a thread whose polled is ahead of
 * returned and has not moved since it was first seen so is inside one
 * poll. Past the bound the detector says so on stderr at once (so a poll
 * that never returns is reported too) and marks the poll (flagged); the
 * thread, when that poll returns, names its task and how long it held
 * the thread, while the task is still alive to be named. Its cost when on:
 * one wake of its thread per half bound.
 */
#ifndef AFE_POOL_LONG_POLLS_H
#define AFE_POOL_LONG_POLLS_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

struct afe_pool;

struct afe_long_polls {
	struct afe_pool *pool;
	uint64_t bound_ns; /* 0: off */
	pthread_t thread;
	pthread_mutex_t lock;
	pthread_cond_t stop_asked;
	bool stopping; /* under lock */
	struct afe_long_poll_seen *seen; /* per watched thread, the detector's own */
};

/* Starts the detector of p's workers and ring thread with a bound of ms
 * milliseconds (0: does nothing). 0, or -ENOMEM or a pthread_create
 * -errno. */
int afe_long_polls_start(struct afe_long_polls *lp, struct afe_pool *p, unsigned ms);

/* Stops it and waits for its thread; nothing if it never started. */
void afe_long_polls_stop(struct afe_long_polls *lp);

#endif /* AFE_POOL_LONG_POLLS_H */
