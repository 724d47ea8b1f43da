/* SPDX-License-Identifier: MIT */
/*
 * file_read: `depth` tasks read random 4 KiB-aligned blocks of `bs` bytes
 * from a `size_mb` MiB file, `n` reads in all. The file is made before
 * timing (every 4 KiB block starts with its own offset, as a uint64_t),
 * fsync'd, its pages dropped (or, with --warm=1, the whole file read once
 * instead) and readahead turned off; every read checks the stamps it
 * covers. "cache":"cold" when under 1% of the file was resident at the
 * start, "warm" when over 99%.
 */
#include <afe.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "bench.h"

#define STAMP_BLOCK 4096u

/* True when the file has the size and the stamps (sampled) we write. */
static bool file_is_ready(int fd, uint64_t size)
{
	struct stat st;
	if (fstat(fd, &st) < 0 || (uint64_t)st.st_size != size)
		return false;
	for (uint64_t i = 0; i < 64; i++) {
		uint64_t off = (size / STAMP_BLOCK * i / 64) * STAMP_BLOCK, stamp;
		if (pread(fd, &stamp, sizeof(stamp), (off_t)off) != sizeof(stamp) || stamp != off)
			return false;
	}
	return true;
}

static void make_file(int fd, uint64_t size)
{
	enum { CHUNK = 1 << 20 };
	unsigned char *chunk = malloc(CHUNK);
	if (!chunk || ftruncate(fd, 0) < 0)
		bench_fail("file_read", "cannot make the file");
	for (uint64_t base = 0; base < size; base += CHUNK) {
		for (uint64_t off = 0; off < CHUNK; off += STAMP_BLOCK) {
			uint64_t stamp = base + off;
			memset(chunk + off, (int)(stamp / STAMP_BLOCK), STAMP_BLOCK);
			memcpy(chunk + off, &stamp, sizeof(stamp));
		}
		if (pwrite(fd, chunk, CHUNK, (off_t)base) != CHUNK)
			bench_fail("file_read", "cannot write the file");
	}
	free(chunk);
}

/* Fraction of the file's pages resident in the page cache. */
static double resident_fraction(int fd, uint64_t size)
{
	void *map = mmap(NULL, size, PROT_READ, MAP_SHARED, fd, 0);
	if (map == MAP_FAILED)
		return 1.0;
	size_t page = (size_t)sysconf(_SC_PAGESIZE), pages = (size + page - 1) / page, resident = 0;
	unsigned char *vec = malloc(pages);
	if (vec && mincore(map, size, vec) == 0)
		for (size_t i = 0; i < pages; i++)
			resident += vec[i] & 1;
	else
		resident = pages;
	free(vec);
	munmap(map, size);
	return (double)resident / (double)pages;
}

/* Reads the whole file once (--warm=1), so its pages are in the cache. */
static void read_whole(int fd, uint64_t size)
{
	enum { CHUNK_READ = 1 << 20 };
	char *chunk = malloc(CHUNK_READ);
	if (!chunk)
		bench_fail("file_read", "out of memory");
	for (uint64_t off = 0; off < size; off += CHUNK_READ)
		if (pread(fd, chunk, CHUNK_READ, (off_t)off) <= 0)
			bench_fail("file_read", "cannot read the file");
	free(chunk);
}

struct shared {
	int fd;
	long bs, blocks;
	_Atomic long left; /* reads not yet claimed */
	_Atomic long bad;  /* reads with a wrong stamp or length */
};

struct reader {
	struct afe_future base;
	struct shared *s;
	uint64_t rng, offset;
	unsigned char *buf;
	struct afe_io read;
};

static uint64_t next_random(uint64_t *state)
{
	*state ^= *state << 13;
	*state ^= *state >> 7;
	*state ^= *state << 17;
	return *state;
}

static bool stamps_match(const unsigned char *buf, uint64_t offset, long bs)
{
	for (long at = 0; at < bs; at += STAMP_BLOCK) {
		uint64_t stamp;
		memcpy(&stamp, buf + at, sizeof(stamp));
		if (stamp != offset + (uint64_t)at)
			return false;
	}
	return true;
}

