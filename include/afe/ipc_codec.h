/* SPDX-License-Identifier: MIT */
/*
 * The bytes of a cross-process call: writers and readers over a buffer,
 * and a codec per argument type.
 *
 * Both processes run on one machine: values travel in native byte order.
 * A type T (one identifier: a typedef for anything longer) has a codec
 * when two functions exist:
 *
 *   void afe_ipc_put_T(struct afe_ipc_writer *w, T v);
 *   void afe_ipc_get_T(struct afe_ipc_reader *r, T *out);
 *
 * The fixed-size C types have them here, and so do afe_ipc_str (a string,
 * NUL-terminated, NULL allowed), afe_ipc_bytes (a buffer and its length)
 * and afe_ipc_void (nothing, for functions that return nothing). For a
 * trivially copyable type of yours, AFE_IPC_PLAIN(my_type) writes both as
 * a byte copy; for anything else, write the two functions with
 * afe_ipc_write / afe_ipc_read (or afe_ipc_read_view) and the codecs here.
 *
 * Errors stick: the first one is kept in w->err (-EMSGSIZE: the buffer is
 * full) or r->err (-EPROTO: the bytes ran out or do not make a value), and
 * everything after it writes nothing / reads zeros. The bytes a reader
 * reads came from another process: every length is checked before use.
 */
#ifndef AFE_IPC_CODEC_H
#define AFE_IPC_CODEC_H

#include <errno.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <sys/types.h>

#include "common.h"

struct afe_ipc_writer {
	unsigned char *buf;
	uint32_t cap, len;
	int err;
};

struct afe_ipc_reader {
	const unsigned char *buf;
	uint32_t len, off;
	int err;
};

static inline void afe_ipc_writer_init(struct afe_ipc_writer *w, void *buf, uint32_t cap)
{
	w->buf = (unsigned char *)buf;
	w->cap = cap;
	w->len = 0;
	w->err = 0;
}

static inline void afe_ipc_write(struct afe_ipc_writer *w, const void *p, uint32_t n)
{
	if (w->err)
		return;
	if (n > w->cap - w->len) {
		w->err = -EMSGSIZE;
		return;
	}
	if (n)
		memcpy(w->buf + w->len, p, n);
	w->len += n;
}

static inline void afe_ipc_reader_init(struct afe_ipc_reader *r, const void *buf, uint32_t len)
{
	r->buf = (const unsigned char *)buf;
	r->len = len;
	r->off = 0;
	r->err = 0;
}

/* n bytes in place, or NULL (and -EPROTO) when fewer are left. */
static inline const void *afe_ipc_read_view(struct afe_ipc_reader *r, uint32_t n)
{
	if (r->err || n > r->len - r->off) {
		r->err = -EPROTO;
		return NULL;
	}
	const void *p = r->buf + r->off;
	r->off += n;
	return p;
}

static inline void afe_ipc_read(struct afe_ipc_reader *r, void *p, uint32_t n)
{
	const void *src = afe_ipc_read_view(r, n);
	if (src && n)
		memcpy(p, src, n);
	else if (!src)
		memset(p, 0, n);
}

/* 0 when every byte was read into values, else the error. */
static inline int afe_ipc_reader_finish(const struct afe_ipc_reader *r)
{
	if (r->err)
		return r->err;
	return r->off == r->len ? 0 : -EPROTO;
}

/* A byte-copy codec for the trivially copyable type T (one identifier).
 * A program may use one half only (a producer that never decodes T). */
#define AFE_IPC_PLAIN(T)                                                                \
	static inline AFE__UNUSED void afe_ipc_put_##T(struct afe_ipc_writer *w, T v)    \
	{                                                                               \
		afe_ipc_write(w, &v, (uint32_t)sizeof(v));                              \
	}                                                                               \
	static inline AFE__UNUSED void afe_ipc_get_##T(struct afe_ipc_reader *r, T *out) \
	{                                                                               \
		afe_ipc_read(r, out, (uint32_t)sizeof(*out));                           \
	}

