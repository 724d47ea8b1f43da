/* SPDX-License-Identifier: MIT */
/*
 * Cross-process calls: a producer process calls the functions a consumer
 * process serves, over rings in a named shared-memory object. A side with
 * nothing to do sleeps on a futex word in the shared memory, and that wait
 * goes through the runtime's ring: a waiting task holds no thread.
 *
 * Both programs include one header that declares the function table, one
 * line per function (see afe/ipc_fn.h for the argument types):
 *
 *   AFE_IPC_FN(add, 1, int64_t, int64_t, a, int64_t, b, int64_t, c)
 *
 * The producer (in a future's poll; call is a struct afe_ipc_call member):
 *
 *   afe_ipc_call_init(&self->call, producer);        // once
 *   add_call(&self->call, 1, 2, 3);                   // the arguments
 *   AFE_AWAIT(&self->call.base);                      // 0 or -errno
 *   add_result(&self->call, &self->sum);              // 6
 *
 * The consumer (req is a struct afe_ipc_request, rep a struct afe_ipc_reply):
 *
 *   afe_ipc_recv_init(&self->req, consumer);
 *   AFE_AWAIT(&self->req.base);                       // a request came
 *   if (self->req.fn == add_ID && add_decode(&self->req, &self->args) == 0)
 *       add_reply(&self->rep, &self->req, self->args.a + self->args.b + self->args.c);
 *   else
 *       afe_ipc_reply_error(&self->rep, &self->req, -ENOSYS);
 *   AFE_AWAIT(&self->rep.base);                       // sent (or -EPIPE)
 *
 * or, without writing that loop, serves a table of handlers, one per
 * function (afe/ipc_serve.h).
 *
 * A program without a runtime connects with a NULL runtime (the producer
 * then runs one of its own) and waits for each call on its thread:
 *
 *   afe_ipc_producer_connect(&producer, NULL, "afe-calc", NULL);
 *   afe_ipc_call_init(&call, producer);
 *   add_call(&call, 1, 2, 3);
 *   if (afe_ipc_call_wait(&call) == 0)                // 0 or -errno
 *       add_result(&call, &sum);
 *
 * Sizes: the encoded arguments of a call, and each encoded reply, are at
 * most AFE_IPC_MAX_PAYLOAD bytes; a larger one is refused with -EMSGSIZE
 * before anything is sent. At most AFE_IPC_MAX_PRODUCERS producers connect
 * to one consumer, each with at most AFE_IPC_MAX_PENDING calls in flight.
 *
 * Lifetime of returned bytes: a string or a buffer NAME_result decodes
 * points into the call object (a copy of the reply, not the shared
 * memory). It stays valid until the next call is armed on that same call
 * object (NAME(&call, ...) or afe_ipc_call_arm, even one that fails), or
 * until afe_ipc_call_release; calls on other call objects, of any
 * function, from any thread, leave it alone. Copy what must live longer,
 * or keep a call object per result. The reader a reply callback gets
 * (afe_ipc_call_on_reply) is valid during the callback only. On the
 * consumer's side, decoded arguments point into the request: valid until
 * the request object is received into again (afe_ipc_recv_init).
 *
 * Everything read from the shared memory is checked: a malformed frame, an
 * unknown function id, a reply to no pending call are dropped and counted
 * (afe_ipc_stats), never trusted. Altered content is not detected: random
 * bytes in a well-formed frame's call id or payload deliver a wrong answer,
 * possibly to another call of the same producer. A slot sequence number
 * that neither side could have written spoils that producer's rings: its
 * pending and later calls end with -EPROTO at once (the producer is then
 * gone: connect again for fresh rings, as one that reconnects does by
 * itself); other producers go on.
 */
#ifndef AFE_IPC_H
#define AFE_IPC_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include "common.h"
#include "future.h"
#include "ipc_codec.h"
#include "ipc_fn.h"
#include "notify.h"
#include "sleep.h"

