/* SPDX-License-Identifier: MIT */
/*
 * The bell sleep's hand-on of wants met before it slept (a producer's
 * pump: room freed before it wanted room). It withdraws its wants, wakes
 * the waiters for room, and publishes the rest anew. A caller that finds
 * no room in that window counts itself and looks at the bell's wants:
 * withdrawn, so it rings nobody. The sleep must then look again, not
 * sleep without wanting room: that caller would wait until some reply
 * happened to wake the pump.
 */
#include "helpers.h"
#include "src/ipc/ipc_bell_sleep.h"
#include "src/ipc/ipc_internal.h"
#include "src/sync/notify_internal.h"

/* A pump with room always free, and one more caller that comes for room
 * while the woken ones are told (from inside on_met). */
struct room_pump {
	struct afe_ipc_bell bell;
	struct afe_notify room;
	_Atomic uint32_t room_waiters;
	struct afe_context *cx; /* of the poll in progress */
	bool first_waiting, late_waiting;
	struct afe_notified first, late;
	int late_armed;
};

static uint32_t pump_wants(void *pump)
{
	struct room_pump *p = pump;
	return afe_ipc_pump_wants(0, atomic_load(&p->room_waiters));
}

static bool pump_has_work(void *pump)
{
	(void)pump;
	return false;
}

static uint32_t pump_before_sleep(void *pump, uint32_t wants)
{
	(void)pump;
	return wants & AFE_IPC_WANT_ROOM; /* room is free */
}

static void pump_on_met(void *pump, uint32_t met)
{
	struct room_pump *p = pump;
	cr_assert_eq(met, AFE_IPC_WANT_ROOM);
	afe_notify_all(&p->room);
	/* The caller that comes now: no room for it (say), so it waits. */
	if (!p->late_armed++)
		(void)afe_ipc_wait(&p->late_waiting, &p->late, &p->room, &p->room_waiters,
				   &p->bell, AFE_IPC_WANT_ROOM, p->cx);
}

static bool pump_met_wanted_again(void *pump, uint32_t met)
{
	(void)met;
	return afe__notify_has_waiters(&((struct room_pump *)pump)->room);
}

static const struct afe_ipc_bell_sleep_ops room_pump_ops = {
	.wants = pump_wants,
	.has_work = pump_has_work,
	.before_sleep = pump_before_sleep,
	.on_met = pump_on_met,
	.met_wanted_again = pump_met_wanted_again,
};

/* Sleeps once; its result: AFE_READY when the sleep ended at its first
 * poll (it looked again), AFE_PENDING when it went to sleep. */
struct one_sleep {
	struct afe_future base;
	struct room_pump *p;
	struct afe_ipc_bell_sleep sleep;
	int first_poll;
};

static int one_sleep_poll(struct afe_future *f, struct afe_context *cx)
{
	struct one_sleep *self = afe_container_of(f, struct one_sleep, base);
	struct room_pump *p = self->p;
	p->cx = cx;
	if (self->first_poll < 0) {
		/* A caller already waits for room: the pump wants room. */
		(void)afe_ipc_wait(&p->first_waiting, &p->first, &p->room, &p->room_waiters,
				   &p->bell, AFE_IPC_WANT_ROOM, cx);
		afe_ipc_bell_sleep_init(&self->sleep, &p->bell, 1, &room_pump_ops, p);
		self->first_poll = afe_future_poll(&self->sleep.base, cx);
		if (self->first_poll == AFE_PENDING) {
			cr_assert_eq(atomic_load(&p->bell.wants) & AFE_IPC_WANT_ROOM, 0,
				     "asleep wanting room: the late caller would ring");
			afe_ipc_bell_ring(&p->bell, AFE_IPC_WANT_ANY); /* end it */
		}
	}
	if (self->first_poll == AFE_PENDING && afe_future_poll(&self->sleep.base, cx) == AFE_PENDING)
		return AFE_PENDING;
	afe_ipc_wait_end(&p->first_waiting, &p->first, &p->room_waiters, cx);
	afe_ipc_wait_end(&p->late_waiting, &p->late, &p->room_waiters, cx);
	f->result = self->first_poll;
	return AFE_READY;
}

Test(ipc_bell_sleep, a_caller_for_room_that_comes_while_room_is_handed_on_is_not_slept_through)
{
	struct afe_runtime *rt = test_runtime(1);
	struct room_pump p = {0};
	afe_notify_init(&p.room);
	struct one_sleep s = {.p = &p, .first_poll = -1};
	afe_future_init(&s.base, one_sleep_poll);
	cr_assert_eq(test_block_on(rt, &s), AFE_READY,
		     "the sleep slept without room while a caller waited for room");
	cr_assert_eq(p.late_armed, 1);
	cr_assert_eq(atomic_load(&p.room_waiters), 0);
	test_runtime_destroy(rt);
}
