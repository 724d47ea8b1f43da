/* SPDX-License-Identifier: MIT */
/* Choosing the I/O backend, and what only the epoll backend does: several
 * operations waiting on one fd, a close ending the operations waiting on
 * its fd, futex waits watching the word, file calls on the blocking pool.
 * (The other I/O tests run again on epoll: the *_epoll tests.) */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <pthread.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "io_helpers.h"

static struct afe_runtime *runtime_on(enum afe_backend backend)
{
	struct afe_runtime_config config;
	afe_runtime_config_default(&config);
	config.workers = 2;
	config.backend = backend;
	struct afe_runtime *rt = NULL;
	cr_assert_eq(afe_runtime_create(&rt, &config), 0);
	return rt;
}

Test(backend, the_config_field_and_the_environment_choose_it)
{
	unsetenv("AFE_BACKEND");
	struct afe_runtime *rt = runtime_on(AFE_BACKEND_EPOLL);
	cr_assert_eq(afe_runtime_backend(rt), AFE_BACKEND_EPOLL);
	cr_assert_eq(afe_runtime_uring_features(rt), 0u);
	test_runtime_destroy(rt);

	rt = runtime_on(AFE_BACKEND_AUTO);
	cr_assert_eq(afe_runtime_backend(rt), AFE_BACKEND_URING);
	test_runtime_destroy(rt);

	setenv("AFE_BACKEND", "epoll", 1);
	rt = runtime_on(AFE_BACKEND_AUTO);
	cr_assert_eq(afe_runtime_backend(rt), AFE_BACKEND_EPOLL);
	test_runtime_destroy(rt);
	rt = runtime_on(AFE_BACKEND_URING); /* the config's explicit choice wins */
	cr_assert_eq(afe_runtime_backend(rt), AFE_BACKEND_URING);
	test_runtime_destroy(rt);
	unsetenv("AFE_BACKEND");

	cr_assert_eq(afe_runtime_backend(NULL), AFE_BACKEND_AUTO);
	struct afe_runtime_config config;
	afe_runtime_config_default(&config);
	cr_assert_eq(config.backend, AFE_BACKEND_AUTO);
	config.backend = (enum afe_backend)7;
	cr_assert_eq(afe_runtime_create(&rt, &config), -EINVAL);
}

/* Blocks the send side of fd: fills its socket buffer. */
static void fill(int fd)
{
	static char junk[65536];
	while (send(fd, junk, sizeof(junk), MSG_DONTWAIT) > 0)
		;
}

static void pause_ms(long ms)
{
	struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = ms % 1000 * 1000000L};
	nanosleep(&ts, NULL);
}

Test(epoll, a_read_and_a_write_wait_on_one_socket_at_once)
{
	struct afe_runtime *rt = runtime_on(AFE_BACKEND_EPOLL);
	int sv[2];
	cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
	fill(sv[0]);
	char in[8] = {0};
	struct afe_io reader, writer;
	afe_io_recv_init(&reader, sv[0], in, sizeof(in), 0);
	afe_io_send_init(&writer, sv[0], "out", 3, 0);
	struct afe_future *both[] = {&reader.base, &writer.base};
	struct afe_join_all all;
	cr_assert_eq(afe_join_all_init(&all, both, 2), 0);
	struct afe_join_handle handle;
	cr_assert_eq(afe_spawn(rt, &all, &handle), 0);
	pause_ms(50); /* both wait: nothing to read, no room to write */
	cr_assert(!afe_join_handle_is_finished(&handle));
	cr_assert_eq(write(sv[1], "in", 2), 2);
	static char drain[1 << 20];
	while (recv(sv[1], drain, sizeof(drain), MSG_DONTWAIT) > 0)
		;
	struct afe_join join;
	cr_assert_eq(afe_join_init(&join, &handle), 0);
	cr_assert_eq(test_block_on(rt, &join), 0);
	cr_assert_eq(reader.base.result, 2);
	cr_assert_eq(memcmp(in, "in", 2), 0);
	cr_assert_eq(writer.base.result, 3);
	close(sv[0]);
	close(sv[1]);
	test_runtime_destroy(rt);
}

