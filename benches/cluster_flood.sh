#!/usr/bin/env bash
# One peer flooding the link to Redis with lookups, against the other peers' cross-node
# latency (issue 17, item 7).
#
#   bash benches/cluster_flood.sh [BINARY] [SECONDS]
#
# Two nodes and one Redis. The flooder, on node A, sends lines of about 8 KB naming 1,600
# distinct names nobody holds (200 different sets, in turn) as fast as it can, and reads its
# notices. Meanwhile `a-chat bench --cross-node` measures 100 other peers (half on each node)
# at 1,000 messages/s for SECONDS, every message crossing nodes: once without the flooder,
# once with it. Needs redis-server and python3 on PATH; BINARY defaults to the release build.
set -euo pipefail
cd "$(dirname "$0")/.."
bin=${1:-target/release/a-chat}
seconds=${2:-10}
. "$(dirname "$0")/nodes.sh"
latency() { # LABEL
    local json
    json=$($bin bench -q --json --addr "$a" --addr "$b" --cross-node --conns 100 \
        --messages $((seconds * 10)) --rate 1000 --prefix "$1")
    printf '%-14s lost %s  latency p50 %s us  p99 %s us  p99.9 %s us  max %s us\n' "$1" \
        "$(echo "$json" | field lost)" "$(echo "$json" | field latency_us_p50)" \
        "$(echo "$json" | field latency_us_p99)" "$(echo "$json" | field latency_us_p999)" \
        "$(echo "$json" | field latency_us_max)"
}

port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
read -r redis < <(start_redis "$port"); pids+=($redis)
read -r n1 a < <(start_node "$tmp/a" --cluster "$(redis_url "$port")"); pids+=($n1)
read -r n2 b < <(start_node "$tmp/b" --cluster "$(redis_url "$port")"); pids+=($n2)
sleep 0.5

latency quiet
python3 - "$a" > "$tmp/flood" <<'EOF' &
import random, socket, sys, threading, time
host, port = sys.argv[1].rsplit(":", 1)
s = socket.create_connection((host, int(port)))
s.sendall(b"flooder\n")
got = [0]
def drain():
    while True:
        data = s.recv(1 << 16)
        if not data:
            return
        got[0] += data.count(b"\n")
threading.Thread(target=drain, daemon=True).start()
alphabet = "abcdefghijklmnopqrstuvwxyz0123456789"
rng = random.Random(1)
# Made up front, so that the reader thread is not starved of the interpreter's lock.
batch = []
for _ in range(200):
    names = set()
    while len(names) < 1600:
        names.add("".join(rng.choice(alphabet) for _ in range(4)))
    batch.append((",".join(names) + ": " + "x" * 100 + "\n").encode())
lines = 0
start = time.time()
while True:
    s.sendall(batch[lines % len(batch)])
    lines += 1
    if lines % 50 == 0:
        print(f"{lines} lines sent, {got[0]} lines received, {time.time() - start:.1f} s", flush=True)
EOF
pids+=($!)
sleep 1
latency flooded
tail -1 "$tmp/flood"