#define AFE_IPC_MAX_PAYLOAD 4064u
#define AFE_IPC_MAX_PRODUCERS 16u
#define AFE_IPC_MAX_PENDING 4096u
#define AFE_IPC_NAME_MAX 200u
#define AFE_IPC_DEFAULT_TIMEOUT_MS 5000u
#define AFE_IPC_DEFAULT_ROOM_MS 1000u

struct afe_runtime;
struct afe_ipc_producer;
struct afe_ipc_consumer;

/* What a side counted. */
struct afe_ipc_stats {
	uint64_t calls;	       /* producer: calls sent; consumer: requests taken */
	uint64_t replies;      /* producer: replies matched; consumer: replies sent */
	uint64_t late_replies; /* producer: replies to no pending call (timed out) */
	uint64_t malformed;    /* frames dropped as malformed */
	uint64_t unknown_fn;   /* consumer: requests for a function not served */
	uint64_t timeouts;     /* producer: calls that timed out; consumer: replies
				* dropped for want of room (see room_ms) */
	uint64_t peers_gone;   /* consumer: producers that went away */
	uint64_t repairs;      /* the shared object was found shrunk (producer: by a
				* fault of its own) or wiped (consumer: its header)
				* and restored; see afe_ipc_consumer_serve */
	uint64_t reconnects;   /* producer: connections made again after the
				* consumer went away (see reconnect_wait_ms) */
};

/* ---- the producer --------------------------------------------------------- */

struct afe_ipc_fn_timeout {
	uint8_t fn;
	uint32_t ms;
};

/* How a producer reaches its consumer. */
enum afe_ipc_transport {
	/* A consumer of this process serving the name, else shared memory. */
	AFE_IPC_ANY = 0,
	/* The consumer's shared-memory object, even within one process. */
	AFE_IPC_SHARED_MEMORY,
	/* A consumer of this process only: no shared memory, no ring, no
	 * futex; the consumer's receivers copy the arguments from the call,
	 * and its replies go straight into the call (a reply callback runs
	 * on the replying task). */
	AFE_IPC_IN_PROCESS,
};

struct afe_ipc_producer_config {
	uint32_t timeout_ms; /* for every call; 0: AFE_IPC_DEFAULT_TIMEOUT_MS */
	const struct afe_ipc_fn_timeout *timeouts; /* per function, overriding it */
	size_t n_timeouts;
	enum afe_ipc_transport transport;
	/* How long connecting waits for a consumer to serve the name, in ms:
	 * it tries again (after 2 ms, doubling up to 100 ms between tries)
	 * while no consumer serves it, then gives -ETIMEDOUT. 0: one try. */
	uint32_t connect_wait_ms;
	/* Opt-in: reconnect after the consumer went away (it died, closed,
	 * restarted), waiting up to this long, in ms, for the name to be
	 * served again. 0 (the default): a producer whose consumer went away
	 * stays gone. See "Reconnecting" at afe_ipc_producer_connect. */
	uint32_t reconnect_wait_ms;
};

AFE_EXPORT void afe_ipc_producer_config_default(struct afe_ipc_producer_config *config);

