#!/bin/sh
# Builds the named component crates for wasm32-wasip2 (release) and copies
# each <crate>.wasm into components/wasm/, where spin.toml points.
# Usage: components/build.sh health hello ...
set -eu
[ "$#" -gt 0 ] || { echo "usage: $0 CRATE..." >&2; exit 2; }
cd "$(dirname "$0")/.."

if ! rustup target list --installed 2>/dev/null | grep -qx wasm32-wasip2; then
    rustup target add wasm32-wasip2
fi

packages=""
for crate in "$@"; do packages="$packages -p $crate"; done
# shellcheck disable=SC2086 # one -p flag per crate
cargo build --release --target wasm32-wasip2 $packages

target_dir=${CARGO_TARGET_DIR:-target}
mkdir -p components/wasm
for crate in "$@"; do
    cp "$target_dir/wasm32-wasip2/release/$crate.wasm" "components/wasm/$crate.wasm"
done
