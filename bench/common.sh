# Shared by the bench/ scripts (sourced after `cd` to the repository root): free loopback
# ports, waiting for a server, and a scratch directory plus the started servers, both
# cleaned up on exit (servers stopped by pid).
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
# Waits up to 30 s for a Redis-protocol server on port $1 to answer PING.
wait_up() { for _ in $(seq 150); do redis-cli -p "$1" ping >/dev/null 2>&1 && return; sleep 0.2; done; }
WORK=$(mktemp -d)
# Append the pid of every server started: they are stopped on exit.
PIDS=()
trap 'kill "${PIDS[@]}" 2>/dev/null || true; rm -rf "$WORK"' EXIT
