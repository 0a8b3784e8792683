#!/usr/bin/env bash
# Compares `copycar up` with `wasmtime serve` on the same hello component
# under wrk, alternating the two servers each round, and prints a table of
# requests/s and latency percentiles with the copycar/wasmtime ratio.
#
# Usage: host/bench/serve-hello.sh [ROUNDS] [DURATION] [CONNECTIONS]
# Needs: wrk, a release build of copycar, and wasmtime 48.0.x
# (`cargo install --locked wasmtime-cli --version 48.0.8`); set WASMTIME to
# its path if it is not on PATH.
set -euo pipefail
cd "$(dirname "$0")/../.."

rounds=${1:-3}
duration=${2:-10s}
connections=${3:-32}
target_dir=${CARGO_TARGET_DIR:-target}
wasmtime=${WASMTIME:-$(command -v wasmtime || true)}
[ -x "$wasmtime" ] || { echo "wasmtime not found; set WASMTIME" >&2; exit 2; }
command -v wrk >/dev/null || { echo "wrk not found (apt-get install wrk)" >&2; exit 2; }

cargo build --release -p copycar >&2
sh components/build.sh hello >&2
copycar="$target_dir/release/copycar"
wasm=components/wasm/hello.wasm
work=$(mktemp -d)
trap 'kill "${server_pid:-}" 2>/dev/null || true; rm -rf "$work"' EXIT

cat > "$work/spin.toml" <<TOML
spin_manifest_version = 2
[application]
name = "bench"
[[trigger.http]]
route = "/..."
component = "hello"
[component.hello]
source = "$PWD/$wasm"
TOML

port=$((20000 + RANDOM % 20000))

wait_ready() {
    for _ in $(seq 1 300); do
        curl -sf "http://127.0.0.1:$port/" >/dev/null 2>&1 && return 0
        sleep 0.05
    done
    echo "server on port $port did not start" >&2
    return 1
}

start_server() {
    case $1 in
        copycar)
            RUST_LOG=warn "$copycar" up --from "$work/spin.toml" --listen "127.0.0.1:$port" \
                --data-dir "$work/data" >/dev/null 2>"$work/copycar.log" &
            ;;
        wasmtime)
            "$wasmtime" serve --addr "127.0.0.1:$port" -Scli "$wasm" >/dev/null 2>"$work/wasmtime.log" &
            ;;
        wasmtime-pool)
            # The pooling settings copycar uses, for a like-for-like comparison.
            "$wasmtime" serve --addr "127.0.0.1:$port" -Scli \
                -O pooling-allocator=y,pooling-memory-keep-resident=2097152,pooling-table-keep-resident=2097152,pooling-pagemap-scan=auto \
                "$wasm" >/dev/null 2>"$work/wasmtime.log" &
            ;;
    esac
    server_pid=$!
    wait_ready
}

stop_server() {
    kill "$server_pid" 2>/dev/null || true
    wait "$server_pid" 2>/dev/null || true
    server_pid=
}

# Converts wrk's "123.45us" / "1.2ms" / "1.01s" into microseconds.
to_us() {
    awk -v v="$1" 'BEGIN {
        n = v + 0
        if (v ~ /us$/) print n
        else if (v ~ /ms$/) print n * 1000
        else if (v ~ /s$/) print n * 1000000
        else print n
    }'
}

results="$work/results"
: > "$results"
for round in $(seq 1 "$rounds"); do
    for server in copycar wasmtime wasmtime-pool; do
        start_server "$server"
        rss_idle=$(ps -o rss= -p "$server_pid" | tr -d ' ')
        wrk -t1 -c8 -d2s "http://127.0.0.1:$port/" >/dev/null
        out=$(wrk -t2 -c"$connections" -d"$duration" --latency "http://127.0.0.1:$port/")
        rps=$(awk '/Requests\/sec/ {print $2}' <<<"$out")
        p50=$(to_us "$(awk '$1 == "50%" {print $2}' <<<"$out")")
        p99=$(to_us "$(awk '$1 == "99%" {print $2}' <<<"$out")")
        errors=$(awk '/Non-2xx|Socket errors/ {print}' <<<"$out" | tr '\n' ' ')
        rss_loaded=$(ps -o rss= -p "$server_pid" | tr -d ' ')
        if [ "$server" = copycar ]; then
            inst=$(curl -s "http://127.0.0.1:$port/metrics" | awk '
                /^copycar_instantiation_duration_seconds_sum/ {s = $2}
                /^copycar_instantiation_duration_seconds_count/ {c = $2}
                END { if (c > 0) printf "%.1f", s / c * 1e6; else print "-" }')
        else
            inst="-"
        fi
        echo "$server $round $rps $p50 $p99 $rss_idle $rss_loaded $inst ${errors:-}" >> "$results"
        stop_server
    done
done

echo
echo "wrk -t2 -c$connections -d$duration, $rounds alternating rounds, $(nproc) cores"
printf '%-14s %5s %10s %9s %9s %12s %13s %8s\n' server round req/s p50_us p99_us idle_rss_kib after_rss_kib inst_us
awk '{ printf "%-14s %5s %10.0f %9.1f %9.1f %12s %13s %8s %s\n", $1, $2, $3, $4, $5, $6, $7, $8, $9 }' "$results"
echo
awk '
    { rps[$1] += $3; p50[$1] += $4; p99[$1] += $5; n[$1]++ }
    END {
        for (s in n) printf "mean %-14s req/s %8.0f  p50 %8.1f us  p99 %8.1f us\n", s, rps[s]/n[s], p50[s]/n[s], p99[s]/n[s]
        printf "ratio copycar / wasmtime serve (defaults) req/s: %.2fx\n", (rps["copycar"]/n["copycar"]) / (rps["wasmtime"]/n["wasmtime"])
        printf "ratio copycar / wasmtime serve (same pooling) req/s: %.2fx\n", (rps["copycar"]/n["copycar"]) / (rps["wasmtime-pool"]/n["wasmtime-pool"])
    }' "$results"
