/* SPDX-License-Identifier: MIT */
/*
 * The runtime: a fixed pool of worker threads that poll tasks, the blocking
 * entry point, AFE_MAIN, and runtime figures.
 */
#ifndef AFE_RUNTIME_H
#define AFE_RUNTIME_H

#include <stdbool.h>
#include <stdint.h>

#include "common.h"
#include "future.h"

struct afe_runtime;

/* What happens to tasks still running once the root future finished. */
enum afe_exit_mode {
	AFE_EXIT_GRACE = 0,	/* wait up to grace_ms for them, then exit */
	AFE_EXIT_WAIT_ALL = 1,	/* wait for every task to finish */
	AFE_EXIT_IMMEDIATE = 2, /* exit at once */
};

/* Spin 50 us before parking when the workers leave a CPU free for the
 * ring thread and the rest of the process, else park at once: on a
 * machine the workers fill, a spinning worker takes the CPU the ring
 * thread needs (figures: uring/RING.md in the source tree). */
#define AFE_SPIN_AUTO (~0u)

/* The smallest completion queue a runtime uses: a smaller cq_entries is
 * raised to it. The kernel ends a multishot operation, such as the accept
 * stream of afe/net.h, whenever it finds the completion queue full, so a
 * queue that fills every round accepts one connection a round (figures:
 * uring/RING.md in the source tree). A small submission queue is fine:
 * requests wait for room in order, oldest first. */
#define AFE_MIN_CQ_ENTRIES 64

/* The I/O backend a runtime runs on (README, "Kernels"). */
enum afe_backend {
	AFE_BACKEND_AUTO = 0, /* config: $AFE_BACKEND ("epoll", "io_uring"),
				 else io_uring, and epoll when io_uring is
				 refused (EPERM: seccomp, sysctl), absent
				 (ENOSYS, or an opcode missing) or short of
				 memory (ENOMEM, also with a small ring),
				 or under valgrind (which does not model
				 io_uring), said in one line on stderr */
	AFE_BACKEND_URING,    /* io_uring */
	AFE_BACKEND_EPOLL,    /* epoll, non-blocking calls and the ring thread
				 (see afe/io.h for what differs) */
};

struct afe_runtime_config {
	unsigned workers;	    /* worker threads; 0: online CPUs (or $AFE_WORKERS) */
	unsigned spin_us;	    /* how long an idle worker searches (its queues, and
				       the futex words tasks watch, such as a
				       cross-process call's) before parking;
				       AFE_SPIN_AUTO: see afe_runtime_config_default */
	unsigned grace_ms;	    /* AFE_EXIT_GRACE: how long to wait for tasks */
	enum afe_exit_mode exit_mode;
	unsigned ring_entries;	    /* io_uring submission queue size; 0: 256 */
	unsigned cq_entries;	    /* completion queue size; 0: 16384, or twice
				       ring_entries if that is more; at least
				       AFE_MIN_CQ_ENTRIES (smaller is raised) */
	unsigned blocking_threads;  /* most threads for blocking jobs; 0: 64 */
	unsigned blocking_queue;    /* jobs waiting past which try-jobs are refused; 0: 1024 */
	enum afe_backend backend;   /* AFE_BACKEND_AUTO: see there */
	bool quiet_fallback;	    /* no line on stderr when AUTO falls back to epoll */
	size_t coro_stack_size;	    /* a coroutine's stack when its spawn names none
				       (afe/coro.h); 0: AFE_CORO_STACK_DEFAULT */
	unsigned long_poll_ms;	    /* report a poll that holds its thread longer (a
				       blocking call in a poll?) on stderr, naming its
				       task; 0: off. A thread then wakes every
				       long_poll_ms / 2 */
	bool task_dump;		    /* tasks carry what afe_runtime_dump_tasks
				       says of them (see there) */
	int task_dump_signal;	    /* AFE_MAIN: dump the tasks on stderr when this
				       signal comes (SIGUSR1...); 0: none. Implies
				       task_dump */
};

/* Fills c with the defaults: workers from $AFE_WORKERS or the online CPUs,
 * spin_us AFE_SPIN_AUTO, grace_ms from $AFE_GRACE_MS or 1000,
 * AFE_EXIT_GRACE, ring_entries 256, cq_entries 0, blocking_threads 64,
 * blocking_queue 1024, backend AFE_BACKEND_AUTO, quiet_fallback false,
 * coro_stack_size 0, long_poll_ms from $AFE_LONG_POLL_MS or 0, task_dump
 * and task_dump_signal from $AFE_TASK_DUMP (0: neither; 1: task_dump; a
 * signal number: both) or neither. */
