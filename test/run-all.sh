#!/bin/sh
# Builds and runs every test four ways: gcc and clang builds with warnings as
# errors, a ThreadSanitizer build and an AddressSanitizer+UBSan build; the
# coroutine tests on Boost.Context's switch; then the gcc suite again on
# the epoll backend and on the paths of a 5.15 kernel.
# Installs what it needs first. Build trees: build/, build-clang/,
# build-tsan/, build-asan/, build-boost/.
set -eu
cd "$(dirname "$0")/.."
sh test/install-deps.sh

# The *_epoll and *_5.15 entries run the tests whose paths those modes
# change again in the mode (test/CMakeLists.txt).
modes='_(epoll|5[.]15)$'

# run_suite DIR CTEST_ARGS CMAKE_ARGS...: configures, builds, runs ctest.
run_suite() {
	dir=$1 ctest_args=$2
	shift 2
	echo "=== $dir: $*"
	cmake -S . -B "$dir" -DCMAKE_C_FLAGS=-Werror "$@"
	cmake --build "$dir" -j "$(nproc)"
	# shellcheck disable=SC2086 # empty, or two words
	(cd "$dir" && ctest --output-on-failure $ctest_args)
}

# gcc leaves the mode entries to its mode passes below.
run_suite build "-E $modes"
run_suite build-clang "" -DCMAKE_C_COMPILER=clang
run_suite build-tsan "" -DAFE_SANITIZE=thread -DCMAKE_BUILD_TYPE=Debug
run_suite build-asan "" -DAFE_SANITIZE=address -DCMAKE_BUILD_TYPE=Debug
# The coroutine tests again on Boost.Context's switch, the one other
# architectures use (src/coro/fiber_switch.h).
run_suite build-boost "-R coro" -DAFE_FIBER_BOOST=ON -DAFE_BUILD_BENCH=OFF
# The whole gcc suite again on the epoll backend (README, "The epoll
# backend") and on the paths of a 5.15 kernel (README, "Kernels"). The
# sanitizer builds see those modes through the mode entries only: a whole
# ThreadSanitizer pass per mode took a quarter of the run.
for mode in AFE_BACKEND=epoll AFE_URING_FEATURES=5.15; do
	echo "=== build: $mode"
	(cd build && env "$mode" ctest --output-on-failure -E '_(epoll|5[.]15|5[.]19)$')
done
echo "=== all test suites passed"
