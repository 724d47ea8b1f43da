/* SPDX-License-Identifier: MIT */
/* A program built against an installed AFE: runs one future to completion. */
#include <afe.h>

int main(void)
{
	struct afe_runtime *rt;
	if (afe_runtime_create(&rt, NULL) < 0)
		return 1;
	struct afe_ready ready;
	afe_ready_init(&ready, 42);
	intptr_t result = 0;
	int err = afe_block_on(rt, &ready, &result);
	afe_runtime_destroy(rt);
	return err == 0 && result == 42 ? 0 : 1;
}
