/* SPDX-License-Identifier: MIT */
/* afe_token_until (afe/token.h): a select between the inner future and a
 * wait on the token. In the core, beside afe_timeout, because it is built
 * on select; the token itself is a sync primitive. */
#include "afe/token.h"

static int token_until_poll(struct afe_future *f, struct afe_context *cx)
{
	struct afe_token_until *self = afe_container_of(f, struct afe_token_until, base);
	AFE_ASYNC_BEGIN(f, cx);
	if (!self->inner || !self->token)
		AFE_RETURN(-EINVAL);
	if (afe_token_is_cancelled(self->token))
		AFE_RETURN(-ECANCELED); /* inner never started */
	/* Pointers into ourselves only now that we stay put. */
	self->racers[0] = self->inner;
	self->racers[1] = &self->wait.base;
	afe_select_init(&self->race, self->racers, 2);
	AFE_AWAIT(&self->race.base);
	if (self->race.winner == 0)
		AFE_RETURN(self->inner->result);
	/* The token fired, or its wait failed: inner was cancelled. */
	AFE_RETURN(self->wait.base.result == 0 ? -ECANCELED : self->wait.base.result);
	AFE_ASYNC_END;
}

void afe_token_until_init(struct afe_token_until *u, struct afe_token *t, struct afe_future *inner)
{
	afe_future_init(&u->base, token_until_poll);
	u->inner = inner;
	u->token = t;
	afe_token_wait_init(&u->wait, t);
}
