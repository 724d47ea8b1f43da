/* SPDX-License-Identifier: MIT */
/*
 * A producer that reconnects (config.reconnect_wait_ms): the user's handle
 * (the front) holds a connection, a plain producer its calls run on. Once
 * that connection is gone, the next call starts a dial: a task that
 * connects again (afe_ipc_connect, waiting up to reconnect_wait_ms), then
 * makes the new connection the front's. Calls that find the connection
 * gone while a dial runs wait for it on a notify, so one dial serves every
 * caller; each takes that dial's outcome (the new connection, or its
 * error) and never waits for a second one.
 *
 * Lazy on purpose: a dead consumer costs nothing until someone calls. A
 * call in flight on a connection that goes ends with -EPIPE, as on a plain
 * producer: it may have run, so it is never sent again.
 *
 * Everything of the front below is under the front's lock. Closing the
 * front sets closed (then nothing starts a dial or takes the connection),
 * cancels the dial, closes the connection and wakes the waiting calls,
 * which end with -EPIPE. The front is counted by its user, its dial task
 * and each call waiting for a dial.
 */
#include <errno.h>
#include <stdio.h>

#include "ipc_producer.h"
#include "../core/runtime_internal.h"

struct afe_ipc_redial {
	char name[AFE_IPC_NAME_MAX + 1];
	/* Each dial's: waits reconnect_wait_ms; the connection it makes is
	 * a plain producer, given the front's timeouts. */
	struct afe_ipc_producer_config config;
	struct afe_ipc_producer *conn; /* counted; NULL while a dial runs or after one failed */
	bool dialing;
	uint64_t dials_ended;
	int dial_err; /* what the last dial that ended gave */
	uint64_t reconnects;
	struct afe_join_handle dialer; /* the last dial task: a child handle */
	struct afe_ipc_stats past;     /* of the connections dropped */
	struct afe_notify dialed;      /* every waiter woken when a dial ends, and at close */
};

static bool front_closed(struct afe_ipc_producer *front)
{
	/* seq_cst: pairs with afe_ipc_producer_close's store, made before
	 * redial_close takes the lock this is read under. */
	return atomic_load_explicit(&front->closed, memory_order_seq_cst);
}

static bool conn_live(struct afe_ipc_producer *conn)
{
	return conn && !conn->link->gone(conn);
}

/* Adds what conn counted to *to. */
static void add_stats(struct afe_ipc_stats *to, const struct afe_ipc_producer *conn)
{
	struct afe_ipc_stats s;
	afe_ipc_producer_stats(conn, &s);
	to->calls += s.calls;
	to->replies += s.replies;
	to->late_replies += s.late_replies;
	to->malformed += s.malformed;
	to->timeouts += s.timeouts;
	to->repairs += s.repairs;
}

/* ---- the dial task ---------------------------------------------------------- */

struct dial {
	struct afe_future base;
	struct afe_ipc_producer *front, *conn;
	struct afe_ipc_connect connect;
};

/* The dial ended with err (conn made when 0): the front takes conn, or
 * (closed meanwhile) it is closed; the waiting calls are woken. */
static void dial_end(struct afe_ipc_producer *front, int err, struct afe_ipc_producer *conn)
{
	struct afe_ipc_redial *r = front->redial;
	struct afe_ipc_producer *unwanted = NULL;
	pthread_mutex_lock(&front->lock);
	if (err == 0 && front_closed(front)) {
		unwanted = conn;
		err = -EPIPE;
	} else if (err == 0) {
		/* Before any call can see it: calls read them under conn's
		 * lock, after taking conn under this one. */
		memcpy(conn->timeout_ms, front->timeout_ms, sizeof(conn->timeout_ms));
		r->conn = conn;
		r->reconnects++;
	}
	r->dialing = false;
	r->dials_ended++;
	r->dial_err = err;
	pthread_mutex_unlock(&front->lock);
	if (unwanted)
		afe_ipc_producer_close(unwanted);
	afe_notify_all(&r->dialed);
}

static int dial_poll(struct afe_future *f, struct afe_context *cx)
{
	AFE_ASYNC_BEGIN_SELF(struct dial, self, f, cx);
	afe_ipc_connect_init(&self->connect, &self->conn, self->front->rt,
			     self->front->redial->name, &self->front->redial->config);
	AFE_AWAIT(&self->connect.base);
	AFE_RETURN(self->connect.base.result);
	AFE_CLEANUP;
	/* Cancelled (the front closed), perhaps before connect began. */
	dial_end(self->front,
		 afe_future_is_done(&self->connect.base) ? (int)self->connect.base.result
							 : -ECANCELED,
		 self->conn);
	afe__system_task_done(self->front->rt);
	afe__ipc_producer_unref(self->front);
	AFE_ASYNC_END;
}

/* Starts a dial. With the front's lock held: 0 or the spawn's error. */
static int dial_start(struct afe_ipc_producer *front)
{
	struct afe_ipc_redial *r = front->redial;
	struct dial d = {.front = front};
	afe_future_init(&d.base, dial_poll);
	afe_join_handle_drop(&r->dialer); /* the last one's: it ended */
	afe__ipc_producer_ref(front);	  /* the dial's */
	int err = afe__spawn_system(front->rt, &d, &r->dialer, true);
	if (err < 0)
		afe__ipc_producer_unref(front); /* never the last: the user's stays */
	else
		r->dialing = true;
	return err;
}

