/* SPDX-License-Identifier: MIT */
/*
 * Fuzz target: the input is what a hostile peer wrote into the shared
 * memory, read the way the other side reads it.
 *
 * Byte 0 picks what is fuzzed (low two bits), whether the ring's positions
 * start just short of the 64-bit wrap (bit 2), and the byte the memory
 * holds where the input says nothing (high nibble, repeated):
 *
 *   0  a reader's ring: records laid over its slots, popped with
 *      afe_ipc_slots_pop; each frame that passes is decoded as below;
 *   1  a writer's ring: records laid over its slots (the peer corrupting
 *      sequence numbers), then frames pushed with afe_ipc_slots_push;
 *   2  the object's header: an 8-byte object size, then the header's
 *      bytes, checked with afe_ipc_shm_check;
 *   3  a payload alone: an 8-byte script, then the payload, decoded.
 *
 * A record fills the next slot: its sequence number (8 bytes, relative to
 * the ring's first position), its frame header (24 bytes), a 2-byte length
 * n, then n payload bytes; the rest of the slot keeps the fill byte.
 *
 * A payload is decoded with every decoder ipc_calc.h generates (arguments
 * and return values), then walked with the afe_ipc_get_* functions a script
 * picks (the frame's call id in mode 0), a nibble per read.
 *
 * Every invariant is checked by aborting: the fuzzer reports it as a crash.
 * Buffers are allocated at their exact size, so that AddressSanitizer
 * catches a read past the input.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "examples/ipc_calc.h"
#include "ipc_slots.h"
#include "ipc_shm.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(cond)                                                                     \
	do {                                                                            \
		if (!(cond)) {                                                          \
			fprintf(stderr, "fuzz_ipc_frame: %s:%d: invariant broken: %s\n", \
				__FILE__, __LINE__, #cond);                             \
			abort();                                                        \
		}                                                                       \
	} while (0)

enum { MODE_READER, MODE_WRITER, MODE_HEADER, MODE_PAYLOAD };

#define RING_SLOTS 4u
#define RECORD_HEAD (8 + sizeof(struct afe_ipc_frame) + 2)

/* What the fuzzer gave, consumed from the front. */
struct input {
	const uint8_t *p;
	size_t left;
};

/* Up to n bytes into out (the rest untouched); how many were there. */
static size_t take(struct input *in, void *out, size_t n)
{
	if (n > in->left)
		n = in->left;
	memcpy(out, in->p, n);
	in->p += n;
	in->left -= n;
	return n;
}

/* ---- decoding a payload ------------------------------------------------------ */

/* A value decoded from r points into its bytes, and a string ends there. */
static void check_view(const struct afe_ipc_reader *r, const void *p, uint32_t n)
{
	const unsigned char *c = p;
	CHECK(c >= r->buf && c <= r->buf + r->len && n <= (size_t)(r->buf + r->len - c));
}

static void check_str(const struct afe_ipc_reader *r, afe_ipc_str s)
{
	if (!s)
		return;
	check_view(r, s, 1);
	CHECK(memchr(s, '\0', (size_t)(r->buf + r->len - (const unsigned char *)s)));
}

static void check_bytes(const struct afe_ipc_reader *r, afe_ipc_bytes b)
{
	if (!b.data) {
		CHECK(b.len == 0);
		return;
	}
	check_view(r, b.data, b.len);
}

/* A decoder succeeded: it read every byte, and encoding what it gave
 * writes those bytes again (one encoding per value). */
#define CHECK_ROUND_TRIP(encode, bytes, len, ...)                        \
	do {                                                             \
		unsigned char again[AFE_IPC_MAX_PAYLOAD];                \
		struct afe_ipc_writer w;                                 \
		afe_ipc_writer_init(&w, again, sizeof(again));           \
		encode(&w, __VA_ARGS__);                                 \
		CHECK(w.err == 0 && w.len == (len));                     \
		CHECK((len) == 0 || memcmp(again, (bytes), (len)) == 0); \
	} while (0)

