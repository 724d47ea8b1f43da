/* SPDX-License-Identifier: MIT */
/* The codecs of cross-process calls: round trips of every type and arity,
 * and input from a hostile peer (truncated, overlong, unterminated). The
 * cut-point tests copy each prefix into a buffer of exactly its size, so
 * a read past the end shows under AddressSanitizer. */
#include <afe/ipc.h>
#include <criterion/criterion.h>
#include <float.h>
#include <limits.h>
#include <math.h>
#include <stdbool.h>
#include <stdlib.h>
#include <unistd.h> /* read and close, beside the table's */

/* A user's plain struct: one line. */
typedef struct {
	int32_t x, y;
	double z;
} point;
AFE_IPC_PLAIN(point)

/* A plain type this file only ever encodes: its unused decoder must not
 * warn (clang warns about unused static inline functions in a .c file,
 * and the builds use -Werror). */
typedef struct {
	uint64_t ns;
} stamp;
AFE_IPC_PLAIN(stamp)

/* A user's codec written by hand: a host that must not be NULL. */
typedef struct {
	afe_ipc_str host;
	uint16_t port;
} endpoint;

static void afe_ipc_put_endpoint(struct afe_ipc_writer *w, endpoint v)
{
	afe_ipc_put_afe_ipc_str(w, v.host);
	afe_ipc_put_uint16_t(w, v.port);
}

static void afe_ipc_get_endpoint(struct afe_ipc_reader *r, endpoint *out)
{
	afe_ipc_get_afe_ipc_str(r, &out->host);
	afe_ipc_get_uint16_t(r, &out->port);
	if (!r->err && out->host == NULL)
		r->err = -EPROTO;
}

/* Functions of 0, 1, 2, 3 and 6 arguments, as a shared header declares
 * them. mix passes bool as written, so it reaches the codecs as _Bool. */
AFE_IPC_FN(ping, 0, afe_ipc_void)
AFE_IPC_FN(neg, 1, int32_t, int32_t, x)
AFE_IPC_FN(greet, 2, afe_ipc_str, afe_ipc_str, who, uint32_t, times)
AFE_IPC_FN(add, 3, int64_t, int64_t, a, int64_t, b, int64_t, c)
AFE_IPC_FN(mix, 255, bool, uint8_t, tag, afe_ipc_str, name, point, at, afe_ipc_bytes, blob,
	   endpoint, peer, bool, flag)

/* A table may name its functions after the C library's: every name
 * AFE_IPC_FN generates has a suffix (read_call, not read). */
AFE_IPC_FN(read, 10, int64_t, int32_t, fd, uint32_t, len)
AFE_IPC_FN(close, 11, afe_ipc_void, int32_t, fd)

_Static_assert(ping_ID == 0 && neg_ID == 1 && mix_ID == 255, "ids");
_Static_assert(_Generic(((struct mix_args *)0)->name, afe_ipc_str: 1, default: 0), "str member");

static unsigned char buf[1024];

/* Not cr_assert_str_eq: the TSan builds' Criterion stand-in lacks it. */
#define assert_str_eq(a, b) cr_assert(strcmp((a), (b)) == 0, "\"%s\" != \"%s\"", (a), (b))

/* The first n bytes of src, in a buffer of exactly that size. */
static void *exact_copy(const void *src, uint32_t n)
{
	if (n == 0)
		return NULL;
	void *p = malloc(n);
	cr_assert_not_null(p);
	memcpy(p, src, n);
	return p;
}