/*
 * Connects to the consumer serving name (a shm_open name without the
 * slash: letters, digits, '.', '_', '-', at most AFE_IPC_NAME_MAX bytes,
 * not "." or ".."): one of this process, or one of
 * another through its shared-memory object, as config->transport says
 * (default: this process first). Unless config->connect_wait_ms is set,
 * it does not wait: when nobody serves the name yet, it fails at once and
 * may be called again later. With it, the calling thread sleeps between
 * tries, so on a worker thread it refuses with -EDEADLK: a task awaits
 * afe_ipc_connect instead.
 * rt runs the producer's two tasks (replies, the consumer's death). NULL:
 * the calling worker's runtime, as for afe_spawn; on any other thread, a
 * runtime of the producer's own (one worker, its ring thread), which
 * afe_ipc_producer_close destroys. Calls are awaited from tasks on any
 * runtime, or waited for with afe_ipc_call_wait from other threads.
 * Returns 0, or -EINVAL (bad name or config, null out), -ECONNREFUSED (no
 * consumer serves name, or none the transport asked for does), -EPROTO
 * (the object is not a compatible AFE ring: magic, version or sizes),
 * -ETIMEDOUT (connect_wait_ms passed with no consumer serving name),
 * -EDEADLK (connect_wait_ms on a worker thread),
 * -EBUSY (AFE_IPC_MAX_PRODUCERS already connected), -ENOSPC (/dev/shm has
 * no room for this producer's rings: 1 MiB each; it is reserved at
 * connect), -EMFILE (this process maps 256 objects already), -ENOMEM,
 * the errno of shm_open/mmap/
 * pidfd_open (but for ENOSYS and EPERM, which mean pidfds are missing: the
 * consumer's pid is then looked at every 250 ms, and its death seen within
 * that), or that of afe_runtime_create for a runtime of its own.
 * A consumer that another process shrinks the object under ends this
 * producer's calls with -EPIPE (see afe_ipc_consumer_serve).
 *
 * Reconnecting (config->reconnect_wait_ms, opt-in): the producer returned
 * stays valid across restarts of the consumer. Calls in flight when the
 * consumer goes away still end with -EPIPE (they may or may not have
 * run: they are never sent again). The first call made after the producer
 * saw it go (afe_ipc_producer_is_gone) starts a reconnect, which tries to
 * connect again as connect_wait_ms does, for up to reconnect_wait_ms,
 * without holding a thread; that call and every other call made
 * meanwhile, from any task or thread, wait for that one reconnect, then
 * go to the new consumer, or end with its error: -ETIMEDOUT when nobody
 * served the name in time, or another error of this function (-EBUSY, a
 * full consumer; -ENOSPC, -ENOMEM...). A call waits for one reconnect at
 * most (-EPIPE when the consumer it found went away again meanwhile);
 * the next call starts another. Nothing is tried while nobody calls.
 * The call's own timeout starts once it is sent. Between the death and
 * the moment the producer sees it (at once with pidfds, else within
 * 250 ms) a call goes to the dead consumer and ends with -EPIPE.
 * Per-function timeouts are copied, and kept for every reconnection.
 */
AFE_EXPORT int afe_ipc_producer_connect(struct afe_ipc_producer **out, struct afe_runtime *rt,
					const char *name,
					const struct afe_ipc_producer_config *config);

/*
 * Connecting from a task: a future that connects as afe_ipc_producer_connect
 * does (same arguments, *out set on success), waiting up to
 * config->connect_wait_ms for the name to be served with sleeps of the
 * task, not of its thread. Its result is afe_ipc_producer_connect's, or
 * -ECANCELED. config is copied (NULL: the defaults, one try); name and
 * config->timeouts must stay valid until it ends. rt NULL means the
 * awaiting task's runtime. With config->reconnect_wait_ms the producer
 * reconnects as afe_ipc_producer_connect describes.
 */
struct afe_ipc_connect {
	struct afe_future base;
	/* Private. */
	struct afe_ipc_producer **out;
	struct afe_runtime *rt;
	const char *name;
	struct afe_ipc_producer_config config; /* connect_wait_ms: for one try, 0 */
	uint32_t wait_ms;
	uint64_t deadline; /* CLOCK_MONOTONIC ns */
	uint32_t pause_ms;
	struct afe_sleep pause;
};

AFE_EXPORT void afe_ipc_connect_init(struct afe_ipc_connect *c, struct afe_ipc_producer **out,
				     struct afe_runtime *rt, const char *name,
				     const struct afe_ipc_producer_config *config);

/* Disconnects: calls in flight end with -EPIPE, and so do calls waiting
 * for a reconnect (which is abandoned, and what it connected closed). The
 * producer is freed once its internal tasks ended, and its place at a
 * consumer of another process (one of AFE_IPC_MAX_PRODUCERS) is free
 * again once its reply task ended and the consumer looked; it must not be
 * used after this. A runtime of its own is destroyed before this returns
 * (its threads joined), so such a producer is not closed from a reply
 * callback, which runs on it. */
AFE_EXPORT void afe_ipc_producer_close(struct afe_ipc_producer *p);

