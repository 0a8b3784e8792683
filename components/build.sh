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

# Each argument is a directory under components/. Its package may have a
# longer name (components/content holds copycar-content) while the library,
# and so the Wasm file, keeps the directory's name.
packages=""
for crate in "$@"; do
    package=$(sed -n 's/^name = "\(.*\)"$/\1/p' "components/$crate/Cargo.toml" | head -n 1)
    packages="$packages -p ${package:-$crate}"
done
# shellcheck disable=SC2086 # one -p flag per crate
cargo build --release --target wasm32-wasip2 $packages

target_dir=${CARGO_TARGET_DIR:-target}
mkdir -p components/wasm
for crate in "$@"; do
    cp "$target_dir/wasm32-wasip2/release/$crate.wasm" "components/wasm/$crate.wasm"
done
