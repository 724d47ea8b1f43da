#!/bin/sh
# Builds tokio_bench offline from Debian's crates (see .cargo/config.toml):
# tokio 1.24 (all its features come with the one package), libc, and
# async-channel 1.8 (channel_mpmc).
# Installs them with apt-get when missing and run as root.
# The binary lands at bench/tokio/target/release/tokio_bench.
set -e
cd "$(dirname "$0")"
if ! ls -d /usr/share/cargo/registry/tokio-1.* /usr/share/cargo/registry/libc-0.2.* \
	/usr/share/cargo/registry/async-channel-1.* >/dev/null 2>&1; then
	if [ "$(id -u)" = 0 ]; then
		apt-get install -y librust-tokio-dev librust-libc-dev librust-async-channel-dev ||
			{ apt-get update && apt-get install -y librust-tokio-dev librust-libc-dev librust-async-channel-dev; }
	else
		echo "tokio_bench: needs apt-get install -y librust-tokio-dev librust-libc-dev librust-async-channel-dev" >&2
		exit 1
	fi
fi
command -v cargo >/dev/null 2>&1 || PATH="$HOME/.cargo/bin:/root/.cargo/bin:$PATH"
exec cargo build --release --offline "$@"
