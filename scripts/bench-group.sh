#!/usr/bin/env bash
# A 3-node redlockd group against etcd 3.4 (3 members), all on loopback on
# this machine, each member with its own data directory on the same disk:
# the same lock cycle at TASKS concurrent clients, through the leader.
#   etcd:     txn put-if-absent (create_revision == 0) with the client's lease → delete
#   redlockd: LOCK.ACQUIRE key token PX 30000 → LOCK.RELEASE key token
# and contended locks, TASKS clients on 10 keys, each bound to one key,
# cycling a blocking acquire → an increment under the lock → release:
#   etcd:     v3lock's lock (the client's lease) → range + put → unlock
#   redlockd: LOCK.ACQUIRE key token PX 30000 WAIT 0 → INCR → LOCK.RELEASE
# plus one redlockd with --appendonly yes --appendfsync always, and the
# group's failover time: kill -9 the leader → first successful grant through
# another node (median of FAILOVERS runs). Writes a Markdown table to
# bench/group-results.md (and prints it).
#   scripts/bench-group.sh                     # SECONDS_PER_RUN=10 TASKS=50 FAILOVERS=5
set -euo pipefail
cd "$(dirname "$0")/.."
SECONDS_PER_RUN=${SECONDS_PER_RUN:-10}
TASKS=${TASKS:-50}
FAILOVERS=${FAILOVERS:-5}
ETCD=${ETCD:-/usr/bin/etcd}
OUT=${OUT:-bench/group-results.md}
[ -x "$ETCD" ] || { echo "etcd not found at $ETCD (Debian: apt-get install etcd-server)" >&2; exit 1; }

cargo build --release --quiet --features bench --bins
LOAD_BEFORE=$(cut -d' ' -f1-3 /proc/loadavg)
BIN=$PWD/target/release/redlockd
BENCH=$PWD/target/release/redlockd-bench
# On the real disk (not a tmpfs), so fsync costs what it costs.
WORK=$(mktemp -d "$PWD/target/bench-group.XXXXXX")
PIDS=()
cleanup() {
  for p in "${PIDS[@]}"; do kill -9 "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$WORK"
}
trap cleanup EXIT

field() { python3 -c "import json,sys; print(json.loads(sys.argv[1])[sys.argv[2]])" "$1" "$2"; }

wait_for() { # seconds, command...
  local limit=$1; shift
  for _ in $(seq 1 $((limit * 10))); do "$@" >/dev/null 2>&1 && return 0; sleep 0.1; done
  echo "timed out waiting for: $*" >&2; return 1
}

# ---- etcd, 3 members
cluster=""
for i in 1 2 3; do cluster+="${cluster:+,}e$i=http://127.0.0.1:$((23800 + i))"; done
endpoints=""
for i in 1 2 3; do
  "$ETCD" --name "e$i" --data-dir "$WORK/etcd$i" \
    --listen-client-urls "http://127.0.0.1:$((23790 + i))" \
    --advertise-client-urls "http://127.0.0.1:$((23790 + i))" \
    --listen-peer-urls "http://127.0.0.1:$((23800 + i))" \
    --initial-advertise-peer-urls "http://127.0.0.1:$((23800 + i))" \
    --initial-cluster "$cluster" --initial-cluster-state new --initial-cluster-token bench \
    --logger zap --log-outputs stderr --log-level error 2>"$WORK/etcd$i.log" &
  PIDS+=($!)
  endpoints+="${endpoints:+,}http://127.0.0.1:$((23790 + i))"
done
wait_for 30 curl -sf -X POST -d '{}' http://127.0.0.1:23791/v3/maintenance/status
etcd_version=$("$ETCD" --version | sed -n 1p)
echo "etcd: $etcd_version, endpoints $endpoints" >&2
etcd_json=$("$BENCH" etcd --endpoints "$endpoints" --tasks "$TASKS" --seconds "$SECONDS_PER_RUN")
echo "etcd: $etcd_json" >&2
etcd_contended_json=$("$BENCH" etcd-contended --endpoints "$endpoints" --keys 10 --tasks "$TASKS" --seconds "$SECONDS_PER_RUN")
echo "etcd contended: $etcd_contended_json" >&2
for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
wait 2>/dev/null || true
PIDS=()

# ---- redlockd, a 3-node group
peers=""
for i in 1 2 3; do peers+="${peers:+,}$i@127.0.0.1:$((17300 + i))"; done
nodes=""
start_node() { # i
  local i=$1
  mkdir -p "$WORK/node$i"
  "$BIN" --port $((7300 + i)) --dir "$WORK/node$i" --log-level warning \
    --raft-id "$i" --raft-port $((17300 + i)) --raft-peers "$peers" \
    >>"$WORK/node$i.log" 2>&1 &
  NODE_PID[$i]=$!
  PIDS+=($!)
}
declare -a NODE_PID
for i in 1 2 3; do start_node "$i"; nodes+="${nodes:+,}127.0.0.1:$((7300 + i))"; done
leader_port() {
  for i in 1 2 3; do
    if redis-cli -p $((7300 + i)) INFO replication 2>/dev/null | grep '^role:master' >/dev/null; then
      echo $((7300 + i)); return 0
    fi
  done
  return 1
}
wait_for 30 leader_port
group_json=$("$BENCH" --addr "127.0.0.1:$(leader_port)" native --tasks "$TASKS" --seconds "$SECONDS_PER_RUN")
echo "group: $group_json" >&2
# A follower's forwarded request: the same cycle through a follower.
follower=$(for i in 1 2 3; do p=$((7300 + i)); [ "$p" != "$(leader_port)" ] && echo "$p" && break; done)
follower_json=$("$BENCH" --addr "127.0.0.1:$follower" native --tasks "$TASKS" --seconds "$SECONDS_PER_RUN")
echo "group via a follower: $follower_json" >&2
contended() { # port
  "$BENCH" --addr "127.0.0.1:$1" contended --method wait --keys 10 --tasks "$TASKS" --seconds "$SECONDS_PER_RUN"
}
group_contended_json=$(contended "$(leader_port)")
echo "group contended: $group_contended_json" >&2
follower_contended_json=$(contended "$follower")
echo "group contended via a follower: $follower_contended_json" >&2

