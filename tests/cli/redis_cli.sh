#!/usr/bin/env bash
# redis-cli and redis-benchmark, unmodified, against a fresh redlockd on a
# free loopback port. Prints "N passed, M failed" and exits non-zero on failure.
set -uo pipefail
BIN=${REDLOCKD_BIN:-$(cd "$(dirname "$0")/../.." && pwd)/target/release/redlockd}
OUT=$(mktemp)
"$BIN" --port 0 --log-level warning >"$OUT" &
PID=$!
trap 'kill $PID 2>/dev/null; wait $PID 2>/dev/null; rm -f "$OUT"' EXIT
for _ in $(seq 1 200); do
  grep -q "listening on" "$OUT" && break
  sleep 0.05
done
PORT=$(sed -n 's/.*listening on .*:\([0-9]*\)$/\1/p' "$OUT" | head -1)
[ -n "$PORT" ] || { echo "redlockd did not start"; exit 1; }

passed=0 failed=0
check() { # check EXPECTED redis-cli-args...
  local expected=$1; shift
  local got
  got=$(timeout 10 redis-cli -p "$PORT" --no-raw "$@" 2>&1)
  if [ "$got" == "$expected" ]; then
    passed=$((passed + 1))
  else
    failed=$((failed + 1))
    printf 'FAIL: redis-cli %s\n  expected: %q\n  got:      %q\n' "$*" "$expected" "$got"
  fi
}

check "PONG" PING
check "OK" SET a 1
check '"1"' GET a
check "(integer) 2" INCR a
check "(nil)" GET missing
check "OK" SET lock tok NX PX 10000
check "(nil)" SET lock other NX PX 10000
check "OK" SET lock tok IFEQ tok PX 20000
check "(integer) 0" DELEX lock IFEQ other
check "(integer) 1" DELEX lock IFEQ tok
check "(integer) 0" EXISTS lock
check "(error) ERR wrong number of arguments for 'get' command" GET
check "(error) ERR syntax error" SET a b NX XX
check "(error) ERR unknown command 'nosuch', with args beginning with: 'x' " nosuch x
check "(integer) 1" EVAL "return 1" 0
check "1) \"a\"" KEYS '*'
check "(integer) 1" DBSIZE
check "1) \"save\"
2) \"\"" CONFIG GET save
check "OK" FLUSHALL
# redis-cli's own protocol handling: pipe mode and RESP3.
printf 'SET p1 v1\r\nSET p2 v2\r\nGET p1\r\n' | timeout 10 redis-cli -p "$PORT" >/dev/null
check '"v1"' GET p1
check '"v2"' -3 GET p2

# A short redis-benchmark run must finish with no errors.
bench=$(timeout 120 redis-benchmark -p "$PORT" -t set,get,incr -n 10000 -q 2>&1)
if grep -qiE "error|err " <<<"$bench" || [ "$(grep -c 'requests per second' <<<"$bench")" -ne 3 ]; then
  failed=$((failed + 1)); echo "FAIL: redis-benchmark"; echo "$bench"
else
  passed=$((passed + 1))
fi

echo "redis-cli: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
