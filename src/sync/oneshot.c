/* SPDX-License-Identifier: MIT */
/* The oneshot. Every field is guarded by the spinlock; a waker taken out
 * under it is woken after unlocking, so the sender never touches the
 * oneshot after the receiver could have seen the value. */
#include "afe/oneshot.h"

#include "../../pool/spinlock.h"
#include "waitq.h"

enum { EMPTY, SENT, SENDER_CLOSED, RECEIVER_CLOSED, TAKEN };

void afe_oneshot_init(struct afe_oneshot *o)
{
	atomic_flag_clear(&o->lock);
	o->state = EMPTY;
	o->value = 0;
	o->receiver.vtable = NULL;
	o->receiver.data = NULL;
}

/* Moves the oneshot from EMPTY to next, returning the receiver's waker. */
static int finish_sending(struct afe_oneshot *o, unsigned char next, intptr_t value)
{
	struct afe_waker waker = {0};
	int err = 0;
	afe_spin_lock(&o->lock);
	if (o->state == RECEIVER_CLOSED) {
		err = -EPIPE;
	} else if (o->state != EMPTY) {
		err = -EALREADY;
	} else {
		o->value = value;
		o->state = next;
		waker = afe_waker_take(&o->receiver);
	}
	afe_spin_unlock(&o->lock);
	afe_waker_wake_if_set(&waker);
	return err;
}

int afe_oneshot_send(struct afe_oneshot *o, intptr_t value)
{
	if (!o)
		return -EINVAL;
	return finish_sending(o, SENT, value);
}

int afe_oneshot_close_sender(struct afe_oneshot *o)
{
	if (!o)
		return -EINVAL;
	int err = finish_sending(o, SENDER_CLOSED, -EPIPE);
	return err == -EPIPE ? -EALREADY : err;
}

/*
 * A receive that is a select's branch claims the race before it takes the
 * value, and when withdrawn as a losing branch leaves the oneshot as it
 * is: open, and holding a value that arrived, for the next receive.
 * Cancelled otherwise it closes the receiving end: outside a select it
 * still takes a value that arrived (and reports it); cancelled with its
 * select, whose result then is -ECANCELED, it discards it.
 */
static int recv_poll(struct afe_future *f, struct afe_context *cx)
{
	struct afe_oneshot *o = afe_container_of(f, struct afe_oneshot_recv, base)->oneshot;
	struct afe_race *race = afe_race_of(cx, f);
	struct afe_waker stale = {0};
	int ready = AFE_PENDING;
	if (!o) {
		f->result = -EINVAL;
		return AFE_READY;
	}
	afe_spin_lock(&o->lock);
	bool has_value = o->state == SENT || o->state == SENDER_CLOSED;
	if (cx->cancel && race) {
		if (!race->withdrawing)
			o->state = RECEIVER_CLOSED; /* with a value: it is discarded */
		f->result = -ECANCELED;
		ready = AFE_READY;
	} else if (has_value) {
		if (afe_race_claim(race, race ? race->index : 0)) {
			f->result = o->value;
			o->state = TAKEN;
			ready = AFE_READY;
		}
	} else if (cx->cancel || o->state != EMPTY) {
		o->state = RECEIVER_CLOSED;
		f->result = cx->cancel ? -ECANCELED : -EPIPE;
		ready = AFE_READY;
	} else if (!o->receiver.vtable || !afe_waker_will_wake(&o->receiver, cx->waker)) {
		stale = o->receiver;
		afe_waker_clone(&o->receiver, cx->waker);
	}
	if (ready == AFE_READY) {
		stale = afe_waker_take(&o->receiver);
	}
	afe_spin_unlock(&o->lock);
	afe_waker_drop(&stale); /* may free a task: never under the lock */
	return ready;
}

void afe_oneshot_recv_init(struct afe_oneshot_recv *r, struct afe_oneshot *o)
{
	afe_future_init(&r->base, recv_poll);
	r->oneshot = o;
}
