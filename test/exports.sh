#!/bin/sh
# exports.sh LIBAFE_SO INCLUDE_DIR: every function a public header marks
# AFE_EXPORT is exported by the shared library. The library builds with
# hidden visibility, so a definition that does not see its AFE_EXPORT
# declaration (its file does not include the header) is hidden, and a
# program linked against libafe.so cannot call it, while the static
# library, which the other tests link, still has it.
set -eu
lib=$1 include=$2
command -v nm >/dev/null 2>&1 || { echo "exports: nm missing, skipped"; exit 0; }
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
grep -ho 'AFE_EXPORT[^(;]*(' "$include"/afe/*.h | sed 's/($//; s/.*[ *]//' | grep '^afe' | sort -u >"$tmp/declared"
nm -D --defined-only "$lib" | awk '{print $3}' | sort -u >"$tmp/exported"
missing=$(comm -23 "$tmp/declared" "$tmp/exported")
if [ -n "$missing" ]; then
	echo "exports: declared AFE_EXPORT but not exported by $lib:" $missing
	exit 1
fi
echo "exports: all $(wc -l <"$tmp/declared") declared functions exported"
