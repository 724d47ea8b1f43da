#!/bin/sh
# echo_sweep.sh: the echo workload at 1, 4, 16, 64 and 512 connections
# (issue "Speed"), one JSON line per point and server: AFE, Tokio
# (bench/tokio), libuv (bench/baseline/echo_uv) and a bare liburing loop
# (bench/baseline/uring_echo), interleaved point by point so that each
# point's figures come from the same minutes. Each line is echo_client's,
# with the server's CPU time per message (server_cpu_us_per_msg).
#
#   sh bench/echo_sweep.sh                  # every point, every server
#   CONNS="1 64" ROUNDS=3 sh bench/echo_sweep.sh
#
# Environment: CONNS (the points), N (round trips per point, default
# 200000; 20000 at one connection, where a round trip is tens of µs),
# ROUNDS (default 1), SIZE (default 64), BUILD (a Release build tree,
# default build-rel: configured when missing, and brought up to date
# here), PORT (the first of six ports, default 7100: one per server,
# because a killed io_uring server's listener lingers some 10-30 ms while
# the kernel tears its ring down). A server whose program is missing is
# left out with a line on stderr (libuv needs libuv1-dev; Tokio needs
# sh bench/tokio/build.sh). BACKENDS="uring 5.15 epoll" adds AFE under
# the 5.15 mask ("impl":"afe-uring-5.15") and on its epoll backend
# ("afe-epoll"), for issue "Run where users run"; the default is uring
# alone. Run it on a quiet machine: see bench/README.md.
set -eu
cd "$(dirname "$0")/.."
conns_list=${CONNS:-"1 4 16 64 512"}
rounds=${ROUNDS:-1}
size=${SIZE:-64}
build=${BUILD:-build-rel}
port=${PORT:-7100}

. bench/common.sh
release_build "$build"
tokio=bench/tokio/target/release/tokio_bench
libuv=$build/bench/baseline/echo_uv
bare=$build/bench/baseline/uring_echo
for prog in "$tokio" "$libuv" "$bare"; do
	[ -x "$prog" ] || echo "echo_sweep: $prog missing, left out" >&2
done

# point IMPL THREADS PORT CONNS N COMMAND...: one server, one JSON line.
# COMMAND may start with env and NAME=VALUE words.
point() {
	impl=$1 threads=$2 p=$3 c=$4 n=$5
	shift 5
	serve_point "$impl" "$threads" "$p" "$build/bench/echo_client" \
		"--conns=$c --n=$n --size=$size --warmup=$((n / 10))" "$@"
}

r=0
while [ "$r" -lt "$rounds" ]; do
	for c in $conns_list; do
		n=${N:-200000}
		[ "$c" -eq 1 ] && [ -z "${N:-}" ] && n=20000
		for backend in ${BACKENDS:-uring}; do
			case $backend in
			uring) point afe 2 "$port" "$c" "$n" "$build/bench/afe_bench" echo ;;
			epoll)
				point afe-epoll 2 $((port + 4)) "$c" "$n" \
					env AFE_BACKEND=epoll "$build/bench/afe_bench" echo
				;;
			5.15)
				point afe-uring-5.15 2 $((port + 5)) "$c" "$n" \
					env AFE_URING_FEATURES=5.15 "$build/bench/afe_bench" echo
				;;
			*) echo "echo_sweep: unknown backend $backend" >&2 && exit 2 ;;
			esac
		done
		point tokio 2 $((port + 1)) "$c" "$n" "$tokio" echo
		point libuv 1 $((port + 2)) "$c" "$n" "$libuv"
		point uring-bare 1 $((port + 3)) "$c" "$n" "$bare"
	done
	r=$((r + 1))
done
