/* SPDX-License-Identifier: MIT */
/*
 * AFE_MAIN in a few lines: the root future spawns N tasks that each yield a
 * few times and return their square, joins them all, and exits with 0 when
 * the sum is right. Ctrl-C stops it early: it stops spawning and joining,
 * says how far it got, and exits with 130.
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
	AFE_ASYNC_BEGIN_SELF(struct square, self, f, cx);
	for (self->round = 0; self->round < 3; self->round++)
		AFE_YIELD();
	AFE_RETURN((intptr_t)self->n * self->n);
	AFE_ASYNC_END;
}

struct app {
	struct afe_future base;
	int count, spawned, i;
	long sum;
	struct afe_join_handle *handles;
	struct afe_token *shutdown;
	struct afe_join join;
	struct afe_token_until guarded;
};

static int app_poll(struct afe_future *f, struct afe_context *cx)
{
	AFE_ASYNC_BEGIN_SELF(struct app, self, f, cx);
	printf("hello_main: started\n");
	fflush(stdout);
	/* Ctrl-C fires the shutdown token: a cheap check between spawns... */
	for (self->i = 0; self->i < self->count; self->i++) {
		if (afe_token_is_cancelled(self->shutdown))
			break;
		struct square sq = {.n = self->i};
		afe_future_init(&sq.base, square_poll);
		int err = afe_spawn(NULL, &sq, &self->handles[self->i]);
		if (err < 0)
			AFE_RETURN(err);
	}
	self->spawned = self->i;
	/* ...and each join runs until it fires. */
	for (self->i = 0; self->i < self->spawned; self->i++) {
		afe_join_init(&self->join, &self->handles[self->i]);
		afe_token_until_init(&self->guarded, self->shutdown, &self->join.base);
		AFE_AWAIT(&self->guarded.base);
		if (self->guarded.base.result < 0) /* -ECANCELED: a square is >= 0 */
			break;
		self->sum += self->guarded.base.result;
	}
	if (self->i < self->count) {
		/* The tasks not joined are detached: they finish in the grace
		 * period AFE_MAIN gives them. */
		printf("hello_main: interrupted after joining %d of %d tasks\n", self->i,
		       self->count);
		AFE_RETURN(130);
	}
	long n = self->count;
	printf("hello_main: joined %d tasks, sum %ld\n", self->count, self->sum);
	AFE_RETURN(self->sum == (n - 1) * n * (2 * n - 1) / 6 ? 0 : 1);
	AFE_CLEANUP;
	for (int j = 0; j < self->count; j++)
		afe_join_handle_drop(&self->handles[j]); /* empty ones are skipped */
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
	app->shutdown = afe_shutdown_token(); /* Ctrl-C now fires it */
	afe_future_init(&app->base, app_poll);
	return 0;
}

AFE_MAIN(struct app, app_init)
