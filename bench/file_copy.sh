#!/bin/sh
# file_copy.sh: issue 20's sequential I/O target. The file copy example
# (test/examples/file_copy) with one operation in flight beside dd with the
# same block size (64 KiB), interleaved round by round, one JSON line each
# (seconds: the whole command, process start included). The copy's source
# is made and read once, so both read it from the page cache; each copy
# starts after a sync, with no destination left from the one before. A
# first copy is not reported: right after the source is made, the first
# copy took 3-4 times as long whoever made it (dd 365 ms, then 84).
#
#   sh bench/file_copy.sh
#   ROUNDS=8 SIZE_MB=200 sh bench/file_copy.sh
#
# Environment: ROUNDS (default 5), SIZE_MB (default 200), DIR (where the
# files go, default /tmp), BUILD (a Release build tree, default build-rel).
# Run it on a quiet machine: see bench/README.md.
set -eu
cd "$(dirname "$0")/.."
rounds=${ROUNDS:-5}
size_mb=${SIZE_MB:-200}
dir=${DIR:-/tmp}
build=${BUILD:-build-rel}

. bench/common.sh
release_build "$build"
copy=$build/test/examples/file_copy
src=$dir/afe_file_copy.src
dst=$dir/afe_file_copy.dst
head -c "$((size_mb * 1048576))" /dev/urandom >"$src"
cat "$src" >/dev/null

# one IMPL COMMAND...: times COMMAND after a sync, checks the copy, prints
# one line.
one() {
	impl=$1
	shift
	rm -f "$dst"
	sync
	start=$(date +%s%N)
	"$@" >/dev/null 2>&1
	end=$(date +%s%N)
	cmp -s "$src" "$dst" || { echo "file_copy: $impl made a different file" >&2; exit 1; }
	printf '{"workload":"file_copy","impl":"%s","depth":1,"size_mb":%s,"seconds":%s}\n' \
		"$impl" "$size_mb" "$(echo "scale=6; ($end - $start) / 1000000000" | bc)"
}

dd if="$src" of="$dst" bs=64K 2>/dev/null
i=0
while [ "$i" -lt "$rounds" ]; do
	one afe "$copy" "$src" "$dst" 1
	one dd dd if="$src" of="$dst" bs=64K
	i=$((i + 1))
done
rm -f "$src" "$dst"
