/* SPDX-License-Identifier: MIT */
/* The token's layout, for token.c and the process's static shutdown token
 * (signals/shutdown.c). The invariants are at the top of token.c. */
#ifndef AFE_TOKEN_INTERNAL_H
#define AFE_TOKEN_INTERNAL_H

#include <pthread.h>
#include <stdatomic.h>

#include "afe/token.h"

struct afe_token_waiters {
	struct afe_token_node *head, *tail;
};

struct afe_token {
	_Atomic bool cancelled;
	atomic_flag lock;		     /* guards waiters and firing */
	struct afe_token_waiters waiters;    /* waits and callbacks (pool/list.h) */
	const struct afe_token_node *firing; /* the callback running now */
	pthread_t firing_thread;
	/* Guarded by tree_lock. */
	bool is_static; /* never freed; references not counted */
	unsigned refs;
	struct afe_token *parent, *first_child, *prev_sibling, *next_sibling;
	struct afe_token *cancel_next; /* afe_token_cancel's queue */
};

/* A static token's initializer: AFE_TOKEN_STATIC_INIT(name). */
#define AFE_TOKEN_STATIC_INIT(name)                                        \
	{                                                                  \
		.lock = ATOMIC_FLAG_INIT,                                  \
		.is_static = true,                                         \
		.refs = 1,                                                 \
	}

#endif /* AFE_TOKEN_INTERNAL_H */
