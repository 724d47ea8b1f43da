/* SPDX-License-Identifier: MIT */
/* Files and streams: the path operations, fallocate, ftruncate, splice
 * and tee (afe/io.h), and sendfile, exact reads, whole writes and the
 * buffered reader (afe/fs.h), with bad input. */
#define _GNU_SOURCE /* statx, splice flags */
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>

#include "io_helpers.h"
#include "uring/page_cache.h"

/* A fresh directory under /tmp, as an fd; its path in dir. */
static int temp_dir(char *dir, size_t size)
{
	snprintf(dir, size, "/tmp/afe-test-fs-XXXXXX");
	cr_assert_not_null(mkdtemp(dir));
	int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	cr_assert_geq(fd, 0);
	return fd;
}

/* A temporary file holding size bytes of a known pattern; unlinked. */
static int pattern_file(size_t size)
{
	int fd = test_unlinked_file();
	char block[4096];
	for (size_t at = 0; at < size; at += sizeof(block)) {
		for (size_t i = 0; i < sizeof(block); i++)
			block[i] = (char)((at + i) * 7 % 251);
		size_t n = size - at < sizeof(block) ? size - at : sizeof(block);
		cr_assert_eq(write(fd, block, n), (ssize_t)n);
	}
	return fd;
}

static char pattern_at(size_t i)
{
	return (char)(i * 7 % 251);
}

/* ---- path operations ------------------------------------------------------- */

Test(fs, statx_gives_the_size_and_enoent_for_a_missing_file)
{
	struct afe_runtime *rt = test_runtime(2);
	char dir[64];
	int dfd = temp_dir(dir, sizeof(dir));
	int fd = openat(dfd, "f", O_CREAT | O_WRONLY | O_CLOEXEC, 0600);
	cr_assert_eq(write(fd, "12345", 5), 5);
	close(fd);
	struct statx st;
	memset(&st, 0, sizeof(st));
	struct afe_io io;
	afe_io_statx_init(&io, dfd, "f", 0, STATX_SIZE | STATX_TYPE, &st);
	cr_assert_eq(run_io(rt, &io), 0);
	cr_assert_eq(st.stx_size, 5);
	cr_assert(S_ISREG(st.stx_mode));
	afe_io_statx_init(&io, dfd, "missing", 0, STATX_SIZE, &st);
	cr_assert_eq(run_io(rt, &io), -ENOENT);
	afe_io_statx_init(&io, 987654, "f", 0, STATX_SIZE, &st);
	cr_assert_eq(run_io(rt, &io), -EBADF, "a bad dirfd with a relative path");
	unlinkat(dfd, "f", 0);
	close(dfd);
	rmdir(dir);
	test_runtime_destroy(rt);
}

Test(fs, mkdirat_renameat_unlinkat)
{
	struct afe_runtime *rt = test_runtime(2);
	char dir[64];
	int dfd = temp_dir(dir, sizeof(dir));
	struct afe_io io;
	afe_io_mkdirat_init(&io, dfd, "sub", 0700);
	cr_assert_eq(run_io(rt, &io), 0);
	afe_io_mkdirat_init(&io, dfd, "sub", 0700);
	cr_assert_eq(run_io(rt, &io), -EEXIST);
	afe_io_mkdirat_init(&io, dfd, "missing/sub", 0700);
	cr_assert_eq(run_io(rt, &io), -ENOENT);
	close(openat(dfd, "sub/a", O_CREAT | O_WRONLY | O_CLOEXEC, 0600));
	afe_io_renameat_init(&io, dfd, "sub/a", dfd, "b", 0);
	cr_assert_eq(run_io(rt, &io), 0);
	cr_assert_eq(faccessat(dfd, "b", F_OK, 0), 0);
	cr_assert_neq(faccessat(dfd, "sub/a", F_OK, 0), 0);
	afe_io_renameat_init(&io, dfd, "a", dfd, "c", 0);
	cr_assert_eq(run_io(rt, &io), -ENOENT);
	close(openat(dfd, "d", O_CREAT | O_WRONLY | O_CLOEXEC, 0600));
	afe_io_renameat_init(&io, dfd, "b", dfd, "d", RENAME_NOREPLACE);
	cr_assert_eq(run_io(rt, &io), -EEXIST);
	afe_io_unlinkat_init(&io, dfd, "b", 0);
	cr_assert_eq(run_io(rt, &io), 0);
	afe_io_unlinkat_init(&io, dfd, "b", 0);
	cr_assert_eq(run_io(rt, &io), -ENOENT);
	afe_io_unlinkat_init(&io, dfd, "d", 0);
	cr_assert_eq(run_io(rt, &io), 0);
	afe_io_unlinkat_init(&io, dfd, "sub", AT_REMOVEDIR);
	cr_assert_eq(run_io(rt, &io), 0);
	afe_io_unlinkat_init(&io, 987654, "x", 0);
	cr_assert_eq(run_io(rt, &io), -EBADF);
	close(dfd);
	cr_assert_eq(rmdir(dir), 0, "everything made was removed");
	test_runtime_destroy(rt);
}

