/* SPDX-License-Identifier: MIT */
/*
 * uring_file_read: the `file_read` workload (bench/README.md) as a bare
 * liburing loop on one thread, with no executor: the floor that
 * `afe_bench file_read` is compared with. `depth` reads of `bs` bytes at
 * random 4 KiB-aligned offsets of a `size_mb` MiB file stay in flight until
 * `n` have completed; every read is checked.
 *
 *   uring_file_read [--bs=4096] [--depth=64] [--n=262144] [--size_mb=1024]
 *                   [--path=/tmp/afe_file_read.dat] [--warm=1] [--pread=1]
 *
 * --warm=1 reads the whole file once instead of dropping its pages
 * ("cache":"warm"); --pread=1 (depth 1 only) reads with pread(2) in a
 * plain loop instead of the ring: the floor of one read at a time
 * ("impl":"pread").
 *
 * The file is the one afe_bench uses: every 4 KiB block is filled with the
 * low byte of its block number and begins with its own byte offset as a
 * native uint64_t. It is (re)written when missing, of another size or
 * without the stamps, then fsync'd; before timing its pages are dropped
 * (POSIX_FADV_DONTNEED) and readahead is turned off (POSIX_FADV_RANDOM).
 * "cache":"cold" is reported when mincore finds under 1% of it resident.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <liburing.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "../flags.h"
#include "../tool.h"

#define BLOCK 4096u

static void fail(const char *fmt, ...) __attribute__((noreturn, format(printf, 1, 2)));

static void fail(const char *fmt, ...)
{
	va_list ap;
	fputs("uring_file_read: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	exit(1);
}

/* ---- flags ---- */

/* ---- the file ---- */

/* One block as it is on disk. */
static void stamp_block(unsigned char *block, uint64_t offset)
{
	memset(block, (int)((offset / BLOCK) & 0xff), BLOCK);
	memcpy(block, &offset, sizeof(offset));
}

/* True when the bs bytes read at offset are the file's. The fill byte is
 * checked too, at each block's end. */
static bool block_ok(const unsigned char *buf, uint64_t offset, size_t bs)
{
	for (size_t at = 0; at < bs; at += BLOCK) {
		uint64_t want = offset + at, got;
		memcpy(&got, buf + at, sizeof(got));
		if (got != want || buf[at + BLOCK - 1] != (unsigned char)((want / BLOCK) & 0xff))
			return false;
	}
	return true;
}

/* True when the file has the size and, at 257 spread-out blocks, the
 * stamps: then it was made by this program or afe_bench and is kept. */
static bool file_ready(int fd, uint64_t size)
{
	struct stat st;
	if (fstat(fd, &st) < 0 || (uint64_t)st.st_size != size)
		return false;
	uint64_t blocks = size / BLOCK;
	unsigned char buf[BLOCK];
	for (uint64_t i = 0; i <= 256; i++) {
		uint64_t offset = blocks * i / 257 * BLOCK;
		if (pread(fd, buf, BLOCK, (off_t)offset) != (ssize_t)BLOCK ||
		    !block_ok(buf, offset, BLOCK))
			return false;
	}
	return true;
}

static void write_file(int fd, uint64_t size, const char *path)
{
	enum { CHUNK = 1 << 20 };
	unsigned char *chunk = malloc(CHUNK);
	if (!chunk)
		fail("out of memory");
	if (ftruncate(fd, 0) < 0)
		fail("ftruncate %s: %s", path, strerror(errno));
	for (uint64_t base = 0; base < size; base += CHUNK) {
		size_t len = size - base < CHUNK ? (size_t)(size - base) : CHUNK;
		for (size_t at = 0; at < len; at += BLOCK)
			stamp_block(chunk + at, base + at);
		for (size_t done = 0; done < len;) {
			ssize_t k = pwrite(fd, chunk + done, len - done, (off_t)(base + done));
			if (k < 0 && errno == EINTR)
				continue;
			if (k <= 0)
				fail("write %s: %s", path, k < 0 ? strerror(errno) : "no progress");
			done += (size_t)k;
		}
	}
	free(chunk);
}

