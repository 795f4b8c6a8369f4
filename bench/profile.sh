#!/usr/bin/env bash
# Instructions per command (callgrind) for one redis-benchmark workload, respgate against
# redis-server itself: instruction counts do not depend on what else the machine is doing,
# so this is the stable comparison on a noisy 2-core machine. Prints instructions per
# command for each and respgate's top functions (self cost).
# Usage: bench/profile.sh [embedded|fwd] [test=get] [pipeline=16] [requests=20000]
# KEEP_PROFILE=DIR copies the callgrind files there (redis.out, respgate.out) for
# callgrind_annotate --inclusive=yes or kcachegrind.
set -euo pipefail
cd "$(dirname "$0")/.."
MODE=${1:-embedded}
TEST=${2:-get}
P=${3:-16}
N=${4:-20000}
cargo build --release -q
# shellcheck source=bench/common.sh
. bench/common.sh
measure() { # name port pid
  callgrind_control -i on "$3" >/dev/null 2>&1
  redis-benchmark -p "$2" -n "$N" -c 10 -P "$P" -t "$TEST" -q >/dev/null 2>&1
  callgrind_control -i off "$3" >/dev/null 2>&1
  kill -INT "$3"; wait "$3" 2>/dev/null || true
}
ir_of() { callgrind_annotate "$1" 2>/dev/null | awk '/PROGRAM TOTALS/ {gsub(",", "", $1); print $1}'; }

# redis-server alone, under callgrind.
rport=$(free_port)
valgrind --tool=callgrind --instr-atstart=no --callgrind-out-file="$WORK/redis.out" \
  redis-server --port "$rport" --bind 127.0.0.1 --save '' --appendonly no >/dev/null 2>&1 &
rpid=$!
wait_up "$rport"
measure redis "$rport" "$rpid"
redis_ir=$(ir_of "$WORK/redis.out")

# respgate under callgrind (forwarding: to a plain redis-server outside valgrind).
port=$(free_port)
printf '[server]\nlisten = "127.0.0.1:%s"\nmetrics_listen = ""\nworker_threads = 1\n' "$port" > "$WORK/rg.toml"
if [ "$MODE" = fwd ]; then
  bport=$(free_port)
  redis-server --port "$bport" --bind 127.0.0.1 --save '' --appendonly no >/dev/null &
  PIDS+=($!)
  wait_up "$bport"
  printf '[backend]\nmode = "standalone"\naddress = "127.0.0.1:%s"\n' "$bport" >> "$WORK/rg.toml"
fi
valgrind --tool=callgrind --instr-atstart=no --callgrind-out-file="$WORK/rg.out" \
  target/release/respgate --config "$WORK/rg.toml" --log-level warn >/dev/null 2>&1 &
gpid=$!
wait_up "$port"
measure respgate "$port" "$gpid"
rg_ir=$(ir_of "$WORK/rg.out")
if [ -n "${KEEP_PROFILE:-}" ]; then
  mkdir -p "$KEEP_PROFILE"
  cp "$WORK/redis.out" "$KEEP_PROFILE/redis.out"
  cp "$WORK/rg.out" "$KEEP_PROFILE/respgate.out"
fi
echo "$MODE $TEST -P $P, $N requests:"
awk -v r="$redis_ir" -v g="$rg_ir" -v n="$N" 'BEGIN{printf "  redis-server %.0f instructions per command\n  respgate     %.0f instructions per command (%.2fx redis)\n", r/n, g/n, g/r}'
echo "respgate's top functions (self):"
callgrind_annotate "$WORK/rg.out" 2>/dev/null | sed -n '/file:function/,$p' | head -32
