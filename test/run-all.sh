#!/bin/sh
# Builds and runs every test four ways: gcc and clang builds with warnings as
# errors, a ThreadSanitizer build and an AddressSanitizer+UBSan build.
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
echo "=== all test suites passed"
