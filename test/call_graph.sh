#!/bin/sh
# call_graph.sh OBJECT...: the link-level twin of include_graph.sh. For
# each of the library's objects (their paths end in <folder>/<file>.c.o),
# every function it calls that an object of a higher floor defines must be
# one of the few declared in a lower floor and implemented above, on
# purpose (listed below with where each is declared). Anything else is a
# call up the floors: include <- pool <- uring <- src/sync <- src/core <-
# signals, src/ipc, src/coro. Prints each as "file -> symbol (folder)".
set -eu
command -v nm >/dev/null 2>&1 || { echo "call_graph: nm missing, skipped"; exit 0; }

# Declared below, implemented above:
#   afe__runnable_run, afe__runnable_discard   pool/runnable.h (the core's tasks)
#   afe__watch_ring_waits, afe__watch_ring_wait_init   pool/watch.h (uring)
#   afe__runtime_ring                          uring/ring.h (the core's runtime)
#   afe__resume_lost, afe__await_finished, afe__awaited_by_two_tasks
#                                              afe/future.h (the async macros;
#                                              the last two in debug builds)
#   afe_runtime_current                        afe/runtime.h (the core's runtime)
allowed=" afe__runnable_run afe__runnable_discard afe__watch_ring_waits afe__watch_ring_wait_init afe__runtime_ring afe__resume_lost afe__await_finished afe__awaited_by_two_tasks afe_runtime_current "

floor() {
	case $1 in
	pool) echo 1 ;;
	uring) echo 2 ;;
	src/sync) echo 3 ;;
	src/core) echo 4 ;;
	signals | src/ipc | src/coro) echo 5 ;;
	*) echo 0 ;;
	esac
}

folder_of() { # .../afe_objects.dir/<folder>/<file>.c.o -> <folder>
	dir=$(dirname "${1#*afe_objects.dir/}")
	echo "$dir"
}

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
for o in "$@"; do
	f=$(folder_of "$o")
	nm --defined-only -g "$o" | awk -v f="$f" 'NF == 3 {print $3, f}'
done | sort >"$tmp/defined"

bad=0
for o in "$@"; do
	f=$(folder_of "$o")
	for sym in $(nm -u "$o" | awk '{print $2}'); do
		def=$(awk -v s="$sym" '$1 == s {print $2; exit}' "$tmp/defined")
		[ -n "$def" ] || continue
		[ "$(floor "$def")" -gt "$(floor "$f")" ] || continue
		case "$allowed" in *" $sym "*) continue ;; esac
		echo "call_graph: ${o#*afe_objects.dir/} -> $sym ($def)"
		bad=1
	done
done
[ "$bad" = 0 ] && echo "call_graph: no call goes up a floor"
exit "$bad"
