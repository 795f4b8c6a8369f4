#!/usr/bin/env bash
# The distributed-lock release script (Lua compare-and-delete) under redis-benchmark: direct
# redis-server, respgate's embedded engine and respgate forwarding to that redis-server,
# one after the other in one run. Prints requests per second for each.
# Usage: bench/eval.sh [pipeline=16] [requests=400000]
set -euo pipefail
cd "$(dirname "$0")/.."
P=${1:-16}
N=${2:-400000}
cargo build --release -q
# shellcheck source=bench/common.sh
. bench/common.sh
SCRIPT='if redis.call("get",KEYS[1]) == ARGV[1] then return redis.call("del",KEYS[1]) else return 0 end'
run() { # name port
  local rps
  rps=$(redis-benchmark -p "$2" -n "$N" -c 50 -P "$P" -q -r 100000 \
    EVAL "$SCRIPT" 1 lock:__rand_int__ token | tr '\r' '\n' | grep -o '[0-9.]* requests per second' | tail -1)
  printf '%-10s %s\n' "$1" "$rps"
}
rport=$(free_port)
redis-server --port "$rport" --bind 127.0.0.1 --save '' --appendonly no >/dev/null &
PIDS+=($!)
wait_up "$rport"
eport=$(free_port)
target/release/respgate --listen "127.0.0.1:$eport" --metrics-listen "" --log-level warn &
PIDS+=($!)
fport=$(free_port)
printf '[server]\nlisten = "127.0.0.1:%s"\nmetrics_listen = ""\n[backend]\nmode = "standalone"\naddress = "127.0.0.1:%s"\n' \
  "$fport" "$rport" > "$WORK/fwd.toml"
target/release/respgate --config "$WORK/fwd.toml" --log-level warn &
PIDS+=($!)
wait_up "$eport"
wait_up "$fport"
echo "EVAL compare-and-delete, -c 50 -P $P, $N requests:"
run redis "$rport"
run embedded "$eport"
run fwd "$fport"
