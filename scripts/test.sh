#!/usr/bin/env bash
# Install what the tests need (Debian's redis-server, redis-tools,
# prometheus-redis-exporter and chromium, a Python
# venv with the pinned client libraries, the Node client packages), then run
# every test: formatting, clippy, Rust unit/integration tests (one release
# build shared by all of them), Python and Node client-library tests, and
# redis-cli/redis-benchmark. Exits non-zero on the first failing stage.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD

stage() { printf '\n==> %s\n' "$*"; }

stage "system packages"
missing=()
command -v redis-server >/dev/null 2>&1 || missing+=(redis-server)
command -v redis-cli >/dev/null 2>&1 || missing+=(redis-tools)
command -v node >/dev/null 2>&1 || missing+=(nodejs npm)
command -v python3 >/dev/null 2>&1 || missing+=(python3 python3-venv)
command -v openssl >/dev/null 2>&1 || missing+=(openssl)
command -v prometheus-redis-exporter >/dev/null 2>&1 || missing+=(prometheus-redis-exporter)
# tests/status_page.rs renders the status page in headless Chromium.
command -v chromium >/dev/null 2>&1 || missing+=(chromium)
if ((${#missing[@]})); then
  SUDO=""
  [ "$(id -u)" -eq 0 ] || SUDO=sudo
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}" >/dev/null
fi
redis-server --version

stage "python venv (tests/clients/requirements.txt)"
if [ ! -x .venv/bin/python ]; then
  python3 -m venv .venv
fi
.venv/bin/pip install -q --disable-pip-version-check -r tests/clients/requirements.txt

stage "node packages (tests/clients/node)"
(cd tests/clients/node && npm ci --no-audit --no-fund --silent)

stage "cargo fmt --check"
cargo fmt --check

stage "cargo clippy -- -D warnings"
cargo clippy --release --all-targets --all-features -- -D warnings

stage "cargo test --release"
cargo build --release
cargo test --release

export REDLOCKD_BIN="$ROOT/target/release/redlockd"

stage "python client libraries (redis-py, pottery, redlock-py, aioredlock)"
.venv/bin/python -m pytest -q -p no:cacheprovider -W ignore::UserWarning tests/clients

stage "node client libraries (redlock v5 on ioredis)"
(cd tests/clients/node && node --test)

stage "redis-cli and redis-benchmark"
bash tests/cli/redis_cli.sh

printf '\nall test stages passed\n'