AFE_EXPORT void afe_runtime_config_default(struct afe_runtime_config *config);

/*
 * Starts a runtime: its worker threads and its io_uring with the thread
 * that owns it. config may be NULL (defaults). Its threads block every
 * asynchronous signal (see afe/signal.h); the caller's mask is unchanged. Returns 0 and stores the
 * runtime in *out, or -EINVAL (workers above 1024, ring_entries of 1 or
 * above 32768, cq_entries below ring_entries or above 65536, a
 * coro_stack_size below AFE_CORO_STACK_MIN, null out), -ENOMEM, the -errno of a failed thread creation, or
 * the -errno of the io_uring call that failed (io_uring_setup,
 * io_uring_register, or the io_uring_enter of a start-up NOP: -EPERM when
 * a sysctl or seccomp filter refuses it; -ENOSYS without io_uring or a
 * needed opcode), with the call and the errno named on stderr. With
 * backend AFE_BACKEND_AUTO those three (and -ENOMEM) fall back to epoll
 * instead; with AFE_BACKEND_EPOLL, the -errno of epoll_create1 or eventfd;
 * -EINVAL for a backend that is none of the three.
 */
AFE_EXPORT int afe_runtime_create(struct afe_runtime **out, const struct afe_runtime_config *config);

/*
 * Stops the runtime and frees it. Must not be called from one of its
 * workers. Spawning fails with -ESHUTDOWN from the moment this starts.
 * I/O operations in flight are cancelled (-ECANCELED) and blocking jobs
 * not yet started refused (-ESHUTDOWN); jobs running are waited for. Those
 * tasks get up to grace_ms to finish while the workers still run; then the
 * workers stop between two polls, and tasks still running are counted as
 * left and not polled again. A sleep, I/O operation or blocking job first
 * polled once the runtime is shutting down ends with -ESHUTDOWN at its
 * second poll (the first wakes its task and gives way), so a task looping
 * on one and ignoring the error goes back through its worker every round
 * and is stopped when the grace period ends. A poll that never returns (a loop awaiting nothing
 * that can be pending) cannot be stopped: destroy waits for it. Tasks
 * still waiting for a wake that will never come are not polled again;
 * their memory is released when the last handle or waker referring to
 * them is dropped (dropping and waking stay safe after destroy: the
 * runtime keeps a few hundred bytes for them). Threads in afe_block_on on
 * rt return -ESHUTDOWN.
 * Returns the number of tasks that had not finished (0 on a clean stop),
 * or -EINVAL for a null runtime or a call from one of its own workers or
 * blocking-job threads.
 */
AFE_EXPORT int afe_runtime_destroy(struct afe_runtime *rt);

/*
 * Runs a copy of the future at obj as a task on rt and blocks the calling
 * thread until it finishes; *result (if not NULL) receives its result.
 * Must not be called from a worker thread (-EDEADLK).
 * Returns 0, the spawn error, or -ESHUTDOWN when rt is destroyed (from
 * another thread) before the task finished.
 */
AFE_EXPORT int afe_block_on_raw(struct afe_runtime *rt, const void *obj, size_t size,
				const struct afe_future *base, intptr_t *result);
#define afe_block_on(rt, fut, result) \
	afe_block_on_raw((rt), (fut), sizeof(*(fut)), &(fut)->base, (result))

/*
 * Waits until every task of rt has finished or timeout_ms passed
 * (a negative timeout waits for ever). Returns the number of tasks left.
 */
AFE_EXPORT int afe_runtime_wait_idle(struct afe_runtime *rt, int timeout_ms);

/* The runtime of the calling worker thread, or NULL on any other thread. */
AFE_EXPORT struct afe_runtime *afe_runtime_current(void);

/* Number of worker threads of rt. */
AFE_EXPORT unsigned afe_runtime_workers(const struct afe_runtime *rt);

/* How long rt's idle workers search before parking, in microseconds, with
 * AFE_SPIN_AUTO resolved (50 or 0); 0 for a null rt. */
AFE_EXPORT unsigned afe_runtime_spin_us(const struct afe_runtime *rt);

/*
 * The io_uring facilities rt uses, decided once when it started: each one
 * the kernel has, unless it is newer than the kernel version in
 * $AFE_URING_FEATURES (AFE_URING_FEATURES=5.15 makes a new kernel behave
 * as 5.15 would). Without a facility the runtime takes the older path
 * named beside it (the README has the table). 0 for a null rt.
 */
