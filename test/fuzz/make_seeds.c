/* SPDX-License-Identifier: MIT */
/*
 * Writes the seed corpus of fuzz_ipc_frame (see its opening comment for
 * the input's layout): well-formed frames of each kind, encoded with the
 * real encoders, a few frames a peer spoilt, headers and payloads.
 *
 *   fuzz_make_seeds DIR     (test/fuzz/corpus holds its output)
 */
#include <stdio.h>
#include <stdlib.h>

#include "examples/ipc_calc.h"
#include "ipc_slots.h"
#include "ipc_shm.h"

enum { READER = 0, WRITER = 1, HEADER = 2, PAYLOAD = 3, WRAP = 4 };

struct seed {
	unsigned char bytes[4 * AFE_IPC_SLOT_SIZE];
	size_t len;
};

static struct seed seed;
static const char *dir;

static void put(const void *p, size_t n)
{
	if (n > sizeof(seed.bytes) - seed.len) {
		fprintf(stderr, "make_seeds: a seed is too long\n");
		exit(1);
	}
	memcpy(seed.bytes + seed.len, p, n);
	seed.len += n;
}

static void begin(uint8_t mode)
{
	seed.len = 0;
	put(&mode, 1);
}

static void save(const char *name)
{
	char path[4096];
	snprintf(path, sizeof(path), "%s/seed-%s", dir, name);
	FILE *f = fopen(path, "wb");
	if (!f || fwrite(seed.bytes, 1, seed.len, f) != seed.len || fclose(f) != 0) {
		fprintf(stderr, "make_seeds: cannot write %s\n", path);
		exit(1);
	}
}

/* A slot's record: sequence number, frame, then n of its payload bytes. */
static void record(uint64_t seq, const struct afe_ipc_frame *f, const void *payload, uint16_t n)
{
	put(&seq, sizeof(seq));
	put(f, sizeof(*f));
	put(&n, sizeof(n));
	put(payload, n);
}

/* Encoding happens here, between a writer's init and a record. */
static unsigned char buf[AFE_IPC_MAX_PAYLOAD];
static struct afe_ipc_writer w;

static struct afe_ipc_writer *encode(void)
{
	afe_ipc_writer_init(&w, buf, sizeof(buf));
	return &w;
}

/* A frame of the bytes just encoded, in the slot published at seq. The
 * call id doubles as the script that walks the payload (a nibble a read:
 * 3 int64, 6 uint32, 11 string, 12 bytes). */
static void frame(uint64_t seq, uint8_t kind, uint16_t fn, uint64_t script, uint8_t flags,
		  int32_t status)
{
	struct afe_ipc_frame f = {.call_id = script, .len = w.len, .fn = fn, .kind = kind,
				  .flags = flags, .status = status};
	record(seq, &f, buf, (uint16_t)w.len);
}

static void header(uint32_t version, uint64_t magic)
{
	static struct afe_ipc_header h;
	memset(&h, 0, sizeof(h));
	atomic_store(&h.magic, magic);
	h.version = version;
	h.slot_size = AFE_IPC_SLOT_SIZE;
	h.ring_slots = AFE_IPC_RING_SLOTS;
	h.max_producers = AFE_IPC_MAX_PRODUCERS;
	h.size = AFE_IPC_OBJECT_SIZE;
	h.consumer_pid = 1;
	uint64_t size = AFE_IPC_OBJECT_SIZE;

	begin(HEADER);
	put(&size, sizeof(size));
	put(&h, sizeof(h));
}

