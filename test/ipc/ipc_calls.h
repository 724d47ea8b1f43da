/* SPDX-License-Identifier: MIT */
/* For the call tests: futures that make calls of the calc functions, and
 * a callback that records a stream of replies. */
#ifndef AFE_TEST_IPC_CALLS_H
#define AFE_TEST_IPC_CALLS_H

#include "../examples/ipc_calc.h"
#include "helpers.h"

/* Awaits a call armed elsewhere (the call stays where it is). */
struct await_call {
	struct afe_future base;
	struct afe_ipc_call *call;
};

static int await_call_poll(struct afe_future *f, struct afe_context *cx)
{
	struct await_call *self = afe_container_of(f, struct await_call, base);
	AFE_ASYNC_BEGIN(f, cx);
	AFE_AWAIT(&self->call->base);
	AFE_RETURN(self->call->base.result);
	AFE_ASYNC_END;
}

/* Runs an armed call to its end on rt; returns its result. */
static inline intptr_t run_call(struct afe_runtime *rt, struct afe_ipc_call *call)
{
	struct await_call a = {.call = call};
	afe_future_init(&a.base, await_call_poll);
	intptr_t r = -12345;
	cr_assert_eq(afe_block_on(rt, &a, &r), 0);
	return r;
}

/* A task making n calls of add(base_value, i, 1), checking every answer:
 * 0, the first call's error, or -EBADMSG for a wrong answer. */
struct adder {
	struct afe_future base;
	struct afe_ipc_producer *p;
	int64_t base_value, sum;
	int i, n;
	struct afe_ipc_call call;
};

static inline int adder_poll(struct afe_future *f, struct afe_context *cx)
{
	struct adder *self = afe_container_of(f, struct adder, base);
	AFE_ASYNC_BEGIN(f, cx);
	afe_ipc_call_init(&self->call, self->p);
	for (self->i = 0; self->i < self->n; self->i++) {
		add_call(&self->call, self->base_value, self->i, 1);
		AFE_AWAIT(&self->call.base);
		if (self->call.base.result < 0)
			AFE_RETURN(self->call.base.result);
		if (add_result(&self->call, &self->sum) < 0 ||
		    self->sum != self->base_value + self->i + 1)
			AFE_RETURN(-EBADMSG);
	}
	afe_ipc_call_release(&self->call);
	AFE_RETURN(0);
	AFE_ASYNC_END;
}

static inline struct adder adder_make(struct afe_ipc_producer *p, int64_t base_value, int n)
{
	struct adder a = {.p = p, .base_value = base_value, .n = n};
	afe_future_init(&a.base, adder_poll);
	return a;
}

/* One call of fn (nap or add) with argument arg, in a task. */
struct one_call {
	struct afe_future base;
	struct afe_ipc_producer *p;
	int fn;
	uint32_t arg;
	struct afe_ipc_call call;
};

static inline int one_call_poll(struct afe_future *f, struct afe_context *cx)
{
	struct one_call *self = afe_container_of(f, struct one_call, base);
	AFE_ASYNC_BEGIN(f, cx);
	afe_ipc_call_init(&self->call, self->p);
	if (self->fn == nap_ID)
		nap_call(&self->call, self->arg);
	else
		add_call(&self->call, self->arg, 0, 0);
	AFE_AWAIT(&self->call.base);
	AFE_RETURN(self->call.base.result);
	AFE_ASYNC_END;
}

static inline void spawn_call(struct afe_runtime *rt, struct afe_ipc_producer *p, int fn,
			      uint32_t arg, struct afe_join_handle *handle)
{
	struct one_call c = {.p = p, .fn = fn, .arg = arg};
	afe_future_init(&c.base, one_call_poll);
	cr_assert_eq(afe_spawn(rt, &c, handle), 0);
}

/* The count stream's replies, as the callback saw them. */
struct seen {
	uint32_t values[16];
	bool more[16];
	int n, last_status;
};

static inline void on_count(void *ctx, int status, struct afe_ipc_reader *r, bool more)
{
	struct seen *s = ctx;
	s->last_status = status;
	if (status == 0 && s->n < 16 && count_decode_ret(r, &s->values[s->n]) == 0)
		s->more[s->n++] = more;
}

#endif /* AFE_TEST_IPC_CALLS_H */
