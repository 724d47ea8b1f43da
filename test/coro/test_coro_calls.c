/* SPDX-License-Identifier: MIT */
/* The awaited calls test_coro.c leaves out: accept and connect by address,
 * recvmsg with a passed fd, a semaphore's permits and a blocking job, each
 * with its bad input. */
#include <stdio.h>
#include <string.h>
#include <netinet/in.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include "afe/net.h"
#include "helpers.h"

/* Spawns fn(arg) as a coroutine, lets it reach its wait, cancels it and
 * returns what the coroutine returned. */
static intptr_t cancel_in_its_wait(struct afe_runtime *rt, intptr_t (*fn)(void *), void *arg,
				   atomic_bool *started)
{
	struct afe_join_handle h;
	cr_assert_eq(afe_coro_spawn(rt, fn, arg, &h, NULL), 0);
	while (!atomic_load(started))
		sched_yield();
	usleep(10000); /* into its wait */
	struct afe_cancel cancel;
	cr_assert_eq(afe_cancel_init(&cancel, &h), 0);
	return test_block_on(rt, &cancel);
}

/* ---- accept and connect ------------------------------------------------ */

struct meeting {
	int listen_fd;
	struct sockaddr_storage from;
	unsigned fromlen;
};

/* Accepts one connection and reads its greeting: the greeting's length,
 * or -errno. */
static intptr_t accept_a_greeting(void *arg)
{
	struct meeting *m = arg;
	m->fromlen = sizeof(m->from);
	int fd = afe_co_accept(m->listen_fd, (struct sockaddr *)&m->from, &m->fromlen,
			       SOCK_CLOEXEC);
	if (fd < 0)
		return fd;
	char buf[8];
	ssize_t n = afe_co_recv(fd, buf, sizeof(buf), 0);
	afe_co_close(fd);
	return n == 2 && memcmp(buf, "hi", 2) == 0 ? n : -EIO;
}

/* Connects a fresh socket to 127.0.0.1:port (arg) and greets: 0 or
 * -errno. */
static intptr_t connect_and_greet_by_address(void *arg)
{
	struct sockaddr_storage to;
	socklen_t tolen;
	int err = afe_sockaddr_ip("127.0.0.1", (uint16_t)(intptr_t)arg, &to, &tolen);
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (err == 0 && fd >= 0)
		err = afe_co_connect(fd, (struct sockaddr *)&to, tolen);
	if (err == 0)
		err = afe_co_send_all(fd, "hi", 2);
	close(fd);
	return err;
}

Test(coro_calls, a_coroutine_accepts_what_another_connects, .timeout = 20)
{
	struct afe_runtime *rt = test_runtime(2);
	struct meeting m = {.listen_fd = afe_tcp_listen("127.0.0.1", 0, 0)};
	cr_assert_geq(m.listen_fd, 0);
	intptr_t port = afe_tcp_local_port(m.listen_fd);
	struct afe_join_handle h;
	cr_assert_eq(afe_coro_spawn(rt, accept_a_greeting, &m, &h, NULL), 0);
	cr_assert_eq(test_block_on_coro(rt, connect_and_greet_by_address, (void *)port), 0);
	struct afe_join join;
	afe_join_init(&join, &h);
	cr_assert_eq(test_block_on(rt, &join), 2);
	cr_assert_eq(m.fromlen, sizeof(struct sockaddr_in), "the peer's address, its length set");
	cr_assert_eq(m.from.ss_family, AF_INET);
	close(m.listen_fd);
	/* Nobody listens there now. */
	cr_assert_eq(test_block_on_coro(rt, connect_and_greet_by_address, (void *)port),
		     -ECONNREFUSED);
	test_runtime_destroy(rt);
}

static intptr_t accept_on(void *arg)
{
	struct meeting *m = arg;
	m->fromlen = sizeof(m->from);
	return afe_co_accept(m->listen_fd, (struct sockaddr *)&m->from, &m->fromlen, 0);
}

static intptr_t connect_with_a_bad_address(void *arg)
{
	int fd = (int)(intptr_t)arg;
	struct sockaddr_storage to = {.ss_family = AF_INET};
	return afe_co_connect(fd, (struct sockaddr *)&to, 1); /* too short */
}

Test(coro_calls, accept_and_connect_with_bad_input_get_errors, .timeout = 20)
{
	struct afe_runtime *rt = test_runtime(1);
	struct meeting m = {.listen_fd = -1};
	cr_assert_eq(test_block_on_coro(rt, accept_on, &m), -EBADF);
	int sv[2];
	cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
	m.listen_fd = sv[0]; /* a connected socket does not listen */
	cr_assert_eq(test_block_on_coro(rt, accept_on, &m), -EINVAL);
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	cr_assert_eq(test_block_on_coro(rt, connect_with_a_bad_address, (void *)(intptr_t)fd),
		     -EINVAL);
	close(fd);
	cr_assert_eq(afe_co_accept(sv[0], NULL, NULL, 0), -EPERM);
	struct sockaddr_storage to = {.ss_family = AF_INET};
	cr_assert_eq(afe_co_connect(sv[0], (struct sockaddr *)&to, sizeof(to)), -EPERM);
	close(sv[0]);
	close(sv[1]);
	test_runtime_destroy(rt);
}

