#!/usr/bin/env bash
# Four nodes on this machine, 19,000 idle peers each, one Redis.
#
#   bash benches/cluster_scale.sh [PEERS-PER-NODE]
#
# Starts Redis and four nodes, logs PEERS-PER-NODE peers into each with four `a-chat bench
# --idle` processes (distinct --prefix), then reports: Redis's memory per name (INFO memory,
# before and after), the nodes' CPU over 10 idle seconds (5 s after the last login), and whether a message crosses between
# every pair of nodes. Needs redis-server and python3; builds the release binary.
set -euo pipefail
per_node=${1:-19000}
cd "$(dirname "$0")/.."
cargo build --release -q
bin=target/release/a-chat
command -v redis-server > /dev/null || { echo "redis-server is missing: apt-get install -y redis-server" >&2; exit 1; }
# 4 x 19,000 connections from 127.0.0.1: with Linux's default ephemeral range (32768-60999,
# whose even half connect() scans first) the generators' connect() calls, not the nodes, would
# set the pace. Widen it where allowed.
range=net.ipv4.ip_local_port_range
if [ "$(sysctl -n $range | awk '{print $2 - $1}')" -lt 60000 ]; then
    sysctl -qw "$range=1024 65535" 2> /dev/null || echo "note: cannot widen $range; connects may be slow" >&2
fi
. "$(dirname "$0")/nodes.sh"

port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
read -r redis < <(start_redis "$port"); pids+=($redis)
addrs=(); nodes=()
for i in 0 1 2 3; do
    $bin server --listen 127.0.0.1:0 -q --cluster "$(redis_url "$port")" > "$tmp/node$i" &
    nodes+=($!); pids+=($!)
done
for i in 0 1 2 3; do
    for _ in $(seq 200); do grep -q "listening on" "$tmp/node$i" && break; sleep 0.05; done
    addrs+=("$(awk '/listening on/ {print $3; exit}' "$tmp/node$i")")
done
used() { redis_cli -p "$port" info memory | awk -F: '/^used_memory:/ {print $2}' | tr -d '\r'; }
sleep 0.5
before=$(used)
start=$(date +%s.%N)
for i in 0 1 2 3; do
    $bin bench -q --idle --conns "$per_node" --hold 60 --prefix "n${i}p" --addr "${addrs[$i]}" \
        --timeout 120 > "$tmp/bench$i" 2>&1 &
    pids+=($!)
done
want=$((4 * per_node))
while [ "$(redis_cli -p "$port" eval "return #redis.call('KEYS', 'a-chat:name:*')" 0)" -lt "$want" ]; do
    sleep 0.5; [ -n "${DEBUG:-}" ] && redis_cli -p "$port" eval "return #redis.call('KEYS', 'a-chat:name:*')" 0 >&2
    if (( $(echo "$(date +%s.%N) - $start > 100" | bc) )); then echo "not all logged in" >&2; exit 1; fi
done
echo "$want peers logged in on 4 nodes in $(echo "$(date +%s.%N) - $start" | bc | cut -c1-5) s"
after=$(used)
echo "Redis used_memory: $before B before, $after B after: $(( (after - before) / want )) B per name"
ticks() { local sum=0; for p in "${nodes[@]}"; do sum=$((sum + $(awk '{print $14 + $15}' "/proc/$p/stat"))); done; echo $sum; }
sleep 5 # the last logins settle
t0=$(ticks); sleep 10; t1=$(ticks)
echo "the 4 nodes' CPU over 10 idle seconds: $(( (t1 - t0) * 10 )) ms together"
python3 - "${addrs[@]}" <<'PY'
import socket, sys
addrs = [a.rsplit(":", 1) for a in sys.argv[1:]]
peers = []
for i, (host, port) in enumerate(addrs):
    s = socket.create_connection((host, int(port)), timeout=10)
    s.sendall(f"x{i}\n".encode())
    peers.append((s, s.makefile("r")))
ok = 0
for i, (s, _) in enumerate(peers):
    others = [f"x{j}" for j in range(len(peers)) if j != i]
    s.sendall(f"{', '.join(others)}: hello from node {i}\n".encode())
    for j, (_, f) in enumerate(peers):
        if j != i:
            line = f.readline().strip()
            assert line == f"from x{i}: hello from node {i}", line
            ok += 1
print(f"{ok} of {len(peers) * (len(peers) - 1)} node-to-node messages crossed")
PY
