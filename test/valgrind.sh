#!/bin/bash
# valgrind.sh HELLO_MAIN ECHO_SERVER CHILD_PROCESS CORO_FILE_COPY WORK_DIR:
# the demo, the echo example, the child process example and the coroutine
# file copy under valgrind (memcheck), on the backend the default picks
# there: each runs, the echo server echoes 100 kB byte for byte and exits 0
# on SIGTERM, the child process example (without pidfds there: valgrind
# 3.19 lacks pidfd_open) reads its child and reaps it, the coroutines
# (their stacks registered with valgrind) copy 300 kB exactly, with no
# valgrind error and no definite leak. Exits 77 (skipped) without
# valgrind. Bash for /dev/tcp.
set -u
hello=$1 echo_server=$2 child_process=$3 coro_file_copy=$4 work=$5
command -v valgrind >/dev/null || { echo "valgrind not installed"; exit 77; }
unset AFE_BACKEND # the default's choice is what is tested
mkdir -p "$work"
cd "$work" || exit 1

fail() {
	echo "FAIL: $*"
	exit 1
}

# valgrind's exit status is the program's, or 99 after an error or a
# definite leak.
vg=(valgrind -q --error-exitcode=99 --trace-children=no --leak-check=full
	--errors-for-leak-kinds=definite)

# The demo: exits 0 with its sum, having said why it runs on epoll.
timeout -s KILL 30 "${vg[@]}" "$hello" 7 >hello.out 2>&1 # 137: hung
st=$?
cat hello.out
[ $st = 0 ] || fail "the demo exited $st"
grep -q "joined 7 tasks, sum 91" hello.out || fail "the demo did not finish its tasks"
grep -q "; using epoll" hello.out || fail "the demo did not say it fell back to epoll"

# The child process example: its child's words and exit status, exactly.
timeout -s KILL 30 "${vg[@]}" "$child_process" >child.out 2>child.err # 137: hung
st=$?
cat child.out child.err
[ $st = 0 ] || fail "the child process example exited $st"
[ "$(cat child.out)" = "$(printf 'child said: hi\nchild exited with status 3')" ] ||
	fail "the child process example did not read and reap its child"

# The coroutine file copy, four coroutines: the same bytes.
head -c 300000 /dev/urandom >copy_src
timeout -s KILL 60 "${vg[@]}" "$coro_file_copy" copy_src copy_dst 4 >copy.out 2>&1 # 137: hung
st=$?
cat copy.out
[ $st = 0 ] || fail "the coroutine file copy exited $st"
cmp -s copy_src copy_dst || fail "the coroutine file copy's copy differs"

# The echo server: listening within 30 s, then 100 kB echoed.
"${vg[@]}" "$echo_server" 0 >echo.out 2>&1 &
server=$!
port=""
for _ in $(seq 300); do
	port=$(sed -n 's/^echo_server: listening on 127\.0\.0\.1:\([0-9]*\)$/\1/p' echo.out)
	[ -n "$port" ] || ! kill -0 $server 2>/dev/null && break
	sleep 0.1
done
if [ -z "$port" ]; then
	kill -KILL $server 2>/dev/null
	wait $server
	cat echo.out
	fail "the echo server did not listen"
fi
head -c 100000 /dev/urandom >sent
exec 3<>"/dev/tcp/127.0.0.1/$port" || fail "cannot connect to port $port"
timeout 30 head -c 100000 <&3 >back & # reads while we write: no deadlock
reader=$!
timeout 30 cat sent >&3
wait $reader
exec 3>&-
cmp -s sent back || echoed=no

# SIGTERM: the server stops and exits 0 within 10 s.
kill -TERM $server
for _ in $(seq 100); do
	kill -0 $server 2>/dev/null || break
	sleep 0.1
done
kill -KILL $server 2>/dev/null && killed=yes
wait $server
st=$?
cat echo.out
[ "${echoed:-}" != no ] || fail "echoed $(wc -c <back) bytes, not the 100000 sent byte for byte"
[ "${killed:-}" != yes ] || fail "the echo server ignored SIGTERM for 10 s"
[ $st = 0 ] || fail "the echo server exited $st"
grep -q "; using epoll" echo.out || fail "the echo server did not say it fell back to epoll"
echo "valgrind: all clean"