/* ---- recvmsg: a passed fd ---------------------------------------------- */

struct passing {
	int sock;
	int got_fd;
	int msg_flags;
	size_t control_room; /* what the receive leaves for control data */
	atomic_bool started;
};

/* Receives one byte and the fd passed with it (SCM_RIGHTS): the byte, or
 * -errno; -ENOENT when no fd came (p->msg_flags says why). */
static intptr_t receive_a_passed_fd(void *arg)
{
	struct passing *p = arg;
	char byte = 0;
	struct iovec iov = {.iov_base = &byte, .iov_len = 1};
	union {
		struct cmsghdr align;
		char buf[CMSG_SPACE(sizeof(int))];
	} control;
	struct msghdr msg = {.msg_iov = &iov,
			     .msg_iovlen = 1,
			     .msg_control = control.buf,
			     .msg_controllen = p->control_room};
	atomic_store(&p->started, true);
	ssize_t n = afe_co_recvmsg(p->sock, &msg, MSG_CMSG_CLOEXEC);
	if (n != 1)
		return n < 0 ? n : -EIO;
	p->msg_flags = msg.msg_flags;
	struct cmsghdr *c = CMSG_FIRSTHDR(&msg);
	if (!c || c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS)
		return -ENOENT;
	memcpy(&p->got_fd, CMSG_DATA(c), sizeof(int));
	return byte;
}

/* Sends the byte 'f' with fd over sock. */
static void pass_fd(int sock, int fd)
{
	char byte = 'f';
	struct iovec iov = {.iov_base = &byte, .iov_len = 1};
	union {
		struct cmsghdr align;
		char buf[CMSG_SPACE(sizeof(int))];
	} control;
	memset(&control, 0, sizeof(control));
	struct msghdr msg = {.msg_iov = &iov,
			     .msg_iovlen = 1,
			     .msg_control = control.buf,
			     .msg_controllen = sizeof(control.buf)};
	struct cmsghdr *c = CMSG_FIRSTHDR(&msg);
	c->cmsg_level = SOL_SOCKET;
	c->cmsg_type = SCM_RIGHTS;
	c->cmsg_len = CMSG_LEN(sizeof(int));
	memcpy(CMSG_DATA(c), &fd, sizeof(int));
	cr_assert_eq(sendmsg(sock, &msg, 0), 1);
}

Test(coro_calls, a_coroutine_waits_in_recvmsg_for_a_passed_fd, .timeout = 20)
{
	struct afe_runtime *rt = test_runtime(2);
	int sv[2], pipe_fds[2];
	cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
	cr_assert_eq(pipe(pipe_fds), 0);
	struct passing p = {.sock = sv[1], .got_fd = -1, .control_room = CMSG_SPACE(sizeof(int))};
	struct afe_join_handle h;
	cr_assert_eq(afe_coro_spawn(rt, receive_a_passed_fd, &p, &h, NULL), 0);
	while (!atomic_load(&p.started))
		sched_yield();
	usleep(10000); /* into its wait */
	pass_fd(sv[0], pipe_fds[1]);
	struct afe_join join;
	afe_join_init(&join, &h);
	cr_assert_eq(test_block_on(rt, &join), 'f');
	cr_assert_eq(p.msg_flags & MSG_CTRUNC, 0);
	/* The passed fd is another one for the pipe's write end. */
	cr_assert_neq(p.got_fd, pipe_fds[1]);
	cr_assert_eq(write(p.got_fd, "ok", 2), 2);
	char got[2];
	cr_assert_eq(read(pipe_fds[0], got, 2), 2);
	cr_assert_eq(memcmp(got, "ok", 2), 0);
	close(p.got_fd);
	close(pipe_fds[0]);
	close(pipe_fds[1]);
	close(sv[0]);
	close(sv[1]);
	test_runtime_destroy(rt);
}

Test(coro_calls, recvmsg_without_room_for_the_fd_reports_ctrunc, .timeout = 20)
{
	struct afe_runtime *rt = test_runtime(1);
	int sv[2];
	cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
	pass_fd(sv[0], sv[0]);
	struct passing p = {.sock = sv[1], .got_fd = -1, .control_room = 0};
	cr_assert_eq(test_block_on_coro(rt, receive_a_passed_fd, &p), -ENOENT);
	cr_assert_neq(p.msg_flags & MSG_CTRUNC, 0, "the fd did not fit: flags %#x", p.msg_flags);
	/* A closed peer: 0 bytes, which the coroutine reports as -EIO; a
	 * bad fd: -EBADF; outside a coroutine: -EPERM. */
	close(sv[0]);
	p.control_room = CMSG_SPACE(sizeof(int));
	cr_assert_eq(test_block_on_coro(rt, receive_a_passed_fd, &p), -EIO);
	p.sock = -1;
	cr_assert_eq(test_block_on_coro(rt, receive_a_passed_fd, &p), -EBADF);
	struct msghdr msg = {0};
	cr_assert_eq(afe_co_recvmsg(sv[1], &msg, 0), -EPERM);
	close(sv[1]);
	test_runtime_destroy(rt);
}