/* T round trips as its raw native bytes. */
#define ROUND_TRIP(T, value)                                                         \
	do {                                                                         \
		T in_ = (value), out_;                                               \
		struct afe_ipc_writer w_;                                            \
		struct afe_ipc_reader r_;                                            \
		afe_ipc_writer_init(&w_, buf, sizeof buf);                           \
		afe_ipc_put_##T(&w_, in_);                                           \
		cr_assert_eq(w_.err, 0, #T);                                         \
		cr_assert_eq(w_.len, sizeof(T), #T);                                 \
		cr_assert_eq(memcmp(buf, &in_, sizeof in_), 0, #T " in native order"); \
		afe_ipc_reader_init(&r_, buf, w_.len);                               \
		afe_ipc_get_##T(&r_, &out_);                                         \
		cr_assert_eq(afe_ipc_reader_finish(&r_), 0, #T);                     \
		cr_assert_eq(memcmp(&in_, &out_, sizeof in_), 0, #T " " #value);     \
	} while (0)

Test(ipc_codec, every_predefined_type_round_trips)
{
	ROUND_TRIP(int8_t, INT8_MIN);
	ROUND_TRIP(int16_t, INT16_MIN);
	ROUND_TRIP(int32_t, INT32_MIN);
	ROUND_TRIP(int64_t, INT64_MIN);
	ROUND_TRIP(uint8_t, UINT8_MAX);
	ROUND_TRIP(uint16_t, UINT16_MAX);
	ROUND_TRIP(uint32_t, 0x01020304u);
	ROUND_TRIP(uint64_t, UINT64_MAX - 1);
	ROUND_TRIP(char, 'x');
	ROUND_TRIP(short, SHRT_MIN);
	ROUND_TRIP(int, -1);
	ROUND_TRIP(long, LONG_MAX);
	ROUND_TRIP(unsigned, UINT_MAX);
	ROUND_TRIP(float, -FLT_MAX);
	ROUND_TRIP(double, DBL_MIN);
	ROUND_TRIP(double, NAN);
	ROUND_TRIP(_Bool, true);
	ROUND_TRIP(_Bool, false);
	ROUND_TRIP(size_t, SIZE_MAX);
	ROUND_TRIP(ssize_t, -2);
	ROUND_TRIP(point, ((point){.x = -1, .y = 2, .z = 0.5}));
}

Test(ipc_codec, a_plain_type_used_one_way_encodes)
{
	struct afe_ipc_writer w;
	afe_ipc_writer_init(&w, buf, sizeof buf);
	afe_ipc_put_stamp(&w, (stamp){42});
	cr_assert_eq(w.err, 0);
	cr_assert_eq(w.len, sizeof(stamp));
}

/* Encodes a NULL, an empty and a plain string and checks their bytes and
 * that the decoded strings point into the buffer. */
Test(ipc_codec, strings_round_trip_in_place)
{
	struct afe_ipc_writer w;
	afe_ipc_writer_init(&w, buf, sizeof buf);
	afe_ipc_put_afe_ipc_str(&w, NULL);
	afe_ipc_put_afe_ipc_str(&w, "");
	afe_ipc_put_afe_ipc_str(&w, "hello");
	cr_assert_eq(w.err, 0);
	unsigned char want[] = {
		0xff, 0xff, 0xff, 0xff, /* NULL */
		0, 0, 0, 0, 0,          /* "" */
		0, 0, 0, 0, 'h', 'e', 'l', 'l', 'o', 0,
	};
	uint32_t n5 = 5; /* the lengths are native uint32s */
	memcpy(want + 9, &n5, 4);
	cr_assert_eq(w.len, sizeof want);
	cr_assert_eq(memcmp(buf, want, sizeof want), 0);

	struct afe_ipc_reader r;
	afe_ipc_str a = "x", b = NULL, c = NULL;
	afe_ipc_reader_init(&r, buf, w.len);
	afe_ipc_get_afe_ipc_str(&r, &a);
	afe_ipc_get_afe_ipc_str(&r, &b);
	afe_ipc_get_afe_ipc_str(&r, &c);
	cr_assert_eq(afe_ipc_reader_finish(&r), 0);
	cr_assert_null(a);
	cr_assert_eq(b, (const char *)buf + 8, "zero-copy");
	assert_str_eq(b, "");
	cr_assert_eq(c, (const char *)buf + 13, "zero-copy");
	assert_str_eq(c, "hello");
}

Test(ipc_codec, bytes_round_trip_in_place)
{
	struct afe_ipc_writer w;
	afe_ipc_writer_init(&w, buf, sizeof buf);
	afe_ipc_put_afe_ipc_bytes(&w, (afe_ipc_bytes){NULL, 0});
	afe_ipc_put_afe_ipc_bytes(&w, (afe_ipc_bytes){"a\0b", 3});
	cr_assert_eq(w.err, 0);
	cr_assert_eq(w.len, 4 + 4 + 3);

	struct afe_ipc_reader r;
	afe_ipc_bytes a, b;
	afe_ipc_reader_init(&r, buf, w.len);
	afe_ipc_get_afe_ipc_bytes(&r, &a);
	afe_ipc_get_afe_ipc_bytes(&r, &b);
	cr_assert_eq(afe_ipc_reader_finish(&r), 0);
	cr_assert_eq(a.len, 0);
	cr_assert_eq(b.len, 3);
	cr_assert_eq(b.data, buf + 8, "zero-copy");
	cr_assert_eq(memcmp(b.data, "a\0b", 3), 0);
}

Test(ipc_codec, hand_written_codec_checks_its_input)
{
	struct afe_ipc_writer w;
	struct afe_ipc_reader r;
	endpoint e = {"example.org", 443}, got;

	afe_ipc_writer_init(&w, buf, sizeof buf);
	afe_ipc_put_endpoint(&w, e);
	afe_ipc_reader_init(&r, buf, w.len);
	afe_ipc_get_endpoint(&r, &got);
	cr_assert_eq(afe_ipc_reader_finish(&r), 0);
	assert_str_eq(got.host, "example.org");
	cr_assert_eq(got.port, 443);

	afe_ipc_writer_init(&w, buf, sizeof buf);
	afe_ipc_put_endpoint(&w, (endpoint){NULL, 1});
	afe_ipc_reader_init(&r, buf, w.len);
	afe_ipc_get_endpoint(&r, &got);
	cr_assert_eq(afe_ipc_reader_finish(&r), -EPROTO);
}

Test(ipc_codec, no_arguments_and_no_result)
{
	struct afe_ipc_writer w;
	struct afe_ipc_reader r;
	struct ping_args args;
	afe_ipc_void v;

	cr_assert_gt(sizeof(struct ping_args), 0);
	afe_ipc_writer_init(&w, buf, sizeof buf);
	ping_encode_args(&w);
	ping_encode_ret(&w, (afe_ipc_void){0});
	cr_assert_eq(w.len, 0, "nothing on the wire");
	afe_ipc_reader_init(&r, NULL, 0);
	cr_assert_eq(ping_decode_args(&r, &args), 0);
	afe_ipc_reader_init(&r, NULL, 0);
	cr_assert_eq(ping_decode_ret(&r, &v), 0);

	buf[0] = 0;
	afe_ipc_reader_init(&r, buf, 1);
	cr_assert_eq(ping_decode_args(&r, &args), -EPROTO, "a stray byte");
	afe_ipc_reader_init(&r, buf, 1);
	cr_assert_eq(ping_decode_ret(&r, &v), -EPROTO, "a stray byte");
}

Test(ipc_codec, one_two_and_three_arguments)
{
	struct afe_ipc_writer w;
	struct afe_ipc_reader r;

	struct neg_args n;
	afe_ipc_writer_init(&w, buf, sizeof buf);
	neg_encode_args(&w, -7);
	afe_ipc_reader_init(&r, buf, w.len);
	cr_assert_eq(neg_decode_args(&r, &n), 0);
	cr_assert_eq(n.x, -7);

	struct greet_args g;
	afe_ipc_writer_init(&w, buf, sizeof buf);
	greet_encode_args(&w, "world", 3);
	afe_ipc_reader_init(&r, buf, w.len);
	cr_assert_eq(greet_decode_args(&r, &g), 0);
	assert_str_eq(g.who, "world");
	cr_assert_eq(g.times, 3);
	afe_ipc_str reply;
	afe_ipc_writer_init(&w, buf, sizeof buf);
	greet_encode_ret(&w, "hi world");
	afe_ipc_reader_init(&r, buf, w.len);
	cr_assert_eq(greet_decode_ret(&r, &reply), 0);
	assert_str_eq(reply, "hi world");

	struct add_args a;
	int64_t sum;
	afe_ipc_writer_init(&w, buf, sizeof buf);
	add_encode_args(&w, INT64_MIN + 1, 2, -3);
	cr_assert_eq(w.len, 24);
	afe_ipc_reader_init(&r, buf, w.len);
	cr_assert_eq(add_decode_args(&r, &a), 0);
	cr_assert(a.a == INT64_MIN + 1 && a.b == 2 && a.c == -3);
	afe_ipc_writer_init(&w, buf, sizeof buf);
	add_encode_ret(&w, a.a + a.b + a.c);
	afe_ipc_reader_init(&r, buf, w.len);
	cr_assert_eq(add_decode_ret(&r, &sum), 0);
	cr_assert_eq(sum, INT64_MIN);
}

/* A mix call: six arguments, a string in the middle. */
static uint32_t encode_mix(afe_ipc_str name)
{
	struct afe_ipc_writer w;
	afe_ipc_writer_init(&w, buf, sizeof buf);
	mix_encode_args(&w, 9, name, (point){1, 2, 3.0}, (afe_ipc_bytes){"xyz", 3},
			(endpoint){"h", 80}, true);
	cr_assert_eq(w.err, 0);
	return w.len;
}

Test(ipc_codec, six_arguments_with_a_string_in_the_middle)
{
	for (int i = 0; i < 3; i++) {
		afe_ipc_str name = i == 0 ? "middle" : i == 1 ? "" : NULL;
		uint32_t len = encode_mix(name);
		struct afe_ipc_reader r;
		struct mix_args m;
		afe_ipc_reader_init(&r, buf, len);
		cr_assert_eq(mix_decode_args(&r, &m), 0);
		cr_assert_eq(m.tag, 9);
		if (name)
			assert_str_eq(m.name, name);
		else
			cr_assert_null(m.name);
		cr_assert(m.at.x == 1 && m.at.y == 2 && m.at.z == 3.0);
		cr_assert(m.blob.len == 3 && memcmp(m.blob.data, "xyz", 3) == 0);
		assert_str_eq(m.peer.host, "h");
		cr_assert_eq(m.peer.port, 80);
		cr_assert_eq(m.flag, true);
	}
}

Test(ipc_codec, truncated_at_every_cut_point)
{
	uint32_t len = encode_mix("middle");
	for (uint32_t cut = 0; cut < len; cut++) {
		void *p = exact_copy(buf, cut);
		struct afe_ipc_reader r;
		struct mix_args m;
		afe_ipc_reader_init(&r, p, cut);
		cr_assert_eq(mix_decode_args(&r, &m), -EPROTO, "cut at %u of %u", cut, len);
		free(p);
	}

	struct afe_ipc_writer w;
	afe_ipc_writer_init(&w, buf, sizeof buf);
	greet_encode_ret(&w, "a reply");
	len = w.len;
	for (uint32_t cut = 0; cut <= len; cut++) {
		void *p = exact_copy(buf, cut);
		struct afe_ipc_reader r;
		afe_ipc_str s;
		afe_ipc_reader_init(&r, p, cut);
		cr_assert_eq(greet_decode_ret(&r, &s), cut < len ? -EPROTO : 0, "cut at %u", cut);
		cr_assert(cut == len || s == NULL, "nothing decoded from a cut string");
		free(p);
	}
}

/* A string field as a peer may send it: a length, then raw bytes. */
static int decode_forged_str(uint32_t n, const void *bytes, uint32_t nbytes, afe_ipc_str *out)
{
	unsigned char *p = malloc(4 + nbytes);
	cr_assert_not_null(p);
	memcpy(p, &n, 4);
	memcpy(p + 4, bytes, nbytes);
	struct afe_ipc_reader r;
	afe_ipc_reader_init(&r, p, 4 + nbytes);
	*out = "unchanged";
	afe_ipc_get_afe_ipc_str(&r, out);
	int err = afe_ipc_reader_finish(&r);
	free(p);
	return err;
}

Test(ipc_codec, forged_strings_are_rejected)
{
	afe_ipc_str s;
	cr_assert_eq(decode_forged_str(3, "abc", 4, &s), 0, "the control: valid");
	cr_assert_eq(decode_forged_str(10, "abc", 4, &s), -EPROTO, "length past the end");
	cr_assert_null(s);
	cr_assert_eq(decode_forged_str(3, "abcd", 4, &s), -EPROTO, "no NUL after it");
	cr_assert_eq(decode_forged_str(3, "a\0c", 4, &s), -EPROTO, "a NUL inside");
	cr_assert_eq(decode_forged_str(4, "abc", 4, &s), -EPROTO, "a length that counts the NUL");
	cr_assert_eq(decode_forged_str(UINT32_MAX - 1, "abc", 4, &s), -EPROTO,
		     "a length whose end wraps around");
	cr_assert_null(s);
	cr_assert_eq(decode_forged_str(UINT32_MAX - 4, "abc", 4, &s), -EPROTO);
	cr_assert_eq(decode_forged_str(0, "", 0, &s), -EPROTO, "no room for the NUL");
}

Test(ipc_codec, forged_bytes_and_bools_are_rejected)
{
	unsigned char raw[8] = {0};
	uint32_t huge[] = {UINT32_MAX, UINT32_MAX - 1, UINT32_MAX - 3, 5};
	for (size_t i = 0; i < sizeof huge / sizeof huge[0]; i++) {
		memcpy(raw, &huge[i], 4);
		unsigned char *p = exact_copy(raw, 8);
		struct afe_ipc_reader r;
		afe_ipc_bytes b;
		afe_ipc_reader_init(&r, p, 8);
		afe_ipc_get_afe_ipc_bytes(&r, &b);
		cr_assert_eq(afe_ipc_reader_finish(&r), -EPROTO, "length %u", huge[i]);
		cr_assert(b.data == NULL && b.len == 0);
		free(p);
	}

	for (int byte = 0; byte < 256; byte++) {
		unsigned char one = (unsigned char)byte;
		struct afe_ipc_reader r;
		bool v;
		afe_ipc_reader_init(&r, &one, 1);
		afe_ipc_get__Bool(&r, &v);
		cr_assert_eq(afe_ipc_reader_finish(&r), byte <= 1 ? 0 : -EPROTO, "byte %d", byte);
		cr_assert_eq(v, byte == 1);
	}
}

Test(ipc_codec, trailing_bytes_are_rejected)
{
	struct afe_ipc_writer w;
	struct afe_ipc_reader r;
	struct add_args a;
	int64_t sum;

	afe_ipc_writer_init(&w, buf, sizeof buf);
	add_encode_args(&w, 1, 2, 3);
	afe_ipc_put_uint8_t(&w, 0);
	afe_ipc_reader_init(&r, buf, w.len);
	cr_assert_eq(add_decode_args(&r, &a), -EPROTO);

	afe_ipc_writer_init(&w, buf, sizeof buf);
	add_encode_ret(&w, 6);
	afe_ipc_put_uint8_t(&w, 0);
	afe_ipc_reader_init(&r, buf, w.len);
	cr_assert_eq(add_decode_ret(&r, &sum), -EPROTO);
}

Test(ipc_codec, reader_errors_stick_and_zero_the_output)
{
	uint32_t v = 0x11223344;
	uint64_t big = 1;
	struct afe_ipc_reader r;

	afe_ipc_reader_init(&r, &v, sizeof v);
	afe_ipc_get_uint64_t(&r, &big);
	cr_assert_eq(r.err, -EPROTO);
	cr_assert_eq(big, 0, "zeroed");
	afe_ipc_get_uint32_t(&r, &v);
	cr_assert_eq(v, 0, "the 4 bytes left are not read after an error");
	cr_assert_null(afe_ipc_read_view(&r, 0));
	cr_assert_eq(afe_ipc_reader_finish(&r), -EPROTO);

	v = 1;
	afe_ipc_reader_init(&r, &v, sizeof v);
	cr_assert_eq(afe_ipc_read_view(&r, 4), (const void *)&v);
	cr_assert_null(afe_ipc_read_view(&r, 1));
	cr_assert_eq(r.err, -EPROTO);
}

Test(ipc_codec, writer_overflows_at_every_cut_point)
{
	unsigned char full[256];
	uint32_t len = encode_mix("middle");
	memcpy(full, buf, len);
	for (uint32_t cap = 0; cap < len; cap++) {
		unsigned char *p = cap ? malloc(cap) : NULL;
		struct afe_ipc_writer w;
		afe_ipc_writer_init(&w, p, cap);
		mix_encode_args(&w, 9, "middle", (point){1, 2, 3.0}, (afe_ipc_bytes){"xyz", 3},
				(endpoint){"h", 80}, true);
		cr_assert_eq(w.err, -EMSGSIZE, "cap %u of %u", cap, len);
		cr_assert_leq(w.len, cap);
		cr_assert(w.len == 0 || memcmp(p, full, w.len) == 0, "a true prefix");
		free(p);
	}
}

Test(ipc_codec, writer_writes_nothing_after_an_overflow)
{
	unsigned char small[8];
	memset(small, 0xaa, sizeof small);
	struct afe_ipc_writer w;
	afe_ipc_writer_init(&w, small, 6);
	afe_ipc_put_uint32_t(&w, 1);
	afe_ipc_put_uint32_t(&w, 2); /* does not fit */
	afe_ipc_put_uint8_t(&w, 3);  /* would fit, but comes after the error */
	afe_ipc_put_afe_ipc_str(&w, "");
	cr_assert_eq(w.err, -EMSGSIZE);
	cr_assert_eq(w.len, 4);
	cr_assert(small[4] == 0xaa && small[5] == 0xaa);
}

Test(ipc_codec, functions_named_read_and_close_leave_the_c_library_alone)
{
	int p[2];
	cr_assert_eq(pipe(p), 0);
	cr_assert_eq(write(p[1], "ok", 2), 2);
	char got[2];
	cr_assert_eq(read(p[0], got, 2), 2); /* the C library's */
	cr_assert_eq(close(p[0]), 0);
	cr_assert_eq(close(p[1]), 0);

	cr_assert_eq(read_ID, 10);
	cr_assert_eq(close_ID, 11);
	struct afe_ipc_writer w;
	afe_ipc_writer_init(&w, buf, sizeof buf);
	read_encode_args(&w, 7, 4096);
	cr_assert_eq(w.err, 0);
	struct afe_ipc_reader r;
	afe_ipc_reader_init(&r, buf, w.len);
	struct read_args args;
	cr_assert_eq(read_decode_args(&r, &args), 0);
	cr_assert_eq(args.fd, 7);
	cr_assert_eq(args.len, 4096u);
}
