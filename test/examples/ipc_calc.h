/* SPDX-License-Identifier: MIT */
/* The function table ipc_producer and ipc_consumer share. */
#ifndef IPC_CALC_H
#define IPC_CALC_H

#include <afe/ipc.h>

/* a + b + c */
AFE_IPC_FN(add, 1, int64_t, int64_t, a, int64_t, b, int64_t, c)
/* "hello, WHO" repeated times times */
AFE_IPC_FN(greet, 2, afe_ipc_str, afe_ipc_str, who, uint32_t, times)
/* sleeps ms milliseconds, then returns ms; -EINVAL past CALC_NAP_MAX_MS */
AFE_IPC_FN(nap, 3, uint32_t, uint32_t, ms)
/* streamed: replies 0, 1, ..., n-1 (more to come), then n (the last) */
AFE_IPC_FN(count, 4, uint32_t, uint32_t, n)
/* the length of a buffer, and the sum of its bytes in the low bits */
AFE_IPC_FN(weigh, 5, uint64_t, afe_ipc_bytes, data)

/* The longest nap served: a caller must not hold a serving task (and a
 * graceful stop, which waits for it) for as long as it likes. */
#define CALC_NAP_MAX_MS 10000u

#define IPC_CALC_FUNCTIONS {add_ID, greet_ID, nap_ID, count_ID, weigh_ID}

#endif /* IPC_CALC_H */
