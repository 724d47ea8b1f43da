#!/bin/sh
# Builds go_bench (bench/go/main.go, standard library only) offline with
# Debian's Go (apt-get install -y golang-go), into bench/go/go_bench.
set -eu
cd "$(dirname "$0")"
if ! command -v go >/dev/null 2>&1; then
	echo "go_bench: needs apt-get install -y golang-go" >&2
	exit 1
fi
GOCACHE=${GOCACHE:-/tmp/afe-go-cache} GOFLAGS=-mod=mod GO111MODULE=off exec go build -o go_bench main.go
