/* SPDX-License-Identifier: MIT */
/* The live runtimes and their hooks: see live_runtimes.h. */
#include "live_runtimes.h"

#include <pthread.h>
#include <stddef.h>

#include "runtime_internal.h"

static struct {
	pthread_mutex_t lock;
	struct afe_runtime *first; /* linked by live_next, newest first */
	const struct afe__runtime_hooks *hooks;
} live = {.lock = PTHREAD_MUTEX_INITIALIZER};

/* Held across fork, so the child's copy of the list is whole. */
static void at_fork_prepare(void)
{
	pthread_mutex_lock(&live.lock);
}

static void at_fork_parent(void)
{
	pthread_mutex_unlock(&live.lock);
}

/* The parent's runtimes have no threads in the child. The hooks stay:
 * a runtime the child creates is announced as in the parent. */
static void at_fork_child(void)
{
	live.first = NULL;
	pthread_mutex_unlock(&live.lock);
}

static pthread_once_t fork_handlers_once = PTHREAD_ONCE_INIT;

static void install_fork_handlers(void)
{
	pthread_atfork(at_fork_prepare, at_fork_parent, at_fork_child);
}

/* Every taker goes through here: the lock is fork-safe before its first
 * use, which may come from the hub before any runtime exists. */
void afe__runtimes_lock(void)
{
	pthread_once(&fork_handlers_once, install_fork_handlers);
	pthread_mutex_lock(&live.lock);
}

void afe__runtimes_unlock(void)
{
	pthread_mutex_unlock(&live.lock);
}

void afe__runtime_hooks_set_locked(const struct afe__runtime_hooks *hooks)
{
	live.hooks = hooks;
}

struct afe_runtime *afe__runtime_next_live(const struct afe_runtime *rt)
{
	return rt ? rt->live_next : live.first;
}

void afe__runtime_went_live(struct afe_runtime *rt)
{
	afe__runtimes_lock();
	rt->live_next = live.first;
	live.first = rt;
	if (live.hooks && live.hooks->started)
		live.hooks->started(rt);
	afe__runtimes_unlock();
}

void afe__runtime_leaving(struct afe_runtime *rt)
{
	afe__runtimes_lock();
	struct afe_runtime **link = &live.first;
	while (*link && *link != rt)
		link = &(*link)->live_next;
	if (*link) /* absent: created by the parent of this forked child */
		*link = rt->live_next;
	if (live.hooks && live.hooks->stopping)
		live.hooks->stopping(rt);
	afe__runtimes_unlock();
}
