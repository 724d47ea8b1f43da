#!/bin/sh
# udp_sweep.sh: the udp_echo workload at 1 and 64 peers (issue 22), one
# JSON line per point and server: AFE on each backend of $BACKENDS and
# Tokio (bench/tokio), interleaved point by point so that each point's
# figures come from the same minutes. Each line is udp_client's, run by
# run_echo.sh, with the server's CPU time per datagram
# (server_cpu_us_per_msg) and the datagrams lost ("lost").
#
#   sh bench/udp_sweep.sh                   # 1 and 64 peers, uring and epoll
#   PEERS="1 4 64" ROUNDS=3 sh bench/udp_sweep.sh
#
# Environment: PEERS (the points, default "1 64"), N (round trips per
# point, default 200000; 20000 at one peer, where a round trip is tens of
# µs), ROUNDS (default 1), SIZE (default 64), BUILD (a Release build tree,
# default build-rel: configured when missing, and brought up to date here),
# PORT (the first of five ports, default 7200: one per server, because a
# killed io_uring server's socket lingers some 10-30 ms while the kernel
# tears its ring down), BACKENDS (AFE's backends, default "uring epoll";
# "5.15" adds the io_uring backend under the 5.15 mask; "stream" io_uring
# with one loop receiving through a datagram stream of 64 buffers, a
# multishot recvmsg: what a user writes with a stream, one per socket). AFE's lines are "afe-uring", "afe-epoll",
# "afe-uring-5.15", "afe-uring-stream"; Tokio's "tokio", left out
# with a line on stderr when its program is missing (sh bench/tokio/build.sh,
# which also rebuilds one from before udp_echo). Run it on a quiet machine:
# see bench/README.md.
set -eu
cd "$(dirname "$0")/.."
peers_list=${PEERS:-"1 64"}
rounds=${ROUNDS:-1}
size=${SIZE:-64}
build=${BUILD:-build-rel}
port=${PORT:-7200}

. bench/common.sh
release_build "$build"
tokio=bench/tokio/target/release/tokio_bench
[ -x "$tokio" ] || echo "udp_sweep: $tokio missing, left out" >&2

# point IMPL PORT PEERS N COMMAND...: one server, one JSON line.
# COMMAND may start with env and NAME=VALUE words.
point() {
	impl=$1 p=$2 peers=$3 n=$4
	shift 4
	serve_point "$impl" 2 "$p" "$build/bench/udp_client" \
		"--peers=$peers --n=$n --size=$size --warmup=$((n / 10))" "$@"
}

r=0
while [ "$r" -lt "$rounds" ]; do
	for peers in $peers_list; do
		n=${N:-200000}
		[ "$peers" -eq 1 ] && [ -z "${N:-}" ] && n=20000
		for backend in ${BACKENDS:-uring epoll}; do
			case $backend in
			uring) point afe-uring "$port" "$peers" "$n" "$build/bench/afe_bench" udp_echo ;;
			epoll)
				point afe-epoll $((port + 2)) "$peers" "$n" \
					env AFE_BACKEND=epoll "$build/bench/afe_bench" udp_echo
				;;
			5.15)
				point afe-uring-5.15 $((port + 3)) "$peers" "$n" \
					env AFE_URING_FEATURES=5.15 "$build/bench/afe_bench" udp_echo
				;;
			stream)
				point afe-uring-stream $((port + 4)) "$peers" "$n" \
					"$build/bench/afe_bench" udp_echo --stream=64 --tasks=1
				;;
			*) echo "udp_sweep: unknown backend $backend" >&2 && exit 2 ;;
			esac
		done
		point tokio $((port + 1)) "$peers" "$n" "$tokio" udp_echo
	done
	r=$((r + 1))
done
