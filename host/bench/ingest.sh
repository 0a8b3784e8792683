#!/usr/bin/env bash
# Measures durable event ingest over HTTP: POST /api/v1/events with batches
# of BATCH events under wrk, through the gateway, the events component and
# the embedded log (each batch fsynced before the response). Prints wrk's
# summary and events per second.
#
# Usage: host/bench/ingest.sh [BATCH] [DURATION] [CONNECTIONS]
# PROFILE=dev measures a debug build of the host instead of a release build
# (components are always release builds).
set -euo pipefail
cd "$(dirname "$0")/../.."

batch=${1:-1000}
duration=${2:-10s}
connections=${3:-4}
target_dir=${CARGO_TARGET_DIR:-target}
command -v wrk >/dev/null || { echo "wrk not found (apt-get install wrk)" >&2; exit 2; }

profile=${PROFILE:-release}
case $profile in
    release) profile_dir=release ;;
    dev) profile_dir=debug ;;
    *) echo "PROFILE must be release or dev, not $profile" >&2; exit 2 ;;
esac
cargo build --profile "$profile" -p copycar >&2
# The shipped manifest starts every component it lists, so all are built.
components=$(sed -n 's#^source = "components/wasm/\(.*\)\.wasm"$#\1#p' spin.toml)
# shellcheck disable=SC2086 # one argument per component
sh components/build.sh $components >&2
work=$(mktemp -d)
trap 'kill "${server_pid:-}" 2>/dev/null || true; rm -rf "$work"' EXIT
key="benchmark-signing-key-with-at-least-32-bytes"

# The shipped manifest, with components from this checkout and without the
# per-route rate limits, which would throttle the benchmark.
sed -e "s#source = \"components/#source = \"$PWD/components/#" \
    -e '/^\[\[application.tool.copycar.gateway.routes\]\]/,/^$/d' spin.toml > "$work/spin.toml"

port=$((20000 + RANDOM % 20000))
RUST_LOG=warn SPIN_VARIABLE_TOKEN_SIGNING_KEY=$key "$target_dir/$profile_dir/copycar" up \
    --from "$work/spin.toml" --listen "127.0.0.1:$port" --data-dir "$work/data" \
    --models-dir "$PWD/models/registry" >/dev/null 2>"$work/copycar.log" &
server_pid=$!
# A debug host compiles every component at start-up, which takes longer.
ready=no
for _ in $(seq 1 1200); do
    if curl -sf "http://127.0.0.1:$port/ready" >/dev/null 2>&1; then
        ready=yes
        break
    fi
    sleep 0.05
done
if [ "$ready" = no ]; then
    echo "copycar was not ready on port $port after 60 s; its log:" >&2
    cat "$work/copycar.log" >&2
    exit 1
fi
base="http://127.0.0.1:$port"
token=$(curl -sf -X POST "$base/api/v1/auth/register" -H 'content-type: application/json' \
    -d '{"email":"ingest@example.com","password":"benchmark password 1","organisation":"Bench"}' |
    python3 -c 'import json, sys; print(json.load(sys.stdin)["access_token"])')

python3 - "$batch" > "$work/body.json" <<'PY'
import json, sys
n = int(sys.argv[1])
events = [{"type": "open", "occurred_at": 1733300000000 + i, "campaign": "bench",
           "recipient": f"r-{i % 977}", "channel": "email"} for i in range(n)]
print(json.dumps({"events": events}))
PY
cat > "$work/post.lua" <<LUA
wrk.method = "POST"
wrk.headers["content-type"] = "application/json"
wrk.headers["authorization"] = "Bearer $token"
local f = io.open("$work/body.json", "r")
wrk.body = f:read("*a")
f:close()
LUA

out=$(wrk -t1 -c"$connections" -d"$duration" --latency -s "$work/post.lua" "$base/api/v1/events")
echo "$out"
rps=$(awk '/Requests\/sec/ {print $2}' <<<"$out")
awk -v r="$rps" -v b="$batch" 'BEGIN { printf "\nbatch %d events: %.0f requests/s = %.0f events/s\n", b, r, r * b }'
# Registration's audit event comes first, so the check reads a few.
stored=$(curl -s "$base/api/v1/events?from=0&limit=5" -H "authorization: Bearer $token" |
    python3 -c 'import json, sys; print([e.get("campaign") for e in json.load(sys.stdin)["events"] if e["type"] != "audit"][0])')
echo "first stored benchmark event's campaign: $stored"
