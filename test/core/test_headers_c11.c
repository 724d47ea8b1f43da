/* SPDX-License-Identifier: MIT */
/* The public headers compile as strict ISO C11 with -Wpedantic. */
#include <afe.h>
#include <stdbool.h>

/* Cross-process declarations too: a function without arguments (an empty
 * `...` is what -Wpedantic rejects before C23), bool, a string, a plain
 * type of the program's own. */
typedef struct {
	int32_t x, y;
} headers_point;
AFE_IPC_PLAIN(headers_point)
AFE_IPC_FN(headers_ping, 0, afe_ipc_void)
AFE_IPC_FN(headers_greet, 1, afe_ipc_str, afe_ipc_str, who, bool, loud)
AFE_IPC_FN(headers_move, 2, headers_point, headers_point, from, int32_t, dx, int32_t, dy)

int main(void)
{
	struct afe_ready r;
	afe_ready_init(&r, 0);
	return afe_future_is_done(&r.base) + headers_ping_ID;
}
