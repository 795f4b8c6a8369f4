#!/usr/bin/env bash
# What the Prometheus metrics cost per command: respgate with metrics on (a /metrics
# listener, scraped every second as Prometheus would) against the same build with metrics
# off (metrics_listen = ""), both embedded and forwarding to one redis-server, measured in
# one run on one machine.
#   1. Throughput: redis-benchmark GET/SET -c 50 at -P 1 and -P 16, targets alternating
#      round by round; medians and the on/off ratio.
#   2. Instructions (callgrind): the same fixed workload against each variant of the
#      embedded engine under valgrind; instruction counts do not depend on what else the
#      machine is doing, so this is the stable figure on a noisy machine.
# Usage: bench/metrics_overhead.sh [requests=200000] [rounds=5] [callgrind_requests=20000]
set -euo pipefail
cd "$(dirname "$0")/.."
N=${1:-200000}
ROUNDS=${2:-5}
CG_N=${3:-20000}
cargo build --release -q
# shellcheck source=bench/common.sh
. bench/common.sh
RP=$(free_port)
redis-server --port "$RP" --bind 127.0.0.1 --save '' --appendonly no >/dev/null &
PIDS+=($!)
declare -A PORT METRICS
start() { # name mode metrics(on|off)
  local name=$1 mode=$2 m=$3 port mport=""
  port=$(free_port)
  [ "$m" = on ] && mport="127.0.0.1:$(free_port)"
  {
    printf '[server]\nlisten = "127.0.0.1:%s"\nmetrics_listen = "%s"\n' "$port" "$mport"
    if [ "$mode" = fwd ]; then printf '[backend]\nmode = "standalone"\naddress = "127.0.0.1:%s"\n' "$RP"; fi
  } > "$WORK/$name.toml"
  target/release/respgate --config "$WORK/$name.toml" --log-level warn &
  PIDS+=($!)
  PORT[$name]=$port
  METRICS[$name]=$mport
}
start emb_on embedded on
start emb_off embedded off
start fwd_on fwd on
start fwd_off fwd off
sleep 1
# Prometheus-like scraping of the "on" variants while they are measured.
( while true; do
    for n in emb_on fwd_on; do curl -s "http://${METRICS[$n]}/metrics" >/dev/null || true; done
    sleep 1
  done ) &
PIDS+=($!)
declare -A results
for round in $(seq "$ROUNDS"); do
  for P in 1 16; do
    for name in emb_on emb_off fwd_on fwd_off; do
      while IFS=, read -r test rps _; do
        test=${test//\"/}; rps=${rps//\"/}
        results["$name|$P|$test"]+="$rps "
      done < <(redis-benchmark -p "${PORT[$name]}" -n "$N" -c 50 -P "$P" -t get,set --csv 2>/dev/null | tail -n +2)
    done
  done
done
median() { tr ' ' '\n' | grep -v '^$' | sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
echo "throughput (median of $ROUNDS rounds, ops/s)"
printf '%-5s %-3s %12s %12s %8s %12s %12s %8s\n' test P emb_on emb_off on/off fwd_on fwd_off on/off
for P in 1 16; do
  for t in SET GET; do
    eon=$(echo "${results["emb_on|$P|$t"]}" | median); eoff=$(echo "${results["emb_off|$P|$t"]}" | median)
    fon=$(echo "${results["fwd_on|$P|$t"]}" | median); foff=$(echo "${results["fwd_off|$P|$t"]}" | median)
    printf '%-5s %-3s %12s %12s %8s %12s %12s %8s\n' "$t" "$P" "$eon" "$eoff" \
      "$(awk -v a="$eon" -v b="$eoff" 'BEGIN{printf "%.3f", a/b}')" "$fon" "$foff" \
      "$(awk -v a="$fon" -v b="$foff" 'BEGIN{printf "%.3f", a/b}')"
  done
done
if command -v valgrind >/dev/null; then
  echo
  echo "instructions (callgrind, embedded, $CG_N SET + $CG_N GET at -P 16; collected only"
  echo "while the benchmark runs, so start-up and shutdown are not counted)"
  for m in on off; do
    port=$(free_port); mport=""
    [ "$m" = on ] && mport="127.0.0.1:$(free_port)"
    printf '[server]\nlisten = "127.0.0.1:%s"\nmetrics_listen = "%s"\n' "$port" "$mport" > "$WORK/cg_$m.toml"
    valgrind --tool=callgrind --instr-atstart=no --callgrind-out-file="$WORK/cg_$m.out" \
      target/release/respgate --config "$WORK/cg_$m.toml" --log-level warn 2>/dev/null &
    pid=$!
    for _ in $(seq 100); do redis-cli -p "$port" ping >/dev/null 2>&1 && break; sleep 0.2; done
    callgrind_control -i on "$pid" >/dev/null 2>&1
    redis-benchmark -p "$port" -n "$CG_N" -c 10 -P 16 -t set,get -q >/dev/null 2>&1
    callgrind_control -i off "$pid" >/dev/null 2>&1
    kill -INT "$pid"; wait "$pid" 2>/dev/null || true
    ir=$(callgrind_annotate "$WORK/cg_$m.out" 2>/dev/null | awk '/PROGRAM TOTALS/ {gsub(",", "", $1); print $1}')
    echo "metrics $m: $ir instructions ($(awk -v i="$ir" -v n="$CG_N" 'BEGIN{printf "%.0f", i/(2*n)}') per command)"
    eval "IR_$m=$ir"
  done
  awk -v a="$IR_on" -v b="$IR_off" 'BEGIN{printf "metrics cost: %.2f%% more instructions per command\n", (a/b-1)*100}'
fi
