/* SPDX-License-Identifier: MIT */
/*
 * without_pidfds PROGRAM [ARG...]: runs PROGRAM with pidfd_open and
 * pidfd_send_signal refused (ENOSYS) by a seccomp filter, in it and in
 * every process it starts, as valgrind 3.19 or a kernel before 5.3 do: the
 * *_nopidfd tests run the process and IPC tests that way. Exits 77
 * (skipped) where a filter cannot be installed.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <linux/audit.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <unistd.h>

#if defined(__x86_64__)
#define NATIVE_ARCH AUDIT_ARCH_X86_64
#elif defined(__aarch64__)
#define NATIVE_ARCH AUDIT_ARCH_AARCH64
#endif

static int refuse_pidfds(void)
{
#ifdef NATIVE_ARCH
	struct sock_filter code[] = {
		BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, arch)),
		/* Another architecture's syscall: allowed. */
		BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, NATIVE_ARCH, 0, 4),
		BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr)),
		BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, SYS_pidfd_open, 1, 0),
		BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, SYS_pidfd_send_signal, 0, 1),
		BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | ENOSYS),
		BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
	};
	struct sock_fprog prog = {.len = sizeof(code) / sizeof(code[0]), .filter = code};
	if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0)
		return -errno;
	if (syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, 0, &prog) != 0)
		return -errno;
	return 0;
#else
	return -ENOSYS;
#endif
}

int main(int argc, char **argv)
{
	if (argc < 2) {
		fprintf(stderr, "usage: without_pidfds PROGRAM [ARG...]\n");
		return 2;
	}
	int err = refuse_pidfds();
	if (err < 0) {
		fprintf(stderr, "without_pidfds: no seccomp filter: %s\n", strerror(-err));
		return 77;
	}
	execvp(argv[1], argv + 1);
	fprintf(stderr, "without_pidfds: %s: %s\n", argv[1], strerror(errno));
	return 127;
}