/* ---- fallocate, ftruncate -------------------------------------------------- */

static off_t size_of(int fd)
{
	struct stat st;
	cr_assert_eq(fstat(fd, &st), 0);
	return st.st_size;
}

Test(fs, fallocate_grows_and_rejects_bad_input)
{
	struct afe_runtime *rt = test_runtime(2);
	int fd = pattern_file(0);
	struct afe_io io;
	afe_io_fallocate_init(&io, fd, 0, 0, 100000);
	cr_assert_eq(run_io(rt, &io), 0);
	cr_assert_eq(size_of(fd), 100000);
	afe_io_fallocate_init(&io, fd, 0, 0, 0);
	cr_assert_eq(run_io(rt, &io), -EINVAL, "a zero length");
	afe_io_fallocate_init(&io, 987654, 0, 0, 10);
	cr_assert_eq(run_io(rt, &io), -EBADF);
	int p[2];
	cr_assert_eq(pipe(p), 0);
	afe_io_fallocate_init(&io, p[1], 0, 0, 10);
	cr_assert_eq(run_io(rt, &io), -ESPIPE);
	close(p[0]);
	close(p[1]);
	close(fd);
	test_runtime_destroy(rt);
}

/* Runs an ftruncate to length on fd; returns its result. */
static intptr_t run_ftruncate(struct afe_runtime *rt, int fd, int64_t length)
{
	struct afe_io_ftruncate t;
	afe_io_ftruncate_init(&t, fd, length);
	return test_block_on(rt, &t);
}

Test(fs, ftruncate_cuts_grows_and_rejects_bad_input)
{
	struct afe_runtime *rt = test_runtime(2);
	/* Which path this run takes: the *_5.15 run takes the pool's. */
	fprintf(stderr, "ftruncate through the %s\n",
		afe_runtime_uring_features(rt) & AFE_URING_FTRUNCATE ? "ring" : "blocking pool");
	int fd = pattern_file(10000);
	cr_assert_eq(run_ftruncate(rt, fd, 10), 0);
	cr_assert_eq(size_of(fd), 10);
	cr_assert_eq(run_ftruncate(rt, fd, 5000), 0);
	cr_assert_eq(size_of(fd), 5000);
	char c = 1;
	cr_assert_eq(pread(fd, &c, 1, 4999), 1);
	cr_assert_eq(c, 0, "grown with zeros");
	cr_assert_eq(run_ftruncate(rt, fd, -1), -EINVAL);
	cr_assert_eq(run_ftruncate(rt, 987654, 0), -EBADF);
	int ro = open("/proc/self/exe", O_RDONLY | O_CLOEXEC);
	cr_assert_eq(run_ftruncate(rt, ro, 0), -EINVAL, "not open for writing");
	close(ro);
	close(fd);
	test_runtime_destroy(rt);
}

Test(fs, ftruncate_outside_a_runtime_is_einval)
{
	struct afe_io_ftruncate t;
	afe_io_ftruncate_init(&t, 0, 0);
	struct counting_waker cw;
	counting_waker_init(&cw);
	struct afe_context cx = counting_context(&cw, false);
	cr_assert_eq(afe_future_poll(&t.base, &cx), AFE_READY);
	cr_assert_eq(t.base.result, -EINVAL);
}

/* ---- splice, tee ----------------------------------------------------------- */

Test(fs, splice_file_to_pipe_to_file_and_tee)
{
	struct afe_runtime *rt = test_runtime(2);
	int in = pattern_file(10000);
	int out = pattern_file(0);
	int p[2], q[2];
	cr_assert_eq(pipe(p), 0);
	cr_assert_eq(pipe(q), 0);
	struct afe_io io;
	afe_io_splice_init(&io, in, 100, p[1], -1, 1000, 0);
	cr_assert_eq(run_io(rt, &io), 1000);
	afe_io_tee_init(&io, p[0], q[1], 5000, 0);
	cr_assert_eq(run_io(rt, &io), 1000, "tee copies what the pipe holds");
	afe_io_splice_init(&io, p[0], -1, out, 0, 5000, 0);
	cr_assert_eq(run_io(rt, &io), 1000);
	char got[1000];
	cr_assert_eq(pread(out, got, sizeof(got), 0), 1000);
	for (size_t i = 0; i < sizeof(got); i++)
		cr_assert_eq(got[i], pattern_at(100 + i), "byte %zu", i);
	cr_assert_eq(read(q[0], got, sizeof(got)), 1000, "the tee's copy");
	cr_assert_eq(got[0], pattern_at(100));
	afe_io_splice_init(&io, in, 10000, p[1], -1, 100, 0);
	cr_assert_eq(run_io(rt, &io), 0, "at the file's end");
	afe_io_splice_init(&io, in, 0, out, 0, 100, 0);
	cr_assert_eq(run_io(rt, &io), -EINVAL, "neither side a pipe");
	afe_io_splice_init(&io, 987654, 0, p[1], -1, 100, 0);
	cr_assert_eq(run_io(rt, &io), -EBADF);
	afe_io_tee_init(&io, in, q[1], 100, 0);
	cr_assert_eq(run_io(rt, &io), -EINVAL, "tee from a file");
	close(p[0]);
	close(p[1]);
	close(q[0]);
	close(q[1]);
	close(in);
	close(out);
	test_runtime_destroy(rt);
}

