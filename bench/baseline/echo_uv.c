/* SPDX-License-Identifier: MIT */
/*
 * echo_uv: the server side of the `echo` workload (bench/README.md) on
 * libuv, for comparison with `afe_bench echo`. One loop on one thread;
 * every accepted connection gets TCP_NODELAY and has what it sends written
 * straight back. Load and figures come from bench/echo_client.
 *
 *   echo_uv [--port=7000] [--host=127.0.0.1] [--seconds=0]
 *
 * --seconds=0 serves until SIGINT or SIGTERM. Each read lands in the
 * connection's own buffer and is echoed with uv_try_write; only what the
 * socket does not take at once is copied out and queued with uv_write (and
 * while a write is queued, uv_try_write declines, so order is kept).
 */
#define _GNU_SOURCE /* uv.h wants the POSIX thread types under -std=c11 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

#include "../flags.h"

#define READ_BUFFER 65536

struct conn {
	uv_tcp_t tcp; /* first: a handle pointer is a conn pointer */
	char buf[READ_BUFFER];
};

struct queued_write {
	uv_write_t req;
	char data[];
};

static uv_loop_t *loop;
static uv_tcp_t listener;
static uv_signal_t sigint_watch, sigterm_watch;
static uv_timer_t deadline;
static unsigned long accepted;
static int stopping;

/* Every handle's data is what to free when it is closed (NULL for the
 * static ones). */
static void on_closed(uv_handle_t *handle)
{
	free(handle->data);
}

static void close_once(uv_handle_t *handle)
{
	if (!uv_is_closing(handle))
		uv_close(handle, on_closed);
}

static void close_each(uv_handle_t *handle, void *arg)
{
	(void)arg;
	close_once(handle);
}

/* Closes everything: uv_run returns once the closes have run. */
static void stop_serving(void)
{
	if (stopping)
		return;
	stopping = 1;
	uv_walk(loop, close_each, NULL);
}

static void on_signal(uv_signal_t *watch, int signum)
{
	(void)watch, (void)signum;
	stop_serving();
}

static void on_deadline(uv_timer_t *timer)
{
	(void)timer;
	stop_serving();
}

static void on_alloc(uv_handle_t *handle, size_t suggested, uv_buf_t *buf)
{
	(void)suggested;
	struct conn *c = (struct conn *)handle;
	*buf = uv_buf_init(c->buf, sizeof(c->buf));
}

static void on_written(uv_write_t *req, int status)
{
	if (status < 0 && status != UV_ECANCELED)
		close_once((uv_handle_t *)req->handle);
	free(req); /* req is the start of its struct queued_write */
}

static void echo(struct conn *c, const char *data, size_t len)
{
	uv_buf_t b = uv_buf_init((char *)data, (unsigned)len);
	int done = uv_try_write((uv_stream_t *)&c->tcp, &b, 1);
	if (done == (int)len)
		return;
	if (done < 0 && done != UV_EAGAIN) {
		close_once((uv_handle_t *)&c->tcp);
		return;
	}
	size_t at = done > 0 ? (size_t)done : 0, rest = len - at;
	struct queued_write *w = malloc(sizeof(*w) + rest);
	if (!w) {
		fprintf(stderr, "echo_uv: out of memory; dropping a connection\n");
		close_once((uv_handle_t *)&c->tcp);
		return;
	}
	memcpy(w->data, data + at, rest);
	b = uv_buf_init(w->data, (unsigned)rest);
	if (uv_write(&w->req, (uv_stream_t *)&c->tcp, &b, 1, on_written) < 0) {
		free(w);
		close_once((uv_handle_t *)&c->tcp);
	}
}

static void on_read(uv_stream_t *stream, ssize_t nread, const uv_buf_t *buf)
{
	if (nread > 0)
		echo((struct conn *)stream, buf->base, (size_t)nread);
	else if (nread < 0) /* UV_EOF or an error */
		close_once((uv_handle_t *)stream);
}

static void on_connection(uv_stream_t *server, int status)
{
	if (status < 0) {
		fprintf(stderr, "echo_uv: accept: %s\n", uv_strerror(status));
		return;
	}
	struct conn *c = malloc(sizeof(*c));
	if (!c) {
		fprintf(stderr, "echo_uv: out of memory\n");
		return;
	}
	uv_tcp_init(loop, &c->tcp);
	c->tcp.data = c;
	if (uv_accept(server, (uv_stream_t *)&c->tcp) < 0) {
		uv_close((uv_handle_t *)&c->tcp, on_closed);
		return;
	}
	accepted++;
	if (uv_tcp_nodelay(&c->tcp, 1) < 0 ||
	    uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read) < 0)
		uv_close((uv_handle_t *)&c->tcp, on_closed);
}

static void check(int err, const char *what)
{
	if (err < 0) {
		fprintf(stderr, "echo_uv: %s: %s\n", what, uv_strerror(err));
		exit(1);
	}
}

int main(int argc, char **argv)
{
	long port = 7000, seconds = 0;
	const char *host = "127.0.0.1";
	for (int i = 1; i < argc; i++) {
		const char *v;
		if ((v = flag_value(argv[i], "port")))
			port = flag_number("echo_uv", "port", v, 65535);
		else if ((v = flag_value(argv[i], "seconds")))
			seconds = flag_number("echo_uv", "seconds", v, 1000000000L);
		else if ((v = flag_value(argv[i], "host")))
			host = v;
		else {
			fprintf(stderr, "echo_uv: unknown flag '%s' (flags: --port=N --host=IPv4 "
					"--seconds=N)\n",
				argv[i]);
			return 2;
		}
	}

	loop = uv_default_loop();
	struct sockaddr_in addr;
	check(uv_ip4_addr(host, (int)port, &addr), "address");
	check(uv_tcp_init(loop, &listener), "uv_tcp_init");
	check(uv_tcp_bind(&listener, (const struct sockaddr *)&addr, 0), "bind");
	check(uv_listen((uv_stream_t *)&listener, 4096, on_connection), "listen");

	check(uv_signal_init(loop, &sigint_watch), "uv_signal_init");
	check(uv_signal_start(&sigint_watch, on_signal, SIGINT), "uv_signal_start");
	check(uv_signal_init(loop, &sigterm_watch), "uv_signal_init");
	check(uv_signal_start(&sigterm_watch, on_signal, SIGTERM), "uv_signal_start");
	if (seconds > 0) {
		check(uv_timer_init(loop, &deadline), "uv_timer_init");
		check(uv_timer_start(&deadline, on_deadline, (uint64_t)seconds * 1000, 0),
		      "uv_timer_start");
	}
	fprintf(stderr, "echo_uv: libuv %s serving %s:%ld\n", uv_version_string(), host, port);

	uv_run(loop, UV_RUN_DEFAULT);
	int err = uv_loop_close(loop);
	fprintf(stderr, "echo_uv: stopped after %lu connections\n", accepted);
	return err < 0 ? 1 : 0;
}
