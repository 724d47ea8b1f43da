/* SPDX-License-Identifier: MIT */
/* The kernel version and the $AFE_URING_FEATURES mask: see features.h. */
#include "features.h"

#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/utsname.h>

#include "afe/runtime.h"
#include "ring.h"

/* "6.1.0-13-amd64" -> AFE_LINUX(6, 1); whole is true when nothing may
 * follow the minor number. Returns 0 for anything else. */
static unsigned parse_version(const char *s, bool whole)
{
	char *end;
	unsigned long major = strtoul(s, &end, 10);
	if (end == s || *end != '.' || major > 1000)
		return 0;
	const char *minor_at = end + 1;
	unsigned long minor = strtoul(minor_at, &end, 10);
	if (end == minor_at || minor >= 1000 || (whole && *end))
		return 0;
	return AFE_LINUX(major, minor);
}

unsigned afe__kernel_version(void)
{
	struct utsname u;
	return uname(&u) == 0 ? parse_version(u.release, false) : 0;
}

unsigned afe__features_cap(void)
{
	const char *env = getenv("AFE_URING_FEATURES");
	if (!env)
		return ~0u;
	unsigned cap = parse_version(env, true);
	/* Said once: the runtime and its ring both ask. */
	static atomic_flag said = ATOMIC_FLAG_INIT;
	if (cap == 0) {
		if (!atomic_flag_test_and_set_explicit(&said, memory_order_relaxed)) /* a flag */
			fprintf(stderr,
				"afe: ignoring AFE_URING_FEATURES=%s (want a kernel version: 5.15)\n",
				env);
		return ~0u;
	}
	return cap;
}

unsigned afe_runtime_uring_features(const struct afe_runtime *rt)
{
	return rt ? afe_ring_features(afe__runtime_ring(rt)) : 0;
}

enum afe_backend afe_runtime_backend(const struct afe_runtime *rt)
{
	return rt ? (enum afe_backend)afe_ring_backend(afe__runtime_ring(rt)) : AFE_BACKEND_AUTO;
}
