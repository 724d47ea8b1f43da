/* SPDX-License-Identifier: MIT */
/* The CPU time of another process, from /proc/PID/stat: how the load
 * clients (echo_client.c, udp_client.c) charge a server for its work. */
#ifndef AFE_BENCH_PROC_CPU_H
#define AFE_BENCH_PROC_CPU_H

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* utime + stime of process pid (all its threads), in clock ticks
 * (sysconf(_SC_CLK_TCK) a second), into *ticks. Returns 0, the -errno of
 * the open (-ENOENT: no such process), or -EPROTO when the file does not
 * parse. */
static inline int proc_cpu_ticks(long pid, unsigned long long *ticks)
{
	char path[64], buf[2048];
	snprintf(path, sizeof(path), "/proc/%ld/stat", pid);
	FILE *f = fopen(path, "r");
	if (!f)
		return -errno;
	size_t len = fread(buf, 1, sizeof(buf) - 1, f);
	fclose(f);
	buf[len] = '\0';
	/* The command name (field 2) may hold spaces: count fields from the
	 * last ')'. Field 3 (state) follows it; utime and stime are 14, 15. */
	char *p = strrchr(buf, ')');
	if (!p)
		return -EPROTO;
	p++;
	unsigned long long utime = 0, stime = 0;
	for (int field = 3; field <= 15; field++) {
		while (*p == ' ')
			p++;
		if (!*p)
			return -EPROTO;
		if (field == 14)
			utime = strtoull(p, NULL, 10);
		else if (field == 15)
			stime = strtoull(p, NULL, 10);
		while (*p && *p != ' ')
			p++;
	}
	*ticks = utime + stime;
	return 0;
}

#endif /* AFE_BENCH_PROC_CPU_H */