/* Decodes bytes as the arguments and the return value of each function. */
static void decode_calc(const unsigned char *bytes, uint32_t len)
{
	struct afe_ipc_reader r;
	int err;

	struct add_args add;
	afe_ipc_reader_init(&r, bytes, len);
	if ((err = add_decode_args(&r, &add)) == 0)
		CHECK_ROUND_TRIP(add_encode_args, bytes, len, add.a, add.b, add.c);
	CHECK(err == 0 || err == -EPROTO);

	struct greet_args greet;
	afe_ipc_reader_init(&r, bytes, len);
	err = greet_decode_args(&r, &greet);
	check_str(&r, greet.who);
	if (err == 0)
		CHECK_ROUND_TRIP(greet_encode_args, bytes, len, greet.who, greet.times);
	CHECK(err == 0 || err == -EPROTO);

	struct nap_args nap;
	afe_ipc_reader_init(&r, bytes, len);
	if ((err = nap_decode_args(&r, &nap)) == 0)
		CHECK_ROUND_TRIP(nap_encode_args, bytes, len, nap.ms);
	CHECK(err == 0 || err == -EPROTO);

	struct count_args count;
	afe_ipc_reader_init(&r, bytes, len);
	if ((err = count_decode_args(&r, &count)) == 0)
		CHECK_ROUND_TRIP(count_encode_args, bytes, len, count.n);
	CHECK(err == 0 || err == -EPROTO);

	struct weigh_args weigh;
	afe_ipc_reader_init(&r, bytes, len);
	err = weigh_decode_args(&r, &weigh);
	check_bytes(&r, weigh.data);
	if (err == 0)
		CHECK_ROUND_TRIP(weigh_encode_args, bytes, len, weigh.data);
	CHECK(err == 0 || err == -EPROTO);

	int64_t sum;
	afe_ipc_reader_init(&r, bytes, len);
	if ((err = add_decode_ret(&r, &sum)) == 0)
		CHECK_ROUND_TRIP(add_encode_ret, bytes, len, sum);
	CHECK(err == 0 || err == -EPROTO);

	afe_ipc_str text;
	afe_ipc_reader_init(&r, bytes, len);
	err = greet_decode_ret(&r, &text);
	check_str(&r, text);
	if (err == 0)
		CHECK_ROUND_TRIP(greet_encode_ret, bytes, len, text);
	CHECK(err == 0 || err == -EPROTO);

	uint32_t u32;
	afe_ipc_reader_init(&r, bytes, len);
	if ((err = count_decode_ret(&r, &u32)) == 0)
		CHECK_ROUND_TRIP(count_encode_ret, bytes, len, u32);
	CHECK(err == 0 || err == -EPROTO);
}

/* Reads a T; returns whether it was nonzero. */
#define READ_FIXED(T)                   \
	do {                            \
		T v;                    \
		afe_ipc_get_##T(r, &v); \
		return v != 0;          \
	} while (0)

/* One read the script picks; returns whether it gave something nonzero
 * (a read after an error must give zeros). */
static bool script_read(struct afe_ipc_reader *r, unsigned op, unsigned arg)
{
	const void *p;
	afe_ipc_str s;
	afe_ipc_bytes b;
	afe_ipc_void none;
	switch (op) {
	case 0: READ_FIXED(int8_t);
	case 1: READ_FIXED(int16_t);
	case 2: READ_FIXED(int32_t);
	case 3: READ_FIXED(int64_t);
	case 4: READ_FIXED(uint8_t);
	case 5: READ_FIXED(uint16_t);
	case 6: READ_FIXED(uint32_t);
	case 7: READ_FIXED(uint64_t);
	case 8: READ_FIXED(_Bool);
	case 9: READ_FIXED(double);
	case 10: READ_FIXED(size_t);
	case 11:
		afe_ipc_get_afe_ipc_str(r, &s);
		check_str(r, s);
		return s != NULL;
	case 12:
		afe_ipc_get_afe_ipc_bytes(r, &b);
		check_bytes(r, b);
		return b.data != NULL;
	case 13:
		afe_ipc_get_afe_ipc_void(r, &none);
		return none.none != 0;
	case 14: /* a view of up to 1455 bytes */
		p = afe_ipc_read_view(r, arg * 97u);
		if (p)
			check_view(r, p, arg * 97u);
		return p != NULL;
	default: /* a view longer than any payload: refused */
		p = afe_ipc_read_view(r, UINT32_MAX - arg);
		CHECK(!p);
		return false;
	}
}

/* Walks bytes with the reads script picks (a nibble each, the next
 * nibble the argument of a view). */
static void decode_script(const unsigned char *bytes, uint32_t len, uint64_t script)
{
	struct afe_ipc_reader r;
	afe_ipc_reader_init(&r, bytes, len);
	for (int i = 0; i < 16; i++, script >>= 4) {
		int err = r.err;
		uint32_t off = r.off;
		bool nonzero = script_read(&r, script & 15, (script >> 4) & 15);
		CHECK(r.buf == bytes && r.len == len && r.off <= r.len);
		CHECK(r.err == 0 || r.err == -EPROTO);
		if (err) { /* errors stick, and read zeros */
			CHECK(r.err == err && r.off == off && !nonzero);
		}
	}
	int end = afe_ipc_reader_finish(&r);
	CHECK(end == r.err || (end == -EPROTO && r.off < r.len));
}

