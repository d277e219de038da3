#!/usr/bin/env bash
# Start or stop local redlockd processes: N independent instances for
# trying out Redlock, or one replicated group of N nodes.
#   scripts/cluster.sh start [N=5] [BASE_PORT=7001]        prints the --instances list
#   scripts/cluster.sh start-group [N=3] [BASE_PORT=7001]  prints the --group list
#   scripts/cluster.sh leader-pid                          the group leader's PID
#   scripts/cluster.sh stop                                stops everything started here
# Processes listen on 127.0.0.1:BASE_PORT.. (group nodes also on raft port
# BASE_PORT+10000..) and keep pid files and logs in $REDLOCKD_CLUSTER_DIR
# (default: /tmp/redlockd-cluster); group node i keeps its data in
# $REDLOCKD_CLUSTER_DIR/node<port>, so start-group after stop (or after a
# node was killed) restarts the group from its data.
set -euo pipefail
cd "$(dirname "$0")/.."
DIR=${REDLOCKD_CLUSTER_DIR:-/tmp/redlockd-cluster}
BIN=${REDLOCKD_BIN:-$PWD/target/release/redlockd}

# Wait until each process started on the given ports logs that it listens.
wait_listening() {
  for port in "$@"; do
    for _ in $(seq 1 100); do
      grep -q "listening on" "$DIR/$port.log" && break
      if ! kill -0 "$(cat "$DIR/$port.pid")" 2>/dev/null; then
        echo "process on port $port failed to start:" >&2
        cat "$DIR/$port.log" >&2
        exit 1
      fi
      sleep 0.05
    done
  done
}

case "${1:-}" in
  start-group)
    n=${2:-3}
    base=${3:-7001}
    [ -x "$BIN" ] || cargo build --release --quiet
    mkdir -p "$DIR"
    peers=()
    for i in $(seq 1 "$n"); do
      peers+=("$i@127.0.0.1:$((base + 10000 + i - 1))")
    done
    peers=$(IFS=,; echo "${peers[*]}")
    addrs=()
    ports=()
    for i in $(seq 1 "$n"); do
      port=$((base + i - 1))
      pidfile="$DIR/$port.pid"
      # A node still running (start-group after one was killed) is kept.
      if [ -f "$pidfile" ] && kill -0 "$(cat "$pidfile")" 2>/dev/null; then
        addrs+=("127.0.0.1:$port")
        continue
      fi
      mkdir -p "$DIR/node$port"
      "$BIN" --port "$port" --dir "$DIR/node$port" --log-level warning \
        --raft-id "$i" --raft-port "$((base + 10000 + i - 1))" --raft-peers "$peers" \
        >"$DIR/$port.log" 2>&1 &
      echo $! >"$pidfile"
      addrs+=("127.0.0.1:$port")
      ports+=("$port")
    done
    wait_listening "${ports[@]}"
    (IFS=,; echo "${addrs[*]}")
    ;;
  leader-pid)
    shopt -s nullglob
    for pidfile in "$DIR"/*.pid; do
      port=$(basename "$pidfile" .pid)
      if redis-cli -p "$port" INFO replication 2>/dev/null | grep -q '^role:master'; then
        cat "$pidfile"
        exit 0
      fi
    done
    echo "no leader found (is redis-cli installed and the group started?)" >&2
    exit 1
    ;;
  start)
    n=${2:-5}
    base=${3:-7001}
    [ -x "$BIN" ] || cargo build --release --quiet
    mkdir -p "$DIR"
    addrs=()
    ports=()
    for i in $(seq 0 $((n - 1))); do
      port=$((base + i))
      "$BIN" --port "$port" --log-level warning >"$DIR/$port.log" 2>&1 &
      echo $! >"$DIR/$port.pid"
      addrs+=("127.0.0.1:$port")
      ports+=("$port")
    done
    wait_listening "${ports[@]}"
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
    echo "usage: $0 start [N] [BASE_PORT] | start-group [N] [BASE_PORT] | leader-pid | stop" >&2
    exit 2
    ;;
esac
