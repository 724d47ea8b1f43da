/* SPDX-License-Identifier: MIT */
/* Connecting that waits for the name to be served (connect_wait_ms):
 * tries again after pauses growing from 2 ms to 100 ms, on the calling
 * thread (afe_ipc_producer_connect) or in a task (afe_ipc_connect). A
 * pause, not a watch of /dev/shm: a consumer of this process serves
 * without any file, and the pauses cost nothing while nobody serves. */
#define _GNU_SOURCE
#include <errno.h>
#include <string.h>
#include <time.h>

#include "afe/runtime.h"
#include "ipc_producer.h"

int afe__ipc_connect_waiting(struct afe_ipc_producer **out, struct afe_runtime *rt,
			     const char *name, const struct afe_ipc_producer_config *config)
{
	if (afe_runtime_current())
		return -EDEADLK; /* it would hold the worker: see afe_ipc_connect */
	struct afe_ipc_producer_config once = *config;
	once.connect_wait_ms = 0;
	uint64_t deadline = afe_now_ns() + (uint64_t)config->connect_wait_ms * 1000000u;
	for (uint32_t pause_ms = 0;;) {
		int err = afe__ipc_connect_once(out, rt, name, &once);
		if (err != -ECONNREFUSED)
			return err;
		uint64_t now = afe_now_ns();
		if (now >= deadline)
			return -ETIMEDOUT;
		pause_ms = afe__ipc_connect_backoff_ms(pause_ms);
		uint64_t ns = (uint64_t)pause_ms * 1000000u;
		if (ns > deadline - now)
			ns = deadline - now;
		struct timespec ts = {(time_t)(ns / 1000000000u), (long)(ns % 1000000000u)};
		while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
			;
	}
}

static int connect_poll(struct afe_future *f, struct afe_context *cx)
{
	AFE_ASYNC_BEGIN_SELF(struct afe_ipc_connect, self, f, cx);
	self->deadline = afe_now_ns() + (uint64_t)self->wait_ms * 1000000u;
	for (self->pause_ms = 0;;) {
		int err = afe_ipc_producer_connect(self->out, self->rt, self->name, &self->config);
		if (err != -ECONNREFUSED || self->wait_ms == 0)
			AFE_RETURN(err); /* no wait asked: one try */
		uint64_t now = afe_now_ns();
		if (now >= self->deadline)
			AFE_RETURN(-ETIMEDOUT);
		self->pause_ms = afe__ipc_connect_backoff_ms(self->pause_ms);
		uint64_t ns = (uint64_t)self->pause_ms * 1000000u;
		afe_sleep_init(&self->pause, ns < self->deadline - now ? ns : self->deadline - now);
		AFE_AWAIT(&self->pause.base);
		if (self->pause.base.result < 0)
			AFE_RETURN(self->pause.base.result); /* -ESHUTDOWN: no retrying */
	}
	AFE_ASYNC_END;
}

void afe_ipc_connect_init(struct afe_ipc_connect *c, struct afe_ipc_producer **out,
			  struct afe_runtime *rt, const char *name,
			  const struct afe_ipc_producer_config *config)
{
	memset(c, 0, sizeof(*c));
	afe_future_init(&c->base, connect_poll);
	c->out = out;
	c->rt = rt;
	c->name = name;
	if (config)
		c->config = *config;
	else
		afe_ipc_producer_config_default(&c->config);
	c->wait_ms = c->config.connect_wait_ms;
	c->config.connect_wait_ms = 0;
}
