/* SPDX-License-Identifier: MIT */
/* The table of live join-handle stamps: see handle_stamps.h. Compiled in
 * every build; only debug builds call it. */
#undef NDEBUG
#include "handle_stamps.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>

#define BUCKETS 1024u

struct stamp {
	struct stamp *next;
	const struct afe_task *task;
	uint32_t value;
};

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static struct stamp *buckets[BUCKETS];
static uint32_t last_issued; /* under lock */

/* Where t's entry is, or would be linked. Caller holds lock. */
static struct stamp **find(const struct afe_task *t)
{
	struct stamp **p = &buckets[((uintptr_t)t >> 4) % BUCKETS];
	while (*p && (*p)->task != t)
		p = &(*p)->next;
	return p;
}

uint32_t afe__handle_stamp_issue(const struct afe_task *t)
{
	pthread_mutex_lock(&lock);
	struct stamp **p = find(t);
	if (!*p) {
		*p = calloc(1, sizeof(**p));
		if (!*p) {
			pthread_mutex_unlock(&lock);
			return 0;
		}
		(*p)->task = t;
	}
	if (++last_issued == 0)
		++last_issued; /* 0 means not tracked */
	uint32_t value = (*p)->value = last_issued;
	pthread_mutex_unlock(&lock);
	return value;
}

bool afe__handle_stamp_is_live(const struct afe_join_handle *h, const char *fn)
{
	if (h->stamp == 0)
		return true;
	pthread_mutex_lock(&lock);
	struct stamp *s = *find(h->task);
	bool live = s && s->value == h->stamp;
	pthread_mutex_unlock(&lock);
	if (!live)
		fprintf(stderr,
			"afe: %s was given a copy of a join handle (task %p) that was already "
			"joined, cancelled or dropped through another copy: refused with -EINVAL "
			"(a handle must not be copied; its task may be freed)\n",
			fn, (const void *)h->task);
	return live;
}

void afe__handle_stamp_retire(const struct afe_join_handle *h)
{
	if (h->stamp == 0)
		return;
	pthread_mutex_lock(&lock);
	struct stamp **p = find(h->task);
	struct stamp *s = *p;
	if (s && s->value == h->stamp)
		*p = s->next;
	else
		s = NULL;
	pthread_mutex_unlock(&lock);
	free(s);
}