/* Whether the consumer went away (its calls then fail with -EPIPE), or
 * the producer's rings were found spoilt (-EPROTO). For a producer that
 * reconnects: whether it has no live connection now (its next call
 * reconnects first); false again once a reconnect succeeded. True for a
 * null p. */
AFE_EXPORT bool afe_ipc_producer_is_gone(const struct afe_ipc_producer *p);

/* What p counted; for a producer that reconnects, over all its
 * connections. A null p counted nothing (all zeros); a null out is
 * left alone. */
AFE_EXPORT void afe_ipc_producer_stats(const struct afe_ipc_producer *p,
				       struct afe_ipc_stats *out);

/* Called for each reply of a call made with afe_ipc_call_on_reply: status
 * 0 with the reply's bytes in r (decode with NAME_decode_ret; r and what
 * is decoded from it are valid until the callback returns), or a negative
 * errno (the consumer's error, -ETIMEDOUT, -EPIPE) with r NULL. more is
 * false for the last one. It runs on the producer's reply task, one reply
 * at a time, in the order sent. It runs under the producer's lock, which
 * every call of that producer takes: keep it short, never block in it,
 * and do not start or release calls from it. Over the in-process
 * transport it runs on the consumer's task that sends the reply, before
 * that reply's future ends; the -EPIPE of a close runs on the thread that
 * closes (either side), and a -ETIMEDOUT on the producer's timeout task. */
typedef void afe_ipc_reply_fn(void *ctx, int status, struct afe_ipc_reader *r, bool more);

/*
 * A call: a future. Its result is 0 once the (last) reply arrived, or the
 * consumer's error (-ENOSYS for a function it does not serve, -EPROTO for
 * arguments it could not decode, any errno it replied), -ETIMEDOUT after
 * the function's timeout, or when the consumer dropped replies of this
 * producer that found no room in its reply ring (see the consumer's
 * room_ms: every call pending when the producer learns it ends so), or
 * when a reconnect found nobody serving the name (see
 * afe_ipc_producer_connect), -EPIPE
 * when the consumer went away, -EPROTO when the producer's rings were found
 * spoilt (see the top), -EMSGSIZE / -EINVAL when the arguments could not
 * be encoded, -EBUSY with AFE_IPC_MAX_PENDING calls in flight, -ECANCELED.
 */
struct afe_ipc_call {
	struct afe_future base;
	/* Private. */
	struct afe_ipc_producer *producer;
	/* The producer the call runs on: producer, or the connection of
	 * one that reconnects (see reconnect_wait_ms). */
	struct afe_ipc_producer *conn;
	afe_ipc_reply_fn *on_reply;
	void *on_reply_ctx;
	uint64_t id;
	unsigned char *args, *ret; /* the inline buffers, or the heap */
	uint32_t args_len, ret_len, ret_cap;
	int32_t status;
	uint16_t fn;
	uint8_t phase;
	bool waiting_room;
	_Atomic uint8_t answered; /* the pump stored the outcome */
	struct afe_waker waker;	  /* guarded by the producer's lock */
	uint64_t deadline; /* CLOCK_MONOTONIC ns */
	struct afe_notified room;
	/* Waiting for a reconnect to end: the count of those that had
	 * ended when the wait began. */
	bool waiting_dial;
	uint64_t dials_seen;
	struct afe_notified dialed;
	unsigned char args_inline[48], ret_inline[48];
};

/* Binds a call object to a producer (once; then make calls with it). */
AFE_EXPORT void afe_ipc_call_init(struct afe_ipc_call *call, struct afe_ipc_producer *p);

/* Frees what the last call returned. The object may be used again. */
AFE_EXPORT void afe_ipc_call_release(struct afe_ipc_call *call);

/* Delivers this call's replies to fn instead: the consumer may send
 * several. Set before the call's arguments; holds for that call only. */
AFE_EXPORT void afe_ipc_call_on_reply(struct afe_ipc_call *call, afe_ipc_reply_fn *fn,
				      void *ctx);

