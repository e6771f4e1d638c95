#!/usr/bin/env bash
# The cost of a cross-node delivery against a local one, side by side in one run.
#
#   bash benches/cluster.sh [ROUNDS]
#
# Per round and fan-out (K=1, K=8), 1,000 connections flat out: one node alone, then two
# nodes and one Redis with every message crossing (`a-chat bench --cross-node`). CPU per
# delivery is read by the bench from /proc for every process given with --server-pid: the
# node, or both nodes and Redis together. Then low load (2,000 messages/s, open loop, K=1):
# latency percentiles on one node and across two. Needs redis-server on PATH; builds the
# release binary.
set -euo pipefail
rounds=${1:-3}
cd "$(dirname "$0")/.."
cargo build --release -q
bin=target/release/a-chat
command -v redis-server > /dev/null || { echo "redis-server is missing: apt-get install -y redis-server" >&2; exit 1; }
. "$(dirname "$0")/nodes.sh"
run() { # LABEL K MESSAGES BENCH-ARGS...
    local label=$1 k=$2 messages=$3; shift 3
    local json
    json=$($bin bench -q --json --conns 1000 --messages "$messages" --fanout "$k" "$@")
    printf '%-12s K=%s  %9.0f deliveries/s  lost %s  %5.2f us CPU/delivery\n' "$label" "$k" \
        "$(echo "$json" | field delivered_per_sec)" "$(echo "$json" | field lost)" \
        "$(echo "$json" | field server_cpu_us_per_delivery)"
}

port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
read -r redis < <(start_redis "$port"); pids+=($redis)
read -r solo solo_addr < <(start_node "$tmp/solo"); pids+=($solo)
read -r n1 a1 < <(start_node "$tmp/n1" --cluster "$(redis_url "$port")"); pids+=($n1)
read -r n2 a2 < <(start_node "$tmp/n2" --cluster "$(redis_url "$port")"); pids+=($n2)
latency() { # LABEL BENCH-ARGS...
    local label=$1; shift
    local json
    json=$($bin bench -q --json --conns 1000 --messages 10 --rate 2000 "$@")
    printf '%-12s 2000/s  lost %s  latency p50 %s us  p99 %s us  p99.9 %s us  max %s us\n' "$label" \
        "$(echo "$json" | field lost)" "$(echo "$json" | field latency_us_p50)" \
        "$(echo "$json" | field latency_us_p99)" "$(echo "$json" | field latency_us_p999)" \
        "$(echo "$json" | field latency_us_max)"
}

for round in $(seq "$rounds"); do
    echo "round $round"
    for k in 1 8; do
        messages=$((2400 / (k + 2)))
        run "one node" $k $messages --addr "$solo_addr" --server-pid "$solo"
        run "cross-node" $k $messages --addr "$a1" --addr "$a2" --cross-node \
            --server-pid "$n1" --server-pid "$n2" --server-pid "$redis"
    done
    latency "one node" --addr "$solo_addr"
    latency "cross-node" --addr "$a1" --addr "$a2" --cross-node
done
