#!/bin/sh
# backend_table.sh: issue "Run where users run"'s table. Each workload on
# AFE's io_uring backend, on io_uring under the 5.15 mask
# (AFE_URING_FEATURES=5.15) and on the epoll backend, beside Tokio (itself
# an epoll runtime) and, for timers, libuv; interleaved workload by
# workload, round by round, one JSON line each (AFE's impl renamed
# afe-uring, afe-uring-5.15, afe-epoll). The echo server's rows come from
# BACKENDS="uring 5.15 epoll" sh bench/echo_sweep.sh.
#
#   sh bench/backend_table.sh
#   WORKLOADS="timers file_read" ROUNDS=3 sh bench/backend_table.sh
#
# Environment: WORKLOADS (default spawn_join yield ping_pong channel_mpmc
# timers file_read, each at bench/README.md's defaults), ROUNDS (default
# 1), BUILD (a Release build tree, default build-rel: configured when
# missing, and brought up to date here). Tokio needs sh bench/tokio/build.sh, libuv's timers
# libuv1-dev; a missing one is left out with a line on stderr. Run it on a
# quiet machine: see bench/README.md.
set -eu
cd "$(dirname "$0")/.."
workloads=${WORKLOADS:-"spawn_join yield ping_pong channel_mpmc timers file_read"}
rounds=${ROUNDS:-1}
build=${BUILD:-build-rel}

. bench/common.sh
release_build "$build"
afe=$build/bench/afe_bench
tokio=bench/tokio/target/release/tokio_bench
libuv_timers=$build/bench/baseline/timers_uv
for prog in "$tokio" "$libuv_timers"; do
	[ -x "$prog" ] || echo "backend_table: $prog missing, left out" >&2
done

# afe_line IMPL [NAME=VALUE...]: one AFE line of $workload, in that
# environment, its impl renamed IMPL.
afe_line() {
	impl=$1
	shift
	env "$@" "$afe" "$workload" | sed "s/\"impl\":\"afe\"/\"impl\":\"$impl\"/"
}

r=0
while [ "$r" -lt "$rounds" ]; do
	for workload in $workloads; do
		afe_line afe-uring AFE_BACKEND=io_uring
		afe_line afe-uring-5.15 AFE_BACKEND=io_uring AFE_URING_FEATURES=5.15
		afe_line afe-epoll AFE_BACKEND=epoll
		[ ! -x "$tokio" ] || "$tokio" "$workload"
		[ "$workload" != timers ] || [ ! -x "$libuv_timers" ] || "$libuv_timers"
	done
	r=$((r + 1))
done
