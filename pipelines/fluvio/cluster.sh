#!/usr/bin/env bash
# Runs a local Fluvio cluster, one SC and one SPU, on 127.0.0.1 for the
# copycar-fluvio cluster tests.
#
#   cluster.sh install   build fluvio-run from the Fluvio source tree in $FLUVIO_SRC
#   cluster.sh start     start an empty SC and SPU on free loopback ports
#   cluster.sh stop      stop the processes that `start` recorded
#   cluster.sh env       print COPYCAR_FLUVIO_ENDPOINT=... for the running cluster
#
# The cluster binary, fluvio-run, is not on crates.io: its crate and the SC
# and SPU crates it links (fluvio-run, fluvio-sc, fluvio-spu, fluvio-storage)
# have `publish = false`, and Debian has no Fluvio package. `install` therefore
# builds it from a Fluvio source tree. The SC, SPU and SPU registration need
# nothing else.
#
# Environment:
#   FLUVIO_SRC        Fluvio source tree for `install`
#   FLUVIO_BIN_DIR    where fluvio-run is installed (/var/tmp/copycar/fluvio-bin)
#   FLUVIO_DATA_DIR   metadata, logs, records and pid files (/var/tmp/copycar/fluvio-data)
#   FLUVIO_RUN_TARGET cargo target dir for building fluvio-run (/var/tmp/copycar/target-fluvio-run)
#   CARGO_TARGET_DIR  cargo target dir for the register_spu example of this crate
set -euo pipefail

HOST=127.0.0.1
SPU_ID=5001
BIN_DIR=${FLUVIO_BIN_DIR:-/var/tmp/copycar/fluvio-bin}
DATA_DIR=${FLUVIO_DATA_DIR:-/var/tmp/copycar/fluvio-data}
RUN_TARGET=${FLUVIO_RUN_TARGET:-/var/tmp/copycar/target-fluvio-run}
FLUVIO_RUN=$BIN_DIR/fluvio-run
CRATE_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
STARTUP_SECONDS=60

die() {
    echo "cluster.sh: $*" >&2
    exit 1
}

# Prints a TCP port on $HOST that nothing listens on right now.
free_port() {
    python3 -c 'import socket
s = socket.socket()
s.bind(("127.0.0.1", 0))
print(s.getsockname()[1])'
}

# Waits until something accepts TCP connections on $HOST:$1.
wait_for_port() {
    local port=$1 name=$2 pid=$3
    for _ in $(seq $((STARTUP_SECONDS * 10))); do
        if (exec 3<>"/dev/tcp/$HOST/$port") 2>/dev/null; then
            return 0
        fi
        kill -0 "$pid" 2>/dev/null || die "$name (pid $pid) exited during startup; see $DATA_DIR/$name.log"
        sleep 0.1
    done
    die "$name did not listen on $HOST:$port within ${STARTUP_SECONDS}s; see $DATA_DIR/$name.log"
}

install() {
    [[ -n ${FLUVIO_SRC:-} ]] || die "FLUVIO_SRC is not set. fluvio-run is not published to crates.io (its crates have publish = false), so it is built from a Fluvio source tree: set FLUVIO_SRC to one"
    [[ -f $FLUVIO_SRC/crates/fluvio-run/Cargo.toml ]] || die "$FLUVIO_SRC has no crates/fluvio-run; set FLUVIO_SRC to the root of a Fluvio source tree"
    # Without default features fluvio-run leaves out the SmartModule engine
    # (wasmtime), which the event log does not use.
    (cd "$FLUVIO_SRC" && RUSTUP_TOOLCHAIN=${RUSTUP_TOOLCHAIN:-1.95.0} CARGO_TARGET_DIR=$RUN_TARGET \
        cargo build -p fluvio-run --no-default-features --bin fluvio-run)
    mkdir -p "$BIN_DIR"
    cp "$RUN_TARGET/debug/fluvio-run" "$FLUVIO_RUN"
    echo "installed $FLUVIO_RUN"
}

start() {
    [[ -x $FLUVIO_RUN ]] || die "$FLUVIO_RUN not found; run 'cluster.sh install' first"
    if [[ -f $DATA_DIR/sc.pid ]] && kill -0 "$(cat "$DATA_DIR/sc.pid")" 2>/dev/null; then
        die "a cluster started by this script is already running; run 'cluster.sh stop' first"
    fi
    # Each start begins with an empty cluster, because the cluster tests
    # leave their topics behind.
    rm -rf "$DATA_DIR/sc" "$DATA_DIR/spu" "$DATA_DIR/spu-metrics.sock"
    mkdir -p "$DATA_DIR/sc" "$DATA_DIR/spu"

    local sc_public sc_private spu_public spu_private
    sc_public=$(free_port)
    sc_private=$(free_port)
    spu_public=$(free_port)
    spu_private=$(free_port)

    "$FLUVIO_RUN" sc --local "$DATA_DIR/sc" \
        --bind-public "$HOST:$sc_public" --bind-private "$HOST:$sc_private" \
        >"$DATA_DIR/sc.log" 2>&1 &
    echo $! >"$DATA_DIR/sc.pid"
    wait_for_port "$sc_public" sc "$(cat "$DATA_DIR/sc.pid")"

    # The SC accepts an SPU only after it is registered, the step that
    # `fluvio cluster start --local` performs with the admin API.
    cargo run --quiet --manifest-path "$CRATE_DIR/Cargo.toml" --example register_spu -- \
        "$HOST:$sc_public" "$SPU_ID" "$spu_public" "$spu_private"

    FLUVIO_METRIC_SPU=$DATA_DIR/spu-metrics.sock "$FLUVIO_RUN" spu -i "$SPU_ID" \
        -p "$HOST:$spu_public" -v "$HOST:$spu_private" \
        --sc-addr "$HOST:$sc_private" --log-base-dir "$DATA_DIR/spu" \
        >"$DATA_DIR/spu.log" 2>&1 &
    echo $! >"$DATA_DIR/spu.pid"
    wait_for_port "$spu_public" spu "$(cat "$DATA_DIR/spu.pid")"

    echo "COPYCAR_FLUVIO_ENDPOINT=$HOST:$sc_public" >"$DATA_DIR/cluster.env"
    echo "started SC on $HOST:$sc_public and SPU $SPU_ID on $HOST:$spu_public (data in $DATA_DIR)"
    cat "$DATA_DIR/cluster.env"
}

stop() {
    local name pid
    for name in spu sc; do
        [[ -f $DATA_DIR/$name.pid ]] || continue
        pid=$(cat "$DATA_DIR/$name.pid")
        if kill -0 "$pid" 2>/dev/null; then
            kill "$pid"
            for _ in $(seq 50); do
                kill -0 "$pid" 2>/dev/null || break
                sleep 0.1
            done
            if kill -0 "$pid" 2>/dev/null; then
                kill -9 "$pid"
            fi
            echo "stopped $name (pid $pid)"
        fi
        rm -f "$DATA_DIR/$name.pid"
    done
    rm -f "$DATA_DIR/cluster.env"
}

case ${1:-} in
    install) install ;;
    start) start ;;
    stop) stop ;;
    env)
        [[ -f $DATA_DIR/cluster.env ]] || die "no running cluster; run 'cluster.sh start'"
        cat "$DATA_DIR/cluster.env"
        ;;
    *)
        echo "usage: cluster.sh install|start|stop|env" >&2
        exit 2
        ;;
esac
