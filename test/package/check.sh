#!/bin/sh
# check.sh BUILD_DIR WORK_DIR CC [SANITIZE]: installs the AFE built in
# BUILD_DIR into WORK_DIR/prefix, then builds with CC and runs a consumer
# found through find_package(afe) (afe::afe, static and shared) and through
# pkg-config. In a sanitizer build (SANITIZE: address or thread) the
# consumers link and run only if the package passed the sanitizer's flags
# on; the afe::afe one must also be instrumented itself.
set -eu
build=$1 work=$2 cc=$3 sanitize=${4:-} here=$(cd "$(dirname "$0")" && pwd)
rm -rf "$work"
cmake --install "$build" --prefix "$work/prefix"
cmake -S "$here" -B "$work/cmake" -DCMAKE_PREFIX_PATH="$work/prefix" -DCMAKE_C_COMPILER="$cc"
cmake --build "$work/cmake"
"$work/cmake/consumer_afe"
"$work/cmake/consumer_static"
case $sanitize in
address) nm "$work/cmake/consumer_afe" | grep -q __asan_init ;;
thread) nm "$work/cmake/consumer_afe" | grep -q __tsan_init ;;
esac
PKG_CONFIG_PATH=$(dirname "$(find "$work/prefix" -name afe.pc)")
export PKG_CONFIG_PATH
libdir=$(pkg-config --variable=libdir afe)
LD_LIBRARY_PATH="$libdir" "$work/cmake/consumer_shared"
# shellcheck disable=SC2046 # flags are words
"$cc" "$here/consumer.c" -o "$work/consumer_pc" $(pkg-config --cflags --libs afe)
LD_LIBRARY_PATH="$libdir" "$work/consumer_pc"
echo "package: find_package and pkg-config consumers ran"
