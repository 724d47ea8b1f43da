/* SPDX-License-Identifier: MIT */
/* AFE: an io_uring thread-pool executor with poll-based futures. */
#ifndef AFE_H
#define AFE_H

#include "afe/common.h"
#include "afe/future.h"
#include "afe/task.h"
#include "afe/runtime.h"
#include "afe/combinators.h"
#include "afe/group.h"
#include "afe/oneshot.h"
#include "afe/channel.h"
#include "afe/mutex.h"
#include "afe/semaphore.h"
#include "afe/notify.h"
#include "afe/rwlock.h"
#include "afe/barrier.h"
#include "afe/broadcast.h"
#include "afe/watch_chan.h"
#include "afe/io.h"
#include "afe/sleep.h"
#include "afe/interval.h"
#include "afe/process.h"
#include "afe/net.h"
#include "afe/recv_stream.h"
#include "afe/socket.h"
#include "afe/blocking.h"
#include "afe/fs.h"
#include "afe/timeout.h"
#include "afe/token.h"
#include "afe/signal.h"
#include "afe/ipc.h"
#include "afe/ipc_serve.h"
#include "afe/coro.h"

#endif /* AFE_H */
