#!/usr/bin/env bash
# Measures the send-time model end to end on events derived from a real
# access log: ingest over POST /api/v1/events, `copycar train send-time`
# against the running host, then POST /api/v1/predict/send-time latency for
# batches of 1 and 1,000 recipients through the gateway, the predict
# component and the models service. Prints the training output and latency
# percentiles from curl's total time.
#
# Usage: host/bench/send-time.sh PATH/apache_logs.csv [ROUNDS]
set -euo pipefail
cd "$(dirname "$0")/../.."

csv=${1:?usage: host/bench/send-time.sh PATH/apache_logs.csv [ROUNDS]}
rounds=${2:-200}
target_dir=${CARGO_TARGET_DIR:-target}

cargo build --release -p copycar >&2
cargo build --release -p copycar-models --example access_log_events >&2
sh components/build.sh auth events predict >&2
work=$(mktemp -d)
trap 'kill "${server_pid:-}" 2>/dev/null || true; rm -rf "$work"' EXIT
# Private copies, so a build of another checkout into the same target
# directory cannot swap the binaries mid-run.
cp "$target_dir/release/copycar" "$target_dir/release/examples/access_log_events" "$work/"
key="benchmark-signing-key-with-at-least-32-bytes"

# The shipped manifest, with components from this checkout and without the
# per-route rate limits, which would throttle the benchmark.
sed -e "s#source = \"components/#source = \"$PWD/components/#" \
    -e '/^\[\[application.tool.copycar.gateway.routes\]\]/,/^$/d' spin.toml > "$work/spin.toml"

port=$((20000 + RANDOM % 20000))
RUST_LOG=warn SPIN_VARIABLE_TOKEN_SIGNING_KEY=$key "$work/copycar" up \
    --from "$work/spin.toml" --listen "127.0.0.1:$port" --data-dir "$work/data" \
    --models-dir "$work/models" >/dev/null 2>"$work/copycar.log" &
server_pid=$!
for _ in $(seq 1 300); do
    curl -sf "http://127.0.0.1:$port/ready" >/dev/null 2>&1 && break
    sleep 0.05
done
base="http://127.0.0.1:$port"
register=$(curl -sf -X POST "$base/api/v1/auth/register" -H 'content-type: application/json' \
    -d '{"email":"timing@example.com","password":"benchmark password 1","organisation":"Bench"}')
token=$(python3 -c 'import json, sys; print(json.loads(sys.argv[1])["access_token"])' "$register")
tenant=$(python3 -c 'import json, sys; print(json.loads(sys.argv[1])["tenant"]["id"])' "$register")

"$work/access_log_events" "$csv" --jsonl "$work/events.jsonl"
start=$(date +%s.%N)
while IFS= read -r body; do
    printf '%s' "$body" | curl -sf -o /dev/null "$base/api/v1/events" \
        -H "authorization: Bearer $token" -H 'content-type: application/json' --data-binary @-
done < "$work/events.jsonl"
echo "ingest over HTTP: $(python3 -c "print(f'{$(date +%s.%N) - $start:.1f}')") s"

/usr/bin/time -f "train wall time: %e s, max RSS %M KiB" "$work/copycar" train send-time \
    --data-dir "$work/data" --tenant "$tenant" --registry "$work/models/send-time" --promote \
    --description "derived from $(basename "$csv"): real client request times, derived sends"

# Known recipients from the derived events, as the scheduler would ask.
python3 - "$work/bodies" "$work/events.jsonl" <<'PY'
import json, os, sys
os.makedirs(sys.argv[1])
recipients = {}
for line in open(sys.argv[2]):
    for event in json.loads(line)["events"]:
        if event["type"] == "sent":
            recipients.setdefault(event["recipient"])
recipients = list(recipients)
items = [{"recipient": recipients[i % len(recipients)], "channel": "email",
          "segment": "desktop", "utc_offset_minutes": 0} for i in range(1000)]
for n in (1, 1000):
    with open(os.path.join(sys.argv[1], f"{n}.json"), "w") as f:
        json.dump({"recipients": items[:n], "top_k": 3}, f)
PY
for _ in $(seq 1 100); do
    status=$(curl -s -o /dev/null -w '%{http_code}' "$base/api/v1/predict/send-time" \
        -H "authorization: Bearer $token" -H 'content-type: application/json' \
        --data-binary @"$work/bodies/1.json")
    [ "$status" = 200 ] && break
    sleep 0.1
done
for n in 1 1000; do
    for _ in $(seq 1 "$rounds"); do
        curl -s -o /dev/null -w '%{http_code} %{time_total}\n' "$base/api/v1/predict/send-time" \
            -H "authorization: Bearer $token" -H 'content-type: application/json' \
            --data-binary @"$work/bodies/$n.json"
    done | python3 -c "
import sys
rows = [line.split() for line in sys.stdin]
bad = [r for r in rows if r[0] != '200']
times = sorted(float(r[1]) * 1000 for r in rows)
print(f'predict batch $n: p50 {times[len(times)//2]:.2f} ms, p95 {times[len(times)*95//100]:.2f} ms, '
      f'{len(rows)} requests, {len(bad)} not 200')
"
done
