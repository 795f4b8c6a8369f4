#!/usr/bin/env bash
# Side-by-side throughput: redis-server direct vs respgate's embedded engine, same machine,
# same run, alternating targets. Prints ops/s medians of 3 rounds and the ratio to Redis.
# Usage: bench/compare.sh [requests=200000] [clients=50]
# Needs redis-server and redis-benchmark (scripts/test.sh installs them).
set -euo pipefail
cd "$(dirname "$0")/.."
N=${1:-200000}
C=${2:-50}
TESTS="set,get,incr,lpush,mset"
cargo build --release -q
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
RP=$(free_port); GP=$(free_port)
redis-server --port "$RP" --bind 127.0.0.1 --save '' --appendonly no >/dev/null &
RPID=$!
target/release/respgate --listen "127.0.0.1:$GP" --metrics-listen "" --log-level warn &
GPID=$!
trap 'kill $RPID $GPID 2>/dev/null || true' EXIT
sleep 1
declare -A results
for round in 1 2 3; do
  for P in 1 16; do
    for target in redis:$RP respgate:$GP; do
      name=${target%%:*}; port=${target##*:}
      while IFS=, read -r test rps _; do
        test=${test//\"/}; rps=${rps//\"/}
        results["$name|$P|$test"]+="$rps "
      done < <(redis-benchmark -p "$port" -n "$N" -c "$C" -P "$P" -t "$TESTS" --csv | tail -n +2)
    done
  done
done
median() { tr ' ' '\n' | grep -v '^$' | sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
printf '%-8s %-4s %14s %14s %8s\n' test P redis_ops_s respgate_ops_s ratio
for P in 1 16; do
  for t in SET GET INCR "LPUSH (needed to benchmark LPOP)" LPUSH "MSET (10 keys)"; do
    r=${results["redis|$P|$t"]:-}; g=${results["respgate|$P|$t"]:-}
    [ -z "$r" ] && continue
    rm=$(echo "$r" | median); gm=$(echo "$g" | median)
    ratio=$(awk -v a="$gm" -v b="$rm" 'BEGIN { if (b > 0) printf "%.2f", a / b; else print "-" }')
    printf '%-8s %-4s %14s %14s %8s\n' "${t%% *}" "$P" "$rm" "$gm" "$ratio"
  done
done