Test(epoll, a_close_ends_the_operations_waiting_on_its_fd_with_ebadf)
{
	struct afe_runtime *rt = runtime_on(AFE_BACKEND_EPOLL);
	int sv[2];
	cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
	char in[8];
	struct one_op waiting;
	afe_io_recv_init(&waiting.io, sv[0], in, sizeof(in), 0);
	waiting = one_op_of(&waiting.io);
	struct afe_join_handle handle;
	cr_assert_eq(afe_spawn(rt, &waiting, &handle), 0);
	pause_ms(20);
	struct afe_io closing;
	afe_io_close_init(&closing, sv[0]);
	cr_assert_eq(run_io(rt, &closing), 0);
	struct afe_join join;
	cr_assert_eq(afe_join_init(&join, &handle), 0);
	cr_assert_eq(test_block_on(rt, &join), -EBADF);
	close(sv[1]);
	test_runtime_destroy(rt);
}

/* A receive on fd that waits (nothing sent yet) and then gets "x": leaves
 * fd's registration in the epoll set, disarmed. */
static void wait_once_on(struct afe_runtime *rt, int fd, int peer)
{
	char in[4];
	struct one_op waiting;
	afe_io_recv_init(&waiting.io, fd, in, sizeof(in), 0);
	waiting = one_op_of(&waiting.io);
	struct afe_join_handle handle;
	cr_assert_eq(afe_spawn(rt, &waiting, &handle), 0);
	pause_ms(20);
	cr_assert_eq(write(peer, "x", 1), 1);
	struct afe_join join;
	cr_assert_eq(afe_join_init(&join, &handle), 0);
	cr_assert_eq(test_block_on(rt, &join), 1);
}

/* Receives on fd, sent to through peer only after 50 ms: the receive must
 * be woken by epoll (its bytes were not there when it began). */
static void receive_late(struct afe_runtime *rt, int fd, int peer, const char *want)
{
	char in[16] = {0};
	struct one_op late;
	afe_io_recv_init(&late.io, fd, in, sizeof(in), 0);
	cr_assert_eq(afe_io_set_timeout(&late.io, 5000000000u), 0); /* a hang: fail */
	late = one_op_of(&late.io);
	struct afe_join_handle handle;
	cr_assert_eq(afe_spawn(rt, &late, &handle), 0);
	pause_ms(50);
	cr_assert_eq(write(peer, want, strlen(want)), (ssize_t)strlen(want));
	struct afe_join join;
	cr_assert_eq(afe_join_init(&join, &handle), 0);
	cr_assert_eq(test_block_on(rt, &join), (intptr_t)strlen(want));
	cr_assert_eq(strcmp(in, want), 0, "got \"%s\"", in);
}

/* Registrations are one-shot and left in the set when their waits end
 * (update_interest): one left behind by a file closed without AFE must not
 * make AFE think the next file with that number is watched. */
Test(epoll, an_fd_number_reused_after_a_plain_close_is_watched_again, .timeout = 20)
{
	struct afe_runtime *rt = runtime_on(AFE_BACKEND_EPOLL);
	int a[2], b[2];
	cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM, 0, a), 0);
	wait_once_on(rt, a[0], a[1]);
	int number = a[0];
	cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM, 0, b), 0); /* other numbers */
	cr_assert_eq(close(a[0]), 0); /* the registration goes with the file */
	cr_assert_eq(dup2(b[0], number), number);
	close(b[0]);
	receive_late(rt, number, b[1], "new");

	/* Again with the first file kept open by a copy: its disarmed
	 * registration stays in the set, under the same number. */
	int keep = dup(number);
	cr_assert_geq(keep, 0);
	int c[2];
	cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM, 0, c), 0);
	cr_assert_eq(dup2(c[0], number), number);
	close(c[0]);
	cr_assert_eq(write(b[1], "old", 3), 3); /* ready, but no longer AFE's */
	receive_late(rt, number, c[1], "newer");
	close(number);
	close(keep);
	close(a[1]);
	close(b[1]);
	close(c[1]);
	test_runtime_destroy(rt);
}

