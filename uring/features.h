/* SPDX-License-Identifier: MIT */
/*
 * Which io_uring facilities the runtime uses, decided once when its ring
 * starts: the newest the kernel has, less those newer than the version in
 * $AFE_URING_FEATURES (so a new kernel can play an old one). The public
 * bits are AFE_URING_* in afe/runtime.h; the README has the table of
 * facilities, kernels and fallbacks.
 */
#ifndef AFE_URING_FEATURES_H
#define AFE_URING_FEATURES_H

/* A Linux version, comparable: AFE_LINUX(5, 15) < AFE_LINUX(6, 1). */
#define AFE_LINUX(major, minor) ((unsigned)(major) * 1000u + (unsigned)(minor))

/* The running kernel's version (uname), or 0 when it cannot be read. */
unsigned afe__kernel_version(void);

/* The version in $AFE_URING_FEATURES ("5.15"), or ~0u when it is unset or
 * malformed (then said on stderr). */
unsigned afe__features_cap(void);

#endif /* AFE_URING_FEATURES_H */