/* ---- sendfile -------------------------------------------------------------- */

/* A thread that reads a stream to its end, checking it against the
 * pattern from `first` on. */
struct drain {
	pthread_t thread;
	int fd;
	size_t first, got;
	bool wrong;
};

static void *drain_main(void *arg)
{
	struct drain *d = arg;
	char buf[65536];
	ssize_t n;
	while ((n = read(d->fd, buf, sizeof(buf))) > 0) {
		for (ssize_t i = 0; i < n; i++)
			if (buf[i] != pattern_at(d->first + d->got + (size_t)i))
				d->wrong = true;
		d->got += (size_t)n;
	}
	return NULL;
}

static void drain_start(struct drain *d, int fd, size_t first)
{
	*d = (struct drain){.fd = fd, .first = first};
	cr_assert_eq(pthread_create(&d->thread, NULL, drain_main, d), 0);
}

static void drain_join(struct drain *d)
{
	cr_assert_eq(pthread_join(d->thread, NULL), 0);
}

static intptr_t run_sendfile(struct afe_runtime *rt, int out, int in, int64_t offset, size_t len)
{
	struct afe_sendfile s;
	afe_sendfile_init(&s, out, in, offset, len);
	return test_block_on(rt, &s);
}

/* Where an offset of -1 starts: the file position, set here. */
#define POSITION 1000

/* Sends [offset, offset + len) of a file of size bytes over a socket pair;
 * returns the result, and checks the peer got that many, in order (and
 * for offset -1, that the file position moved past them). */
static intptr_t sendfile_over_socket(struct afe_runtime *rt, size_t size, int64_t offset,
				     size_t len)
{
	int in = pattern_file(size);
	cr_assert_eq(lseek(in, POSITION, SEEK_SET), POSITION);
	int sv[2];
	cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
	struct drain d;
	drain_start(&d, sv[1], offset < 0 ? POSITION : (size_t)offset);
	intptr_t r = run_sendfile(rt, sv[0], in, offset, len);
	if (offset < 0 && r >= 0)
		cr_assert_eq(lseek(in, 0, SEEK_CUR), POSITION + r);
	close(sv[0]);
	drain_join(&d);
	close(sv[1]);
	close(in);
	cr_assert_not(d.wrong, "the bytes came in order");
	cr_assert_eq(d.got, r > 0 ? (size_t)r : 0, "the peer got what was sent");
	return r;
}

Test(fs, sendfile_sends_a_file_in_pipe_sized_chunks)
{
	struct afe_runtime *rt = test_runtime(2);
	size_t size = 3 * 1024 * 1024 + 7; /* several pipes' worth, not whole */
	cr_assert_eq(sendfile_over_socket(rt, size, 0, size), (intptr_t)size);
	test_runtime_destroy(rt);
}

Test(fs, sendfile_from_an_offset_and_past_the_end)
{
	struct afe_runtime *rt = test_runtime(2);
	cr_assert_eq(sendfile_over_socket(rt, 100000, 999, 5000), 5000);
	cr_assert_eq(sendfile_over_socket(rt, 100000, 99000, 5000), 1000, "the file ends first");
	cr_assert_eq(sendfile_over_socket(rt, 100000, 200000, 10), 0, "past the end");
	cr_assert_eq(sendfile_over_socket(rt, 100000, -1, 70000), 70000, "the file position");
	cr_assert_eq(sendfile_over_socket(rt, 100000, 0, 0), 0);
	test_runtime_destroy(rt);
}

Test(fs, sendfile_bad_fds)
{
	struct afe_runtime *rt = test_runtime(2);
	int in = pattern_file(1000);
	int sv[2];
	cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
	cr_assert_eq(run_sendfile(rt, sv[0], 987654, 0, 100), -EBADF);
	cr_assert_eq(run_sendfile(rt, 987654, in, 0, 100), -EBADF);
	cr_assert_eq(run_sendfile(rt, sv[0], sv[1], 0, 100), -EINVAL, "an offset on a socket");
	close(sv[0]);
	close(sv[1]);
	close(in);
	test_runtime_destroy(rt);
}

