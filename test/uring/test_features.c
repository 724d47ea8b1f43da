/* SPDX-License-Identifier: MIT */
/* The io_uring facilities a runtime picks at start-up, and the
 * AFE_URING_FEATURES mask that makes a new kernel play an old one. */
#include <stdio.h>
#include <stdlib.h>
#include <sys/utsname.h>

#include "io_helpers.h"

/* What a runtime started under AFE_URING_FEATURES=mask (NULL: unset)
 * uses; it runs a NOP and a sleep to show it works on those paths. */
static unsigned features_under(const char *mask)
{
	cr_assert_eq(unsetenv("AFE_BACKEND"), 0); /* io_uring's facilities, whatever CI runs */
	if (mask)
		cr_assert_eq(setenv("AFE_URING_FEATURES", mask, 1), 0);
	else
		cr_assert_eq(unsetenv("AFE_URING_FEATURES"), 0);
	struct afe_runtime *rt = test_runtime(2);
	unsigned features = afe_runtime_uring_features(rt);
	struct afe_io io;
	afe_io_nop_init(&io);
	cr_assert_eq(run_io(rt, &io), 0);
	struct afe_sleep nap;
	afe_sleep_init(&nap, 2 * 1000000u);
	cr_assert_eq(test_block_on(rt, &nap), 0);
	test_runtime_destroy(rt);
	return features;
}

/* The running kernel is at least major.minor. */
static bool kernel_at_least(unsigned major, unsigned minor)
{
	struct utsname u;
	unsigned have_major = 0, have_minor = 0;
	cr_assert_eq(uname(&u), 0);
	cr_assert_eq(sscanf(u.release, "%u.%u", &have_major, &have_minor), 2);
	return have_major > major || (have_major == major && have_minor >= minor);
}

Test(features, a_new_kernel_gives_every_facility)
{
	if (!kernel_at_least(6, 7))
		cr_skip_test("the kernel predates 6.7");
	unsigned since_6_9 = kernel_at_least(6, 9) ? AFE_URING_FTRUNCATE : 0u;
	cr_assert_eq(features_under(NULL),
		     AFE_URING_FUTEX | AFE_URING_DEFER_TASKRUN | AFE_URING_MULTISHOT_ACCEPT |
			     AFE_URING_CANCEL_ANY | AFE_URING_WAITALL | AFE_URING_SEND_ZC |
			     AFE_URING_RECV_MULTISHOT | since_6_9);
}

Test(features, the_mask_5_15_takes_them_all_away)
{
	cr_assert_eq(features_under("5.15"), 0u);
}

Test(features, the_mask_keeps_what_is_not_newer)
{
	if (!kernel_at_least(6, 7))
		cr_skip_test("the kernel predates 6.7");
	/* With what 5.18 brought (AFE_URING_WAITALL). */
	const unsigned since_5_19 =
		AFE_URING_MULTISHOT_ACCEPT | AFE_URING_CANCEL_ANY | AFE_URING_WAITALL;
	/* What 6.0 brought (AFE_URING_RECV_MULTISHOT), and 6.1
	 * (AFE_URING_SEND_ZC, DEFER_TASKRUN). */
	const unsigned since_6_0 = since_5_19 | AFE_URING_RECV_MULTISHOT;
	const unsigned since_6_1 = AFE_URING_DEFER_TASKRUN | since_6_0 | AFE_URING_SEND_ZC;
	if (kernel_at_least(6, 9))
		cr_assert_eq(features_under("6.9"),
			     AFE_URING_FUTEX | since_6_1 | AFE_URING_FTRUNCATE);
	cr_assert_eq(features_under("6.8"), AFE_URING_FUTEX | since_6_1);
	cr_assert_eq(features_under("6.7"), AFE_URING_FUTEX | since_6_1);
	cr_assert_eq(features_under("6.6"), since_6_1);
	cr_assert_eq(features_under("6.1"), since_6_1);
	cr_assert_eq(features_under("6.0"), AFE_URING_COOP_TASKRUN | since_6_0);
	cr_assert_eq(features_under("5.19"), AFE_URING_COOP_TASKRUN | since_5_19);
	cr_assert_eq(features_under("5.18"), AFE_URING_WAITALL);
	cr_assert_eq(features_under("5.17"), 0u);
}

Test(features, a_malformed_mask_is_ignored)
{
	unsigned all = features_under(NULL);
	cr_assert_eq(features_under("five"), all);
	cr_assert_eq(features_under("5"), all);
	cr_assert_eq(features_under("5.15x"), all);
}

Test(features, a_null_runtime_has_none)
{
	cr_assert_eq(afe_runtime_uring_features(NULL), 0u);
}
