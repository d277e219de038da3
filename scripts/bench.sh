#!/usr/bin/env bash
# Side-by-side benchmark of redlockd against Debian's redis-server on the same
# machine, in the same run, alternating A/B per repetition so that machine
# drift cancels out. Writes bench/results.jsonl (every measurement),
# bench/results.json and bench/results.md (medians, min-max, ratios) and
# bench/chart.svg. Environment: REPS (3), N (requests per redis-benchmark run,
# 200000; N_PIPELINED for the -P 16 runs, 5 x N), KEYS (1000000 for the memory and expiry workloads), OURS_ARGS (extra
# redlockd flags, e.g. "--threads 1"), LOCK_SECONDS (length of each lock-cycle run, 5), OUT (output directory, bench/),
# CONTENDED_SECONDS (length of each contended-lock run, 5),
# ANCHOR_BIN (a redlockd binary to run in redis-server's place, with the same
# OURS_ARGS: a previous build, so that a change is measured against the code
# before it, side by side in one run; its rows are still labelled "redis"),
# ANCHOR_ARGS (the anchor's flags instead of OURS_ARGS), METRICS=1 (redlockd,
# not the anchor, also serves --metrics-port on a free port, scraped every
# SCRAPE_EVERY seconds, 5: with ANCHOR_BIN=target/release/redlockd this
# measures the cost of metrics), LOCK_SECONDS (5, per lock-cycle run) and
# MEMORY=0 (skip the memory, expiry, MSET and idle-connection workloads, for
# a short run).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
REPS=${REPS:-3}
N=${N:-200000}
N_PIPELINED=${N_PIPELINED:-$((N * 5))}
KEYS=${KEYS:-1000000}
LOCK_SECONDS=${LOCK_SECONDS:-5}
OUT=${OUT:-$ROOT/bench}
OURS_ARGS=${OURS_ARGS:-}
ANCHOR_BIN=${ANCHOR_BIN:-}
ANCHOR_ARGS=${ANCHOR_ARGS-$OURS_ARGS}
METRICS=${METRICS:-0}
SCRAPE_EVERY=${SCRAPE_EVERY:-5}
MEMORY=${MEMORY:-1}
mkdir -p "$OUT"
RESULTS=$OUT/results.jsonl
: >"$RESULTS"

if ! command -v redis-server >/dev/null || ! command -v redis-benchmark >/dev/null; then
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO=sudo
  $SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq redis-server redis-tools >/dev/null
fi
cargo build --release --quiet --features bench
BIN=$ROOT/target/release/redlockd
BENCH=$ROOT/target/release/redlockd-bench