/* Decodes a payload from a copy of exactly its size. */
static void decode_payload(const void *payload, uint32_t len, uint64_t script)
{
	CHECK(len <= AFE_IPC_MAX_PAYLOAD);
	unsigned char *bytes = malloc(len ? len : 1);
	CHECK(bytes);
	memcpy(bytes, payload, len);
	decode_calc(bytes, len);
	decode_script(bytes, len, script);
	free(bytes);
}

/* ---- the rings --------------------------------------------------------------- */

/* A ring of RING_SLOTS slots (exactly: nothing around it to hit), its
 * positions starting at base, records laid over its slots in order. */
static struct afe_ipc_slot *make_ring(struct input *in, uint64_t base, uint8_t fill)
{
	struct afe_ipc_slot *slots = aligned_alloc(64, RING_SLOTS * sizeof(*slots));
	CHECK(slots);
	memset(slots, fill, RING_SLOTS * sizeof(*slots));
	afe_ipc_slots_format(slots, RING_SLOTS);
	/* As if the ring had turned over base positions already. */
	for (uint64_t p = base; p != base + RING_SLOTS; p++)
		atomic_store(&slots[p % RING_SLOTS].seq, p);
	for (uint64_t p = base; p != base + RING_SLOTS && in->left; p++) {
		struct afe_ipc_slot *slot = &slots[p % RING_SLOTS];
		uint64_t seq = 0;
		uint16_t n = 0;
		take(in, &seq, sizeof(seq));
		atomic_store(&slot->seq, base + seq);
		take(in, &slot->frame, sizeof(slot->frame));
		take(in, &n, sizeof(n));
		take(in, slot->payload, n < AFE_IPC_MAX_PAYLOAD ? n : AFE_IPC_MAX_PAYLOAD);
	}
	return slots;
}

static void fuzz_reader(struct input *in, uint64_t base, uint8_t fill)
{
	struct afe_ipc_slot *slots = make_ring(in, base, fill);
	struct afe_ipc_slot *before = malloc(RING_SLOTS * sizeof(*slots));
	CHECK(before);
	memcpy(before, slots, RING_SLOTS * sizeof(*slots));
	struct afe_ipc_slots r;
	afe_ipc_slots_attach(&r, slots, RING_SLOTS);
	atomic_store(&r.cursor, base);
	unsigned char *payload = malloc(AFE_IPC_MAX_PAYLOAD);
	CHECK(payload);
	/* Each pop frees its slot: a ring of n slots gives at most n. */
	unsigned taken;
	for (taken = 0; taken <= RING_SLOTS; taken++) {
		uint64_t pos = atomic_load(&r.cursor);
		struct afe_ipc_slot *slot = &slots[pos % RING_SLOTS];
		bool has = afe_ipc_slots_has_frame(&r);
		memset(payload, 0xee, AFE_IPC_MAX_PAYLOAD);
		struct afe_ipc_frame f;
		int err = afe_ipc_slots_pop(&r, &f, payload);
		CHECK(err == 0 || err == -EAGAIN || err == -EBADMSG || err == -EPROTO);
		CHECK(has == (err != -EAGAIN));
		/* A malformed frame in a slot published as it should be, or a
		 * sequence number no claim explains: never both, never neither. */
		CHECK((err == 0 || err == -EBADMSG) ==
		      (atomic_load(&before[pos % RING_SLOTS].seq) == pos + 1));
		if (err == -EAGAIN) {
			CHECK(atomic_load(&r.cursor) == pos);
			break;
		}
		CHECK(atomic_load(&r.cursor) == pos + 1);
		CHECK(atomic_load(&slot->seq) == pos + RING_SLOTS); /* freed */
		uint32_t copied = 0;
		if (err == 0) {
			const struct afe_ipc_slot *was = &before[pos % RING_SLOTS];
			CHECK(atomic_load(&was->seq) == pos + 1);
			CHECK(afe_ipc_frame_check(&f) == 0 && f.len <= AFE_IPC_MAX_PAYLOAD);
			CHECK(f.kind == AFE_IPC_REQUEST || f.kind == AFE_IPC_REPLY);
			CHECK(f.fn <= 255 && f.reserved == 0 && !(f.flags & ~AFE_IPC_F_KNOWN));
			CHECK(memcmp(&f, &was->frame, sizeof(f)) == 0);
			CHECK(memcmp(payload, was->payload, f.len) == 0);
			copied = f.len;
			decode_payload(payload, f.len, f.call_id);
		}
		for (uint32_t i = copied; i < AFE_IPC_MAX_PAYLOAD; i++)
			CHECK(payload[i] == 0xee); /* nothing written past the frame */
	}
	CHECK(taken <= RING_SLOTS);
	free(payload);
	free(before);
	free(slots);
}

