#!/usr/bin/env bash
# The server's system calls and CPU time per delivery, for a-chat and for Redis pub/sub under
# the same workload, side by side in one run.
#
#   bash benches/syscalls.sh [ROUNDS] [A-CHAT-BINARY...]
#
# Workload (environment, defaults in brackets): CONNS [1000] connections, SENDERS [= CONNS] of
# them each sending MESSAGES [200] messages of BYTES [64] bytes to one random other connection
# (K=1), flat out; connect, login (subscribe) and disconnect included. Both servers are loaded
# by the same generator, `examples/pubsub_load.rs` (`chat` for a-chat; `redis` for Redis: RESP3,
# each connection subscribes to its own channel and publishes to the others'), which builds
# every message before it writes the first, so that the server sets the pace (`a-chat bench`
# does more per message: stamps, order checks). Each server is fresh per run, at its default log
# level (a-chat: `info`; Redis: `notice`), and counted from outside with
# `perf stat -e 'syscalls:sys_enter_*' -e task-clock -p PID` (`strace -c -f` where perf is
# missing: CPU figures are then meaningless). Rounds alternate the servers; each line is one
# run. Several a-chat binaries (a baseline copy and a new build) are run alternately too;
# without any, target/release/a-chat is built and used. Needs redis-server for the Redis rows
# (skipped, with a note, without it).
set -euo pipefail
rounds=${1:-3}
shift || true
cd "$(dirname "$0")/.."
conns=${CONNS:-1000} senders=${SENDERS:-${CONNS:-1000}} messages=${MESSAGES:-200} bytes=${BYTES:-64}
cargo build --release -q --example pubsub_load
bins=("$@")
if [ ${#bins[@]} -eq 0 ]; then
    cargo build --release -q
    bins=(target/release/a-chat)
fi
driver=target/release/examples/pubsub_load
tmp=$(mktemp -d)
pids=()
trap 'kill "${pids[@]}" 2>/dev/null; rm -rf "$tmp"' EXIT
tool=perf
command -v perf > /dev/null || tool=strace
command -v $tool > /dev/null || { echo "neither perf nor strace: apt-get install -y linux-perf strace" >&2; exit 1; }
free_port() { python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
fds() { ls "/proc/$1/fd" | wc -l; }

# Counts PID's system calls while the command after PID runs, then until PID holds no more
# descriptors than before it (the disconnects handled), and prints one line.
count() { # LABEL PID COMMAND...
    local label=$1 pid=$2; shift 2
    local before; before=$(fds "$pid")
    if [ $tool = perf ]; then
        perf stat -x, -e 'syscalls:sys_enter_*' -e task-clock -p "$pid" -o "$tmp/stat" &
    else
        strace -c -f -q -p "$pid" -o "$tmp/stat" &
    fi
    local counter=$!
    sleep 0.5 # perf and strace attach asynchronously
    "$@" > "$tmp/out"
    for _ in $(seq 100); do [ "$(fds "$pid")" -le "$before" ] && break; sleep 0.05; done
    kill -INT $counter; wait $counter || true
    local delivered
    delivered=$(grep -o '"delivered":[0-9]*' "$tmp/out" | head -1 | cut -d: -f2)
    [ "${delivered:-0}" -gt 0 ] || { echo "$label: nothing delivered" >&2; cat "$tmp/out" >&2; return 1; }
    if [ $tool = perf ]; then
        awk -F, -v label="$label" -v n="$delivered" '
            $3 ~ /syscalls:sys_enter_/ && $1 > 0 { sub("syscalls:sys_enter_", "", $3); c[$3] = $1; total += $1 }
            $3 == "task-clock" { cpu = $1 * 1000 }   # msec -> us
            END {
                printf "%-24s %8d deliveries  %6.3f syscalls/delivery  %5.2f us CPU/delivery  ", label, n, total / n, cpu / n
                m = 0; for (k in c) order[++m] = k
                for (i = 1; i <= m; i++) for (j = i + 1; j <= m; j++) if (c[order[j]] > c[order[i]]) { t = order[i]; order[i] = order[j]; order[j] = t }
                for (i = 1; i <= m && i <= 12; i++) printf "%s %d  ", order[i], c[order[i]]
                printf "\n"
            }' "$tmp/stat"
    else
        awk -v label="$label" -v n="$delivered" '
            $NF ~ /^[a-z_0-9]+$/ && $4 ~ /^[0-9]+$/ && $NF != "total" { c[$NF] = $4; total += $4 }
            END { printf "%-24s %8d deliveries  %6.3f syscalls/delivery  ", label, n, total / n
                  for (k in c) printf "%s %d  ", k, c[k]; printf "\n" }' "$tmp/stat"
    fi
}

achat() { # BINARY
    local bin=$1
    $bin server --listen 127.0.0.1:0 > "$tmp/listen" 2> /dev/null &
    local pid=$!; pids+=($pid)
    for _ in $(seq 200); do grep -q "listening on" "$tmp/listen" && break; sleep 0.05; done
    local addr; addr=$(awk '/listening on/ {print $3; exit}' "$tmp/listen")
    count "a-chat $(basename "$bin")" "$pid" $driver chat "$addr" "$conns" "$senders" "$messages" "$bytes"
    kill $pid; wait $pid 2> /dev/null || true
}

redis() {
    command -v redis-server > /dev/null || { echo "redis-server is missing (apt-get install -y redis-server): no Redis rows"; return 0; }
    local port; port=$(free_port)
    redis-server --port "$port" --bind 127.0.0.1 --save '' --appendonly no --maxclients 100000 \
        > /dev/null &
    local pid=$!; pids+=($pid)
    for _ in $(seq 100); do redis-cli -p "$port" ping > /dev/null 2>&1 && break; sleep 0.05; done
    count "redis $(redis-server --version | grep -o 'v=[0-9.]*')" "$pid" \
        $driver redis "127.0.0.1:$port" "$conns" "$senders" "$messages" "$bytes"
    kill $pid; wait $pid 2> /dev/null || true
}

echo "$conns connections, $senders senders x $messages messages of $bytes B, K=1, flat out; counted with $tool"
for _ in $(seq "$rounds"); do
    for bin in "${bins[@]}"; do achat "$bin"; done
    redis
done
