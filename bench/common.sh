# shellcheck shell=sh
# common.sh: what the benchmark scripts share; they source it from the
# repository's top directory (. bench/common.sh).

# release_build BUILD: configures BUILD as a Release tree without the tests
# when it has no cache yet, then brings it up to date (a second or two when
# it is), so a script never measures a build older than the sources.
release_build() {
	[ -f "$1/CMakeCache.txt" ] ||
		cmake -S . -B "$1" -DCMAKE_BUILD_TYPE=Release -DAFE_BUILD_TESTS=OFF >/dev/null
	cmake --build "$1" -j "$(nproc)" >/dev/null
}

# serve_point IMPL THREADS PORT CLIENT CLIENT_FLAGS COMMAND...: one server
# loaded by CLIENT through bench/run_echo.sh (COMMAND gets --port=PORT),
# one JSON line. COMMAND may start with env and NAME=VALUE words; a
# server whose program is missing is left out (nothing printed).
serve_point() {
	sp_impl=$1 sp_threads=$2 sp_port=$3 sp_client=$4 sp_flags=$5
	shift 5
	[ "$1" = env ] || [ -x "$1" ] || return 0
	SERVER_THREADS=$sp_threads ECHO_CLIENT=$sp_client ECHO_FLAGS=$sp_flags \
		sh bench/run_echo.sh "$sp_port" "$sp_impl" "$@" --port="$sp_port"
}