Test(fs, sendfile_to_a_closed_peer_is_an_error)
{
	signal(SIGPIPE, SIG_IGN);
	struct afe_runtime *rt = test_runtime(2);
	int in = pattern_file(1 << 20);
	int sv[2];
	cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
	close(sv[1]);
	intptr_t r = run_sendfile(rt, sv[0], in, 0, 1 << 20);
	cr_assert(r == -EPIPE || r == -ECONNRESET, "got %ld", (long)r);
	close(sv[0]);
	close(in);
	test_runtime_destroy(rt);
}

/* What a sendfile on a worker saw: whether its first poll ended it, and
 * the worker's pending signals once it had. */
struct sendfile_seen {
	bool first_ready;
	sigset_t pending_after;
};

/* A sendfile on a worker, its first poll made by hand. */
struct sendfile_task {
	struct afe_future base;
	struct afe_sendfile send;
	struct sendfile_seen *seen;
};

static int sendfile_task_poll(struct afe_future *f, struct afe_context *cx)
{
	struct sendfile_task *self = afe_container_of(f, struct sendfile_task, base);
	AFE_ASYNC_BEGIN(f, cx);
	self->seen->first_ready = afe_future_poll(&self->send.base, cx) == AFE_READY;
	if (!self->seen->first_ready)
		AFE_AWAIT(&self->send.base);
	sigpending(&self->seen->pending_after);
	AFE_RETURN(self->send.base.result);
	AFE_ASYNC_END;
}

/* Runs it as afe_block_on's task, so that nothing else is queued with it
 * (a task queued behind it would make it give way between chunks). */
static intptr_t sendfile_on_a_worker(struct afe_runtime *rt, struct sendfile_seen *seen, int out,
				     int in, size_t len)
{
	memset(seen, 0, sizeof(*seen));
	struct sendfile_task t = {.seen = seen};
	afe_future_init(&t.base, sendfile_task_poll);
	afe_sendfile_init(&t.send, out, in, 0, len);
	return test_block_on(rt, &t);
}

/* Whether fd's file system reads without waiting when asked (RWF_NOWAIT):
 * the page-cache check needs it (ext4 and xfs, where /tmp is here). */
static bool nowait_reads(int fd)
{
	char byte;
	struct iovec iov = {&byte, 1};
	return preadv2(fd, &iov, 1, 0, RWF_NOWAIT) == 1;
}

/* The page-cache check behind sendfile's fills on a worker: yes for a
 * file just written (its pages are in the cache), no for what is not a
 * file, a bad fd, a range past the end, nothing at all. */
Test(fs, page_cache_ready_for_a_file_just_written_and_nothing_else)
{
	int in = pattern_file(100000);
	cr_assert(afe__page_cache_ready(in, 0, 100000) || !nowait_reads(in));
	cr_assert(afe__page_cache_ready(in, 4096, 8192) || !nowait_reads(in), "a range inside");
	cr_assert_eq(lseek(in, 50000, SEEK_SET), 50000);
	cr_assert(afe__page_cache_ready(in, -1, 50000) || !nowait_reads(in), "from the position");
	cr_assert_not(afe__page_cache_ready(in, 0, 200000), "past the end");
	cr_assert_not(afe__page_cache_ready(in, 0, 0), "nothing");
	int p[2];
	cr_assert_eq(pipe(p), 0);
	cr_assert_not(afe__page_cache_ready(p[0], -1, 4096), "a pipe");
	cr_assert_not(afe__page_cache_ready(p[0], 0, 4096), "a pipe at an offset");
	cr_assert_not(afe__page_cache_ready(987654, 0, 4096), "a bad fd");
	close(p[0]);
	close(p[1]);
	close(in);
}

/* A socket pair whose sending end (sv[0]) is non-blocking. */
static void nonblocking_pair(int sv[2])
{
	cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
	cr_assert_eq(fcntl(sv[0], F_SETFL, fcntl(sv[0], F_GETFL) | O_NONBLOCK), 0);
}

Test(fs, sendfile_on_a_worker_splices_a_cached_file_into_a_nonblocking_socket_at_once)
{
	struct afe_runtime *rt = test_runtime(1);
	size_t size = 60000; /* one step of a worker's, and the socket takes it */
	int in = pattern_file(size);
	int sv[2];
	nonblocking_pair(sv);
	struct sendfile_seen t;
	cr_assert_eq(sendfile_on_a_worker(rt, &t, sv[0], in, size), (intptr_t)size);
	if (nowait_reads(in))
		cr_assert(t.first_ready, "no splice went through the ring");
	close(sv[0]);
	struct drain d;
	drain_start(&d, sv[1], 0);
	drain_join(&d);
	cr_assert_not(d.wrong);
	cr_assert_eq(d.got, size);
	close(sv[1]);
	close(in);
	test_runtime_destroy(rt);
}

/* Several MiB into a non-blocking socket with a small buffer: it fills,
 * and the sendfile waits for room (a splice would end with -EAGAIN). */
