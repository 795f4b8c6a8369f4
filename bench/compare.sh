#!/usr/bin/env bash
# Side-by-side throughput on one machine, in one run, alternating targets round by round:
#   redis       redis-server, direct
#   fwd         respgate forwarding to that redis-server (standalone mode), default threads
#               (one per core but one, at least one: 1 on a 2-core machine, like
#               twemproxy's single event loop)
#   fwdcores    the same with [server] worker_threads = one per core (what the default
#               was until 2026-12-06)
#   twemproxy   twemproxy (Debian's nutcracker) forwarding to the same redis-server
#   rcproxy     rcproxy (crates.io clia-rcproxy 2.2.1, Rust) in its standalone proxy mode
#               (cache_type = "redis", one server, thread = 1), forwarding to the same
#               redis-server; build it with bench/build_other_proxy.sh
#   embedded    respgate's embedded engine (default config: one worker thread, as Redis)
# redis-benchmark SET GET INCR LPUSH MSET, -c clients, -P 1 and -P 16; prints the median
# ops/s of the rounds and each target's ratio to direct Redis.
# Usage: bench/compare.sh [requests=200000] [clients=50] [rounds=3]
# PLACEMENT=split runs every server (redis-server and each proxy) on CPU 0 and
# redis-benchmark on CPU 1 (taskset), instead of leaving placement to the scheduler: on a
# 2-core machine three busy processes otherwise move between the cores from run to run,
# and single runs land on different levels depending on where they fall (README "Speed").
# Split placement gives a proxy no spare core: it shares Redis's.
# Needs redis-server, redis-benchmark and nutcracker (apt-get install redis-server
# redis-tools nutcracker); twemproxy is skipped when nutcracker is missing, rcproxy when
# its binary is not found ($RCPROXY, else rcproxy on PATH, else where
# bench/build_other_proxy.sh installs it).
set -euo pipefail
cd "$(dirname "$0")/.."
N=${1:-200000}
C=${2:-50}
ROUNDS=${3:-3}
TESTS="set,get,incr,lpush,mset"
SERVER_CPU=()
CLIENT_CPU=()
if [ "${PLACEMENT:-}" = split ]; then
  SERVER_CPU=(taskset -c 0)
  CLIENT_CPU=(taskset -c 1)
fi
cargo build --release -q
# shellcheck source=bench/common.sh
. bench/common.sh
RP=$(free_port); FP=$(free_port); FCP=$(free_port); EP=$(free_port); TP=$(free_port); XP=$(free_port)
"${SERVER_CPU[@]}" redis-server --port "$RP" --bind 127.0.0.1 --save '' --appendonly no >/dev/null &
PIDS+=($!)
cat > "$WORK/fwd.toml" <<CONF
[server]
listen = "127.0.0.1:$FP"
metrics_listen = ""
[backend]
mode = "standalone"
address = "127.0.0.1:$RP"
CONF
"${SERVER_CPU[@]}" target/release/respgate --config "$WORK/fwd.toml" --log-level warn &
PIDS+=($!)
sed -e "s/:$FP\"/:$FCP\"/" -e "s/^metrics_listen = \"\"/metrics_listen = \"\"\nworker_threads = $(nproc)/" \
  "$WORK/fwd.toml" > "$WORK/fwdcores.toml"
"${SERVER_CPU[@]}" target/release/respgate --config "$WORK/fwdcores.toml" --log-level warn &
PIDS+=($!)
"${SERVER_CPU[@]}" target/release/respgate --listen "127.0.0.1:$EP" --metrics-listen "" --log-level warn &
PIDS+=($!)
TARGETS="redis:$RP fwd:$FP fwdcores:$FCP"
NUTCRACKER=$(command -v nutcracker || ls /usr/sbin/nutcracker 2>/dev/null || true)
if [ -n "$NUTCRACKER" ]; then
  cat > "$WORK/nutcracker.yml" <<CONF
bench:
  listen: 127.0.0.1:$TP
  hash: fnv1a_64
  distribution: ketama
  redis: true
  servers:
   - 127.0.0.1:$RP:1
CONF
  "${SERVER_CPU[@]}" "$NUTCRACKER" -c "$WORK/nutcracker.yml" -s "$(free_port)" -o "$WORK/nutcracker.log" &
  PIDS+=($!)
  TARGETS+=" twemproxy:$TP"
else
  echo "twemproxy skipped: nutcracker not found (apt-get install nutcracker)" >&2
