#!/bin/sh
# Builds the libFuzzer target fuzz_ipc_frame (clang, ASan+UBSan) in
# build-fuzz/ and runs it for SECONDS (default 60), starting from the
# committed corpus. What it finds worth keeping goes to build-fuzz/corpus/
# (not the committed one); a crash is written to build-fuzz/crashes/ and
# fails the run: fix it, then add the input to test/fuzz/corpus/.
# Arguments after SECONDS go to libFuzzer (e.g. -jobs=2 -workers=2).
#
#   sh test/fuzz/run.sh [SECONDS [libFuzzer options...]]
set -eu
cd "$(dirname "$0")/../.."
seconds=${1:-60}
[ $# -gt 0 ] && shift
sh test/install-deps.sh

# libFuzzer's runtime comes with clang's compiler-rt package.
if ! printf 'int LLVMFuzzerTestOneInput(const char *d, unsigned long n) { return d && n; }\n' |
	clang -fsanitize=fuzzer -x c - -o /dev/null 2>/dev/null; then
	sudo=""
	[ "$(id -u)" -eq 0 ] || sudo=sudo
	DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y \
		"libclang-rt-$(clang -dumpversion | cut -d. -f1)-dev"
fi

cmake -S . -B build-fuzz -DCMAKE_C_COMPILER=clang -DCMAKE_BUILD_TYPE=RelWithDebInfo \
	-DAFE_FUZZ=ON -DCMAKE_C_FLAGS=-Werror
cmake --build build-fuzz --target fuzz_ipc_frame -j "$(nproc)"
mkdir -p build-fuzz/corpus build-fuzz/crashes
# A record is at most 34 + 4064 bytes, and four fill the ring.
build-fuzz/test/fuzz/fuzz_ipc_frame build-fuzz/corpus test/fuzz/corpus \
	-max_total_time="$seconds" -max_len=16400 -artifact_prefix=build-fuzz/crashes/ \
	-print_final_stats=1 "$@"