/* Used by the NAME() helpers AFE_IPC_FN generates: starts encoding a call
 * of fn, then arms it with the encoded bytes. arm returns 0, or -EMSGSIZE /
 * -EINVAL (a null call, one bound to no producer, fn past 255), also the
 * call's result when awaited. */
AFE_EXPORT struct afe_ipc_writer *afe_ipc_call_begin(struct afe_ipc_call *call, unsigned fn);
AFE_EXPORT int afe_ipc_call_arm(struct afe_ipc_call *call);

/* A reader over the bytes the call returned: 0, or the call's error;
 * -EINVAL for a null call or r, or a call that has not ended. */
AFE_EXPORT int afe_ipc_call_result(const struct afe_ipc_call *call, struct afe_ipc_reader *r);

/*
 * Waits on the calling thread for an armed call to end and returns its
 * result, for a program (or a thread) outside any runtime: 0 once the
 * (last) reply arrived, or the call's error as a task awaiting it gets
 * (the consumer's, -ETIMEDOUT, -EPIPE, -EBUSY, -EMSGSIZE...). The call
 * runs as a task on its producer's runtime; threads may wait at once on
 * calls of one producer, each with a call object of its own. A call that
 * already ended (or whose arguments were refused) returns its result at
 * once. Other errors: -EINVAL (call NULL or never armed), -EDEADLK on a
 * worker thread of any runtime, where it would block the thread its
 * answer may need (the call stays armed: await &call->base instead),
 * -ENOMEM, -ESHUTDOWN (the producer's runtime was destroyed meanwhile).
 */
AFE_EXPORT int afe_ipc_call_wait(struct afe_ipc_call *call);

/* ---- the consumer --------------------------------------------------------- */

struct afe_ipc_consumer_config {
	/* The functions served: requests for any other id are answered with
	 * -ENOSYS and counted. NULL: every id is passed on. */
	const uint8_t *functions;
	size_t n_functions;
	/* Serve producers of this process only: no shared-memory object. */
	bool in_process_only;
	/* How long a reply waits for room in its caller's reply ring, in ms;
	 * 0: AFE_IPC_DEFAULT_ROOM_MS (1 s). A producer that stops draining
	 * its replies (stopped, stuck, hostile) would otherwise hold every
	 * task replying to it, and the tasks taking requests are usually a
	 * fixed few: it would starve the other producers. Past it the reply
	 * fails with -ETIMEDOUT, and so does every later reply to that
	 * producer, at once, until its ring has room again; the producer is
	 * then told, and every call it has pending ends with -ETIMEDOUT (a
	 * stream with a reply missing must not look whole). */
	uint32_t room_ms;
};

AFE_EXPORT void afe_ipc_consumer_config_default(struct afe_ipc_consumer_config *config);

/*
 * Serves name to producers of this process, and (unless
 * config->in_process_only) to other processes through its shared-memory
 * object (mode 0600), with tasks on rt; a NULL rt on a task or worker
 * means its runtime, as for afe_spawn (elsewhere -EINVAL: unlike a
 * producer, a consumer needs tasks to take its requests, so it makes no
 * runtime of its own). A dead consumer's object under the same name is
 * replaced, so a restarted consumer serves again. A producer of another
 * process that dies is dropped (counted in peers_gone): seen through a
 * pidfd at once, or where pidfds are missing (pidfd_open refused with
 * ENOSYS or EPERM) by a look at its pid every 250 ms. Returns 0, or
 * -EINVAL (no runtime, bad name or config, null out), -EADDRINUSE (a live
 * consumer, or one of this process, serves name), -ENOSPC (/dev/shm is
 * full: the object's header, a few pages, is reserved here; each producer
 * reserves its own rings when it connects), -EMFILE (this process maps
 * 256 objects already), -ENOMEM, or the errno of
 * shm_open/ftruncate/fallocate/mmap.
 *
 * Any process of the same user can shrink (ftruncate) the object. Instead
 * of dying of SIGBUS at their next access to it, both sides grow it back,
 * zeroed: AFE installs a SIGBUS handler for this, which passes faults
 * outside its objects to the handler that was there before. The consumer
 * then drops every shared-memory producer (their calls end with -EPIPE),
 * counts a repair in its stats, and takes new producers again. A program
 * that installs its own SIGBUS handler later loses this protection.
 */
