#!/bin/sh
# udp_smoke.sh AFE_BENCH UDP_CLIENT: the udp_echo workload end to end, on
# whatever backend AFE_BACKEND picks. The server takes a free port; the
# client makes a few hundred round trips at 1 and at 64 peers, each line
# checked (no datagram lost on loopback); then, with the server stopped
# (SIGSTOP), the client must count a loss past its timeout, say so,
# re-send, and finish once the server runs again. Then the first loads
# again on a server receiving through a datagram stream (--stream). Last,
# a server run with --seconds=1, with and without a stream, must stop by
# itself with status 0. Any sanitizer report on a
# server's stderr fails the test. Prints
# "udp_echo smoke: ok" at the end; exits 1 with the reason otherwise.
set -eu
bench=$1 client=$2
dir=$(mktemp -d)
server=
cleanup() {
	if [ -n "$server" ]; then
		kill -CONT "$server" 2>/dev/null || true
		kill "$server" 2>/dev/null || true
		wait "$server" 2>/dev/null || true
	fi
	rm -rf "$dir"
}
trap cleanup EXIT
fail() {
	echo "udp_echo smoke: $*" >&2
	exit 1
}

# wait_for WHAT COMMAND...: runs the command every 50 ms until it succeeds,
# for 10 s at most.
wait_for() {
	what=$1
	shift
	tries=0
	until "$@"; do
		tries=$((tries + 1))
		[ "$tries" -lt 200 ] || fail "no $what after 10 s"
		sleep 0.05
	done
}

"$bench" udp_echo --port=0 2>"$dir/server.err" &
server=$!
bound() {
	kill -0 "$server" 2>/dev/null || fail "the server ended: $(cat "$dir/server.err")"
	port=$(sed -n 's/.*serving on 127\.0\.0\.1:\([0-9]*\) .*/\1/p' "$dir/server.err")
	[ -n "$port" ]
}
wait_for "server" bound

# check PEERS N [FLAGS...]: one client run, its line checked.
check() {
	peers=$1 n=$2
	shift 2
	line=$("$client" --port="$port" --impl=afe --server_pid="$server" --peers="$peers" \
		--n="$n" "$@") || fail "the client failed at $peers peers"
	echo "$line"
	case $line in
	*'"workload":"udp_echo"'*"\"peers\":$peers,\"n\":$n,"*'"server_cpu_us_per_msg":'*) ;;
	*) fail "unexpected line: $line" ;;
	esac
}
line_lost() {
	echo "$line" | sed -n 's/.*"lost":\([0-9]*\).*/\1/p'
}

check 1 200 --warmup=20
[ "$(line_lost)" = 0 ] || fail "datagrams lost on loopback at 1 peer"
check 64 300 --warmup=64
[ "$(line_lost)" = 0 ] || fail "datagrams lost on loopback at 64 peers"

# A stall: the stopped server holds the client's datagrams past its
# 100 ms timeout, which the client says on stderr at its first loss.
kill -STOP "$server"
stopped() { # every thread, for kill returns before they all are
	! grep -h '^State:' /proc/"$server"/task/*/status | grep -qv 'stopped'
}
wait_for "stop of the server" stopped
"$client" --port="$port" --impl=afe --peers=2 --n=20 --timeout_ms=100 \
	>"$dir/stall.out" 2>"$dir/stall.err" &
stalled=$!
gave_up() {
	grep -q 'counted lost' "$dir/stall.err"
}
wait_for "loss reported by the client" gave_up
kill -CONT "$server"
wait "$stalled" || fail "the client failed across the stall: $(cat "$dir/stall.err")"
line=$(cat "$dir/stall.out")
echo "$line"
[ "$(line_lost)" -gt 0 ] || fail "a datagram held past its timeout was not counted lost"

kill "$server"
wait "$server" 2>/dev/null || true
server=
# A sanitizer build's server reports on stderr and runs on (TSan).
! grep -E 'Sanitizer|runtime error' "$dir/server.err" || fail "the server's stderr above"

# The same loads on a server whose loop receives through a datagram
# stream (--stream).
"$bench" udp_echo --port=0 --stream=64 --tasks=1 2>"$dir/server.err" &
server=$!
wait_for "stream server" bound
check 1 200 --warmup=20
[ "$(line_lost)" = 0 ] || fail "datagrams lost on loopback at 1 peer (stream)"
check 64 300 --warmup=64
[ "$(line_lost)" = 0 ] || fail "datagrams lost on loopback at 64 peers (stream)"
kill "$server"
wait "$server" 2>/dev/null || true
server=
! grep -E 'Sanitizer|runtime error' "$dir/server.err" || fail "the stream server's stderr above"

# --seconds ends the run from inside: its loops are cancelled mid-receive
# (a stream's stops its receive) and the runtime destroyed, and the server
# exits 0 (and leak-free).
for flags in "" "--stream=64"; do
	# shellcheck disable=SC2086 # flags: zero or one word
	"$bench" udp_echo --port=0 --seconds=1 $flags 2>"$dir/timed.err" ||
		fail "the --seconds=1 $flags server failed: $(cat "$dir/timed.err")"
	! grep -E 'Sanitizer|runtime error' "$dir/timed.err" ||
		fail "the --seconds=1 $flags server's stderr above"
done
echo "udp_echo smoke: ok"
