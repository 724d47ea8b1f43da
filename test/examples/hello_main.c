/* SPDX-License-Identifier: MIT */
/*
 * AFE_MAIN in a few lines: the root future spawns N tasks that each yield a
 * few times and return their square, joins them all, and exits with 0 when
 * the sum is right.
 *
 *   hello_main [N]      (default 10)
 */
#include <afe.h>
#include <stdio.h>
#include <stdlib.h>

struct square {
	struct afe_future base;
	int n, round;
};

static int square_poll(struct afe_future *f, struct afe_context *cx)
{
	struct square *self = afe_container_of(f, struct square, base);
	AFE_ASYNC_BEGIN(f, cx);
	for (self->round = 0; self->round < 3; self->round++)
		AFE_YIELD();
	AFE_RETURN((intptr_t)self->n * self->n);
	AFE_ASYNC_END;
}

struct app {
	struct afe_future base;
	int count, i;
	long sum;
	struct afe_join_handle *handles;
	struct afe_join join;
};

static int app_poll(struct afe_future *f, struct afe_context *cx)
{
	struct app *self = afe_container_of(f, struct app, base);
	AFE_ASYNC_BEGIN(f, cx);
	for (self->i = 0; self->i < self->count; self->i++) {
		struct square sq = {.n = self->i};
		afe_future_init(&sq.base, square_poll);
		int err = afe_spawn(NULL, &sq, &self->handles[self->i]);
		if (err < 0)
			AFE_RETURN(err);
	}
	for (self->i = 0; self->i < self->count; self->i++) {
		afe_join_init(&self->join, &self->handles[self->i]);
		AFE_AWAIT(&self->join.base);
		self->sum += self->join.base.result;
	}
	long n = self->count;
	printf("joined %d tasks, sum %ld\n", self->count, self->sum);
	AFE_RETURN(self->sum == (n - 1) * n * (2 * n - 1) / 6 ? 0 : 1);
	AFE_CLEANUP;
	free(self->handles);
	AFE_ASYNC_END;
}

static int app_init(struct app *app, int argc, char **argv)
{
	app->count = argc > 1 ? atoi(argv[1]) : 10;
	if (app->count < 0 || app->count > 1000000) {
		fprintf(stderr, "usage: %s [tasks: 0..1000000]\n", argv[0]);
		return 2;
	}
	app->handles = calloc((size_t)app->count + 1, sizeof(*app->handles));
	if (!app->handles)
		return 1;
	afe_future_init(&app->base, app_poll);
	return 0;
}

AFE_MAIN(struct app, app_init)
