/* SPDX-License-Identifier: MIT */
/*
 * A full /dev/shm (Docker's is a 64 MiB tmpfs; each producer's rings take
 * 1 MiB): connect and serve fail with -ENOSPC instead of faulting on a page
 * the filesystem cannot supply, which the SIGBUS guard once took for a
 * shrink and retried for ever at 100% CPU.
 *
 * The test runs in a child with a mount namespace of its own and a 3 MiB
 * tmpfs on /dev/shm, and reports through a pipe: a child cannot assert,
 * and one that spins never reports. Where namespaces or mounts are not
 * allowed, the test is skipped.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <sched.h>
#include <sys/mount.h>

#include "ipc_helpers.h"
#include "src/ipc/ipc_shm.h"

enum { PRODUCERS = 4, CANNOT_MOUNT = 77 };

/* What the child saw: each producer's connect, then a consumer's serve
 * once the filesystem is full. */
struct outcome {
	int connects[PRODUCERS];
	int serve_when_full;
};

static bool private_small_dev_shm(void)
{
	return unshare(CLONE_NEWNS) == 0 && mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) == 0 &&
	       mount("afe-test", "/dev/shm", "tmpfs", 0, "size=3m,mode=1777") == 0;
}

/* Takes every free byte of /dev/shm. 0 or -errno. */
static int fill_dev_shm(void)
{
	int fd = shm_open("/afe-test-filler", O_RDWR | O_CREAT, 0600);
	if (fd < 0)
		return -errno;
	off_t at = 0;
	while (fallocate(fd, 0, at, 4096) == 0)
		at += 4096;
	int err = errno == ENOSPC ? 0 : -errno;
	close(fd);
	return err;
}

static struct afe_runtime *child_runtime(void)
{
	struct afe_runtime_config rc;
	afe_runtime_config_default(&rc);
	rc.workers = 1;
	struct afe_runtime *rt = NULL;
	return afe_runtime_create(&rt, &rc) < 0 ? NULL : rt;
}

/* Connects 4 producers, then serves a second name once /dev/shm is full. */
static int connect_four_then_fill(int report)
{
	struct afe_runtime *rt = child_runtime();
	if (!rt)
		return 2;
	struct outcome o;
	struct afe_ipc_consumer *c = NULL;
	if (afe_ipc_consumer_serve(&c, rt, ipc_test_name("full"), NULL) < 0)
		return 3;
	struct afe_ipc_producer_config config = over_shared_memory();
	struct afe_ipc_producer *p[PRODUCERS] = {NULL};
	for (int i = 0; i < PRODUCERS; i++)
		o.connects[i] = afe_ipc_producer_connect(&p[i], rt, ipc_test_name("full"), &config);
	for (int i = 0; i < PRODUCERS; i++)
		if (o.connects[i] == 0)
			afe_ipc_producer_close(p[i]);
	afe_ipc_consumer_destroy(c);
	/* The last mapping of the object goes with the last task that holds
	 * the consumer or a producer: only the runtime's end waits for them.
	 * Filling before would leave pages that are freed under the next
	 * serve, which then finds room (seen on a slow CI machine). */
	afe_runtime_destroy(rt);
	if (fill_dev_shm() < 0)
		return 4;
	rt = child_runtime();
	if (!rt)
		return 6;
	o.serve_when_full = afe_ipc_consumer_serve(&c, rt, ipc_test_name("when-full"), NULL);
	if (o.serve_when_full == 0)
		afe_ipc_consumer_destroy(c);
	if (write(report, &o, sizeof(o)) != sizeof(o))
		return 5;
	afe_runtime_destroy(rt);
	return 0;
}

/* Runs body(report pipe) in a child with a 3 MiB /dev/shm of its own and
 * reads its report of len bytes into out; skips the test where the child
 * cannot mount one. */
static void in_small_dev_shm(int (*body)(int report), void *out, size_t len)
{
	int fds[2];
	cr_assert_eq(pipe(fds), 0);
	pid_t child = fork_tied();
	if (child == 0) {
		close(fds[0]);
		_exit(private_small_dev_shm() ? body(fds[1]) : CANNOT_MOUNT);
	}
	close(fds[1]);
	/* A spinning child never reports: 20 s is far past a run under TSan. */
	struct pollfd pfd = {.fd = fds[0], .events = POLLIN};
	int ready = poll(&pfd, 1, 20000);
	ssize_t got = ready == 1 ? read(fds[0], out, len) : -1;
	if (got != (ssize_t)len)
		kill(child, SIGKILL);
	int status;
	cr_assert_eq(waitpid(child, &status, 0), child);
	close(fds[0]);
	if (WIFEXITED(status) && WEXITSTATUS(status) == CANNOT_MOUNT)
		cr_skip_test("no private mount namespace with a tmpfs here (needs CAP_SYS_ADMIN)");
	cr_assert_neq(ready, 0, "no report in 20 s: the child spins on a page it cannot have");
	cr_assert_eq(got, (ssize_t)len, "the child ended without a report: status %#x", status);
	cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0, "child status %#x", status);
}

Test(ipc_full_shm, connect_and_serve_fail_with_enospc_on_a_full_dev_shm)
{
	struct outcome o;
	in_small_dev_shm(connect_four_then_fill, &o, sizeof(o));
	/* 3 MiB holds the header and two producers' 1 MiB of rings. */
	cr_assert_eq(o.connects[0], 0);
	cr_assert_eq(o.connects[1], 0);
	cr_assert_eq(o.connects[2], -ENOSPC);
	cr_assert_eq(o.connects[3], -ENOSPC);
	cr_assert_eq(o.serve_when_full, -ENOSPC, "serve got %d", o.serve_when_full);
}

/* Makes an object of the right size with no page behind it (sparse, as a
 * consumer's object is before it writes), fills /dev/shm, then connects:
 * the first read of its header has no page to be had. No consumer runs,
 * so nothing else allocates the page meanwhile. Reports what the connect
 * got. */
static int connect_to_an_object_without_pages(int report)
{
	struct afe_runtime *rt = child_runtime();
	char path[100];
	snprintf(path, sizeof(path), "/%s", ipc_test_name("sparse"));
	int fd = shm_open(path, O_RDWR | O_CREAT, 0600);
	if (!rt || fd < 0 || ftruncate(fd, (off_t)AFE_IPC_OBJECT_SIZE) < 0 || fill_dev_shm() < 0)
		return 3;
	close(fd);
	struct afe_ipc_producer_config config = over_shared_memory();
	struct afe_ipc_producer *p = NULL;
	int err = afe_ipc_producer_connect(&p, rt, ipc_test_name("sparse"), &config);
	if (err == 0)
		afe_ipc_producer_close(p);
	if (write(report, &err, sizeof(err)) != sizeof(err))
		return 5;
	return 0;
}

Test(ipc_full_shm, a_page_that_cannot_be_had_is_not_retried_for_ever)
{
	int err = 0;
	in_small_dev_shm(connect_to_an_object_without_pages, &err, sizeof(err));
	/* The producer's guard put zeros of its own in place of the object:
	 * no magic, so no consumer to connect to. */
	cr_assert_eq(err, -ECONNREFUSED);
}
