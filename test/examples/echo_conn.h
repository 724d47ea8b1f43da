/* SPDX-License-Identifier: MIT */
/* An echo connection: what it receives, it sends back, until the peer
 * closes. Used by the echo_server example and afe_bench's echo workload. */
#ifndef AFE_EXAMPLE_ECHO_CONN_H
#define AFE_EXAMPLE_ECHO_CONN_H

#include <afe.h>

struct echo_conn {
	struct afe_future base;
	int fd, in; /* bufs[in] receives while the other one is sent */
	unsigned len;
	struct afe_io recv, send;
	char bufs[2][4096];
};

/* conn_init for afe_tcp_server: builds an echo_conn for fd in conn. */
struct afe_future *echo_conn_init(void *conn, int fd, void *arg);

#endif /* AFE_EXAMPLE_ECHO_CONN_H */