AFE_IPC_PLAIN(int8_t)
AFE_IPC_PLAIN(int16_t)
AFE_IPC_PLAIN(int32_t)
AFE_IPC_PLAIN(int64_t)
AFE_IPC_PLAIN(uint8_t)
AFE_IPC_PLAIN(uint16_t)
AFE_IPC_PLAIN(uint32_t)
AFE_IPC_PLAIN(uint64_t)
AFE_IPC_PLAIN(char)
AFE_IPC_PLAIN(short)
AFE_IPC_PLAIN(int)
AFE_IPC_PLAIN(long)
AFE_IPC_PLAIN(unsigned)
AFE_IPC_PLAIN(float)
AFE_IPC_PLAIN(double)
AFE_IPC_PLAIN(size_t)
AFE_IPC_PLAIN(ssize_t)

/* bool: one byte, 0 or 1 (anything else is -EPROTO). */
static inline void afe_ipc_put__Bool(struct afe_ipc_writer *w, _Bool v)
{
	uint8_t b = v ? 1 : 0;
	afe_ipc_write(w, &b, 1);
}

static inline void afe_ipc_get__Bool(struct afe_ipc_reader *r, _Bool *out)
{
	uint8_t b = 0;
	afe_ipc_read(r, &b, 1);
	if (b > 1)
		r->err = -EPROTO;
	*out = b == 1;
}

/* Nothing: the return type of a function that returns nothing. */
typedef struct {
	char none;
} afe_ipc_void;

static inline void afe_ipc_put_afe_ipc_void(struct afe_ipc_writer *w, afe_ipc_void v)
{
	(void)w, (void)v;
}

static inline void afe_ipc_get_afe_ipc_void(struct afe_ipc_reader *r, afe_ipc_void *out)
{
	(void)r;
	out->none = 0;
}

/* A string: its length (UINT32_MAX for NULL), its bytes, a NUL. Read in
 * place: the string points into the reader's buffer. */
typedef const char *afe_ipc_str;

#define AFE_IPC_NULL_LEN UINT32_MAX

static inline void afe_ipc_put_afe_ipc_str(struct afe_ipc_writer *w, afe_ipc_str s)
{
	size_t n = s ? strlen(s) : 0;
	if (n >= UINT32_MAX) {
		w->err = w->err ? w->err : -EMSGSIZE;
		return;
	}
	uint32_t len = s ? (uint32_t)n : AFE_IPC_NULL_LEN;
	afe_ipc_write(w, &len, sizeof(len));
	if (s)
		afe_ipc_write(w, s, len + 1);
}

static inline void afe_ipc_get_afe_ipc_str(struct afe_ipc_reader *r, afe_ipc_str *out)
{
	uint32_t len = 0;
	*out = NULL;
	afe_ipc_read(r, &len, sizeof(len));
	if (r->err || len == AFE_IPC_NULL_LEN)
		return;
	const char *s = (const char *)afe_ipc_read_view(r, len + 1);
	if (!s || s[len] != '\0' || memchr(s, '\0', len)) {
		r->err = -EPROTO;
		return;
	}
	*out = s;
}

/* A buffer: its length, then its bytes. Read in place. */
typedef struct {
	const void *data;
	uint32_t len;
} afe_ipc_bytes;

static inline void afe_ipc_put_afe_ipc_bytes(struct afe_ipc_writer *w, afe_ipc_bytes b)
{
	afe_ipc_write(w, &b.len, sizeof(b.len));
	afe_ipc_write(w, b.data, b.len);
}

static inline void afe_ipc_get_afe_ipc_bytes(struct afe_ipc_reader *r, afe_ipc_bytes *out)
{
	out->len = 0;
	afe_ipc_read(r, &out->len, sizeof(out->len));
	out->data = afe_ipc_read_view(r, out->len);
	if (!out->data)
		out->len = 0;
}

#endif /* AFE_IPC_CODEC_H */
