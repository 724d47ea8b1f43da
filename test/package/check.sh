#!/bin/sh
# check.sh BUILD_DIR WORK_DIR: installs the AFE built in BUILD_DIR into
# WORK_DIR/prefix, then builds and runs a consumer found through
# find_package(afe) (static and shared) and through pkg-config.
set -eu
build=$1 work=$2 here=$(cd "$(dirname "$0")" && pwd)
rm -rf "$work"
cmake --install "$build" --prefix "$work/prefix"
cmake -S "$here" -B "$work/cmake" -DCMAKE_PREFIX_PATH="$work/prefix"
cmake --build "$work/cmake"
"$work/cmake/consumer_static"
PKG_CONFIG_PATH=$(dirname "$(find "$work/prefix" -name afe.pc)")
export PKG_CONFIG_PATH
libdir=$(pkg-config --variable=libdir afe)
LD_LIBRARY_PATH="$libdir" "$work/cmake/consumer_shared"
# shellcheck disable=SC2046 # flags are words
cc "$here/consumer.c" -o "$work/consumer_pc" $(pkg-config --cflags --libs afe)
LD_LIBRARY_PATH="$libdir" "$work/consumer_pc"
echo "package: find_package and pkg-config consumers ran"