static int reader_poll(struct afe_future *f, struct afe_context *cx)
{
	struct reader *self = afe_container_of(f, struct reader, base);
	struct shared *s = self->s;
	AFE_ASYNC_BEGIN(f, cx);
	while (atomic_fetch_sub(&s->left, 1) > 0) {
		self->offset = (next_random(&self->rng) % (uint64_t)s->blocks) * STAMP_BLOCK;
		afe_io_read_init(&self->read, s->fd, self->buf, (unsigned)s->bs, (int64_t)self->offset);
		AFE_AWAIT(&self->read.base);
		if (self->read.base.result != s->bs || !stamps_match(self->buf, self->offset, s->bs))
			atomic_fetch_add(&s->bad, 1);
	}
	AFE_RETURN(0);
	AFE_CLEANUP;
	free(self->buf);
	AFE_ASYNC_END;
}

struct file_root {
	struct afe_future base;
	struct shared *s;
	long depth, i;
	struct afe_join_handle *handles;
	struct afe_join join;
};

static int root_poll(struct afe_future *f, struct afe_context *cx)
{
	struct file_root *self = afe_container_of(f, struct file_root, base);
	AFE_ASYNC_BEGIN(f, cx);
	for (self->i = 0; self->i < self->depth; self->i++) {
		struct reader r = {.s = self->s, .rng = 0x9e3779b97f4a7c15u * (uint64_t)(self->i + 1),
				   .buf = aligned_alloc(STAMP_BLOCK, (size_t)self->s->bs)};
		afe_future_init(&r.base, reader_poll);
		if (!r.buf || afe_spawn(NULL, &r, &self->handles[self->i]) < 0)
			AFE_RETURN(-1);
	}
	for (self->i = 0; self->i < self->depth; self->i++) {
		afe_join_init(&self->join, &self->handles[self->i]);
		AFE_AWAIT(&self->join.base);
	}
	AFE_RETURN(0);
	AFE_ASYNC_END;
}

int workload_file_read(const struct bench_args *a)
{
	static const char *const names[] = {"bs", "depth", "n", "size_mb", "threads", "warm", NULL};
	bench_args_check(a, names);
	long bs = bench_arg(a, "bs", 4096), depth = bench_arg(a, "depth", 64);
	long n = bench_arg(a, "n", 262144), size_mb = bench_arg(a, "size_mb", 1024);
	long threads = bench_arg(a, "threads", 2), warm = bench_arg(a, "warm", 0);
	const char *path = "/tmp/afe_file_read.dat";
	if (bs < (long)STAMP_BLOCK || bs % STAMP_BLOCK || depth < 1 || n < 1 || size_mb < 1 ||
	    (uint64_t)size_mb << 20 < (uint64_t)bs)
		bench_fail("file_read", "bs must be a multiple of 4096 within the file; depth, n, "
					"size_mb positive");
	uint64_t size = (uint64_t)size_mb << 20;
	int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
	if (fd < 0)
		bench_fail("file_read", "cannot open %s", path);
	if (!file_is_ready(fd, size))
		make_file(fd, size);
	if (fsync(fd) < 0 || (!warm && posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED) != 0) ||
	    posix_fadvise(fd, 0, 0, POSIX_FADV_RANDOM) != 0)
		bench_fail("file_read", "cannot drop the file's pages");
	if (warm)
		read_whole(fd, size);
	double resident = resident_fraction(fd, size);
	const char *cache = resident < 0.01 ? "\"cache\":\"cold\"" : resident > 0.99 ? "\"cache\":\"warm\"" : NULL;

	struct shared s = {.fd = fd, .bs = bs, .blocks = (long)((size - (uint64_t)bs) / STAMP_BLOCK) + 1};
	atomic_init(&s.left, n);
	atomic_init(&s.bad, 0);
	struct afe_runtime *rt = bench_runtime(threads);
	struct file_root root = {.s = &s, .depth = depth,
				 .handles = calloc((size_t)depth, sizeof(struct afe_join_handle))};
	if (!root.handles)
		bench_fail("file_read", "out of memory");
	afe_future_init(&root.base, root_poll);
	intptr_t result = -1;
	uint64_t start = bench_now_ns();
	afe_block_on(rt, &root, &result);
	double seconds = (double)(bench_now_ns() - start) / 1e9;
	if (result != 0)
		bench_fail("file_read", "could not start the readers");
	if (atomic_load(&s.bad))
		bench_fail("file_read", "%ld reads were short or had wrong stamps", atomic_load(&s.bad));
	afe_runtime_destroy(rt);
	free(root.handles);
	close(fd);
	bench_report_with("file_read", threads, n, seconds, NULL, cache);
	return 0;
}