#define AFE_URING_FUTEX (1u << 0) /* FUTEX_WAIT/WAKE operations (Linux 6.7): the ring
				     thread's doorbell; else an eventfd read, and
				     afe_io_futex_{wait,wake} fail with -EOPNOTSUPP */
#define AFE_URING_DEFER_TASKRUN (1u << 1) /* SINGLE_ISSUER | DEFER_TASKRUN (6.1);
					     else COOP_TASKRUN, else neither */
#define AFE_URING_COOP_TASKRUN (1u << 2)  /* COOP_TASKRUN (5.19), taken only
					     without DEFER_TASKRUN */
#define AFE_URING_MULTISHOT_ACCEPT (1u << 3) /* one accept, many connections (5.19);
						else afe_accept_stream re-arms a
						single accept per connection */
#define AFE_URING_CANCEL_ANY (1u << 4) /* one cancel for every operation at
					  destroy (5.19); else one per
					  operation in flight */
#define AFE_URING_FTRUNCATE (1u << 5) /* IORING_OP_FTRUNCATE (6.9); else
					 afe_io_ftruncate runs ftruncate(2)
					 on the blocking pool */
#define AFE_URING_WAITALL (1u << 6) /* the kernel retries a short MSG_WAITALL
				       send or recv itself (5.18); else the
				       ring thread submits the rest */
#define AFE_URING_SEND_ZC (1u << 7) /* IORING_OP_SEND_ZC (6.1): afe_io_send_zc
				       sends without a copy; else it makes a
				       plain send */
#define AFE_URING_RECV_MULTISHOT (1u << 8) /* multishot receive into a ring of
					      provided buffers (6.0): one
					      for a whole afe_recv_stream;
					      else one receive per await */
AFE_EXPORT unsigned afe_runtime_uring_features(const struct afe_runtime *rt);

/* The backend rt runs on: AFE_BACKEND_URING or AFE_BACKEND_EPOLL (its
 * features are then 0); AFE_BACKEND_AUTO for a null rt. */
AFE_EXPORT enum afe_backend afe_runtime_backend(const struct afe_runtime *rt);

/* Counters since start, summed over workers, and a few gauges; cheap
 * enough to leave on. */
struct afe_metrics {
	uint64_t spawned;   /* tasks created */
	uint64_t completed; /* tasks finished (including cancelled ones) */
	uint64_t polled;    /* polls of task futures */
	uint64_t stolen;    /* tasks taken from another worker's queue */
	uint64_t parks;	    /* times a worker went to sleep */
	uint64_t unparks;   /* times a sleeping worker was woken for work */
	uint64_t injected;  /* tasks queued from outside the workers */
	/* Gauges, as of the call: */
	uint64_t queued;	   /* tasks waiting to be polled (run queues, injection) */
	uint64_t blocking_running; /* blocking jobs running on their threads */
	uint64_t blocking_queued;  /* blocking jobs waiting for a thread */
	/* I/O operations (struct afe_io; a linked pair is one) the ring
	 * thread took and has not finished: in the kernel or waiting for room
	 * in the submission queue (io_uring); waiting on an fd, a futex word
	 * or a blocking-pool job (epoll). Operations queued by workers that
	 * the ring thread has not taken yet (it takes them every round) count
	 * in neither of these two. */
	uint64_t io_in_flight;
	/* Of io_in_flight, those not issued yet: waiting for room in the
	 * submission queue (io_uring); on epoll, only those taken in the
	 * round under way and not started yet. */
	uint64_t io_backlog;
};

/*
 * Writes a line per live task of rt to fd: its name (afe_spawn_with), its
 * state (queued, running, waiting, or complete with a handle still held),
 * its age, how many times it was polled, how many of those polls were
 * timed (one in 128 of the task's polls: the 64th, the 192nd, ...) and
 * how long they took together, its poll function and where it was
 * spawned (addresses for addr2line or gdb: the function, and the return
 * address of the spawn call). The counts stop at 2^32 - 1 polls and
 * 4.29 s of timed polls (written with a "+" then); an age is right for
 * 49 days. Returns the number of tasks written, or -EINVAL (rt NULL,
 * fd < 0), -EOPNOTSUPP (rt was created without config.task_dump or
 * task_dump_signal), -ENOMEM, or the -errno of a failed write. The dump
 * takes a reference on every live task it finds, describes rt's, gives
 * the references back and then writes; a task spawned meanwhile may be
 * left out. A dump reads a word of every block the task allocator ever
 * carved, so its time grows with the most tasks the process held at
 * once, live or not now.
 *
 * Cost: with task_dump, every task carries its poll count, timed poll
 * time, spawn time and site (16 bytes; a name is carried by tasks
 * spawned with options, dump or not), a timed poll reads the clock
 * twice, and a task's poll that spawns reads the coarse clock once;
 * spawning and freeing take no lock for it (a dump walks the task
 * allocator's memory instead of a list). Without, a spawn and a poll test
 * one bit.
 */