Test(fs, sendfile_into_a_nonblocking_socket_waits_for_room)
{
	struct afe_runtime *rt = test_runtime(2);
	size_t size = 3 * 1024 * 1024 + 7;
	int in = pattern_file(size);
	int sv[2];
	nonblocking_pair(sv);
	int small = 4096;
	cr_assert_eq(setsockopt(sv[0], SOL_SOCKET, SO_SNDBUF, &small, sizeof(small)), 0);
	struct drain d;
	drain_start(&d, sv[1], 0);
	intptr_t r = run_sendfile(rt, sv[0], in, 0, size);
	close(sv[0]);
	drain_join(&d);
	close(sv[1]);
	close(in);
	cr_assert_eq(r, (intptr_t)size, "got %ld", (long)r);
	cr_assert_not(d.wrong);
	cr_assert_eq(d.got, size);
	test_runtime_destroy(rt);
}

/* The ring thread does not make the splices that need not wait: the task
 * moves to a worker, which makes them. */
Test(fs, sendfile_moves_its_task_from_the_ring_thread_to_a_worker)
{
	struct afe_runtime *rt = test_runtime(2);
	size_t size = 100000;
	int in = pattern_file(size);
	int sv[2];
	nonblocking_pair(sv);
	char woken_on[16] = "", name[16] = "";
	struct afe_sendfile send;
	afe_sendfile_init(&send, sv[0], in, 0, size);
	struct after_nap t = after_nap_make(&send.base, woken_on, name);
	cr_assert_eq(test_block_on(rt, &t), (intptr_t)size);
	cr_assert(strncmp(woken_on, "afe-ring", 8) == 0, "woken on %s", woken_on);
	cr_assert(strncmp(name, "afe-worker", 10) == 0, "sent on %s", name);
	close(sv[0]);
	close(sv[1]);
	close(in);
	test_runtime_destroy(rt);
}

/* Into a non-blocking pipe (the worker splices into it) and a file opened
 * O_NONBLOCK (which the kernel lets wait: through the ring): all of it,
 * in order. */
Test(fs, sendfile_into_a_nonblocking_pipe_and_file)
{
	struct afe_runtime *rt = test_runtime(2);
	size_t size = 300000;
	int in = pattern_file(size);
	int p[2];
	cr_assert_eq(pipe2(p, O_CLOEXEC | O_NONBLOCK), 0);
	cr_assert_eq(fcntl(p[0], F_SETFL, 0), 0); /* the reader's end blocks */
	struct drain d;
	drain_start(&d, p[0], 0);
	cr_assert_eq(run_sendfile(rt, p[1], in, 0, size), (intptr_t)size);
	close(p[1]);
	drain_join(&d);
	close(p[0]);
	cr_assert_not(d.wrong);
	cr_assert_eq(d.got, size);
	int out = test_unlinked_file();
	cr_assert_eq(fcntl(out, F_SETFL, O_NONBLOCK), 0);
	cr_assert_eq(run_sendfile(rt, out, in, 0, size), (intptr_t)size);
	char buf[4096];
	for (size_t at = 0; at < size; at += sizeof(buf)) {
		ssize_t n = pread(out, buf, sizeof(buf), (off_t)at);
		cr_assert_gt(n, 0);
		for (ssize_t i = 0; i < n; i++)
			cr_assert_eq(buf[i], pattern_at(at + (size_t)i));
	}
	close(out);
	close(in);
	test_runtime_destroy(rt);
}

/* The peer left: the splice made on the worker fails with -EPIPE, and
 * the SIGPIPE it raised there is not left pending. */
Test(fs, sendfile_on_a_worker_to_a_closed_peer_leaves_no_sigpipe_pending)
{
	struct afe_runtime *rt = test_runtime(1);
	int in = pattern_file(1 << 20);
	int sv[2];
	nonblocking_pair(sv);
	close(sv[1]);
	struct sendfile_seen t;
	intptr_t r = sendfile_on_a_worker(rt, &t, sv[0], in, 1 << 20);
	cr_assert(r == -EPIPE || r == -ECONNRESET, "got %ld", (long)r);
	cr_assert_not(sigismember(&t.pending_after, SIGPIPE));
	close(sv[0]);
	close(in);
	test_runtime_destroy(rt);
}

/* ---- read exact, write all ------------------------------------------------- */

/* Awaits a read_exact and keeps how far it got. */
struct read_exact_op {
	struct afe_future base;
	struct afe_read_exact r;
	size_t *done;
};

static int read_exact_op_poll(struct afe_future *f, struct afe_context *cx)
{
	struct read_exact_op *self = afe_container_of(f, struct read_exact_op, base);
	AFE_ASYNC_BEGIN(f, cx);
	AFE_AWAIT(&self->r.base);
	*self->done = self->r.done;
	AFE_RETURN(self->r.base.result);
	AFE_ASYNC_END;
}

static intptr_t run_read_exact(struct afe_runtime *rt, int fd, void *buf, size_t len,
			       int64_t offset, size_t *done)
{
	struct read_exact_op op = {.done = done};
	afe_future_init(&op.base, read_exact_op_poll);
	afe_read_exact_init(&op.r, fd, buf, len, offset);
	return test_block_on(rt, &op);
}

