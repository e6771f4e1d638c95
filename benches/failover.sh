#!/usr/bin/env bash
# Failover with Redis Sentinel: the time from `SENTINEL FAILOVER` to the first cross-node
# delivery after the switch, RUNS times (default 5), with min/median/max.
#
#   bash benches/failover.sh [RUNS]
#
# One master, one replica and three sentinels (as tests/util/sentinel.rs starts them: loopback,
# persistence off, down-after 1 s, failover-timeout 3 s), and two nodes started with
# `--cluster redis-sentinel://.../chat`. A peer on node A sends `bob: probe N` to a peer on node
# B every 2 ms throughout; a watcher polls a sentinel every 2 ms for the master's address. Per
# run: `SENTINEL FAILOVER chat` is sent (retried while the sentinels refuse it: a new failover
# of the same master waits twice the failover-timeout), then the figures are: the switch (the
# first poll that shows the new master) after the command; the first delivery of a probe sent
# after the switch, after the command and after the switch; and the longest gap between two
# deliveries around it (what a user saw as an outage), and the probes sent from the command to
# that delivery that never arrived (refused with `cluster unavailable`, or lost in the old
# master's pub/sub: docs/cluster.md). The failovers alternate between the two
# servers. Needs redis-server and python3; builds the release binary.
set -euo pipefail
runs=${1:-5}
cd "$(dirname "$0")/.."
cargo build --release -q
bin=target/release/a-chat
command -v redis-server > /dev/null || { echo "redis-server is missing: apt-get install -y redis-server" >&2; exit 1; }
. "$(dirname "$0")/nodes.sh"
free_port() { python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
wait_up() { for _ in $(seq 100); do redis-cli -p "$1" ping > /dev/null 2>&1 && return; sleep 0.05; done; echo "port $1 never answered" >&2; exit 1; }

quick=(--bind 127.0.0.1 --save '' --appendonly no --loglevel warning --dir "$tmp"
       --repl-diskless-sync-delay 0 --repl-diskless-load swapdb)
m=$(free_port); r=$(free_port)
redis-server --port "$m" "${quick[@]}" > /dev/null & pids+=($!)
wait_up "$m"
redis-server --port "$r" "${quick[@]}" --replicaof 127.0.0.1 "$m" > /dev/null & pids+=($!)
wait_up "$r"
sentinels=()
for i in 0 1 2; do
    p=$(free_port)
    cat > "$tmp/sentinel-$i.conf" <<CONF
port $p
bind 127.0.0.1
daemonize no
dir $tmp
loglevel warning
sentinel monitor chat 127.0.0.1 $m 2
sentinel down-after-milliseconds chat 1000
sentinel failover-timeout chat 3000
CONF
    redis-server "$tmp/sentinel-$i.conf" --sentinel > /dev/null & pids+=($!)
    wait_up "$p"
    sentinels+=("127.0.0.1:$p")
done
url="redis-sentinel://$(IFS=,; echo "${sentinels[*]}")/chat"
for _ in $(seq 200); do
    redis-cli -p "${sentinels[0]#*:}" sentinel ckquorum chat 2>/dev/null | grep -q "^OK 3" && break
    sleep 0.05
done
read -r n1 a1 < <(start_node "$tmp/n1" --cluster "$url"); pids+=($n1)
read -r n2 a2 < <(start_node "$tmp/n2" --cluster "$url"); pids+=($n2)
echo "nodes $a1 and $a2, $url"

python3 - "$a1" "$a2" "${sentinels[0]}" "$runs" <<'PY'
import socket, statistics, sys, threading, time

a, b, sentinel, runs = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
addr = lambda s: (s.rsplit(":", 1)[0], int(s.rsplit(":", 1)[1]))

def login(where, name):
    for _ in range(500):
        s = socket.create_connection(addr(where))
        f = s.makefile("rb")
        s.sendall(f"{name}\n{name}: in?\n".encode())
        if f.readline().decode().strip() == f"from {name}: in?":
            return s, f
        s.close()
        time.sleep(0.02)
    sys.exit(f"{name} could not log in at {where}")

def sentinel_says(command):
    with socket.create_connection(addr(sentinel)) as s:
        s.sendall(command.encode() + b"\r\n")
        return s.recv(4096).decode()

alice, alice_in = login(a, "alice")
bob, bob_in = login(b, "bob")
sent, received = {}, {}
lock = threading.Lock()

def receive():
    for line in bob_in:
        line = line.decode().strip()
        if line.startswith("from alice: probe "):
            n = int(line.rsplit(" ", 1)[1])
            with lock:
                received.setdefault(n, time.monotonic())

def drain():  # alice's notices (`error: cluster unavailable: bob`) are read and dropped
    for _ in alice_in:
        pass

def send():
    n = 0
    while True:
        n += 1
        with lock:
            sent[n] = time.monotonic()
        alice.sendall(f"bob: probe {n}\n".encode())
        time.sleep(0.002)

for worker in (receive, drain, send):
    threading.Thread(target=worker, daemon=True).start()

results = []
for run in range(runs):
    before = sentinel_says("SENTINEL get-master-addr-by-name chat").split()[-1]
    while True:
        t0 = time.monotonic()
        if sentinel_says("SENTINEL FAILOVER chat").startswith("+OK"):
            break
        time.sleep(0.1)
    while sentinel_says("SENTINEL get-master-addr-by-name chat").split()[-1] == before:
        time.sleep(0.002)
    switch = time.monotonic()
    while True:
        with lock:
            after = [received[n] for n in received if sent[n] > switch]
        if after:
            first = min(after)
            break
        time.sleep(0.002)
    time.sleep(0.5)
    with lock:
        times = sorted(t for t in received.values() if t0 <= t <= first + 0.5)
        lost = sum(1 for n, t in sent.items() if t0 <= t <= first and n not in received)
    gap = max((y - x for x, y in zip(times, times[1:])), default=0.0)
    results.append(first - t0)
    print(f"run {run + 1}: master port {before} -> switch {1000 * (switch - t0):.0f} ms after "
          f"SENTINEL FAILOVER; first delivery after the switch {1000 * (first - t0):.0f} ms after "
          f"the command, {1000 * (first - switch):.0f} ms after the switch; longest gap between "
          f"deliveries {1000 * gap:.0f} ms; probes lost {lost}", flush=True)

ms = sorted(1000 * r for r in results)
print(f"SENTINEL FAILOVER to the first cross-node delivery after the switch, {runs} runs: "
      f"min {ms[0]:.0f} ms, median {statistics.median(ms):.0f} ms, max {ms[-1]:.0f} ms")
PY
