/* SPDX-License-Identifier: MIT */
/*
 * Serving a consumer through a table of handlers, one per function,
 * instead of a hand-written receive, decode, reply loop:
 *
 *   static int64_t add_impl(int64_t a, int64_t b, int64_t c) { return a + b + c; }
 *   AFE_IPC_HANDLER(add, add_impl)             // defines add_handle
 *
 *   static int greet_handle(struct afe_ipc_request *req, struct afe_ipc_reply *rep,
 *                           void *arg)
 *   {
 *       struct greet_args args;
 *       int err = greet_decode(req, &args);    // -EPROTO: answered so
 *       return err < 0 ? err : greet_reply(rep, req, args.who);
 *   }
 *
 *   static const struct afe_ipc_handler handlers[] = {
 *       {add_ID, add_handle}, {greet_ID, greet_handle},
 *   };
 *   struct afe_ipc_serve_config c = {
 *       .consumer = consumer, .handlers = handlers, .n_handlers = 2,
 *   };
 *   struct afe_ipc_serve s;
 *   afe_ipc_serve_init(&s, &c);                // 0, or -EINVAL
 *   afe_spawn(NULL, &s, &handle);              // as many tasks as wanted
 *
 * Each serving task takes a request, runs its function's handler, sends
 * the reply the handler set up, and takes the next one, until the
 * consumer is closed.
 */
#ifndef AFE_IPC_SERVE_H
#define AFE_IPC_SERVE_H

#include <stddef.h>
#include <stdint.h>

#include "common.h"
#include "future.h"
#include "ipc.h"

/*
 * One function's handler: exactly one of handle and start.
 *
 * handle answers at once: it decodes req's arguments (NAME_decode), sets
 * up the reply (NAME_reply, or afe_ipc_reply_error) and returns 0; or it
 * returns a negative errno, which ends the call with that error (a reply
 * it had set up is turned into that error). The serving task then sends
 * the reply. A handler that returns 0 without setting up its final reply
 * ends the call with -EIO.
 *
 * start answers after waiting (a sleep, other I/O, a stream): it builds a
 * future in scratch (scratch_size bytes of the config, one scratch per
 * serving task, reused for each request) and returns its base, which the
 * serving task awaits. That future has req, rep and arg to work with and
 * ends as handle returns: 0 with its final reply set up (or already sent:
 * it may await rep itself), or a negative errno. For a stream it sets up
 * and awaits each NAME_reply_more in rep before the final NAME_reply; it
 * must await every reply it sets up but the final one. start returning
 * NULL, or a base outside scratch, ends the call with -EIO.
 *
 * req and rep belong to the serving task: valid until the handler (or its
 * future) ended.
 */
struct afe_ipc_handler {
	uint8_t fn;
	int (*handle)(struct afe_ipc_request *req, struct afe_ipc_reply *rep, void *arg);
	struct afe_future *(*start)(void *scratch, struct afe_ipc_request *req,
				    struct afe_ipc_reply *rep, void *arg);
};

struct afe_ipc_serve_config {
	struct afe_ipc_consumer *consumer;
	/* At most one entry per function id. The table is not copied: it
	 * must outlive the serving tasks (a static const table does). A
	 * request for a function without an entry is answered -ENOSYS. */
	const struct afe_ipc_handler *handlers;
	size_t n_handlers;
	void *arg; /* passed to every handler */
	/* The bytes a start handler may build its future in; 0 when no
	 * handler has start. */
	size_t scratch_size;
};

/*
 * A serving task's future: its result is 0 once the consumer was closed
 * (its receive ended with -EPIPE), -ECANCELED when cancelled (a request it
 * holds is then answered -ECANCELED; a handler's future is polled with
 * cancel set until it ends), -ENOMEM when its scratch could not be
 * allocated, -EINVAL when afe_ipc_serve_init refused the config.
 * Everything it needs is inside it or in the config's handler table, so it
 * may be copied (afe_spawn) before its first poll: initialise one and
 * spawn as many copies as tasks are wanted. The consumer and the handler
 * table must outlive the serving tasks (close the consumer, await them,
 * then destroy it).
 */
struct afe_ipc_serve {
	struct afe_future base;
	/* Private. */
	struct afe_ipc_serve_config config;
	uint16_t entry[256];	    /* by function id: 1 + its index in handlers; 0: none */
	void *scratch;		    /* from the first poll to the end */
	struct afe_future *running; /* a start handler's future */
	int status;		    /* what the handler returned */
	struct afe_ipc_request req;
	struct afe_ipc_reply rep;
};

/*
 * Sets s up to serve config->consumer with config's handlers. Returns 0,
 * or -EINVAL (s or config NULL, no consumer, handlers NULL or n_handlers
 * 0, two entries for one function, an entry with neither or both of
 * handle and start, a start handler with a scratch_size of 0); s then
 * ends with -EINVAL when awaited.
 */
AFE_EXPORT int afe_ipc_serve_init(struct afe_ipc_serve *s, const struct afe_ipc_serve_config *config);

/*
 * AFE_IPC_HANDLER(name, impl) defines
 *   static int name_handle(struct afe_ipc_request *, struct afe_ipc_reply *, void *)
 * a handle for function name of an AFE_IPC_FN table that calls a plain
 * function RET impl(T1 a1, ...) with the decoded arguments and replies
 * with what it returns (arguments that do not decode: -EPROTO). A
 * returned string or buffer is copied into the reply before the handler
 * returns. Table entry: {name_ID, name_handle}.
 */
#define AFE_IPC_HANDLER(name, impl)                                                       \
	static int name##_handle(struct afe_ipc_request *req, struct afe_ipc_reply *rep,  \
				 void *arg)                                                \
	{                                                                                  \
		(void)arg;                                                                 \
		return name##_apply(rep, req, (impl));                                     \
	}

#endif /* AFE_IPC_SERVE_H */
