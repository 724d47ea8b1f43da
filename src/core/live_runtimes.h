/* SPDX-License-Identifier: MIT */
/*
 * The live runtimes, and the hooks through which a layer above the core
 * (the signal hub) hears of them. The core calls the hooks; it does not
 * know who registered them, so imports go one way.
 *
 * One lock, the registry's, guards the list and the hooks, and is held
 * while a hook runs: whoever sets the hooks and walks the list under it
 * misses no runtime, whether created before or after. A hook must not
 * create or destroy a runtime. In a forked child the list starts empty:
 * the parent's runtimes have no threads there.
 */
#ifndef AFE_CORE_LIVE_RUNTIMES_H
#define AFE_CORE_LIVE_RUNTIMES_H

struct afe_runtime;

struct afe__runtime_hooks {
	/* rt was created: its threads run, and it is on the list. */
	void (*started)(struct afe_runtime *rt);
	/* rt's destroy has begun: it has left the list; its ring and
	 * workers still run. */
	void (*stopping)(struct afe_runtime *rt);
};

void afe__runtimes_lock(void);
void afe__runtimes_unlock(void);

/* Sets the hooks called from now on (one set per process; NULL: none).
 * With the registry lock held. */
void afe__runtime_hooks_set_locked(const struct afe__runtime_hooks *hooks);

/* The live runtime after rt, the first when rt is NULL; NULL after the
 * last. Newest first. With the registry lock held. */
struct afe_runtime *afe__runtime_next_live(const struct afe_runtime *rt);

/* The core's side: rt joins the list and the started hook runs / rt
 * leaves it and the stopping hook runs. Each takes the registry lock. */
void afe__runtime_went_live(struct afe_runtime *rt);
void afe__runtime_leaving(struct afe_runtime *rt);

#endif /* AFE_CORE_LIVE_RUNTIMES_H */