/* ---- the calls --------------------------------------------------------------- */

/* Ends the call's wait for a dial, with its count of the front. */
void afe__ipc_redial_stop_waiting(struct afe_ipc_call *call, const struct afe_context *cx)
{
	if (!call->waiting_dial)
		return;
	afe_ipc_withdraw(&call->dialed.base, cx);
	call->waiting_dial = false;
	afe__ipc_producer_unref(call->producer);
}

int afe__ipc_redial_poll(struct afe_ipc_call *call, struct afe_context *cx, int *err)
{
	struct afe_ipc_producer *front = call->producer, *dead = NULL;
	struct afe_ipc_redial *r = front->redial;
	if (call->waiting_dial && afe_future_poll(&call->dialed.base, cx) == AFE_PENDING)
		return AFE_PENDING;
	int ready = AFE_READY;
	*err = 0;
	pthread_mutex_lock(&front->lock);
	if (front_closed(front)) {
		*err = -EPIPE;
	} else if (conn_live(r->conn)) {
		call->conn = r->conn;
		afe__ipc_producer_ref(call->conn);
	} else if (call->waiting_dial && r->dials_ended != call->dials_seen) {
		/* The dial it waited for ended: its error, or the connection
		 * it made went too. */
		*err = r->dial_err < 0 ? r->dial_err : -EPIPE;
	} else {
		if (!r->dialing) {
			dead = r->conn; /* its calls ended, or end with -EPIPE */
			r->conn = NULL;
			if (dead)
				add_stats(&r->past, dead);
			*err = dial_start(front);
		}
		if (*err == 0) {
			if (!call->waiting_dial) {
				call->waiting_dial = true;
				call->dials_seen = r->dials_ended;
				afe__ipc_producer_ref(front); /* the wait's */
			}
			/* Armed before the unlock: dial_end notifies after it. */
			afe_ipc_wait_arm(&call->dialed, &r->dialed, cx);
			ready = AFE_PENDING;
		}
	}
	pthread_mutex_unlock(&front->lock);
	if (dead)
		afe_ipc_producer_close(dead);
	if (ready == AFE_READY)
		afe__ipc_redial_stop_waiting(call, cx);
	return ready;
}

/* ---- the front ---------------------------------------------------------------- */

bool afe__ipc_redial_gone(struct afe_ipc_producer *front)
{
	pthread_mutex_lock(&front->lock);
	bool gone = front_closed(front) || !conn_live(front->redial->conn);
	pthread_mutex_unlock(&front->lock);
	return gone;
}

void afe__ipc_redial_stats(struct afe_ipc_producer *front, struct afe_ipc_stats *out)
{
	struct afe_ipc_redial *r = front->redial;
	pthread_mutex_lock(&front->lock);
	*out = r->past;
	if (r->conn)
		add_stats(out, r->conn);
	out->reconnects = r->reconnects;
	pthread_mutex_unlock(&front->lock);
}

/* Calls never run on the front itself: it has no table. */
static int front_send(struct afe_ipc_producer *front, const struct afe_ipc_call *call)
{
	(void)front, (void)call;
	return -EPIPE;
}

static void front_sent(struct afe_ipc_producer *front)
{
	(void)front;
}

static bool front_gone(struct afe_ipc_producer *front)
{
	return afe__ipc_redial_gone(front);
}

/* After closed was set: nothing starts a dial or takes conn from now. */
static void front_close(struct afe_ipc_producer *front)
{
	struct afe_ipc_redial *r = front->redial;
	pthread_mutex_lock(&front->lock);
	struct afe_ipc_producer *conn = r->conn;
	r->conn = NULL;
	struct afe_join_handle dialer = r->dialer;
	memset(&r->dialer, 0, sizeof(r->dialer));
	pthread_mutex_unlock(&front->lock);
	afe_join_handle_drop(&dialer); /* a child handle: cancels a dial under way */
	if (conn)
		afe_ipc_producer_close(conn);
	afe_notify_all(&r->dialed);
}

static void front_free(struct afe_ipc_producer *front)
{
	afe_notify_destroy(&front->redial->dialed);
	free(front->redial);
}

static const struct afe_ipc_link_ops front_link = {
	.send = front_send,
	.sent = front_sent,
	.gone = front_gone,
	.close = front_close,
	.free = front_free,
};

int afe__ipc_redial_wrap(struct afe_ipc_producer **p, const char *name,
			 const struct afe_ipc_producer_config *config)
{
	struct afe_ipc_producer *conn = *p;
	struct afe_ipc_producer *front = afe__ipc_producer_new(conn->rt, config, false);
	struct afe_ipc_redial *r = calloc(1, sizeof(*r));
	if (!front || !r) {
		free(r);
		if (front)
			afe__ipc_producer_unref(front);
		afe_ipc_producer_close(conn);
		return -ENOMEM;
	}
	snprintf(r->name, sizeof(r->name), "%s", name);
	r->config = *config;
	r->config.connect_wait_ms = config->reconnect_wait_ms;
	r->config.reconnect_wait_ms = 0;
	r->config.timeouts = NULL; /* the front's table, copied into each connection */
	r->config.n_timeouts = 0;
	r->conn = conn;
	afe_notify_init(&r->dialed);
	front->redial = r;
	front->link = &front_link;
	*p = front;
	return 0;
}
