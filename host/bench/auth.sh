#!/usr/bin/env bash
# Measures the cost of authentication on this machine and prints tables:
#   1. login latency (one Argon2id verification inside the auth component),
#   2. access-token and API-key verification in native code,
#   3. gateway overhead: the hello component on a bare route against the
#      same component behind token verification and rate limits, under wrk,
#      alternating routes each round, with the guarded/bare ratio.
#
# Usage: host/bench/auth.sh [ROUNDS] [DURATION] [CONNECTIONS]
set -euo pipefail
cd "$(dirname "$0")/../.."

rounds=${1:-3}
duration=${2:-10s}
connections=${3:-32}
target_dir=${CARGO_TARGET_DIR:-target}
command -v wrk >/dev/null || { echo "wrk not found (apt-get install wrk)" >&2; exit 2; }

cargo build --release -p copycar >&2
cargo build --release -p copycar-identity --examples >&2
sh components/build.sh auth hello >&2
work=$(mktemp -d)
trap 'kill "${server_pid:-}" 2>/dev/null || true; rm -rf "$work"' EXIT
export TOKEN_SIGNING_KEY="benchmark-signing-key-with-at-least-32-bytes"

cat > "$work/spin.toml" <<TOML
spin_manifest_version = 2
[application]
name = "auth-bench"
[variables]
token_signing_key = { required = true, secret = true }

[[application.tool.copycar.gateway.routes]]
route = "/guarded"
rate_per_client = "1000000000/s"
rate_per_subject = "1000000000/s"
rate_per_key = "1000000000/s"

[[trigger.http]]
route = "/api/v1/auth/..."
component = "auth"
[[trigger.http]]
route = "/bare"
component = "hello"
[[trigger.http]]
route = "/guarded"
component = "hello"

[component.auth]
source = "$PWD/components/wasm/auth.wasm"
key_value_stores = ["default"]
allowed_outbound_hosts = ["http://locks.copycar.internal"]
[component.auth.variables]
token_signing_key = "{{ token_signing_key }}"
[component.hello]
source = "$PWD/components/wasm/hello.wasm"
TOML

port=$((20000 + RANDOM % 20000))
RUST_LOG=warn SPIN_VARIABLE_TOKEN_SIGNING_KEY=$TOKEN_SIGNING_KEY "$target_dir/release/copycar" up \
    --from "$work/spin.toml" --listen "127.0.0.1:$port" --data-dir "$work/data" >/dev/null 2>"$work/copycar.log" &
server_pid=$!
for _ in $(seq 1 300); do
    curl -sf "http://127.0.0.1:$port/bare" >/dev/null 2>&1 && break
    sleep 0.05
done
base="http://127.0.0.1:$port"

# 1. Login latency.
curl -sf -X POST "$base/api/v1/auth/register" -H 'content-type: application/json' \
    -d '{"email":"bench@example.com","password":"benchmark password 1","organisation":"Bench"}' >/dev/null
: > "$work/login"
for _ in $(seq 1 40); do
    curl -s -o /dev/null -w '%{time_total}\n' -X POST "$base/api/v1/auth/login" -H 'content-type: application/json' \
        -d '{"email":"bench@example.com","password":"benchmark password 1"}' >> "$work/login"
done
echo
echo "Login (Argon2id m=19 MiB, t=2, p=1, in the auth component), 40 sequential requests:"
sort -n "$work/login" | awk '{ v[NR] = $1 * 1000; s += v[NR] }
    END { printf "  mean %.1f ms  p50 %.1f ms  p99 %.1f ms\n", s / NR, v[int(NR * 0.5)], v[int(NR * 0.99)] }'

# 2. Native verification.
echo
echo "Verification in native code:"
"$target_dir/release/examples/verify_bench" | sed 's/^/  /'

# 3. Gateway overhead.
token=$("$target_dir/release/examples/issue_token" bench-user bench-tenant 86400)
: > "$work/gateway"
for round in $(seq 1 "$rounds"); do
    for route in bare guarded; do
        if [ "$route" = guarded ]; then header=(-H "Authorization: Bearer $token"); else header=(); fi
        wrk -t1 -c8 -d2s "${header[@]}" "$base/$route" >/dev/null
        out=$(wrk -t2 -c"$connections" -d"$duration" --latency "${header[@]}" "$base/$route")
        rps=$(awk '/Requests\/sec/ {print $2}' <<<"$out")
        non2xx=$(awk '/Non-2xx/ {print $5}' <<<"$out")
        p50=$(awk '$1 == "50%" {print $2}' <<<"$out")
        p99=$(awk '$1 == "99%" {print $2}' <<<"$out")
        echo "$route $round $rps $p50 $p99 ${non2xx:-0}" >> "$work/gateway"
    done
done
echo
echo "Gateway overhead: wrk -t2 -c$connections -d$duration, $rounds alternating rounds, $(nproc) cores"
printf '  %-8s %5s %10s %9s %9s %8s\n' route round req/s p50 p99 non-2xx
awk '{ printf "  %-8s %5s %10.0f %9s %9s %8s\n", $1, $2, $3, $4, $5, $6 }' "$work/gateway"
awk '{ rps[$1] += $3; n[$1]++ }
    END { printf "  ratio guarded/bare req/s: %.2fx\n", (rps["guarded"]/n["guarded"]) / (rps["bare"]/n["bare"]) }' "$work/gateway"