/* A wait that ended armed (its timeout came first) takes its registration
 * out of the set, so the file's later readiness is not reported under a
 * number that may name another file by then. */
Test(epoll, a_wait_that_times_out_leaves_no_armed_registration, .timeout = 20)
{
	struct afe_runtime *rt = runtime_on(AFE_BACKEND_EPOLL);
	int a[2], b[2];
	cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM, 0, a), 0);
	wait_once_on(rt, a[0], a[1]);
	char in[4];
	struct afe_io timed;
	afe_io_recv_init(&timed, a[0], in, sizeof(in), 0);
	cr_assert_eq(afe_io_set_timeout(&timed, 20000000u), 0);
	cr_assert_eq(run_io(rt, &timed), -ETIMEDOUT);
	int number = a[0], keep = dup(a[0]);
	cr_assert_geq(keep, 0);
	cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM, 0, b), 0);
	cr_assert_eq(dup2(b[0], number), number);
	close(b[0]);
	receive_late(rt, number, b[1], "b");
	close(number);
	close(keep);
	close(a[1]);
	close(b[1]);
	test_runtime_destroy(rt);
}

/* A receive on a socket waited on before waits for epoll's report rather
 * than trying first (advance): bytes already there are still reported. */
Test(epoll, a_receive_whose_bytes_are_already_there_completes, .timeout = 20)
{
	struct afe_runtime *rt = runtime_on(AFE_BACKEND_EPOLL);
	int a[2];
	cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM, 0, a), 0);
	wait_once_on(rt, a[0], a[1]);
	cr_assert_eq(write(a[1], "here", 4), 4);
	char in[8] = {0};
	struct afe_io now;
	afe_io_recv_init(&now, a[0], in, sizeof(in), 0);
	cr_assert_eq(run_io(rt, &now), 4);
	cr_assert_eq(strcmp(in, "here"), 0, "got \"%s\"", in);

	/* The number moved to a regular file: epoll refuses it, and the
	 * receive is tried as io_uring would: not a socket. */
	int number = a[0];
	int file = open("/proc/self/exe", O_RDONLY | O_CLOEXEC); /* another number */
	cr_assert_geq(file, 0);
	close(a[0]);
	cr_assert_eq(dup2(file, number), number);
	close(file);
	afe_io_recv_init(&now, number, in, sizeof(in), 0);
	cr_assert_eq(run_io(rt, &now), -ENOTSOCK);
	close(number);
	close(a[1]);
	test_runtime_destroy(rt);
}

/* One operation on fd, polled with fd as its context's owned_fd, as the
 * TCP server polls its connections: the epoll backend keeps fd's
 * registration (keep_registered). */
struct owned_op {
	struct afe_future base;
	int fd;
	struct afe_io io;
};

static int owned_op_poll(struct afe_future *f, struct afe_context *cx)
{
	struct owned_op *self = afe_container_of(f, struct owned_op, base);
	struct afe_context inner = *cx;
	inner.owned_fd = &self->fd;
	if (afe_future_poll(&self->io.base, &inner) == AFE_PENDING)
		return AFE_PENDING;
	f->result = self->io.base.result;
	return AFE_READY;
}

/* Runs io, prepared on fd, as an operation on an owned fd; a hang fails
 * after 5 s. */
static intptr_t run_owned(struct afe_runtime *rt, int fd, const struct afe_io *io)
{
	struct owned_op op = {.fd = fd, .io = *io};
	afe_future_init(&op.base, owned_op_poll);
	cr_assert_eq(afe_io_set_timeout(&op.io, 5000000000u), 0);
	return test_block_on(rt, &op);
}

/* An owned receive that waits for "x" (so fd's registration is kept). */
static void keep_by_waiting(struct afe_runtime *rt, int fd, int peer)
{
	char in[4];
	struct owned_op op = {.fd = fd};
	afe_io_recv_init(&op.io, fd, in, sizeof(in), 0);
	afe_future_init(&op.base, owned_op_poll);
	struct afe_join_handle handle;
	cr_assert_eq(afe_spawn(rt, &op, &handle), 0);
	pause_ms(20);
	cr_assert_eq(write(peer, "x", 1), 1);
	struct afe_join join;
	cr_assert_eq(afe_join_init(&join, &handle), 0);
	cr_assert_eq(test_block_on(rt, &join), 1);
}

