/* SPDX-License-Identifier: MIT */
/* The public headers compile as strict ISO C11 with -Wpedantic. */
#include <afe.h>

int main(void)
{
	struct afe_ready r;
	afe_ready_init(&r, 0);
	return afe_future_is_done(&r.base);
}
