/* SPDX-License-Identifier: MIT */
/*
 * The process's shutdown token and what SIGINT and SIGTERM do to it (the
 * policy is documented at afe_shutdown_init in afe/signal.h).
 */
#define _GNU_SOURCE
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "../src/sync/token_internal.h"
#include "afe/signal.h"
#include "shutdown.h"
#include "signals_internal.h"

static struct afe_token shutdown_token = AFE_TOKEN_STATIC_INIT(shutdown_token);

/* Set once each; seq_cst, read on the rare path of a signal. installed
 * is set after the routing, wanted by any afe_shutdown_token call. */
static atomic_bool installed, wanted;

struct afe_token *afe_shutdown_token(void)
{
	atomic_store(&wanted, true);
	return &shutdown_token;
}

int afe_shutdown_init(void)
{
	sigset_t both;
	sigemptyset(&both);
	sigaddset(&both, SIGINT);
	sigaddset(&both, SIGTERM);
	sigset_t before; /* to undo the blocking if the routing fails */
	pthread_sigmask(SIG_BLOCK, NULL, &before);
	int err = afe_signal_block(SIGINT);
	if (!err)
		err = afe_signal_block(SIGTERM);
	if (err)
		return err;
	/* Installed before routing: signals already pending are drained by
	 * the routing and must find the policy in place. */
	atomic_store(&installed, true);
	err = afe__signals_route(&both);
	if (err) {
		/* Nobody will read them: give them back their default action. */
		atomic_store(&installed, false);
		sigset_t unblock;
		sigemptyset(&unblock);
		if (!sigismember(&before, SIGINT))
			sigaddset(&unblock, SIGINT);
		if (!sigismember(&before, SIGTERM))
			sigaddset(&unblock, SIGTERM);
		pthread_sigmask(SIG_UNBLOCK, &unblock, NULL);
	}
	return err;
}

bool afe__shutdown_reads(int signo)
{
	return (signo == SIGINT || signo == SIGTERM) && atomic_load(&installed);
}

bool afe__shutdown_take(int signo)
{
	if (!afe__shutdown_reads(signo) || !atomic_load(&wanted))
		return false;
	if (afe_token_cancel(&shutdown_token) == 0)
		return true;
	/* Already shutting down: leave now. write(2) and _exit(2) only, so a
	 * thread stuck holding stdio's lock cannot hold us. */
	char msg[96];
	int len = snprintf(msg, sizeof(msg), "afe: %s while shutting down, exiting at once\n",
			   signo == SIGINT ? "SIGINT" : "SIGTERM");
	if (len > 0 && write(STDERR_FILENO, msg, (size_t)len) < 0) {
		/* nothing more to say */
	}
	_exit(128 + signo);
}