AFE_EXPORT int afe_ipc_consumer_serve(struct afe_ipc_consumer **out, struct afe_runtime *rt,
				      const char *name,
				      const struct afe_ipc_consumer_config *config);

/* Stops serving and removes the name: waiting receives end with -EPIPE,
 * and so do later ones. The consumer stays valid until destroyed. */
AFE_EXPORT void afe_ipc_consumer_close(struct afe_ipc_consumer *c);

/* Closes c if needed and gives it up: call it once no task will use c
 * again (its memory is freed once its own tasks and the replies still
 * owed ended). */
AFE_EXPORT void afe_ipc_consumer_destroy(struct afe_ipc_consumer *c);

/* What c counted (a null c: nothing, all zeros; a null out is left
 * alone). */
AFE_EXPORT void afe_ipc_consumer_stats(const struct afe_ipc_consumer *c,
				       struct afe_ipc_stats *out);

/*
 * A request: a future, result 0 once a request was taken (fn, args, len
 * are then set), -EPIPE once the consumer was closed, -ECANCELED, -EINVAL
 * when bound to no consumer (c NULL). Several
 * tasks may wait on one consumer; each request goes to one of them.
 */
struct afe_ipc_request {
	struct afe_future base;
	/* Private. */
	struct afe_ipc_consumer *consumer;
	/* Public. */
	unsigned fn;
	uint32_t len;
	/* Private. */
	bool streamed; /* the caller takes several replies (afe_ipc_reply_more) */
	uint64_t call_id;
	uint32_t peer, peer_gen;
	bool waiting, held;
	struct afe_ipc_producer *local; /* the caller, when in this process */
	struct afe_notified work;
	/* Public. */
	unsigned char args[AFE_IPC_MAX_PAYLOAD];
};

AFE_EXPORT void afe_ipc_recv_init(struct afe_ipc_request *req, struct afe_ipc_consumer *c);

/* A reader over the request's argument bytes. */
AFE_EXPORT void afe_ipc_request_args(const struct afe_ipc_request *req,
				     struct afe_ipc_reader *r);

/*
 * A reply: a future that sends one reply to req's caller; result 0 once
 * sent, -EPIPE when the caller went away (nothing to do then), -EMSGSIZE
 * when it could not be encoded, -ETIMEDOUT when the caller's reply ring had
 * no room for the consumer's room_ms (or had none while the caller's
 * replies are being dropped: see afe_ipc_consumer_config; end a stream
 * then), -EPROTO when that ring was found spoilt, -ECANCELED, -EINVAL
 * when req was no request (NULL, or bound to no consumer). The request
 * may be reused as soon as the reply is set up. Every request taken must
 * get its final reply (one, or the last of several) set up and awaited:
 * until then it keeps the consumer's memory alive.
 */
struct afe_ipc_reply {
	struct afe_future base;
	/* Private. */
	struct afe_ipc_consumer *consumer;
	struct afe_ipc_producer *local;
	uint64_t call_id;
	uint32_t peer, peer_gen, len;
	int32_t status;
	uint16_t fn;
	bool more, waiting;
	bool timing; /* room_deadline runs */
	unsigned char *bytes;
	struct afe_notified room;
	struct afe_sleep room_deadline;
	unsigned char bytes_inline[48];
};

/* Used by the NAME_reply helpers: begin encoding the reply to req (more:
 * not the last one), then arm it. arm returns 0, or -EMSGSIZE (the reply's
 * result too), or -EINVAL for a null rep or a reply to no request. */
AFE_EXPORT struct afe_ipc_writer *afe_ipc_reply_begin(struct afe_ipc_reply *rep,
						      struct afe_ipc_request *req, bool more);
AFE_EXPORT int afe_ipc_reply_arm(struct afe_ipc_reply *rep);