# redis-py's release script, as the library sends it (read from the library).
if [ ! -x .venv/bin/python ]; then python3 -m venv .venv; fi
.venv/bin/pip install -q --disable-pip-version-check -r tests/clients/requirements.txt
SCRIPT=$(mktemp)
.venv/bin/python -c 'import sys; from redis.lock import Lock; sys.stdout.write(Lock.LUA_RELEASE_SCRIPT)' >"$SCRIPT"
# The same release with one more line: not in the catalogue, so redlockd runs
# it on its embedded Lua, as redis-server runs both.
SCRIPT_LUA=$(mktemp)
{ cat "$SCRIPT"; printf -- '-- not catalogued\n'; } >"$SCRIPT_LUA"

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
REDIS_PORT=$(free_port)
OURS_LOG=$(mktemp)
REDIS_PID=""; OURS_PID=""; OURS_PORT=""; SCRAPER_PID=""
METRICS_ARGS=""
if [ "$METRICS" = 1 ]; then METRICS_PORT=$(free_port); METRICS_ARGS="--metrics-port $METRICS_PORT"; fi
start_servers() {
  if [ -n "$ANCHOR_BIN" ]; then
    # shellcheck disable=SC2086 # ANCHOR_ARGS is a list of flags
    "$ANCHOR_BIN" --port "$REDIS_PORT" --log-level warning --maxclients 20000 $ANCHOR_ARGS >/dev/null 2>&1 &
  else
    redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --save '' --appendonly no --maxclients 20000 --daemonize no >/dev/null 2>&1 &
  fi
  REDIS_PID=$!
  : >"$OURS_LOG"
  if [ -n "$OURS_PORT" ]; then ours_port_arg=$OURS_PORT; else ours_port_arg=0; fi
  # shellcheck disable=SC2086 # OURS_ARGS and METRICS_ARGS are lists of flags
  "$BIN" --port "$ours_port_arg" --log-level warning --maxclients 20000 $OURS_ARGS $METRICS_ARGS >"$OURS_LOG" 2>&1 &
  OURS_PID=$!
  for _ in $(seq 1 200); do
    grep -q "listening on" "$OURS_LOG" && redis-cli -p "$REDIS_PORT" ping >/dev/null 2>&1 && break
    sleep 0.05
  done
  OURS_PORT=$(sed -n 's/.*listening on .*:\([0-9]*\)$/\1/p' "$OURS_LOG" | head -1)
  if [ "$METRICS" = 1 ]; then
    # What Prometheus does to it meanwhile.
    while sleep "$SCRAPE_EVERY"; do curl -sf "http://127.0.0.1:$METRICS_PORT/metrics" >/dev/null || true; done &
    SCRAPER_PID=$!
  fi
}
stop_servers() {
  kill "$REDIS_PID" "$OURS_PID" $SCRAPER_PID 2>/dev/null || true
  wait "$REDIS_PID" "$OURS_PID" $SCRAPER_PID 2>/dev/null || true
  SCRAPER_PID=""
}
trap 'stop_servers; rm -f "$SCRIPT" "$SCRIPT_LUA" "$OURS_LOG"' EXIT
start_servers
VERSION=$(redis-server --version | sed 's/.*v=\([^ ]*\).*/\1/')
ANCHOR="redis-server $VERSION"
if [ -n "$ANCHOR_BIN" ]; then ANCHOR="redlockd $ANCHOR_BIN${ANCHOR_ARGS:+ $ANCHOR_ARGS}"; fi
echo "$ANCHOR on $REDIS_PORT (pid $REDIS_PID), redlockd on $OURS_PORT (pid $OURS_PID)"

TCK=$(getconf CLK_TCK)
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
record() { # record WORKLOAD SERVER REP JSON-FIELDS
  printf '{"workload":"%s","server":"%s","rep":%s,%s}\n' "$1" "$2" "$3" "$4" >>"$RESULTS"
}
port_of() { if [ "$1" = redis ]; then echo "$REDIS_PORT"; else echo "$OURS_PORT"; fi; }
pid_of() { if [ "$1" = redis ]; then echo "$REDIS_PID"; else echo "$OURS_PID"; fi; }

# One redis-benchmark run: requests/s and server CPU µs per request.
rb() { # rb SERVER REP NAME PIPELINE ARGS...
  local server=$1 rep=$2 name=$3 pipeline=$4; shift 4
  local port pid before after csv rps n=$N
  # Pipelined runs are ~10x faster: give them more requests, so that a run
  # lasts about a second and a hiccup of the shared machine weighs less.
  if [ "$pipeline" -gt 1 ]; then n=$N_PIPELINED; fi
  port=$(port_of "$server"); pid=$(pid_of "$server")
  before=$(cpu_ticks "$pid")
  csv=$(redis-benchmark -p "$port" -c 50 -n "$n" -r 100000 -P "$pipeline" --csv "$@" 2>/dev/null | tail -1)
  after=$(cpu_ticks "$pid")
  rps=$(echo "$csv" | awk -F'","' '{print $2}' | tr -d '"')
  local cpu
  cpu=$(awk -v a="$after" -v b="$before" -v t="$TCK" -v n="$n" 'BEGIN{printf "%.3f", (a-b)/t*1e6/n}')
  record "$name" "$server" "$rep" "\"rps\":$rps,\"cpu_us_per_req\":$cpu"
  printf '  %-9s %-28s %10s req/s  %6s µs CPU/req\n' "$server" "$name" "$rps" "$cpu"
}

