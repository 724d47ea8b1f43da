#!/bin/sh
# Builds AFE and runs the AFE_MAIN demo (test/examples/hello_main.c): the
# root future spawns tasks, joins them, and main exits with its status.
# Installs what it needs first.
set -eu
cd "$(dirname "$0")/.."
sh test/install-deps.sh
cmake -S . -B build
cmake --build build -j "$(nproc)" --target hello_main
./build/test/examples/hello_main "$@"