/* A kept registration reports an edge once: bytes that came while no
 * operation waited are remembered, and the next receive gets them. */
Test(epoll, a_kept_fd_receives_bytes_that_came_while_nothing_waited, .timeout = 30)
{
	struct afe_runtime *rt = runtime_on(AFE_BACKEND_EPOLL);
	int a[2];
	cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM, 0, a), 0);
	keep_by_waiting(rt, a[0], a[1]);
	cr_assert_eq(write(a[1], "here", 4), 4);
	pause_ms(20); /* epoll reports it while nothing waits */
	char in[8] = {0};
	struct afe_io io;
	afe_io_recv_init(&io, a[0], in, sizeof(in), 0);
	cr_assert_eq(run_owned(rt, a[0], &io), 4);
	cr_assert_eq(strcmp(in, "here"), 0, "got \"%s\"", in);

	/* A receive that fills its buffer may leave bytes behind: the next
	 * one gets them without a new edge. */
	cr_assert_eq(write(a[1], "abcdefgh", 8), 8);
	pause_ms(20);
	char half[4];
	afe_io_recv_init(&io, a[0], half, sizeof(half), 0);
	cr_assert_eq(run_owned(rt, a[0], &io), 4);
	cr_assert_eq(memcmp(half, "abcd", 4), 0);
	afe_io_recv_init(&io, a[0], half, sizeof(half), 0);
	cr_assert_eq(run_owned(rt, a[0], &io), 4);
	cr_assert_eq(memcmp(half, "efgh", 4), 0);

	/* A poll asks the fd: the edge was reported before it came. */
	cr_assert_eq(write(a[1], "p", 1), 1);
	pause_ms(20);
	afe_io_poll_init(&io, a[0], POLLIN);
	cr_assert_eq(run_owned(rt, a[0], &io) & POLLIN, POLLIN);

	/* And a short receive emptied it: the next waits for new bytes. */
	afe_io_recv_init(&io, a[0], in, sizeof(in), 0);
	cr_assert_eq(run_owned(rt, a[0], &io), 1);
	receive_late(rt, a[0], a[1], "late");
	close(a[0]);
	close(a[1]);
	test_runtime_destroy(rt);
}

/* A close through the runtime ends the kept registration: the number's
 * next file is registered anew, owned or not. */
Test(epoll, a_kept_fd_closed_through_the_runtime_leaves_its_number_free, .timeout = 30)
{
	struct afe_runtime *rt = runtime_on(AFE_BACKEND_EPOLL);
	int a[2], b[2];
	cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM, 0, a), 0);
	keep_by_waiting(rt, a[0], a[1]);
	int number = a[0];
	cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM, 0, b), 0); /* other numbers */
	struct afe_io closing;
	afe_io_close_init(&closing, number);
	cr_assert_eq(run_owned(rt, number, &closing), 0);
	cr_assert_eq(dup2(b[0], number), number);
	close(b[0]);
	receive_late(rt, number, b[1], "plain");
	keep_by_waiting(rt, number, b[1]);
	close(number);
	close(a[1]);
	close(b[1]);
	test_runtime_destroy(rt);
}

/* Futex waits end when the word changes (test_futex has the rest): a
 * changed word is -EAGAIN at once, an unchanged one waits (here until
 * its timeout), and a wake makes the system call. */
Test(epoll, futex_waits_watch_the_word, .timeout = 10)
{
	struct afe_runtime *rt = runtime_on(AFE_BACKEND_EPOLL);
	static _Atomic uint32_t word = 1;
	struct afe_io io;
	afe_io_futex_wait_init(&io, &word, 0, AFE_FUTEX_PRIVATE);
	cr_assert_eq(run_io(rt, &io), -EAGAIN);
	afe_io_futex_wait_init(&io, &word, 1, AFE_FUTEX_PRIVATE);
	cr_assert_eq(afe_io_set_timeout(&io, 30 * 1000000ull), 0);
	cr_assert_eq(run_io(rt, &io), -ETIMEDOUT);
	afe_io_futex_wake_init(&io, &word, 1, AFE_FUTEX_PRIVATE);
	cr_assert_eq(run_io(rt, &io), 0, "nobody waits");
	test_runtime_destroy(rt);
}

