#!/bin/sh
# coro_targets.sh: issue "Stackful coroutines"'s benchmarks beside what
# each is measured against, interleaved round by round, one JSON line each:
# - coro_yield beside the stackless yield;
# - coro_spawn_join on private and on shared stacks beside Tokio's
#   spawn_join (and AFE's);
# - coro_sleepers (100,000 on shared stacks) beside Go's timers (100,000
#   sleeping goroutines);
# - the coroutine echo server (test/examples/coro_echo) beside the
#   stackless one (test/examples/echo_server), at 1 and 64 connections:
#   echo_client's lines, with the server's CPU time per message.
#
#   sh bench/coro_targets.sh
#   ROUNDS=5 sh bench/coro_targets.sh
#
# Environment: ROUNDS (default 3), BUILD (a Release build tree, default
# build-rel: configured when missing, and brought up to date here), PORT
# (the first of
# 4 x ROUNDS ports, default 7300: one per server run, as a killed io_uring
# server's listener lingers a little). Tokio needs sh bench/tokio/build.sh,
# Go sh bench/go/build.sh; a missing one is left out with a line on
# stderr. Run it on a quiet machine: see bench/README.md.
set -eu
cd "$(dirname "$0")/.."
rounds=${ROUNDS:-3}
build=${BUILD:-build-rel}
port=${PORT:-7300}

. bench/common.sh
release_build "$build"
afe=$build/bench/afe_bench
tokio=bench/tokio/target/release/tokio_bench
go=bench/go/go_bench
for prog in "$tokio" "$go"; do
	[ -x "$prog" ] || echo "coro_targets: $prog missing, left out" >&2
done

# twin PROGRAM WORKLOAD [FLAGS...]: one line, if PROGRAM is there.
twin() {
	[ -x "$1" ] || return 0
	"$@"
}

# echo_point IMPL CONNS N PORT: one run of test/examples/IMPL, one line.
echo_point() {
	ECHO_CLIENT=$build/bench/echo_client ECHO_FLAGS="--conns=$2 --n=$3 --warmup=$(($3 / 10))" \
		sh bench/run_echo.sh "$4" "$1" "$build/test/examples/$1" "$4" | grep '^{'
}

r=0
while [ "$r" -lt "$rounds" ]; do
	"$afe" yield
	"$afe" coro_yield
	"$afe" coro_spawn_join
	"$afe" coro_spawn_join --shared=1
	twin "$tokio" spawn_join
	"$afe" spawn_join
	"$afe" coro_sleepers --n=100000 --shared=1
	twin "$go" timers --n=100000
	p=$((port + 4 * r))
	echo_point echo_server 1 100000 "$p"
	echo_point coro_echo 1 100000 $((p + 1))
	echo_point echo_server 64 400000 $((p + 2))
	echo_point coro_echo 64 400000 $((p + 3))
	r=$((r + 1))
done
