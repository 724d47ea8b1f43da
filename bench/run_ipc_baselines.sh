#!/bin/sh
# run_ipc_baselines.sh [RUNS]: runs ipc_baseline RUNS times (3) for each of
# futex_ring, busy_ring and unix_socket, prints every JSON line on stdout,
# then on stderr the median of each figure per workload and impl (each
# figure's median on its own, so a row may mix runs). Stops at the first
# failed run. Extra flags for every run from $IPC_FLAGS (e.g.
# IPC_FLAGS="--n=20000 --inflight=32"); the program from $IPC_BASELINE
# (default build/bench/baseline/ipc_baseline next to this script's bench/).
#   sh bench/run_ipc_baselines.sh 3 > ipc.jsonl
set -eu
runs=${1:-3}
bin=${IPC_BASELINE:-"$(dirname "$0")/../build/bench/baseline/ipc_baseline"}
out=$(mktemp)
trap 'rm -f "$out"' EXIT
for impl in futex_ring busy_ring unix_socket; do
	i=0
	while [ "$i" -lt "$runs" ]; do
		# shellcheck disable=SC2086 # flags are words
		"$bin" --impl="$impl" ${IPC_FLAGS:-} | tee -a "$out"
		i=$((i + 1))
	done
done
awk '
function field(name,   m) {
	if (match($0, "\"" name "\":[0-9.]+"))
		return substr($0, RSTART + length(name) + 3, RLENGTH - length(name) - 3)
	return ""
}
function median(key, f,   n, i, j, v, t, a) {
	n = count[key]
	for (i = 1; i <= n; i++) a[i] = vals[key, f, i] + 0
	for (i = 2; i <= n; i++)  # insertion sort: n is small
		for (j = i; j > 1 && a[j - 1] > a[j]; j--) { t = a[j]; a[j] = a[j - 1]; a[j - 1] = t }
	v = n % 2 ? a[(n + 1) / 2] : (a[n / 2] + a[n / 2 + 1]) / 2
	return v
}
{
	match($0, /"workload":"[^"]*"/); w = substr($0, RSTART + 12, RLENGTH - 13)
	match($0, /"impl":"[^"]*"/); im = substr($0, RSTART + 8, RLENGTH - 9)
	key = w " " im
	if (!(key in count)) order[++keys] = key
	c = ++count[key]
	split("ops_per_s p50_us p99_us max_us", fs, " ")
	for (k = 1; k <= 4; k++) vals[key, fs[k], c] = field(fs[k])
}
END {
	printf "%-20s %-12s %5s %12s %9s %9s %10s\n", "workload", "impl", "runs", "ops_per_s", "p50_us", "p99_us", "max_us"
	for (k = 1; k <= keys; k++) {
		key = order[k]
		split(key, wi, " ")
		printf "%-20s %-12s %5d %12.0f", wi[1], wi[2], count[key], median(key, "ops_per_s")
		if (vals[key, "p50_us", 1] != "")
			printf " %9.3f %9.3f %10.3f", median(key, "p50_us"), median(key, "p99_us"), median(key, "max_us")
		printf "\n"
	}
}' "$out" >&2