/* Sets rep up to end req's call with err (a negative errno). */
AFE_EXPORT void afe_ipc_reply_error(struct afe_ipc_reply *rep, struct afe_ipc_request *req,
				    int err);

/* ---- the typed helpers ---------------------------------------------------- */

/*
 * AFE_IPC_FN(name, id, RET, T1, a1, ...) declares a function of the table
 * and generates, besides the codec of afe/ipc_fn.h:
 *   int name_call(struct afe_ipc_call *call, T1 a1, ...)  arms a call
 *   int name_result(const struct afe_ipc_call *call, RET *out)
 *   int name_decode(const struct afe_ipc_request *req, struct name_args *out)
 *   int name_reply(struct afe_ipc_reply *rep, const struct afe_ipc_request *req, RET v)
 *   int name_reply_more(...)  the same, for one of several replies
 *   int name_apply(struct afe_ipc_reply *rep, struct afe_ipc_request *req,
 *                  RET (*impl)(T1, ...))  decodes req's arguments, calls
 *       impl with them and sets its return value up as the reply: 0, or
 *       -EPROTO when the arguments do not decode (nothing set up then);
 *       what AFE_IPC_HANDLER (afe/ipc_serve.h) calls
 * Every generated name has a suffix, so a table may name its functions
 * read or close without redefining the C library's.
 */
#define AFE_IPC_FN(name, id, ...)                              \
	AFE__IPC_EXPAND(AFE__IPC_CODEC, name, id, __VA_ARGS__)   \
	AFE__IPC_EXPAND(AFE__IPC_CALLS, name, id, __VA_ARGS__)

#define AFE__IPC_CALLS(name, id, RET, k, ...)                                              \
	static inline AFE__UNUSED int name##_call(struct afe_ipc_call *call                            \
				       AFE__IPC_PAIRS_##k(AFE__IPC_PARAM, __VA_ARGS__))    \
	{                                                                                  \
		name##_encode_args(afe_ipc_call_begin(call, (id))                          \
					   AFE__IPC_PAIRS_##k(AFE__IPC_ARG, __VA_ARGS__)); \
		return afe_ipc_call_arm(call);                                             \
	}                                                                                  \
	static inline AFE__UNUSED int name##_result(const struct afe_ipc_call *call, RET *out)         \
	{                                                                                  \
		struct afe_ipc_reader r;                                                   \
		int err = afe_ipc_call_result(call, &r);                                   \
		return err < 0 ? err : name##_decode_ret(&r, out);                         \
	}                                                                                  \
	static inline AFE__UNUSED int name##_decode(const struct afe_ipc_request *req,                 \
					struct name##_args *out)                           \
	{                                                                                  \
		struct afe_ipc_reader r;                                                   \
		afe_ipc_request_args(req, &r);                                             \
		return name##_decode_args(&r, out);                                        \
	}                                                                                  \
	static inline AFE__UNUSED int name##_reply(struct afe_ipc_reply *rep,                          \
				       struct afe_ipc_request *req, RET v)                 \
	{                                                                                  \
		name##_encode_ret(afe_ipc_reply_begin(rep, req, false), v);                \
		return afe_ipc_reply_arm(rep);                                             \
	}                                                                                  \
	static inline AFE__UNUSED int name##_reply_more(struct afe_ipc_reply *rep,                     \
					    struct afe_ipc_request *req, RET v)            \
	{                                                                                  \
		name##_encode_ret(afe_ipc_reply_begin(rep, req, true), v);                 \
		return afe_ipc_reply_arm(rep);                                             \
	}                                                                                  \
	static inline AFE__UNUSED int name##_apply(                                    \
		struct afe_ipc_reply *rep, struct afe_ipc_request *req,                    \
		RET (*impl)(AFE__IPC_SIG_##k(__VA_ARGS__)))                                \
	{                                                                                  \
		struct name##_args args;                                                   \
		int err = name##_decode(req, &args);                                       \
		return err < 0 ? err                                                       \
			       : name##_reply(rep, req, impl(AFE__IPC_USE_##k(__VA_ARGS__))); \
	}

#endif /* AFE_IPC_H */
