#!/bin/sh
# SPDX-License-Identifier: MIT
#
# The layering check (issue 18): folders are layered, lowest first,
#
#   include <- pool <- uring <- src/sync <- src/core <- {signals, src/ipc, src/coro}
#
# and a file may include (#include "...") only headers of its own folder
# or of a folder below it. Each include is resolved against the including
# file's directory, then against include/ (the public -I path), and mapped
# to its folder. Prints every offending file:line and exits 1; exits 0
# when the graph is clean.
#
# Usage: test/include_graph.sh [SOURCE_DIR]   (default: this script's ..)

root=${1:-$(dirname "$0")/..}
cd "$root" || exit 2

files=$(find pool uring src/sync src/core src/coro src/ipc signals \
	-type f \( -name '*.c' -o -name '*.h' \) | LC_ALL=C sort)
[ -n "$files" ] || { echo "include_graph: no sources under $root" >&2; exit 2; }

# shellcheck disable=SC2086 # the file names have no blanks
awk '
function rank(folder) {
	if (folder == "include") return 0
	if (folder == "pool") return 1
	if (folder == "uring") return 2
	if (folder == "src/sync") return 3
	if (folder == "src/core") return 4
	if (folder == "signals" || folder == "src/ipc" || folder == "src/coro") return 5
	return -1
}
function folder_of(path) {
	if (path ~ /^(src\/sync|src\/core|src\/coro|src\/ipc)\//)
		return substr(path, 1, index(substr(path, 5), "/") + 3)
	if (path ~ /^(include|pool|uring|signals)\//)
		return substr(path, 1, index(path, "/") - 1)
	return "(outside: " path ")"
}
# a/b/../c/./d -> a/c/d; an escape above the root keeps its "..".
function normalize(path,    n, i, part, out, k) {
	n = split(path, part, "/")
	k = 0
	for (i = 1; i <= n; i++) {
		if (part[i] == "" || part[i] == ".")
			continue
		if (part[i] == ".." && k > 0 && out[k] != "..")
			k--
		else
			out[++k] = part[i]
	}
	path = ""
	for (i = 1; i <= k; i++)
		path = path (i > 1 ? "/" : "") out[i]
	return path
}
function exists(path,    line, r) {
	r = (getline line < path)
	if (r >= 0)
		close(path)
	return r >= 0
}
BEGIN { bad = 0 }
FNR == 1 {
	dir = FILENAME
	sub(/\/[^\/]*$/, "", dir)
	from = folder_of(FILENAME)
}
/^[ \t]*#[ \t]*include[ \t]*"/ {
	target = $0
	sub(/^[^"]*"/, "", target)
	sub(/".*$/, "", target)
	path = normalize(dir "/" target)
	if (!exists(path)) {
		if (exists("include/" target))
			path = normalize("include/" target)
		else {
			printf "%s:%d: cannot resolve \"%s\"\n", FILENAME, FNR, target
			bad = 1
			next
		}
	}
	to = folder_of(path)
	if (to == from || (rank(to) >= 0 && rank(to) < rank(from)))
		next
	printf "%s:%d: %s includes %s (%s is not below %s)\n", FILENAME, FNR, from, path, to, from
	bad = 1
}
END { exit bad }
' $files