fi
RCPROXY=${RCPROXY:-$(command -v rcproxy || true)}
RCPROXY=${RCPROXY:-${RCPROXY_ROOT:-${XDG_CACHE_HOME:-$HOME/.cache}/respgate-bench/rcproxy}/bin/rcproxy}
if [ -x "$RCPROXY" ]; then
  cat > "$WORK/rcproxy.toml" <<CONF
[log]
level = "libaster=warn"
ansi = false
stdout = false
directory = "$WORK"
file_name = "rcproxy.log"
[metrics]
port = $(free_port)
[[clusters]]
name = "bench"
listen_addr = "127.0.0.1:$XP"
cache_type = "redis"
servers = ["127.0.0.1:$RP:1 redis-1"]
thread = 1
read_timeout = 2000
write_timeout = 2000
ping_fail_limit = 0
auth = ""
CONF
  "${SERVER_CPU[@]}" "$RCPROXY" "$WORK/rcproxy.toml" >"$WORK/rcproxy.out" 2>&1 &
  PIDS+=($!)
  TARGETS+=" rcproxy:$XP"
else
  echo "rcproxy skipped: $RCPROXY not found (bench/build_other_proxy.sh builds it)" >&2
fi
TARGETS+=" embedded:$EP"
sleep 1
declare -A results
for round in $(seq "$ROUNDS"); do
  for P in 1 16; do
    for target in $TARGETS; do
      name=${target%%:*}; port=${target##*:}
      while IFS=, read -r test rps _ _ p50 _ p99 _; do
        test=${test//\"/}; rps=${rps//\"/}; p50=${p50//\"/}; p99=${p99//\"/}
        results["$name|$P|$test"]+="$rps "
        results["$name|$P|$test|p50"]+="$p50 "
        results["$name|$P|$test|p99"]+="$p99 "
      done < <("${CLIENT_CPU[@]}" redis-benchmark -p "$port" -n "$N" -c "$C" -P "$P" -t "$TESTS" --csv 2>/dev/null | tail -n +2)
    done
  done
done
median() { tr ' ' '\n' | grep -v '^$' | sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
names=()
for target in $TARGETS; do names+=("${target%%:*}"); done
printf '%-6s %-3s' test P
for n in "${names[@]}"; do printf ' %12s' "$n"; done
for n in "${names[@]:1}"; do printf ' %10s' "$n/redis"; done
printf ' %16s\n' "GET p50/p99 ms"
for P in 1 16; do
  for t in SET GET INCR "LPUSH (needed to benchmark LPOP)" LPUSH "MSET (10 keys)"; do
    r=${results["redis|$P|$t"]:-}
    [ -z "$r" ] && continue
    rm=$(echo "$r" | median)
    printf '%-6s %-3s' "${t%% *}" "$P"
    for n in "${names[@]}"; do
      v=${results["$n|$P|$t"]:-}
      printf ' %12s' "$( [ -n "$v" ] && echo "$v" | median || echo -)"
    done
    for n in "${names[@]:1}"; do
      v=${results["$n|$P|$t"]:-}
      gm=$( [ -n "$v" ] && echo "$v" | median || echo 0)
      printf ' %10s' "$(awk -v a="$gm" -v b="$rm" 'BEGIN { if (b > 0 && a > 0) printf "%.2f", a / b; else print "-" }')"
    done
    if [ "${t%% *}" = GET ]; then
      lat=""
      for n in "${names[@]}"; do
        lat+="$n $(echo "${results["$n|$P|$t|p50"]}" | median)/$(echo "${results["$n|$P|$t|p99"]}" | median) "
      done
      printf '  %s' "$lat"
    fi
    printf '\n'
  done
done
# Each round's own ratio to that round's direct Redis (rounds alternate targets, so a
# ratio's spread across rounds shows how much of a median's distance from a target is
# the machine's noise).
printf '\nPer-round ratios to direct Redis (round 1, 2, ...):\n'
for P in 1 16; do
  for t in SET GET INCR "LPUSH (needed to benchmark LPOP)" LPUSH "MSET (10 keys)"; do
    r=${results["redis|$P|$t"]:-}
    [ -z "$r" ] && continue
    printf '%-6s %-3s' "${t%% *}" "$P"
    for n in "${names[@]:1}"; do
      v=${results["$n|$P|$t"]:-}
      printf '  %s %s' "$n" "$(awk -v a="$v" -v b="$r" 'BEGIN {
        na = split(a, x, " "); nb = split(b, y, " "); out = "";
        for (i = 1; i <= na && i <= nb; i++) out = out (i > 1 ? "/" : "") (y[i] > 0 ? sprintf("%.2f", x[i] / y[i]) : "-");
        print (out == "" ? "-" : out) }')"
    done
    printf '\n'
  done
done