failovers=()
for _ in $(seq 1 "$FAILOVERS"); do
  wait_for 30 leader_port
  # Let every node catch up before the next kill.
  sleep 1
  pids="${NODE_PID[1]},${NODE_PID[2]},${NODE_PID[3]}"
  f=$("$BENCH" failover --nodes "$nodes" --pids "$pids")
  echo "failover: $f" >&2
  failovers+=("$(printf '%.0f' "$(field "$f" failover_ms)")")
  killed=$(( $(field "$f" killed_node) + 1 ))
  start_node "$killed"
done
failover_median=$(printf '%s\n' "${failovers[@]}" | sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}')
for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
wait 2>/dev/null || true
PIDS=()

# ---- one redlockd, every write fsynced
"$BIN" --port 7399 --dir "$WORK/single" --appendonly yes --appendfsync always --log-level warning \
  >"$WORK/single.log" 2>&1 &
PIDS+=($!)
wait_for 10 redis-cli -p 7399 PING
single_json=$("$BENCH" --addr 127.0.0.1:7399 native --tasks "$TASKS" --seconds "$SECONDS_PER_RUN")
echo "single: $single_json" >&2

row() { # name json
  python3 -c 'import json,sys; r = json.loads(sys.argv[2])
print("| %s | %.0f | %.2f | %.2f |" % (sys.argv[1], r["cycles_per_sec"], r["p50_us"] / 1000, r["p99_us"] / 1000))' "$1" "$2"
}
crow() { # name json: a contended row
  python3 -c 'import json,sys; r = json.loads(sys.argv[2]); f = r["fairness_max_min"]
print("| %s | %.0f | %.2f | %.2f | %s | %d / %d |" % (sys.argv[1], r["cycles_per_sec"], r["wait_p50_us"] / 1000,
      r["wait_p99_us"] / 1000, "∞" if f is None else "%.2f" % f, r["overlaps"], r["lost_increments"]))' "$1" "$2"
}
mkdir -p "$(dirname "$OUT")"
{
  echo "# A replicated redlockd group against etcd"
  echo
  echo "\`SECONDS_PER_RUN=$SECONDS_PER_RUN TASKS=$TASKS FAILOVERS=$FAILOVERS scripts/bench-group.sh\`, $(date -u +%Y-%m-%d), load average $LOAD_BEFORE before the run,"
  echo "$(nproc) cores ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)), every process on loopback on this"
  echo "machine, data on the same disk. $etcd_version. A lock cycle is acquire → release at $TASKS concurrent"
  echo "clients over 1000 keys, through the leader: etcd = a transaction that puts the key with the"
  echo "client's lease if absent (create_revision == 0) → delete, over etcd's JSON gateway (HTTP/1.1"
  echo "keep-alive); redlockd = LOCK.ACQUIRE key token PX 30000 → LOCK.RELEASE key token."
  echo
  echo "| setup | cycles/s | p50 ms | p99 ms |"
  echo "|---|---:|---:|---:|"
  row "etcd 3.4, 3 members" "$etcd_json"
  row "redlockd group, 3 nodes (leader)" "$group_json"
  row "redlockd group, 3 nodes (via a follower)" "$follower_json"
  row "redlockd, 1 node, appendfsync always" "$single_json"
  echo
  echo "Failover (redlockd group, --raft-heartbeat-ms 80 --raft-election-timeout-ms 400, the defaults): kill -9 of the"
  echo "leader → first successful LOCK.ACQUIRE through another node, median of $FAILOVERS:"
  echo "**${failover_median} ms** (runs: ${failovers[*]} ms)."
  echo
  echo "## Contended locks, $TASKS clients on 10 keys"
  echo
  echo "Each client is bound to one of 10 keys and cycles: a blocking acquire → an increment of the key's"
  echo "counter under the lock → release. etcd = its own fair lock (the v3lock service: /v3/lock/lock with"
  echo "the client's lease, TTL 30 s) → a serializable range of the counter and a put of its value + 1 →"
  echo "/v3/lock/unlock, through the leader; redlockd = LOCK.ACQUIRE key token PX 30000 WAIT 0 → INCR →"
  echo "LOCK.RELEASE. Wait = the time to acquire; fairness = the most grants a client got ÷ the fewest;"
  echo "overlaps / lost = two clients seen in one lock / increments missing from the counters."
  echo
  echo "| setup | cycles/s | wait p50 ms | wait p99 ms | fairness (max/min) | overlaps / lost |"
  echo "|---|---:|---:|---:|---:|---:|"
  crow "etcd 3.4, 3 members (v3lock)" "$etcd_contended_json"
  crow "redlockd group, 3 nodes (leader)" "$group_contended_json"
  crow "redlockd group, 3 nodes (via a follower)" "$follower_contended_json"
} >"$OUT"
cat "$OUT"