/* A thread that writes its chunks to fd with pauses, then closes fd. */
struct dribble {
	pthread_t thread;
	int fd;
	const char *const *chunks;
};

static void *dribble_main(void *arg)
{
	struct dribble *d = arg;
	for (const char *const *c = d->chunks; *c; c++) {
		usleep(2000);
		if (write(d->fd, *c, strlen(*c)) < 0)
			break;
	}
	close(d->fd);
	return NULL;
}

static void dribble_start(struct dribble *d, int fd, const char *const *chunks)
{
	*d = (struct dribble){.fd = fd, .chunks = chunks};
	cr_assert_eq(pthread_create(&d->thread, NULL, dribble_main, d), 0);
}

Test(fs, read_exact_collects_short_reads_and_reports_the_end)
{
	struct afe_runtime *rt = test_runtime(2);
	int p[2];
	cr_assert_eq(pipe(p), 0);
	static const char *const chunks[] = {"ab", "cde", "f", "ghij", "kl", NULL};
	struct dribble d;
	dribble_start(&d, p[1], chunks);
	char buf[8] = {0};
	size_t done = 99;
	cr_assert_eq(run_read_exact(rt, p[0], buf, 8, -1, &done), 8);
	cr_assert_eq(memcmp(buf, "abcdefgh", 8), 0);
	cr_assert_eq(run_read_exact(rt, p[0], buf, 8, -1, &done), -EPIPE, "ends part way");
	cr_assert_eq(done, 4);
	cr_assert_eq(memcmp(buf, "ijkl", 4), 0);
	cr_assert_eq(run_read_exact(rt, p[0], buf, 8, -1, &done), 0, "ends before a byte");
	cr_assert_eq(done, 0);
	pthread_join(d.thread, NULL);
	close(p[0]);
	cr_assert_eq(run_read_exact(rt, p[0], buf, 8, -1, &done), -EBADF);
	int fd = pattern_file(1000);
	cr_assert_eq(run_read_exact(rt, fd, buf, 8, 500, &done), 8);
	cr_assert_eq(buf[0], pattern_at(500));
	cr_assert_eq(buf[7], pattern_at(507));
	cr_assert_eq(run_read_exact(rt, fd, buf, 8, 996, &done), -EPIPE);
	cr_assert_eq(done, 4);
	close(fd);
	test_runtime_destroy(rt);
}

static intptr_t run_write_all(struct afe_runtime *rt, int fd, const void *buf, size_t len,
			      int64_t offset)
{
	struct afe_write_all w;
	afe_write_all_init(&w, fd, buf, len, offset);
	return test_block_on(rt, &w);
}

Test(fs, write_all_fills_a_socket_and_a_file)
{
	struct afe_runtime *rt = test_runtime(2);
	size_t len = 4 * 1024 * 1024 + 3; /* far past a socket's buffer */
	char *data = malloc(len);
	cr_assert_not_null(data);
	for (size_t i = 0; i < len; i++)
		data[i] = pattern_at(i);
	int sv[2];
	cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
	struct drain d;
	drain_start(&d, sv[1], 0);
	cr_assert_eq(run_write_all(rt, sv[0], data, len, -1), (intptr_t)len);
	close(sv[0]);
	drain_join(&d);
	close(sv[1]);
	cr_assert_eq(d.got, len);
	cr_assert_not(d.wrong);
	int fd = pattern_file(0);
	cr_assert_eq(run_write_all(rt, fd, data, 100000, 50), 100000);
	cr_assert_eq(size_of(fd), 100050);
	char c;
	cr_assert_eq(pread(fd, &c, 1, 50 + 99999), 1);
	cr_assert_eq(c, pattern_at(99999));
	close(fd);
	free(data);
	test_runtime_destroy(rt);
}

Test(fs, write_all_to_a_closed_socket_is_epipe_without_sigpipe)
{
	struct afe_runtime *rt = test_runtime(2);
	int sv[2];
	cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
	close(sv[1]);
	/* SIGPIPE keeps its default action: it would end the test. */
	cr_assert_eq(run_write_all(rt, sv[0], "hello", 5, -1), -EPIPE);
	close(sv[0]);
	cr_assert_eq(run_write_all(rt, 987654, "hello", 5, -1), -EBADF);
	cr_assert_eq(run_write_all(rt, 987654, "", 0, -1), 0, "nothing to write");
	test_runtime_destroy(rt);
}

/* ---- buffered reader ------------------------------------------------------- */

#define MAX_RECORDS 16

/* What a run of reads gave: each result, and each record's text. */
struct records {
	int count;
	intptr_t results[MAX_RECORDS];
	char text[MAX_RECORDS][64];
};

/* Reads records until the end or an error other than -EMSGSIZE (or
 * MAX_RECORDS), into *out. */
struct read_records_op {
	struct afe_future base;
	struct afe_buf_reader in;
	char delim;
	struct records *out;
};