run_bench() { # run_bench SERVER REP WORKLOAD ARGS... (redlockd-bench)
  local server=$1 rep=$2 name=$3; shift 3
  local json
  json=$("$BENCH" --addr "127.0.0.1:$(port_of "$server")" --pid "$(pid_of "$server")" "$@")
  local inner=${json#\{}
  record "$name" "$server" "$rep" "${inner%\}}"
  printf '  %-9s %-28s %s\n' "$server" "$name" "$json"
}

for rep in $(seq 1 "$REPS"); do
  echo "== repetition $rep of $REPS"
  for server in redis redlockd; do
    for p in 1 16; do
      rb "$server" "$rep" "SET -P$p" "$p" -t set
      rb "$server" "$rep" "GET -P$p" "$p" -t get
      rb "$server" "$rep" "INCR -P$p" "$p" -t incr
      rb "$server" "$rep" "SET NX PX (lock) -P$p" "$p" SET 'lock:__rand_int__' tok NX PX 30000
    done
  done
  for server in redis redlockd; do
    run_bench "$server" "$rep" "lock cycles 1000 keys (EVALSHA)" locks --seconds "$LOCK_SECONDS" --keys 1000 --tasks 50 --release evalsha --script "$SCRIPT"
    run_bench "$server" "$rep" "lock cycles 10 keys (EVALSHA)" locks --seconds "$LOCK_SECONDS" --keys 10 --tasks 50 --release evalsha --script "$SCRIPT"
    run_bench "$server" "$rep" "lock cycles 1000 keys (EVALSHA, Lua)" locks --seconds "$LOCK_SECONDS" --keys 1000 --tasks 50 --release evalsha --script "$SCRIPT_LUA"
  done
  # Contended locks, each server with the best its clients have: Redis's
  # SET NX PX retried every 10 ms (node-redlock) and the EVALSHA release;
  # redlockd's blocking, FIFO LOCK.ACQUIRE ... WAIT.
  run_bench redis "$rep" "contended locks 50 clients/10 keys" contended --keys 10 --tasks 50 --seconds "${CONTENDED_SECONDS:-5}" --method retry --retry-ms 10 --script "$SCRIPT"
  run_bench redlockd "$rep" "contended locks 50 clients/10 keys" contended --keys 10 --tasks 50 --seconds "${CONTENDED_SECONDS:-5}" --method wait
  # The same clients doing 1 ms of work of their own after each release:
  # Redis's lock then sits free until a sleeper's retry, redlockd's goes to
  # the next waiter at once.
  run_bench redis "$rep" "contended locks 50 clients/10 keys, 1 ms work outside" contended --keys 10 --tasks 50 --seconds "${CONTENDED_SECONDS:-5}" --method retry --retry-ms 10 --script "$SCRIPT" --think-ms 1
  run_bench redlockd "$rep" "contended locks 50 clients/10 keys, 1 ms work outside" contended --keys 10 --tasks 50 --seconds "${CONTENDED_SECONDS:-5}" --method wait --think-ms 1
  # Redis has no DELEX; a redlockd anchor has.
  delex_servers=redlockd
  if [ -n "$ANCHOR_BIN" ]; then delex_servers="redis redlockd"; fi
  for server in $delex_servers; do
    run_bench "$server" "$rep" "lock cycles 1000 keys (DELEX)" locks --keys 1000 --tasks 50 --seconds "$LOCK_SECONDS" --release native
    run_bench "$server" "$rep" "lock cycles 10 keys (DELEX)" locks --keys 10 --tasks 50 --seconds "$LOCK_SECONDS" --release native
  done
  if [ "$MEMORY" = 0 ]; then continue; fi
  # Memory workloads on fresh processes, so earlier allocations do not hide growth.
  stop_servers
  start_servers
  for server in redis redlockd; do
    run_bench "$server" "$rep" "memory per lock key" load --keys "$KEYS"
    run_bench "$server" "$rep" "expiry reclaim" expire --keys "$KEYS" --px 2000
    run_bench "$server" "$rep" "MSET 1k args" mset --args 1000
    run_bench "$server" "$rep" "MSET 100k args" mset --args 100000
    run_bench "$server" "$rep" "idle connections" idle --conns 10000
  done
  stop_servers
  start_servers
done

LABEL="$(nproc) cores, $(uname -m), $(date -u +%Y-%m-%d)"
if [ -n "$OURS_ARGS$METRICS_ARGS" ]; then LABEL="$LABEL; redlockd $OURS_ARGS${METRICS_ARGS:+ --metrics-port (scraped every ${SCRAPE_EVERY}s)}"; fi
python3 scripts/bench_report.py "$RESULTS" "$OUT" "$ANCHOR" "$LABEL"
cat "$OUT/results.md"
