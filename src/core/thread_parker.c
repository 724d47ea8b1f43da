/* SPDX-License-Identifier: MIT */
#include "thread_parker.h"

#include <stdatomic.h>
#include <stdlib.h>

#include "../../pool/futex.h"

struct afe_thread_parker {
	_Atomic uint32_t refs;
	_Atomic uint32_t woken; /* 1: a wake arrived since the last wait */
};

static void parker_clone(void *data)
{
	struct afe_thread_parker *p = data;
	atomic_fetch_add_explicit(&p->refs, 1, memory_order_relaxed);
}

void afe_thread_parker_release(struct afe_thread_parker *p)
{
	/* acq_rel: all uses happen before the free. */
	if (atomic_fetch_sub_explicit(&p->refs, 1, memory_order_acq_rel) == 1)
		free(p);
}

static void parker_drop(void *data)
{
	afe_thread_parker_release(data);
}

static void parker_wake_by_ref(void *data)
{
	struct afe_thread_parker *p = data;
	/* Release pairs with the acquire exchange in afe_thread_parker_wait. */
	if (atomic_exchange_explicit(&p->woken, 1, memory_order_release) == 0)
		afe_futex_wake(&p->woken, 1);
}

static void parker_wake(void *data)
{
	parker_wake_by_ref(data);
	parker_drop(data);
}

static const struct afe_waker_vtable parker_vtable = {
	.clone = parker_clone,
	.wake = parker_wake,
	.wake_by_ref = parker_wake_by_ref,
	.drop = parker_drop,
};

struct afe_thread_parker *afe_thread_parker_new(void)
{
	struct afe_thread_parker *p = malloc(sizeof(*p));
	if (!p)
		return NULL;
	atomic_init(&p->refs, 1);
	atomic_init(&p->woken, 0);
	return p;
}

struct afe_waker afe_thread_parker_waker(struct afe_thread_parker *p)
{
	return (struct afe_waker){.vtable = &parker_vtable, .data = p};
}

void afe_thread_parker_wait(struct afe_thread_parker *p)
{
	while (atomic_exchange_explicit(&p->woken, 0, memory_order_acquire) == 0)
		afe_futex_wait(&p->woken, 0, NULL);
}
