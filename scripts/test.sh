#!/usr/bin/env bash
# Runs every test respgate has, on a fresh Debian machine: installs what the tests need
# (redis-server, redis-sentinel, redis-tools, promtool, redis-py, ioredis/node-redis) when missing, then runs the
# Rust unit and integration tests. Usage: scripts/test.sh [extra cargo test args]
set -euo pipefail
cd "$(dirname "$0")/.."

need_apt=()
command -v redis-server >/dev/null 2>&1 || need_apt+=(redis-server)
command -v redis-cli >/dev/null 2>&1 || need_apt+=(redis-tools)
command -v redis-sentinel >/dev/null 2>&1 || need_apt+=(redis-sentinel)
command -v redis-benchmark >/dev/null 2>&1 || need_apt+=(redis-tools)
command -v python3 >/dev/null 2>&1 || need_apt+=(python3 python3-pip)
# promtool (tests/monitor.rs checks /metrics with `promtool check metrics`); the package also
# ships a Prometheus server, which the tests do not use.
command -v promtool >/dev/null 2>&1 || need_apt+=(prometheus)
if [ ${#need_apt[@]} -gt 0 ]; then
  echo "installing: ${need_apt[*]}"
  if [ "$(id -u)" -eq 0 ]; then SUDO=""; else SUDO="sudo"; fi
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need_apt[@]}"
fi
# Debian starts a redis-server on 6379 after installing it; tests never use it (they start
# their own on free ports), so it may keep running.

# redis-py, for the client-compatibility tests.
if ! python3 -c 'import redis' >/dev/null 2>&1; then
  python3 -m pip install -q redis || pip3 install -q --break-system-packages redis
fi

# Node.js clients (ioredis, node-redis), when node and npm exist.
if command -v npm >/dev/null 2>&1 && [ ! -d tests/clients/node/node_modules ]; then
  (cd tests/clients/node && npm install --silent --no-audit --no-fund >/dev/null)
fi

cargo test --all-targets "$@"
