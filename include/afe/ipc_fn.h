/* SPDX-License-Identifier: MIT */
/*
 * Declaring a function of a cross-process table: one line in a header both
 * programs include.
 *
 *   AFE_IPC_FN(add, 1, int64_t, int64_t, a, int64_t, b, int64_t, c)
 *   AFE_IPC_FN(greet, 2, afe_ipc_str, afe_ipc_str, who, uint32_t, times)
 *   AFE_IPC_FN(ping, 3, afe_ipc_void)
 *
 * name, id (0..255, unique in the table), the return type, then up to six
 * arguments as type, name pairs. Every type is one identifier with a codec
 * (see afe/ipc_codec.h). It generates the codec of the call:
 *
 *   enum { name_ID = id };
 *   struct name_args { T1 a1; ... };
 *   void name_encode_args(struct afe_ipc_writer *w, T1 a1, ...);
 *   int  name_decode_args(struct afe_ipc_reader *r, struct name_args *out);
 *   void name_encode_ret(struct afe_ipc_writer *w, RET v);
 *   int  name_decode_ret(struct afe_ipc_reader *r, RET *out);
 *
 * and the helpers afe/ipc.h describes (name_call, name_result, name_decode,
 * name_reply, name_reply_more, name_apply). Decoding returns 0, or -EPROTO when the
 * bytes do not hold exactly the values.
 */
#ifndef AFE_IPC_FN_H
#define AFE_IPC_FN_H

#include "ipc_codec.h"

/* How many arguments the macro got: 1 (just RET), 3, 5, ..., 13. */
#define AFE__IPC_NARG(...) AFE__IPC_NARG_(__VA_ARGS__, 13, 12, 11, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1, 0)
#define AFE__IPC_NARG_(_1, _2, _3, _4, _5, _6, _7, _8, _9, _10, _11, _12, _13, n, ...) n
#define AFE__IPC_CAT(a, b) AFE__IPC_CAT_(a, b)
#define AFE__IPC_CAT_(a, b) a##b

/* M(T, a) for each pair; the number says how many names follow M. */
#define AFE__IPC_PAIRS_0(M, ...)
#define AFE__IPC_PAIRS_2(M, T, a) M(T, a)
#define AFE__IPC_PAIRS_4(M, T, a, ...) M(T, a) AFE__IPC_PAIRS_2(M, __VA_ARGS__)
#define AFE__IPC_PAIRS_6(M, T, a, ...) M(T, a) AFE__IPC_PAIRS_4(M, __VA_ARGS__)
#define AFE__IPC_PAIRS_8(M, T, a, ...) M(T, a) AFE__IPC_PAIRS_6(M, __VA_ARGS__)
#define AFE__IPC_PAIRS_10(M, T, a, ...) M(T, a) AFE__IPC_PAIRS_8(M, __VA_ARGS__)
#define AFE__IPC_PAIRS_12(M, T, a, ...) M(T, a) AFE__IPC_PAIRS_10(M, __VA_ARGS__)

/* A function type's parameters, and the call with a decoded struct's
 * fields (used by NAME_apply). */
#define AFE__IPC_SIG_0(...) void
#define AFE__IPC_SIG_2(T, a) T a
#define AFE__IPC_SIG_4(T, a, ...) T a, AFE__IPC_SIG_2(__VA_ARGS__)
#define AFE__IPC_SIG_6(T, a, ...) T a, AFE__IPC_SIG_4(__VA_ARGS__)
#define AFE__IPC_SIG_8(T, a, ...) T a, AFE__IPC_SIG_6(__VA_ARGS__)
#define AFE__IPC_SIG_10(T, a, ...) T a, AFE__IPC_SIG_8(__VA_ARGS__)
#define AFE__IPC_SIG_12(T, a, ...) T a, AFE__IPC_SIG_10(__VA_ARGS__)
#define AFE__IPC_USE_0(...)
#define AFE__IPC_USE_2(T, a) args.a
#define AFE__IPC_USE_4(T, a, ...) args.a, AFE__IPC_USE_2(__VA_ARGS__)
#define AFE__IPC_USE_6(T, a, ...) args.a, AFE__IPC_USE_4(__VA_ARGS__)
#define AFE__IPC_USE_8(T, a, ...) args.a, AFE__IPC_USE_6(__VA_ARGS__)
#define AFE__IPC_USE_10(T, a, ...) args.a, AFE__IPC_USE_8(__VA_ARGS__)
#define AFE__IPC_USE_12(T, a, ...) args.a, AFE__IPC_USE_10(__VA_ARGS__)

