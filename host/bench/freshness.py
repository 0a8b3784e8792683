#!/usr/bin/env python3
"""Measures freshness through the running host: the time from posting one
event (POST /api/v1/events, acknowledged after fsync) to the server-sent
event that carries the changed row of the shipped `campaign_hourly`
pipeline (GET /api/v1/pipelines/campaign_hourly/stream).

Usage: host/bench/freshness.py [--binary PATH] [--events N] [--gap-ms MS]

It starts `copycar up` on a free loopback port with a temporary data
directory and the shipped manifest (gateway rate limits removed), and
prints a table of percentiles.
"""

import argparse
import http.client
import json
import os
import queue
import re
import socket
import subprocess
import sys
import tempfile
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def manifest(work):
    text = open(os.path.join(ROOT, "spin.toml")).read()
    text = text.replace('source = "components/', f'source = "{ROOT}/components/')
    # Drop the gateway's per-route limits, which would throttle the run.
    text = re.sub(r"\[\[application\.tool\.copycar\.gateway\.routes\]\].*?\n\n", "", text, flags=re.S)
    path = os.path.join(work, "spin.toml")
    open(path, "w").write(text)
    return path


def request(port, method, path, body=None, token=None):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    headers = {"content-type": "application/json"}
    if token:
        headers["authorization"] = f"Bearer {token}"
    conn.request(method, path, json.dumps(body) if body is not None else None, headers)
    response = conn.getresponse()
    data = response.read()
    conn.close()
    return response.status, json.loads(data) if data else None


def follow(port, token, out):
    """Reads the stream and puts (arrival time, data) of each update."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=600)
    conn.request("GET", "/api/v1/pipelines/campaign_hourly/stream",
                 headers={"authorization": f"Bearer {token}"})
    response = conn.getresponse()
    assert response.status == 200, response.status
    kind = None
    while True:
        line = response.fp.readline()
        if not line:
            return
        line = line.decode().rstrip("\n")
        if line.startswith("event: "):
            kind = line[len("event: "):]
        elif line.startswith("data: ") and kind == "update":
            out.put((time.perf_counter(), json.loads(line[len("data: "):])))


def percentile(values, p):
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(p / 100 * (len(ordered) - 1))))]


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--binary", default=os.path.join(
        os.environ.get("CARGO_TARGET_DIR", os.path.join(ROOT, "target")), "debug", "copycar"))
    parser.add_argument("--events", type=int, default=200)
    parser.add_argument("--gap-ms", type=int, default=50)
    args = parser.parse_args()

    work = tempfile.mkdtemp()
    port = free_port()
    env = dict(os.environ, RUST_LOG="warn",
               SPIN_VARIABLE_TOKEN_SIGNING_KEY="benchmark-signing-key-with-at-least-32-bytes",
               SPIN_VARIABLE_PIPELINE_STREAM_SECS="3000")
    server = subprocess.Popen(
        [args.binary, "up", "--from", manifest(work), "--listen", f"127.0.0.1:{port}",
         "--data-dir", os.path.join(work, "data"), "--request-timeout-ms", "3600000",
         "--pipelines-dir", os.path.join(ROOT, "pipelines")],
        env=env, stdout=subprocess.DEVNULL, stderr=open(os.path.join(work, "copycar.log"), "w"))
    try:
        for _ in range(600):
            try:
                if request(port, "GET", "/ready")[0] == 200:
                    break
            except (ConnectionError, OSError, json.JSONDecodeError):
                pass
            time.sleep(0.1)
        status, reply = request(port, "POST", "/api/v1/auth/register", {
            "email": "fresh@example.com", "password": "benchmark password 1",
            "organisation": "Freshness"})
        assert status == 201, (status, reply)
        token = reply["access_token"]

        updates = queue.Queue()
        threading.Thread(target=follow, args=(port, token, updates), daemon=True).start()
        time.sleep(1.0)

        now_ms = int(time.time() * 1000)
        seen = []
        for n in range(1, args.events + 1):
            started = time.perf_counter()
            status, reply = request(port, "POST", "/api/v1/events", {"events": [{
                "type": "sent", "campaign": "fresh", "occurred_at": now_ms}]}, token)
            assert status == 200, (status, reply)
            assert reply["accepted"] == 1, reply
            while True:
                arrived, data = updates.get(timeout=30)
                if data.get("row", {}).get("sent") == n:
                    seen.append((arrived - started) * 1000)
                    break
            time.sleep(args.gap_ms / 1000)

        print(f"| events | p50 | p90 | p99 | max |")
        print(f"|---:|---:|---:|---:|---:|")
        print(f"| {len(seen)} | {percentile(seen, 50):.1f} ms | {percentile(seen, 90):.1f} ms "
              f"| {percentile(seen, 99):.1f} ms | {max(seen):.1f} ms |")
    finally:
        server.terminate()
        server.wait(timeout=30)


if __name__ == "__main__":
    sys.exit(main())
