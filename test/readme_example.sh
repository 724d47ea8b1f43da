#!/bin/sh
# readme_example.sh README CC INCLUDE_DIR LIBAFE: builds the README's C
# example (its ```c blocks; ```C marks a fragment not compiled) warning-free
# against the library and runs it.
set -eu
awk '/^```c$/ {f = 1; next} /^```$/ {f = 0} f' "$1" > readme_example.c
"$2" -std=gnu11 -Wall -Wextra -Wpedantic -Werror -I"$3" readme_example.c "$4" -luring -pthread \
	-o readme_example
./readme_example
echo ran
