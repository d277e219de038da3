#!/usr/bin/env bash
# Start or stop N local redlockd instances for trying out Redlock.
#   scripts/cluster.sh start [N=5] [BASE_PORT=7001]   prints the --instances list
#   scripts/cluster.sh stop
# Instances listen on 127.0.0.1:BASE_PORT.. and keep pid files and logs in
# $REDLOCKD_CLUSTER_DIR (default: /tmp/redlockd-cluster).
set -euo pipefail
cd "$(dirname "$0")/.."
DIR=${REDLOCKD_CLUSTER_DIR:-/tmp/redlockd-cluster}
BIN=${REDLOCKD_BIN:-$PWD/target/release/redlockd}

case "${1:-}" in
  start)
    n=${2:-5}
    base=${3:-7001}
    [ -x "$BIN" ] || cargo build --release --quiet
    mkdir -p "$DIR"
    addrs=()
    for i in $(seq 0 $((n - 1))); do
      port=$((base + i))
      "$BIN" --port "$port" --log-level warning >"$DIR/$port.log" 2>&1 &
      echo $! >"$DIR/$port.pid"
      addrs+=("127.0.0.1:$port")
    done
    for a in "${addrs[@]}"; do
      port=${a##*:}
      for _ in $(seq 1 100); do
        grep -q "listening on" "$DIR/$port.log" && break
        if ! kill -0 "$(cat "$DIR/$port.pid")" 2>/dev/null; then
          echo "instance on port $port failed to start:" >&2
          cat "$DIR/$port.log" >&2
          exit 1
        fi
        sleep 0.05
      done
    done
    (IFS=,; echo "${addrs[*]}")
    ;;
  stop)
    shopt -s nullglob
    for pidfile in "$DIR"/*.pid; do
      kill "$(cat "$pidfile")" 2>/dev/null || true
      rm -f "$pidfile"
    done
    ;;
  *)
    echo "usage: $0 start [N] [BASE_PORT] | stop" >&2
    exit 2
    ;;
esac
