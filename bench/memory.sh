#!/usr/bin/env bash
# Memory figures of issue 7, measured on this machine:
#   1. 10 000 idle client connections (each did one PING): respgate's RSS growth per
#      connection, embedded and forwarding (target <= 32 KiB each).
#   2. 1 000 000 keys (SET key:N value-NNNNNNNNNN) in the embedded engine and in redis-server:
#      INFO used_memory and RSS of both (target: respgate within 1.5x).
# Usage: bench/memory.sh   (needs redis-server, redis-cli, python3; ulimit -n >= 10100)
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release -q
ulimit -n 20000 2>/dev/null || true
# shellcheck source=bench/common.sh
. bench/common.sh
RP=$(free_port)
redis-server --port "$RP" --bind 127.0.0.1 --save '' --appendonly no >/dev/null &
PIDS+=($!)
cat > "$WORK/idle.py" <<'PY'
import socket, sys, time
port, pid, n = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
def rss():
    for line in open(f"/proc/{pid}/status"):
        if line.startswith("VmRSS"):
            return int(line.split()[1])
base = rss()
socks = [socket.create_connection(("127.0.0.1", port)) for _ in range(n)]
for s in socks:
    s.sendall(b"*1\r\n$4\r\nPING\r\n")
for s in socks:
    s.recv(64)
time.sleep(1)
after = rss()
print(f"  {n} idle connections: RSS {base} -> {after} KiB = {(after - base) / n:.1f} KiB each")
PY
for mode in embedded forwarding; do
  port=$(free_port)
  {
    printf '[server]\nlisten = "127.0.0.1:%s"\nmetrics_listen = ""\nmax_clients = 12000\n' "$port"
    [ "$mode" = forwarding ] && printf '[backend]\nmode = "standalone"\naddress = "127.0.0.1:%s"\n' "$RP"
  } > "$WORK/$mode.toml"
  target/release/respgate --config "$WORK/$mode.toml" --log-level error &
  pid=$!
  PIDS+=($pid)
  sleep 0.5
  echo "$mode:"
  python3 "$WORK/idle.py" "$port" "$pid" 10000
  kill "$pid"
done
python3 - > "$WORK/1m.resp" <<'PY'
import sys
out = sys.stdout.buffer
for i in range(1000000):
    k = b"key:%d" % i
    v = b"value-%010d" % i
    out.write(b"*3\r\n$3\r\nSET\r\n$%d\r\n%s\r\n$%d\r\n%s\r\n" % (len(k), k, len(v), v))
PY
EP=$(free_port)
target/release/respgate --listen "127.0.0.1:$EP" --metrics-listen "" --log-level error &
EPID=$!
PIDS+=($EPID)
sleep 0.5
RPID=$(pgrep -f "redis-server.*:$RP" | head -1)
echo "1 000 000 keys:"
for t in "redis-server:$RP:$RPID" "respgate-embedded:$EP:$EPID"; do
  IFS=: read -r name port pid <<<"$t"
  redis-cli -p "$port" --pipe < "$WORK/1m.resp" >/dev/null
  used=$(redis-cli -p "$port" info memory | awk -F: '/^used_memory:/ {print $2}' | tr -d '\r')
  rss=$(awk '/VmRSS/ {print $2}' "/proc/$pid/status")
  echo "  $name: used_memory $used bytes, RSS $rss KiB"
  eval "USED_${name//-/_}=$used; RSS_${name//-/_}=$rss"
done
awk -v a="$USED_respgate_embedded" -v b="$USED_redis_server" -v c="$RSS_respgate_embedded" -v d="$RSS_redis_server" \
  'BEGIN { printf "  respgate / redis: used_memory %.2fx, RSS %.2fx\n", a / b, c / d }'