/* ---- a semaphore's permits --------------------------------------------- */

struct permits {
	struct afe_semaphore *sem;
	size_t n;
	atomic_bool started;
};

static intptr_t take_permits(void *arg)
{
	struct permits *p = arg;
	atomic_store(&p->started, true);
	return afe_co_sem_acquire(p->sem, p->n);
}

Test(coro_calls, a_coroutine_waits_until_all_its_permits_are_free, .timeout = 20)
{
	struct afe_runtime *rt = test_runtime(2);
	struct afe_semaphore sem;
	afe_sem_init(&sem, 0);
	struct permits p = {.sem = &sem, .n = 2};
	struct afe_join_handle h;
	cr_assert_eq(afe_coro_spawn(rt, take_permits, &p, &h, NULL), 0);
	while (!atomic_load(&p.started))
		sched_yield();
	cr_assert_eq(afe_sem_release(&sem, 1), 0);
	usleep(20000);
	cr_assert_not(afe_join_handle_is_finished(&h), "one permit of two: still waiting");
	cr_assert_eq(afe_sem_available(&sem), 1);
	cr_assert_eq(afe_sem_release(&sem, 1), 0);
	struct afe_join join;
	afe_join_init(&join, &h);
	cr_assert_eq(test_block_on(rt, &join), 0);
	cr_assert_eq(afe_sem_available(&sem), 0, "both went to the coroutine");
	cr_assert_eq(afe_sem_destroy(&sem), 0);
	test_runtime_destroy(rt);
}

Test(coro_calls, a_cancelled_or_bad_acquire_takes_no_permit, .timeout = 20)
{
	struct afe_runtime *rt = test_runtime(2);
	struct afe_semaphore sem;
	afe_sem_init(&sem, 1);
	struct permits p = {.sem = &sem, .n = 2};
	cr_assert_eq(cancel_in_its_wait(rt, take_permits, &p, &p.started), -ECANCELED);
	cr_assert_eq(afe_sem_available(&sem), 1, "the waiting acquire held nothing back");
	struct permits none = {.sem = &sem, .n = 0};
	cr_assert_eq(test_block_on_coro(rt, take_permits, &none), -EINVAL);
	struct permits nowhere = {.sem = NULL, .n = 1};
	cr_assert_eq(test_block_on_coro(rt, take_permits, &nowhere), -EINVAL);
	cr_assert_eq(afe_co_sem_acquire(&sem, 1), -EPERM);
	cr_assert_eq(afe_sem_available(&sem), 1);
	cr_assert_eq(afe_sem_destroy(&sem), 0);
	test_runtime_destroy(rt);
}

/* ---- a blocking job ----------------------------------------------------- */

struct job {
	unsigned nap_ms;
	char thread[16]; /* where the job ran */
	atomic_bool started, finished;
	intptr_t returned_with_job_finished; /* the coroutine's view */
};

static intptr_t nap_and_name_the_thread(void *arg)
{
	struct job *j = arg;
	atomic_store(&j->started, true);
	usleep(j->nap_ms * 1000u);
	prctl(PR_GET_NAME, j->thread);
	atomic_store(&j->finished, true);
	return 7;
}

static intptr_t run_the_job(void *arg)
{
	struct job *j = arg;
	intptr_t r = afe_co_blocking(nap_and_name_the_thread, j);
	j->returned_with_job_finished = atomic_load(&j->finished);
	return r;
}

Test(coro_calls, a_blocking_job_runs_off_the_workers_and_gives_its_result, .timeout = 20)
{
	struct afe_runtime *rt = test_runtime(1);
	struct job j = {.nap_ms = 5};
	cr_assert_eq(test_block_on_coro(rt, run_the_job, &j), 7);
	cr_assert_eq(strcmp(j.thread, "afe-blocking"), 0, "ran on %s", j.thread);
	test_runtime_destroy(rt);
}

static intptr_t run_no_function(void *arg)
{
	(void)arg;
	return afe_co_blocking(NULL, NULL);
}

Test(coro_calls, a_cancelled_blocking_job_returns_once_the_job_did, .timeout = 20)
{
	struct afe_runtime *rt = test_runtime(1);
	struct job j = {.nap_ms = 100};
	cr_assert_eq(cancel_in_its_wait(rt, run_the_job, &j, &j.started), -ECANCELED);
	cr_assert(j.returned_with_job_finished, "a started job is waited out");
	cr_assert_eq(test_block_on_coro(rt, run_no_function, NULL), -EINVAL);
	cr_assert_eq(afe_co_blocking(nap_and_name_the_thread, &j), -EPERM);
	test_runtime_destroy(rt);
}
