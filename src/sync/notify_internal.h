/* SPDX-License-Identifier: MIT */
/* What the library asks of a notify beyond its public calls. */
#ifndef AFE_SYNC_NOTIFY_INTERNAL_H
#define AFE_SYNC_NOTIFY_INTERNAL_H

#include <stdbool.h>

#include "afe/notify.h"

/* Whether a future waits on n now (linked, not yet notified). Takes n's
 * lock, so a waiter that linked before the caller's last seq_cst fence is
 * seen. */
bool afe__notify_has_waiters(struct afe_notify *n);

#endif /* AFE_SYNC_NOTIFY_INTERNAL_H */