#define AFE__IPC_FIELD(T, a) T a;
#define AFE__IPC_PARAM(T, a) , T a
#define AFE__IPC_ARG(T, a) , a
#define AFE__IPC_PUT(T, a) afe_ipc_put_##T(w, a);
#define AFE__IPC_GET(T, a) afe_ipc_get_##T(r, &out->a);

/* C has no empty struct: a function without arguments gets a placeholder. */
#define AFE__IPC_NONE_0 char afe__none;
#define AFE__IPC_NONE_2
#define AFE__IPC_NONE_4
#define AFE__IPC_NONE_6
#define AFE__IPC_NONE_8
#define AFE__IPC_NONE_10
#define AFE__IPC_NONE_12

/* The arity's dispatch: RET alone, or RET and k names of pairs. */
#define AFE__IPC_FN_1(M, name, id, RET) M(name, id, RET, 0, ~)
#define AFE__IPC_FN_3(M, name, id, RET, ...) M(name, id, RET, 2, __VA_ARGS__)
#define AFE__IPC_FN_5(M, name, id, RET, ...) M(name, id, RET, 4, __VA_ARGS__)
#define AFE__IPC_FN_7(M, name, id, RET, ...) M(name, id, RET, 6, __VA_ARGS__)
#define AFE__IPC_FN_9(M, name, id, RET, ...) M(name, id, RET, 8, __VA_ARGS__)
#define AFE__IPC_FN_11(M, name, id, RET, ...) M(name, id, RET, 10, __VA_ARGS__)
#define AFE__IPC_FN_13(M, name, id, RET, ...) M(name, id, RET, 12, __VA_ARGS__)

/* Expands M(name, id, RET, k, pairs...) for the arguments of AFE_IPC_FN. */
#define AFE__IPC_EXPAND(M, name, id, ...) \
	AFE__IPC_CAT(AFE__IPC_FN_, AFE__IPC_NARG(__VA_ARGS__))(M, name, id, __VA_ARGS__)

#define AFE__IPC_CODEC(name, id, RET, k, ...)                                            \
	enum { name##_ID = (id) };                                                       \
	_Static_assert((id) >= 0 && (id) <= 255, "function ids are 0..255");             \
	struct name##_args {                                                             \
		AFE__IPC_PAIRS_##k(AFE__IPC_FIELD, __VA_ARGS__) AFE__IPC_NONE_##k        \
	};                                                                               \
	static inline AFE__UNUSED void name##_encode_args(struct afe_ipc_writer *w                   \
						      AFE__IPC_PAIRS_##k(AFE__IPC_PARAM, \
									 __VA_ARGS__))   \
	{                                                                                \
		(void)w;                                                                 \
		AFE__IPC_PAIRS_##k(AFE__IPC_PUT, __VA_ARGS__)                            \
	}                                                                                \
	static inline AFE__UNUSED int name##_decode_args(struct afe_ipc_reader *r,                   \
					     struct name##_args *out)                    \
	{                                                                                \
		(void)out;                                                               \
		AFE__IPC_PAIRS_##k(AFE__IPC_GET, __VA_ARGS__) return afe_ipc_reader_finish(r); \
	}                                                                                \
	static inline AFE__UNUSED void name##_encode_ret(struct afe_ipc_writer *w, RET v)            \
	{                                                                                \
		afe_ipc_put_##RET(w, v);                                                 \
	}                                                                                \
	static inline AFE__UNUSED int name##_decode_ret(struct afe_ipc_reader *r, RET *out)          \
	{                                                                                \
		afe_ipc_get_##RET(r, out);                                               \
		return afe_ipc_reader_finish(r);                                         \
	}

#endif /* AFE_IPC_FN_H */
