/* SPDX-License-Identifier: MIT */
/*
 * Copies a file with DEPTH reads and writes in flight: DEPTH tasks each
 * take the next 64 KiB chunk, read it at its offset and write it at the
 * same offset, until the file is done.
 *
 *   file_copy SRC DST [DEPTH]     (default depth 8)
 */
#include <afe.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define CHUNK (64 * 1024)

struct copy {
	int in, out;
	int64_t size;
	_Atomic int64_t next; /* the next chunk's offset */
};

struct copier {
	struct afe_future base;
	struct copy *copy;
	int64_t offset;
	unsigned len, done;
	char *buf;
	struct afe_io io;
};

static int copier_poll(struct afe_future *f, struct afe_context *cx)
{
	struct copier *self = afe_container_of(f, struct copier, base);
	struct copy *c = self->copy;
	AFE_ASYNC_BEGIN(f, cx);
	self->buf = malloc(CHUNK);
	if (!self->buf)
		AFE_RETURN(-ENOMEM);
	while ((self->offset = atomic_fetch_add(&c->next, CHUNK)) < c->size) {
		self->len = (unsigned)(c->size - self->offset < CHUNK ? c->size - self->offset : CHUNK);
		for (self->done = 0; self->done < self->len;) { /* short reads happen */
			afe_io_read_init(&self->io, c->in, self->buf + self->done,
					 self->len - self->done, self->offset + self->done);
			AFE_AWAIT(&self->io.base);
			if (self->io.base.result <= 0)
				AFE_RETURN(self->io.base.result < 0 ? self->io.base.result : -EIO);
			self->done += (unsigned)self->io.base.result;
		}
		for (self->done = 0; self->done < self->len;) {
			afe_io_write_init(&self->io, c->out, self->buf + self->done,
					  self->len - self->done, self->offset + self->done);
			AFE_AWAIT(&self->io.base);
			if (self->io.base.result < 0)
				AFE_RETURN(self->io.base.result);
			self->done += (unsigned)self->io.base.result;
		}
	}
	AFE_RETURN(0);
	AFE_CLEANUP;
	free(self->buf);
	AFE_ASYNC_END;
}

struct app {
	struct afe_future base;
	struct copy copy;
	int depth, i;
	intptr_t failed;
	struct afe_join_handle *handles;
	struct afe_join join;
};

static int app_poll(struct afe_future *f, struct afe_context *cx)
{
	struct app *self = afe_container_of(f, struct app, base);
	AFE_ASYNC_BEGIN(f, cx);
	for (self->i = 0; self->i < self->depth; self->i++) {
		struct copier c = {.copy = &self->copy};
		afe_future_init(&c.base, copier_poll);
		int err = afe_spawn(NULL, &c, &self->handles[self->i]);
		if (err < 0)
			AFE_RETURN(err);
	}
	for (self->i = 0; self->i < self->depth; self->i++) {
		afe_join_init(&self->join, &self->handles[self->i]);
		AFE_AWAIT(&self->join.base);
		if (self->join.base.result < 0 && !self->failed)
			self->failed = self->join.base.result;
	}
	AFE_RETURN(self->failed);
	AFE_CLEANUP;
	free(self->handles);
	close(self->copy.in);
	close(self->copy.out);
	AFE_ASYNC_END;
}

static int app_init(struct app *app, int argc, char **argv)
{
	app->depth = argc > 3 ? atoi(argv[3]) : 8;
	if (argc < 3 || app->depth < 1 || app->depth > 4096) {
		fprintf(stderr, "usage: %s SRC DST [depth 1..4096]\n", argv[0]);
		return 2;
	}
	struct stat st;
	app->copy.in = open(argv[1], O_RDONLY | O_CLOEXEC);
	if (app->copy.in < 0 || fstat(app->copy.in, &st) < 0) {
		perror(argv[1]);
		return 1;
	}
	app->copy.out = open(argv[2], O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (app->copy.out < 0) {
		perror(argv[2]);
		return 1;
	}
	app->copy.size = st.st_size;
	app->handles = calloc((size_t)app->depth, sizeof(*app->handles));
	if (!app->handles)
		return 1;
	afe_future_init(&app->base, app_poll);
	return 0;
}

AFE_MAIN(struct app, app_init)
