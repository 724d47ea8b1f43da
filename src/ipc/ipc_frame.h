/* SPDX-License-Identifier: MIT */
/*
 * The frame of a cross-process call: the header every request and reply
 * carries in its slot, and its check. A frame read from shared memory was
 * written by another process: check it before trusting any field.
 */
#ifndef AFE_IPC_FRAME_H
#define AFE_IPC_FRAME_H

#include <afe/ipc.h>
#include <errno.h>
#include <stdint.h>

enum afe_ipc_kind {
	AFE_IPC_REQUEST = 1,
	AFE_IPC_REPLY = 2,
};

/* Request flag: the replies go to a callback, and there may be several. */
#define AFE_IPC_F_STREAM 1u
/* Reply flag: more replies to the same call follow. */
#define AFE_IPC_F_MORE 2u
/* Reply flag, a reply to no call (id 0, no payload): replies of this
 * producer were dropped (no room for them; status -ETIMEDOUT), or its
 * request ring was found spoilt (-EPROTO: it leaves too); every call it
 * has pending ends with the reply's status. A producer that predates it
 * drops it as malformed, and its calls end with their timeouts. */
#define AFE_IPC_F_RESET 4u
#define AFE_IPC_F_KNOWN (AFE_IPC_F_STREAM | AFE_IPC_F_MORE | AFE_IPC_F_RESET)

struct afe_ipc_frame {
	uint64_t call_id;
	uint32_t len;	 /* payload bytes */
	uint16_t fn;	 /* function id, 0..255 */
	uint8_t kind;	 /* enum afe_ipc_kind */
	uint8_t flags;	 /* AFE_IPC_F_* */
	int32_t status;	 /* replies: 0, or the negative errno the call ends with */
	uint32_t reserved; /* 0 */
};

/* 0 when f is well formed, else -EPROTO. */
static inline int afe_ipc_frame_check(const struct afe_ipc_frame *f)
{
	if (f->len > AFE_IPC_MAX_PAYLOAD || f->fn > 255 || f->reserved != 0 ||
	    (f->flags & ~AFE_IPC_F_KNOWN) != 0)
		return -EPROTO;
	if (f->kind == AFE_IPC_REQUEST)
		return f->status == 0 && !(f->flags & ~AFE_IPC_F_STREAM) ? 0 : -EPROTO;
	if (f->kind != AFE_IPC_REPLY || f->status > 0 || f->status <= -4096 ||
	    (f->flags & AFE_IPC_F_STREAM))
		return -EPROTO;
	if (f->flags & AFE_IPC_F_RESET)
		return f->call_id == 0 && f->len == 0 && f->status < 0 &&
				       !(f->flags & AFE_IPC_F_MORE)
			       ? 0
			       : -EPROTO;
	return 0;
}

#endif /* AFE_IPC_FRAME_H */