AFE_EXPORT int afe_runtime_dump_tasks(struct afe_runtime *rt, int fd);

/* Fills m with the current figures of rt (each read atomically, the set
 * not as one snapshot). Returns 0 or -EINVAL for null arguments. */
AFE_EXPORT int afe_runtime_metrics(const struct afe_runtime *rt, struct afe_metrics *m);

/*
 * What AFE_MAIN calls: installs the shutdown (afe_shutdown_init: SIGINT
 * and SIGTERM go to afe_shutdown_token()), starts a runtime with config
 * (NULL: the defaults), runs the root future, applies the exit mode, and
 * returns the status the process should exit with: the root's result when
 * it is 0..255, 1 with a message on stderr when it is negative (an
 * -errno) or out of range.
 *
 * Graceful exit: the root awaits the shutdown token beside its work and
 * finishes when it fires; then detached tasks (critical sections: never
 * cancelled) get the grace period (grace_ms, $AFE_GRACE_MS) to finish,
 * while a second SIGINT or SIGTERM still ends the process at once (130,
 * 143). If tasks are still running when it gives up waiting, it reports
 * their number on stderr and ends the process with the root's status.
 */
AFE_EXPORT int afe_main_run(const void *obj, size_t size, const struct afe_future *base,
			    const struct afe_runtime_config *config);

/* For AFE_MAIN: installs the process's shutdown (afe_shutdown_init) before
 * the user's init runs, so that SIGINT and SIGTERM are blocked in every
 * thread it starts; a failure is reported by afe_main_run. */
AFE_EXPORT void afe__main_prepare(void);

/* For AFE_MAIN: the exit status for an init that returned status (not 0):
 * status itself when it is 1..255, else 1 with a message on stderr
 * naming the error (an -errno) or the value. */
AFE_EXPORT int afe__main_init_failed(int status);

/*
 * AFE_MAIN(struct app, app_init) defines main(): it installs the
 * process's shutdown (SIGINT and SIGTERM are blocked from here on, also in
 * threads app_init starts), zeroes a struct app, calls app_init(&app,
 * argc, argv) (which returns 0, or an exit status or a negative errno to
 * stop with), runs it as the root future and exits with its result.
 * A root that stops on Ctrl-C asks for afe_shutdown_token() in app_init:
 * a signal arriving from then on, even before the runtime started, fires
 * it once the runtime runs.
 */
#define AFE_MAIN(type, init_fn) afe__main(type, init_fn, afe__main_keep_defaults)

/*
 * AFE_MAIN_CONFIG(struct app, app_init, app_config): AFE_MAIN with a
 * runtime config. After app_init succeeded, app_config(&config, &app)
 * receives the defaults (afe_runtime_config_default) to change: workers,
 * exit_mode, grace_ms and the rest, perhaps from what app_init parsed.
 * app_config returns nothing.
 */
#define AFE_MAIN_CONFIG(type, init_fn, config_fn) afe__main(type, init_fn, config_fn)

/* The main() both define; AFE_MAIN's is AFE_MAIN_CONFIG's with the defaults. */
#define afe__main(type, init_fn, config_fn)                                          \
	int main(int argc, char **argv)                                              \
	{                                                                            \
		static type afe__root;                                               \
		afe__main_prepare();                                                 \
		int afe__status = (init_fn)(&afe__root, argc, argv);                 \
		if (afe__status != 0)                                                \
			return afe__main_init_failed(afe__status);                   \
		struct afe_runtime_config afe__config;                               \
		afe_runtime_config_default(&afe__config);                            \
		(config_fn)(&afe__config, &afe__root);                               \
		return afe_main_run(&afe__root, sizeof(afe__root), &afe__root.base, \
				    &afe__config);                                   \
	}

/* AFE_MAIN's app_config: changes nothing. */
static inline void afe__main_keep_defaults(struct afe_runtime_config *config, const void *root)
{
	(void)config;
	(void)root;
}

#endif /* AFE_RUNTIME_H */
