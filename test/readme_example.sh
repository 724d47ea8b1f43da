#!/bin/sh
# readme_example.sh README CC INCLUDE_DIR LIBAFE: builds the README's C
# example (its ```c blocks; ```C marks a fragment not compiled) warning-free
# against the library and runs it. With gcc also -Wjump-misses-init, which
# the README recommends: no local of the example is in scope at an await.
set -eu
awk '/^```c$/ {f = 1; next} /^```$/ {f = 0} f' "$1" > readme_example.c
jump=
if "$2" -Werror -Wjump-misses-init -E -x c /dev/null > /dev/null 2>&1; then
	jump=-Wjump-misses-init
fi
"$2" -std=gnu11 -Wall -Wextra -Wpedantic -Werror $jump -I"$3" readme_example.c "$4" -luring -pthread \
	-o readme_example
./readme_example
echo ran