/* Fraction of the file's pages in the page cache, by mincore. */
static double resident(int fd, uint64_t size)
{
	void *map = mmap(NULL, size, PROT_READ, MAP_SHARED, fd, 0);
	if (map == MAP_FAILED)
		fail("mmap: %s", strerror(errno));
	size_t page = (size_t)sysconf(_SC_PAGESIZE), pages = (size + page - 1) / page, in = 0;
	unsigned char *vec = malloc(pages);
	if (!vec)
		fail("out of memory");
	if (mincore(map, size, vec) < 0)
		fail("mincore: %s", strerror(errno));
	for (size_t i = 0; i < pages; i++)
		in += vec[i] & 1;
	free(vec);
	munmap(map, size);
	return (double)in / (double)pages;
}

/* ---- the reads ---- */

static uint64_t rng_state = 0x2545f4914f6cdd1dull;

static uint64_t next_random(void) /* xorshift64* */
{
	rng_state ^= rng_state >> 12;
	rng_state ^= rng_state << 25;
	rng_state ^= rng_state >> 27;
	return rng_state * 0x2545f4914f6cdd1dull;
}

struct slot {
	unsigned char *buf;
	uint64_t offset;
};

static void queue_read(struct io_uring *ring, int fd, struct slot *s, size_t bs, uint64_t blocks)
{
	s->offset = next_random() % blocks * BLOCK;
	struct io_uring_sqe *sqe = io_uring_get_sqe(ring);
	if (!sqe)
		fail("no free submission entry");
	io_uring_prep_read(sqe, fd, s->buf, (unsigned)bs, s->offset);
	io_uring_sqe_set_data(sqe, s);
}

/* Prints the workload's JSON line for n reads timed from start (ns). */
static void report(const char *impl, long n, uint64_t start, const char *cache)
{
	double seconds = (double)(tool_now_ns() - start) / 1e9;
	struct rusage ru;
	getrusage(RUSAGE_SELF, &ru);
	printf("{\"workload\":\"file_read\",\"impl\":\"%s\",\"threads\":1,\"n\":%ld,"
	       "\"seconds\":%.6f,\"ops_per_s\":%.0f%s,\"peak_rss_kb\":%ld}\n",
	       impl, n, seconds, seconds > 0 ? (double)n / seconds : 0.0, cache, ru.ru_maxrss);
	fflush(stdout);
}

/* Reads the whole file once (--warm=1), so its pages are in the cache. */
static void read_whole(int fd, uint64_t size)
{
	enum { CHUNK_READ = 1 << 20 };
	char *chunk = malloc(CHUNK_READ);
	if (!chunk)
		fail("out of memory");
	for (uint64_t off = 0; off < size; off += CHUNK_READ)
		if (pread(fd, chunk, CHUNK_READ, (off_t)off) <= 0)
			fail("read: %s", strerror(errno));
	free(chunk);
}

/* --pread=1: the n reads one after the other with pread(2), checked as
 * the ring's are; prints the JSON line. */
static void pread_loop(int fd, size_t bs, long n, uint64_t blocks, const char *cache)
{
	unsigned char *buf = aligned_alloc(BLOCK, bs);
	if (!buf)
		fail("out of memory");
	uint64_t start = tool_now_ns();
	for (long i = 0; i < n; i++) {
		uint64_t offset = next_random() % blocks * BLOCK;
		ssize_t got = pread(fd, buf, bs, (off_t)offset);
		if (got != (ssize_t)bs)
			fail("read at %llu: %zd of %zu bytes (%s)", (unsigned long long)offset, got,
			     bs, got < 0 ? strerror(errno) : "short");
		if (!block_ok(buf, offset, bs))
			fail("wrong data read at %llu", (unsigned long long)offset);
	}
	report("pread", n, start, cache);
	free(buf);
}