int main(int argc, char **argv)
{
	if (argc != 2) {
		fprintf(stderr, "usage: fuzz_make_seeds DIR\n");
		return 2;
	}
	dir = argv[1];
	static unsigned char ones[100];
	memset(ones, 1, sizeof(ones));
	afe_ipc_bytes hundred = {ones, sizeof(ones)};

	/* One well-formed frame of each kind. */
	begin(READER);
	add_encode_args(encode(), 1, 2, 3);
	frame(1, AFE_IPC_REQUEST, add_ID, 0x333, 0, 0);
	save("request-add");

	begin(READER);
	greet_encode_args(encode(), "world", 2);
	frame(1, AFE_IPC_REQUEST, greet_ID, 0x6b, 0, 0);
	save("request-greet");

	begin(READER);
	greet_encode_args(encode(), NULL, 1);
	frame(1, AFE_IPC_REQUEST, greet_ID, 0x6b, 0, 0);
	save("request-greet-null");

	begin(READER);
	nap_encode_args(encode(), 300);
	frame(1, AFE_IPC_REQUEST, nap_ID, 0x6, 0, 0);
	save("request-nap");

	begin(READER);
	count_encode_args(encode(), 5);
	frame(1, AFE_IPC_REQUEST, count_ID, 0x6, AFE_IPC_F_STREAM, 0);
	save("request-count-stream");

	begin(READER);
	weigh_encode_args(encode(), hundred);
	frame(1, AFE_IPC_REQUEST, weigh_ID, 0xc, 0, 0);
	save("request-weigh");

	begin(READER);
	add_encode_ret(encode(), 6);
	frame(1, AFE_IPC_REPLY, add_ID, 0x3, 0, 0);
	save("reply-add");

	begin(READER);
	greet_encode_ret(encode(), "hello, world");
	frame(1, AFE_IPC_REPLY, greet_ID, 0xb, 0, 0);
	save("reply-greet");

	begin(READER);
	count_encode_ret(encode(), 2);
	frame(1, AFE_IPC_REPLY, count_ID, 0x6, AFE_IPC_F_MORE, 0);
	save("reply-count-more");

	begin(READER);
	encode();
	frame(1, AFE_IPC_REPLY, 200, 0, 0, -ENOSYS);
	save("reply-enosys");

	/* A full ring; a corrupt sequence number before a good frame; the
	 * positions wrapping; a string running into the slot's old bytes. */
	begin(READER);
	add_encode_args(encode(), 4, 5, 6);
	frame(1, AFE_IPC_REQUEST, add_ID, 0x333, 0, 0);
	greet_encode_args(encode(), "you", 3);
	frame(2, AFE_IPC_REQUEST, greet_ID, 0x6b, 0, 0);
	weigh_encode_args(encode(), hundred);
	frame(3, AFE_IPC_REQUEST, weigh_ID, 0xc, 0, 0);
	count_encode_ret(encode(), 7);
	frame(4, AFE_IPC_REPLY, count_ID, 0x6, 0, 0);
	save("ring-full");

	begin(READER);
	add_encode_args(encode(), 1, 2, 3);
	frame(9, AFE_IPC_REQUEST, add_ID, 0x333, 0, 0);
	frame(2, AFE_IPC_REQUEST, add_ID, 0x333, 0, 0);
	save("corrupt-seq");

	begin(READER | WRAP);
	add_encode_args(encode(), 1, 2, 3);
	frame(1, AFE_IPC_REQUEST, add_ID, 0x333, 0, 0);
	greet_encode_args(encode(), "wrap", 1);
	frame(2, AFE_IPC_REQUEST, greet_ID, 0x6b, 0, 0);
	save("wrap");

	begin(READER | 0xa0);
	greet_encode_args(encode(), "unterminated", 1);
	struct afe_ipc_frame cut = {.call_id = 0x6b, .len = w.len, .fn = greet_ID,
				    .kind = AFE_IPC_REQUEST};
	record(1, &cut, buf, 8);
	save("string-into-old-bytes");

	/* A writer's ring: empty; a reader moved a sequence number on. */
	begin(WRITER);
	save("writer-empty");

	begin(WRITER);
	encode();
	frame(5, AFE_IPC_REQUEST, 0, 0, 0, 0);
	frame(1, AFE_IPC_REQUEST, 0, 0, 0, 0);
	save("writer-seq-ahead");

	/* Headers: right, another version, still being set up. */
	header(AFE_IPC_VERSION, AFE_IPC_MAGIC);
	save("header-ok");
	header(AFE_IPC_VERSION + 1, AFE_IPC_MAGIC);
	save("header-version");
	header(AFE_IPC_VERSION, 0);
	save("header-setting-up");

	/* Payloads alone, after their scripts. */
	uint64_t script = 0x333;

	begin(PAYLOAD);
	put(&script, 8);
	add_encode_args(encode(), -1, 0, 1);
	put(buf, w.len);
	save("payload-add");
	script = 0x6b;

	begin(PAYLOAD);
	put(&script, 8);
	greet_encode_args(encode(), "payload", 9);
	put(buf, w.len);
	save("payload-greet");
	script = 0xc;

	begin(PAYLOAD);
	put(&script, 8);
	weigh_encode_args(encode(), hundred);
	put(buf, w.len);
	save("payload-weigh");
	return 0;
}
