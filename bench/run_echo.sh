#!/bin/sh
# run_echo.sh PORT IMPL SERVER_COMMAND...: starts the echo server, loads it
# with echo_client (extra client flags from $ECHO_FLAGS), prints the
# client's JSON line with the server's CPU time, and stops the server.
# $SERVER_THREADS (default 2) goes into the line's threads field;
# $ECHO_CLIENT names another client build (default build/bench/echo_client),
# or another client taking the same flags: bench/udp_client for udp_echo.
#   sh bench/run_echo.sh 7000 afe build/bench/afe_bench echo --port=7000
#   sh bench/run_echo.sh 7001 tokio bench/tokio/target/release/tokio_bench echo --port=7001
#   SERVER_THREADS=1 sh bench/run_echo.sh 7002 libuv build/bench/baseline/echo_uv --port=7002
set -eu
port=$1 impl=$2
shift 2
client=${ECHO_CLIENT:-"$(dirname "$0")/../build/bench/echo_client"}
"$@" 2>/dev/null &
server=$!
trap 'kill $server 2>/dev/null; wait $server 2>/dev/null || true' EXIT
# shellcheck disable=SC2086 # flags are words
"$client" --port="$port" --impl="$impl" --server_pid="$server" --server_threads="${SERVER_THREADS:-2}" ${ECHO_FLAGS:-}
