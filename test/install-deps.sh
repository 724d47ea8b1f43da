#!/bin/sh
# Installs what building, testing and benchmarking AFE needs on Debian:
# compilers, CMake, liburing, Criterion, Boost.Context (the coroutines'
# stack switch) and valgrind (the valgrind_examples test). Runs apt-get
# only when a package is missing; uses sudo when not run as root.
set -eu
packages="cmake make gcc clang pkg-config liburing-dev libcriterion-dev libboost-context-dev valgrind"
missing=""
for p in $packages; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'ok installed' || missing="$missing $p"
done
[ -z "$missing" ] && exit 0
sudo=""
[ "$(id -u)" -eq 0 ] || sudo=sudo
$sudo apt-get update
# shellcheck disable=SC2086 # one word per package
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y $missing