Test(epoll, a_blocking_connect_to_a_silent_address_times_out_without_blocking_the_ring,
     .timeout = 10)
{
	struct afe_runtime *rt = runtime_on(AFE_BACKEND_EPOLL);
	/* A listener whose backlog is full: a unix connect would block. */
	int listener = socket(AF_UNIX, SOCK_STREAM, 0);
	struct sockaddr_un addr = {.sun_family = AF_UNIX};
	snprintf(addr.sun_path, sizeof(addr.sun_path), "/tmp/afe-test-backend-%d", getpid());
	unlink(addr.sun_path);
	cr_assert_eq(bind(listener, (struct sockaddr *)&addr, sizeof(addr)), 0);
	cr_assert_eq(listen(listener, 0), 0);
	int filler[4];
	for (int i = 0; i < 4; i++) {
		filler[i] = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0);
		connect(filler[i], (struct sockaddr *)&addr, sizeof(addr));
	}
	int fd = socket(AF_UNIX, SOCK_STREAM, 0); /* blocking */
	struct afe_io io;
	afe_io_connect_init(&io, fd, (struct sockaddr *)&addr, sizeof(addr));
	cr_assert_eq(afe_io_set_timeout(&io, 100 * 1000000ull), 0);
	cr_assert_eq(run_io(rt, &io), -ETIMEDOUT);
	/* The ring thread was free meanwhile, and still is. */
	struct afe_io nop;
	afe_io_nop_init(&nop);
	cr_assert_eq(run_io(rt, &nop), 0);
	int flags = fcntl(fd, F_GETFL);
	cr_assert(!(flags & O_NONBLOCK), "the socket's own flags are left alone");
	for (int i = 0; i < 4; i++)
		close(filler[i]);
	close(fd);
	close(listener);
	unlink(addr.sun_path);
	test_runtime_destroy(rt);
}

static uint64_t now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

/* Opens the FIFO at arg for writing after 1 s, which ends a blocked
 * open for reading; returns the fd. */
static void *open_writer_later(void *arg)
{
	pause_ms(1000);
	return (void *)(intptr_t)open(arg, O_WRONLY | O_CLOEXEC);
}

Test(epoll, a_file_call_that_blocks_leaves_the_ring_thread_free, .timeout = 20)
{
	struct afe_runtime *rt = runtime_on(AFE_BACKEND_EPOLL);
	char path[64];
	snprintf(path, sizeof(path), "/tmp/afe-test-fifo-%d", getpid());
	unlink(path);
	cr_assert_eq(mkfifo(path, 0600), 0);
	pthread_t writer;
	cr_assert_eq(pthread_create(&writer, NULL, open_writer_later, path), 0);
	/* An open for reading blocks until the writer comes. */
	struct one_op opening;
	afe_io_openat_init(&opening.io, AT_FDCWD, path, O_RDONLY | O_CLOEXEC, 0);
	opening = one_op_of(&opening.io);
	struct afe_join_handle handle;
	cr_assert_eq(afe_spawn(rt, &opening, &handle), 0);
	pause_ms(50);
	uint64_t start = now_ms();
	struct afe_io nop;
	afe_io_nop_init(&nop);
	cr_assert_eq(run_io(rt, &nop), 0);
	uint64_t took = now_ms() - start;
	cr_assert_lt(took, 500u, "a NOP waited %llu ms behind the open",
		     (unsigned long long)took);
	struct afe_join join;
	cr_assert_eq(afe_join_init(&join, &handle), 0);
	intptr_t fd = test_block_on(rt, &join);
	cr_assert_geq(fd, 0, "the open: %d", (int)fd);
	void *wfd;
	pthread_join(writer, &wfd);
	close((int)fd);
	close((int)(intptr_t)wfd);
	unlink(path);
	test_runtime_destroy(rt);
}
