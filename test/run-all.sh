#!/bin/sh
# Builds and runs every test four ways: gcc and clang builds with warnings as
# errors, a ThreadSanitizer build and an AddressSanitizer+UBSan build; then
# the gcc and ThreadSanitizer suites again on the epoll backend and on the
# paths of a 5.15 kernel.
# Installs what it needs first. Build trees: build/, build-clang/,
# build-tsan/, build-asan/.
set -eu
cd "$(dirname "$0")/.."
sh test/install-deps.sh

run_suite() {
	dir=$1
	shift
	echo "=== $dir: $*"
	cmake -S . -B "$dir" -DCMAKE_C_FLAGS=-Werror "$@"
	cmake --build "$dir" -j "$(nproc)"
	(cd "$dir" && ctest --output-on-failure)
}

run_suite build
run_suite build-clang -DCMAKE_C_COMPILER=clang
run_suite build-tsan -DAFE_SANITIZE=thread -DCMAKE_BUILD_TYPE=Debug
run_suite build-asan -DAFE_SANITIZE=address -DCMAKE_BUILD_TYPE=Debug
# The whole suite again on the epoll backend (README, "The epoll backend"),
# and on the paths of a 5.15 kernel (README, "Kernels"), in the gcc and
# ThreadSanitizer builds. The *_epoll, *_5.15 and *_5.19 entries, which
# run a few tests in those modes within the plain passes, are left out:
# there they would repeat what the pass runs anyway.
for dir in build build-tsan; do
	for mode in AFE_BACKEND=epoll AFE_URING_FEATURES=5.15; do
		echo "=== $dir: $mode"
		(cd "$dir" && env "$mode" ctest --output-on-failure -E '_(epoll|5[.]15|5[.]19)$')
	done
done
echo "=== all test suites passed"
