/* SPDX-License-Identifier: MIT */
/* For the cross-process call tests: consumers in child processes, and
 * calls run from the test's thread. */
#ifndef AFE_TEST_IPC_HELPERS_H
#define AFE_TEST_IPC_HELPERS_H

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include "../examples/ipc_calc_server.h"
#include "ipc_calls.h"

/* The names this test process handed out, and the process that did: the
 * shared-memory objects behind them are removed when it exits (a consumer
 * killed mid-test leaves its object behind). Forked children inherit the
 * list and the exit handler, and leave both alone. */
static struct {
	pid_t owner;
	int n;
	char names[16][96];
} ipc_test_names;

static inline void ipc_test_unlink_names(void)
{
	if (getpid() != ipc_test_names.owner)
		return;
	for (int i = 0; i < ipc_test_names.n; i++) {
		char path[100];
		snprintf(path, sizeof(path), "/%s", ipc_test_names.names[i]);
		if (shm_unlink(path) < 0 && errno != ENOENT)
			fprintf(stderr, "shm_unlink %s: %s\n", path, strerror(errno));
	}
	ipc_test_names.n = 0;
}

/* A unique name per test (its process id) and round (what). Its object is
 * removed when the test's process exits through exit(): a test that ran
 * to its end, or one failing under the TSan runner (a failed Criterion
 * assertion ends the process without exit handlers, and a killed one
 * leaves what it had). The returned buffer is reused by the next call. */
static inline const char *ipc_test_name(const char *what)
{
	static char name[96];
	snprintf(name, sizeof(name), "afe-test-%d-%s", (int)getpid(), what);
	if (ipc_test_names.owner != getpid()) {
		ipc_test_names.owner = getpid();
		ipc_test_names.n = 0;
		atexit(ipc_test_unlink_names);
	}
	int i = 0;
	while (i < ipc_test_names.n && strcmp(ipc_test_names.names[i], name) != 0)
		i++;
	if (i == ipc_test_names.n && i < 16)
		memcpy(ipc_test_names.names[ipc_test_names.n++], name, sizeof(name));
	return name;
}

/* Forks a child that dies with the test: a failed assertion in the test
 * must not leave a consumer serving (and the test's output pipe open,
 * which keeps the runner waiting). */
static inline pid_t fork_tied(void)
{
	pid_t pid = fork();
	cr_assert_neq(pid, -1);
	if (pid == 0)
		prctl(PR_SET_PDEATHSIG, SIGKILL);
	return pid;
}

/* Starts the example consumer serving name in a child process. */
static inline pid_t start_consumer(const char *name)
{
	pid_t pid = fork_tied();
	if (pid == 0) {
		execl(IPC_CONSUMER, IPC_CONSUMER, name, (char *)NULL);
		_exit(127);
	}
	return pid;
}

static inline void stop_consumer(pid_t pid, int sig)
{
	kill(pid, sig);
	waitpid(pid, NULL, 0);
}

/* A producer config that takes the shared-memory link, even to a consumer
 * of this process. */
static inline struct afe_ipc_producer_config over_shared_memory(void)
{
	struct afe_ipc_producer_config config;
	afe_ipc_producer_config_default(&config);
	config.transport = AFE_IPC_SHARED_MEMORY;
	return config;
}

/* Connects, retrying while the consumer starts, or has yet to free the
 * entries of producers that left (up to 10 s). */
static inline struct afe_ipc_producer *connect_retrying(struct afe_runtime *rt, const char *name,
						       const struct afe_ipc_producer_config *config)
{
	struct afe_ipc_producer *p = NULL;
	int err = -ECONNREFUSED;
	for (int i = 0; i < 1000 && (err == -ECONNREFUSED || err == -EBUSY); i++) {
		err = afe_ipc_producer_connect(&p, rt, name, config);
		if (err == -ECONNREFUSED || err == -EBUSY)
			usleep(10000);
	}
	cr_assert_eq(err, 0, "connect: %d", err);
	return p;
}

/* One test's cast: the example consumer in a child process, a runtime,
 * a producer connected to the consumer, and a call object bound to it. */
struct ipc_session {
	pid_t consumer;
	struct afe_runtime *rt;
	struct afe_ipc_producer *p;
	struct afe_ipc_call call;
};

static inline void ipc_session_start(struct ipc_session *s, const char *what,
				     const struct afe_ipc_producer_config *config)
{
	const char *name = ipc_test_name(what);
	s->consumer = start_consumer(name);
	s->rt = test_runtime(2);
	s->p = connect_retrying(s->rt, name, config);
	afe_ipc_call_init(&s->call, s->p);
}

/* The same cast for a program without a runtime: the producer connects
 * with a NULL runtime and runs one of its own (s->rt stays NULL). */
static inline void ipc_session_start_alone(struct ipc_session *s, const char *what,
					   const struct afe_ipc_producer_config *config)
{
	const char *name = ipc_test_name(what);
	s->consumer = start_consumer(name);
	s->rt = NULL;
	s->p = connect_retrying(NULL, name, config);
	afe_ipc_call_init(&s->call, s->p);
}

static inline void ipc_session_end(struct ipc_session *s)
{
	afe_ipc_call_release(&s->call);
	afe_ipc_producer_close(s->p);
	if (s->rt)
		test_runtime_destroy(s->rt);
	stop_consumer(s->consumer, SIGTERM);
}

/* A consumer of name on rt, with one calc server task. */
struct calc_serving {
	struct afe_ipc_consumer *c;
	struct afe_join_handle server;
};

static inline struct calc_serving serve_calc(struct afe_runtime *rt, const char *name)
{
	struct calc_serving s;
	cr_assert_eq(afe_ipc_consumer_serve(&s.c, rt, name, NULL), 0);
	struct afe_ipc_serve server = calc_server_make(s.c);
	cr_assert_eq(afe_spawn(rt, &server, &s.server), 0);
	return s;
}

static inline void stop_serving(struct afe_runtime *rt, struct calc_serving *s)
{
	afe_ipc_consumer_close(s->c);
	struct afe_join join;
	afe_join_init(&join, &s->server);
	cr_assert_eq(test_block_on(rt, &join), 0);
	afe_ipc_consumer_destroy(s->c);
}

/* In a child: waits for a byte on go (unless go is -1), connects to name
 * over shared memory (retrying while the consumer starts), makes one
 * call, reports its result on result (0: fine, else the errno), then
 * waits to be killed. Returns the child's exit code: a child cannot
 * assert. */
static inline int producer_child(const char *name, int go, int result)
{
	char code;
	if (go >= 0 && read(go, &code, 1) != 1)
		return 1;
	struct afe_runtime *rt = test_runtime(1);
	struct afe_ipc_producer_config config = over_shared_memory();
	struct afe_ipc_producer *p = NULL;
	int err = -ECONNREFUSED;
	for (int i = 0; i < 1000 && err == -ECONNREFUSED; i++)
		if ((err = afe_ipc_producer_connect(&p, rt, name, &config)) == -ECONNREFUSED)
			usleep(10000);
	struct afe_ipc_call call;
	if (err == 0) {
		afe_ipc_call_init(&call, p);
		err = add_call(&call, 1, 2, 3);
		err = err ? err : (int)run_call(rt, &call);
	}
	code = (char)(err < 0 ? -err : 0);
	if (write(result, &code, 1) != 1)
		return 1;
	pause();
	return 0;
}

#endif /* AFE_TEST_IPC_HELPERS_H */