static int read_records_poll(struct afe_future *f, struct afe_context *cx)
{
	struct read_records_op *self = afe_container_of(f, struct read_records_op, base);
	AFE_ASYNC_BEGIN(f, cx);
	while (self->out->count < MAX_RECORDS) {
		AFE_AWAIT(afe_buf_reader_read_until(&self->in, self->delim));
		intptr_t n = self->in.base.result;
		int i = self->out->count++;
		self->out->results[i] = n;
		size_t shown = n == -EMSGSIZE ? self->in.capacity : n > 0 ? (size_t)n : 0;
		if (shown > 0)
			memcpy(self->out->text[i], afe_buf_reader_line(&self->in),
			       shown < 63 ? shown : 63);
		if (n == 0 || (n < 0 && n != -EMSGSIZE))
			break;
	}
	AFE_RETURN(self->out->count);
	AFE_ASYNC_END;
}

/* Reads the records of fd through buf, capacity bytes (the caller's: it
 * must not move with the future). */
static void read_records(struct afe_runtime *rt, struct records *out, int fd, char *buf,
			 size_t capacity, char delim)
{
	memset(out, 0, sizeof(*out));
	struct read_records_op op = {.delim = delim, .out = out};
	afe_future_init(&op.base, read_records_poll);
	afe_buf_reader_init(&op.in, fd, buf, capacity);
	cr_assert_gt(test_block_on(rt, &op), 0);
}

/* A pipe whose reader gets chunks (with pauses between them), then the end. */
static int dribbled_pipe(struct dribble *d, const char *const *chunks)
{
	int p[2];
	cr_assert_eq(pipe(p), 0);
	dribble_start(d, p[1], chunks);
	return p[0];
}

static void expect_record(const struct records *r, int i, const char *text)
{
	cr_assert_eq(r->results[i], (intptr_t)strlen(text), "record %d: %ld", i,
		     (long)r->results[i]);
	cr_assert_eq(memcmp(r->text[i], text, strlen(text)), 0, "record %d: %s", i, r->text[i]);
}

Test(fs, buf_reader_splits_records_across_and_within_reads)
{
	struct afe_runtime *rt = test_runtime(2);
	static const char *const chunks[] = {"one\ntw", "o\n", "three\nfour\nfi", "ve\n", NULL};
	struct dribble d;
	int fd = dribbled_pipe(&d, chunks);
	char buf[16];
	struct records r;
	read_records(rt, &r, fd, buf, sizeof(buf), '\n');
	pthread_join(d.thread, NULL);
	close(fd);
	cr_assert_eq(r.count, 6);
	expect_record(&r, 0, "one\n");
	expect_record(&r, 1, "two\n");
	expect_record(&r, 2, "three\n");
	expect_record(&r, 3, "four\n");
	expect_record(&r, 4, "five\n");
	cr_assert_eq(r.results[5], 0, "then the end");
	test_runtime_destroy(rt);
}

Test(fs, buf_reader_gives_a_record_cut_by_the_end_then_zero)
{
	struct afe_runtime *rt = test_runtime(2);
	static const char *const chunks[] = {"a;bb;", "cc", NULL};
	struct dribble d;
	int fd = dribbled_pipe(&d, chunks);
	char buf[8];
	struct records r;
	read_records(rt, &r, fd, buf, sizeof(buf), ';');
	pthread_join(d.thread, NULL);
	close(fd);
	cr_assert_eq(r.count, 4);
	expect_record(&r, 0, "a;");
	expect_record(&r, 1, "bb;");
	expect_record(&r, 2, "cc");
	cr_assert_eq(r.results[3], 0);
	test_runtime_destroy(rt);
}

Test(fs, buf_reader_record_longer_than_the_buffer_is_emsgsize)
{
	struct afe_runtime *rt = test_runtime(2);
	static const char *const chunks[] = {"ok\n0123456789abcdefXYZ\n", "last\n", NULL};
	struct dribble d;
	int fd = dribbled_pipe(&d, chunks);
	char buf[8];
	struct records r;
	read_records(rt, &r, fd, buf, sizeof(buf), '\n');
	pthread_join(d.thread, NULL);
	close(fd);
	cr_assert_eq(r.count, 6);
	expect_record(&r, 0, "ok\n");
	cr_assert_eq(r.results[1], -EMSGSIZE, "a full buffer, no delimiter");
	cr_assert_eq(memcmp(r.text[1], "01234567", 8), 0);
	cr_assert_eq(r.results[2], -EMSGSIZE, "the rest of the record: still no room");
	cr_assert_eq(memcmp(r.text[2], "89abcdef", 8), 0);
	expect_record(&r, 3, "XYZ\n");
	expect_record(&r, 4, "last\n");
	cr_assert_eq(r.results[5], 0);
	test_runtime_destroy(rt);
}