static void fuzz_writer(struct input *in, uint64_t base, uint8_t fill)
{
	struct afe_ipc_slot *slots = make_ring(in, base, fill);
	struct afe_ipc_slot *before = malloc(RING_SLOTS * sizeof(*slots));
	CHECK(before);
	struct afe_ipc_slots r;
	afe_ipc_slots_attach(&r, slots, RING_SLOTS);
	atomic_store(&r.cursor, base);
	static const unsigned char pattern[AFE_IPC_MAX_PAYLOAD] = {1, 2, 3, 4, 5};
	for (uint32_t k = 0; k < 3 * RING_SLOTS; k++) {
		/* Every fifth frame too long: refused before touching the ring. */
		uint32_t len = k % 5 == 4 ? AFE_IPC_MAX_PAYLOAD + k
					  : (k * 1361u) % (AFE_IPC_MAX_PAYLOAD + 1);
		struct afe_ipc_frame f = {.call_id = k, .len = len, .fn = (uint16_t)k,
					  .kind = AFE_IPC_REQUEST};
		uint64_t pos = atomic_load(&r.cursor);
		bool room = afe_ipc_slots_has_room(&r);
		memcpy(before, slots, RING_SLOTS * sizeof(*slots));
		int err = afe_ipc_slots_push(&r, &f, pattern);
		struct afe_ipc_slot *slot = &slots[pos % RING_SLOTS];
		if (f.len > AFE_IPC_MAX_PAYLOAD) {
			CHECK(err == -EMSGSIZE && atomic_load(&r.cursor) == pos);
			CHECK(memcmp(before, slots, RING_SLOTS * sizeof(*slots)) == 0);
			continue;
		}
		CHECK(err == 0 || err == -EAGAIN || err == -EPROTO);
		CHECK(room == (err != -EAGAIN));
		CHECK(atomic_load(&r.cursor) == pos + (err != -EAGAIN));
		if (err == 0) { /* it wrote its own slot, nothing else */
			CHECK(atomic_load(&slot->seq) == pos + 1);
			CHECK(memcmp(&slot->frame, &f, sizeof(f)) == 0);
			CHECK(memcmp(slot->payload, pattern, f.len) == 0);
			memcpy(slot, &before[pos % RING_SLOTS], sizeof(*slot));
		}
		CHECK(memcmp(before, slots, RING_SLOTS * sizeof(*slots)) == 0);
	}
	free(before);
	free(slots);
}

/* ---- the header ------------------------------------------------------------ */

static void fuzz_header(struct input *in, uint8_t fill)
{
	uint64_t size = 0;
	take(in, &size, sizeof(size));
	struct afe_ipc_header *h = NULL;
	if (size == AFE_IPC_OBJECT_SIZE) { /* otherwise it must not be read */
		h = aligned_alloc(64, sizeof(*h));
		CHECK(h);
		memset(h, fill, sizeof(*h));
		take(in, h, sizeof(*h));
	}
	int err = afe_ipc_shm_check(size, h);
	int want = -EPROTO;
	if (size == 0 || (h && atomic_load(&h->magic) == 0))
		want = -ECONNREFUSED;
	else if (h && atomic_load(&h->magic) == AFE_IPC_MAGIC && h->version == AFE_IPC_VERSION &&
		 h->slot_size == AFE_IPC_SLOT_SIZE && h->ring_slots == AFE_IPC_RING_SLOTS &&
		 h->max_producers == AFE_IPC_MAX_PRODUCERS && h->size == AFE_IPC_OBJECT_SIZE)
		want = 0;
	CHECK(err == want);
	free(h);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size == 0)
		return 0;
	struct input in = {data + 1, size - 1};
	uint8_t fill = (uint8_t)((data[0] >> 4) * 0x11);
	uint64_t base = data[0] & 4 ? UINT64_MAX - 1 : 0;
	switch (data[0] & 3) {
	case MODE_READER:
		fuzz_reader(&in, base, fill);
		break;
	case MODE_WRITER:
		fuzz_writer(&in, base, fill);
		break;
	case MODE_HEADER:
		fuzz_header(&in, fill);
		break;
	default: {
		uint64_t script = 0;
		take(&in, &script, sizeof(script));
		uint32_t len = in.left < AFE_IPC_MAX_PAYLOAD ? (uint32_t)in.left : AFE_IPC_MAX_PAYLOAD;
		decode_payload(in.p, len, script);
		break;
	}
	}
	return 0;
}
