#!/bin/sh
# ipc_contended.sh: the ipc_call workload (both lines) with HOGS busy loops
# (nice 0) running beside it, as on a shared server (issue "Speed"), for
# AFE (afe_bench ipc_call), a Unix socket and the bare futex ring
# (bench/baseline/ipc_baseline), interleaved round by round. Each line is
# the program's own, with a "hogs" field added.
#
#   sh bench/ipc_contended.sh               # 2 hogs, 1 round
#   HOGS=0 ROUNDS=3 sh bench/ipc_contended.sh
#
# Environment: HOGS (default 2), ROUNDS (default 1), N (calls per line,
# default 100000), BUILD (a Release build tree, default build-rel:
# configured when missing, and brought up to date here).
set -eu
cd "$(dirname "$0")/.."
hogs=${HOGS:-2}
rounds=${ROUNDS:-1}
n=${N:-100000}
build=${BUILD:-build-rel}

. bench/common.sh
release_build "$build"

pids=""
stop_hogs() {
	[ -n "$pids" ] && kill $pids 2>/dev/null
	pids=""
}
trap stop_hogs EXIT INT TERM
i=0
while [ "$i" -lt "$hogs" ]; do
	sh -c 'while :; do :; done' &
	pids="$pids $!"
	i=$((i + 1))
done

tag() { sed "s/^{/{\"hogs\":$hogs,/"; }
r=0
while [ "$r" -lt "$rounds" ]; do
	"$build/bench/afe_bench" ipc_call --n="$n" | tag
	"$build/bench/baseline/ipc_baseline" --impl=unix_socket --n="$n" | tag
	"$build/bench/baseline/ipc_baseline" --impl=futex_ring --n="$n" | tag
	r=$((r + 1))
done