Test(fs, buf_reader_bad_input)
{
	struct afe_runtime *rt = test_runtime(2);
	char buf[8];
	struct records r;
	read_records(rt, &r, 987654, buf, sizeof(buf), '\n');
	cr_assert_eq(r.count, 1);
	cr_assert_eq(r.results[0], -EBADF);
	read_records(rt, &r, 0, NULL, 8, '\n');
	cr_assert_eq(r.results[0], -EINVAL, "no buffer");
	read_records(rt, &r, 0, buf, 0, '\n');
	cr_assert_eq(r.results[0], -EINVAL, "no room");
	test_runtime_destroy(rt);
}

/* Reads a record under a time limit that expires (the rest of it comes
 * only later), then reads it again. */
struct cancelled_read_op {
	struct afe_future base;
	struct afe_buf_reader in;
	struct afe_timeout limit;
	int wfd;
	intptr_t *first; /* the timed-out read's result */
};

static int cancelled_read_poll(struct afe_future *f, struct afe_context *cx)
{
	struct cancelled_read_op *self = afe_container_of(f, struct cancelled_read_op, base);
	AFE_ASYNC_BEGIN(f, cx);
	afe_timeout_init(&self->limit, afe_buf_reader_read_until(&self->in, '\n'), 20000000u);
	AFE_AWAIT(&self->limit.base);
	*self->first = self->limit.base.result;
	if (write(self->wfd, "c\n", 2) != 2)
		AFE_RETURN(-EIO);
	AFE_AWAIT(afe_buf_reader_read_until(&self->in, '\n'));
	AFE_RETURN(self->in.base.result);
	AFE_ASYNC_END;
}

Test(fs, buf_reader_cancelled_read_keeps_what_arrived)
{
	struct afe_runtime *rt = test_runtime(2);
	int p[2];
	cr_assert_eq(pipe(p), 0);
	cr_assert_eq(write(p[1], "ab", 2), 2);
	char buf[8];
	intptr_t first = 0;
	struct cancelled_read_op run = {.wfd = p[1], .first = &first};
	afe_future_init(&run.base, cancelled_read_poll);
	afe_buf_reader_init(&run.in, p[0], buf, sizeof(buf));
	cr_assert_eq(test_block_on(rt, &run), 4, "the whole record after the timeout");
	cr_assert_eq(first, -ETIMEDOUT);
	cr_assert_eq(memcmp(buf, "abc\n", 4), 0);
	close(p[0]);
	close(p[1]);
	test_runtime_destroy(rt);
}

/* Polls f as a cancelled parent would. */
static int poll_cancelled(struct afe_future *f, struct afe_context *cx)
{
	struct afe_context cancel = *cx;
	cancel.cancel = true;
	return afe_future_poll(f, &cancel);
}

/* Starts a read, lets its data arrive, cancels it only then, and reads
 * again (under a time limit: data lost would never come). */
struct completed_cancel_op {
	struct afe_future base;
	struct afe_buf_reader in;
	struct afe_sleep nap;
	struct afe_timeout limit;
	int wfd;
	intptr_t *cancelled; /* the cancelled read's result */
};

static int completed_cancel_poll(struct afe_future *f, struct afe_context *cx)
{
	struct completed_cancel_op *self = afe_container_of(f, struct completed_cancel_op, base);
	AFE_ASYNC_BEGIN(f, cx);
	if (afe_future_poll(afe_buf_reader_read_until(&self->in, '\n'), cx) != AFE_PENDING)
		AFE_RETURN(-EALREADY);
	if (write(self->wfd, "x\n", 2) != 2)
		AFE_RETURN(-EIO);
	afe_sleep_init(&self->nap, 100000000u); /* the read completes meanwhile */
	AFE_AWAIT(&self->nap.base);
	while (poll_cancelled(&self->in.base, cx) == AFE_PENDING)
		AFE_YIELD();
	*self->cancelled = self->in.base.result;
	afe_timeout_init(&self->limit, afe_buf_reader_read_until(&self->in, '\n'), 1000000000u);
	AFE_AWAIT(&self->limit.base);
	AFE_RETURN(self->limit.base.result);
	AFE_ASYNC_END;
}

Test(fs, buf_reader_read_cancelled_after_its_data_came_keeps_it)
{
	struct afe_runtime *rt = test_runtime(2);
	int p[2];
	cr_assert_eq(pipe(p), 0);
	char buf[8];
	intptr_t cancelled = 0;
	struct completed_cancel_op run = {.wfd = p[1], .cancelled = &cancelled};
	afe_future_init(&run.base, completed_cancel_poll);
	afe_buf_reader_init(&run.in, p[0], buf, sizeof(buf));
	cr_assert_eq(test_block_on(rt, &run), 2, "the record the cancelled read brought");
	cr_assert_eq(cancelled, -ECANCELED);
	cr_assert_eq(memcmp(buf, "x\n", 2), 0);
	close(p[0]);
	close(p[1]);
	test_runtime_destroy(rt);
}