int main(int argc, char **argv)
{
	long bs = 4096, depth = 64, n = 262144, size_mb = 1024, warm = 0, use_pread = 0;
	const char *path = "/tmp/afe_file_read.dat";
	for (int i = 1; i < argc; i++) {
		const char *v;
		if ((v = flag_value(argv[i], "bs")))
			bs = flag_number("uring_file_read", "bs", v, LONG_MAX);
		else if ((v = flag_value(argv[i], "depth")))
			depth = flag_number("uring_file_read", "depth", v, LONG_MAX);
		else if ((v = flag_value(argv[i], "n")))
			n = flag_number("uring_file_read", "n", v, LONG_MAX);
		else if ((v = flag_value(argv[i], "size_mb")))
			size_mb = flag_number("uring_file_read", "size_mb", v, LONG_MAX);
		else if ((v = flag_value(argv[i], "path")))
			path = v;
		else if ((v = flag_value(argv[i], "warm")))
			warm = flag_number("uring_file_read", "warm", v, LONG_MAX);
		else if ((v = flag_value(argv[i], "pread")))
			use_pread = flag_number("uring_file_read", "pread", v, LONG_MAX);
		else {
			fprintf(stderr, "uring_file_read: unknown flag '%s' (flags: --bs --depth --n "
					"--size_mb --path --warm --pread)\n",
				argv[i]);
			return 2;
		}
	}
	uint64_t size = (uint64_t)size_mb << 20;
	if (bs < (long)BLOCK || bs % BLOCK || bs > (1L << 30) || depth < 1 || depth > 32768 ||
	    n < 1 || size_mb < 1 || size < (uint64_t)bs || (use_pread && depth != 1)) {
		fprintf(stderr, "uring_file_read: bs must be a multiple of 4096 within the file; "
				"1 <= depth <= 32768 (1 with --pread=1); n, size_mb positive\n");
		return 2;
	}

	int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
	if (fd < 0)
		fail("open %s: %s", path, strerror(errno));
	if (!file_ready(fd, size)) {
		fprintf(stderr, "uring_file_read: writing %s (%ld MiB)\n", path, size_mb);
		write_file(fd, size, path);
	}
	if (fsync(fd) < 0)
		fail("fsync %s: %s", path, strerror(errno));
	int err = warm ? 0 : posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED);
	if (!err)
		err = posix_fadvise(fd, 0, 0, POSIX_FADV_RANDOM);
	if (err)
		fail("posix_fadvise: %s", strerror(err));
	if (warm)
		read_whole(fd, size);
	double in_cache = resident(fd, size);
	const char *cache = in_cache < 0.01 ? ",\"cache\":\"cold\"" : in_cache > 0.99 ? ",\"cache\":\"warm\"" : "";
	uint64_t blocks = (size - (uint64_t)bs) / BLOCK + 1; /* where a read may start */
	if (use_pread) {
		pread_loop(fd, (size_t)bs, n, blocks, cache);
		close(fd);
		return 0;
	}

	struct io_uring ring;
	err = io_uring_queue_init((unsigned)depth, &ring, 0);
	if (err < 0)
		fail("io_uring_queue_init: %s", strerror(-err));
	struct slot *slots = calloc((size_t)depth, sizeof(*slots));
	if (!slots)
		fail("out of memory");
	for (long i = 0; i < depth; i++)
		if (!(slots[i].buf = aligned_alloc(BLOCK, (size_t)bs)))
			fail("out of memory");

	uint64_t start = tool_now_ns();
	long issued = 0, done = 0;
	for (; issued < depth && issued < n; issued++)
		queue_read(&ring, fd, &slots[issued], (size_t)bs, blocks);
	while (done < n) {
		err = io_uring_submit_and_wait(&ring, 1);
		if (err < 0 && err != -EINTR)
			fail("io_uring_submit_and_wait: %s", strerror(-err));
		struct io_uring_cqe *cqe;
		unsigned head, seen = 0;
		io_uring_for_each_cqe(&ring, head, cqe)
		{
			struct slot *s = io_uring_cqe_get_data(cqe);
			if (cqe->res < 0)
				fail("read at %llu: %s", (unsigned long long)s->offset,
				     strerror(-cqe->res));
			if (cqe->res != bs)
				fail("short read at %llu: %d of %ld bytes", (unsigned long long)s->offset,
				     cqe->res, bs);
			if (!block_ok(s->buf, s->offset, (size_t)bs))
				fail("wrong data read at %llu", (unsigned long long)s->offset);
			seen++;
			done++;
			if (issued < n) {
				issued++;
				queue_read(&ring, fd, s, (size_t)bs, blocks);
			}
		}
		io_uring_cq_advance(&ring, seen);
	}
	report("liburing_raw", n, start, cache);

	io_uring_queue_exit(&ring);
	for (long i = 0; i < depth; i++)
		free(slots[i].buf);
	free(slots);
	close(fd);
	return 0;
}
