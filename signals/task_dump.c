/* SPDX-License-Identifier: MIT */
/* The task dump on a signal (afe_task_dump_watch, afe/signal.h). Here,
 * above the core, because it ties the dump to the signal hub. */
#include <string.h>
#include <unistd.h>

#include "afe/runtime.h"
#include "afe/signal.h"

static int watch_poll(struct afe_future *f, struct afe_context *cx)
{
	struct afe_task_dump_watch *self = afe_container_of(f, struct afe_task_dump_watch, base);
	AFE_ASYNC_BEGIN(f, cx);
	f->result = afe_signal_stream_open(&self->stream, self->signo);
	if (f->result < 0)
		AFE_RETURN(f->result);
	for (;;) {
		AFE_AWAIT(afe_signal_stream_next(&self->stream));
		if (self->stream.base.result < 0)
			AFE_RETURN(self->stream.base.result);
		afe_runtime_dump_tasks(afe_runtime_current(), STDERR_FILENO);
	}
	AFE_CLEANUP;
	if (self->stream.open)
		afe_signal_stream_close(&self->stream);
	AFE_ASYNC_END;
}

void afe_task_dump_watch_init(struct afe_task_dump_watch *w, int signo)
{
	memset(w, 0, sizeof(*w));
	afe_future_init(&w->base, watch_poll);
	w->signo = signo;
}
