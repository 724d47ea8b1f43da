/* SPDX-License-Identifier: MIT */
/*
 * file_copy.c written with coroutines: DEPTH coroutines each take the next
 * 64 KiB chunk, read it at its offset and write it at the same offset,
 * until the file is done. Plain loops with locals; the buffer is a local.
 *
 *   coro_file_copy SRC DST [DEPTH]     (default depth 8)
 */
#include <afe.h>
#include <fcntl.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define CHUNK (64 * 1024)
#define MAX_DEPTH 64

static struct {
	int in, out, depth;
	int64_t size;
	_Atomic int64_t next; /* the next chunk's offset */
} copy;

/* Moves len bytes at offset, going on after short reads and writes. */
static int copy_chunk(char *buf, int64_t offset, size_t len)
{
	for (size_t done = 0; done < len;) {
		ssize_t n = afe_co_read(copy.in, buf + done, len - done, offset + (int64_t)done);
		if (n <= 0)
			return n < 0 ? (int)n : -EIO; /* the file shrank under us */
		done += (size_t)n;
	}
	for (size_t done = 0; done < len;) {
		ssize_t n = afe_co_write(copy.out, buf + done, len - done, offset + (int64_t)done);
		if (n < 0)
			return (int)n;
		done += (size_t)n;
	}
	return 0;
}

static intptr_t copier(void *arg)
{
	(void)arg;
	char buf[CHUNK]; /* on this coroutine's own stack */
	int64_t offset;
	while ((offset = atomic_fetch_add(&copy.next, CHUNK)) < copy.size) {
		int64_t left = copy.size - offset;
		int err = copy_chunk(buf, offset, (size_t)(left < CHUNK ? left : CHUNK));
		if (err < 0)
			return err;
	}
	return 0;
}

static intptr_t copy_all(void *arg)
{
	(void)arg;
	struct afe_join_handle handles[MAX_DEPTH];
	int spawned = 0;
	intptr_t failed = 0;
	while (spawned < copy.depth && !failed) {
		failed = afe_coro_spawn(NULL, copier, NULL, &handles[spawned], NULL);
		spawned += !failed;
	}
	for (int i = 0; i < spawned; i++) {
		struct afe_join join;
		afe_join_init(&join, &handles[i]);
		intptr_t result = afe_co_await(&join.base);
		failed = failed ? failed : result;
	}
	close(copy.in);
	close(copy.out);
	if (failed)
		fprintf(stderr, "coro_file_copy: %s\n", strerror((int)-failed));
	return failed ? 1 : 0;
}

static int app_init(struct afe_coro *app, int argc, char **argv)
{
	copy.depth = argc > 3 ? atoi(argv[3]) : 8;
	if (argc < 3 || copy.depth < 1 || copy.depth > MAX_DEPTH) {
		fprintf(stderr, "usage: %s SRC DST [depth 1..%d]\n", argv[0], MAX_DEPTH);
		return 2;
	}
	struct stat st;
	copy.in = open(argv[1], O_RDONLY | O_CLOEXEC);
	if (copy.in < 0 || fstat(copy.in, &st) < 0)
		return perror(argv[1]), 1;
	copy.out = open(argv[2], O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (copy.out < 0)
		return perror(argv[2]), 1;
	copy.size = st.st_size;
	return afe_coro_init(app, copy_all, NULL, NULL);
}

AFE_MAIN(struct afe_coro, app_init)
