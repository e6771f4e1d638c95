#!/usr/bin/env bash
# The latency-throughput sweep, repeated, side by side with the async-std tutorial's server:
# each round runs `a-chat bench --sweep` against a fresh a-chat server and then against a fresh
# tutorial server, then it prints the spread over the rounds (min / median / max of each rate's
# p99, the sustained rate, the server's CPU per delivery) and draws every run in one plot.
#
#   bash benches/sweep.sh [ROUNDS] [OUTDIR]     # defaults: 3, sweep-runs
#
# Environment: TUTORIAL, the tutorial's binary (benches/tutorial.sh builds it; without it only
# a-chat is swept); RATES (default 1000,32000,64000,128000,192000,256000,384000); CONNS (1000);
# A_CHAT, the server binary to sweep (default target/release/a-chat, built); LOCK, a file that
# each sweep is run under `flock` on, so that a shared machine is quiet for each one and free
# between them. The JSON of each run and sweep.svg are left in OUTDIR.
set -euo pipefail
rounds=${1:-3}
out=${2:-sweep-runs}
cd "$(dirname "$0")/.."
rates=${RATES:-1000,32000,64000,128000,192000,256000,384000}
conns=${CONNS:-1000}
if [ -z "${A_CHAT:-}" ]; then cargo build --release -q; fi
bin=${A_CHAT:-target/release/a-chat}
mkdir -p "$out"
pids=()
trap 'kill "${pids[@]}" 2>/dev/null || true' EXIT
locked() { if [ -n "${LOCK:-}" ]; then flock "$LOCK" "$@"; else "$@"; fi; }
free_port() { python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }

sweep() { # LABEL JSON ADDR PID
    $bin bench -q --addr "$3" --conns "$conns" --sweep --rates "$rates" --server-pid "$4" \
        --label "$1" --json > "$2" || true # a saturated or failed step still writes its JSON
}
one_achat() { # ROUND
    $bin server --listen 127.0.0.1:0 -q > "$out/listen" &
    local pid=$!; pids+=($pid)
    for _ in $(seq 200); do grep -q "listening on" "$out/listen" && break; sleep 0.05; done
    sweep "a-chat $1" "$out/a-chat-$1.json" "$(awk '/listening on/ {print $3; exit}' "$out/listen")" $pid
    kill $pid; wait $pid 2> /dev/null || true
}
one_tutorial() { # ROUND
    local port; port=$(free_port)
    "$TUTORIAL" server "127.0.0.1:$port" > /dev/null 2>&1 &
    local pid=$!; pids+=($pid)
    for _ in $(seq 200); do (exec 3<> "/dev/tcp/127.0.0.1/$port") 2> /dev/null && break; sleep 0.05; done
    sweep "tutorial $1" "$out/tutorial-$1.json" "127.0.0.1:$port" $pid
    kill $pid; wait $pid 2> /dev/null || true
}

for round in $(seq "$rounds"); do
    locked bash -c "$(declare -f sweep one_achat); bin=$bin out=$out conns=$conns rates=$rates; one_achat $round"
    if [ -n "${TUTORIAL:-}" ]; then
        locked bash -c "$(declare -f sweep free_port one_tutorial); bin=$bin out=$out conns=$conns rates=$rates TUTORIAL=$TUTORIAL; one_tutorial $round"
    fi
done

# The spread: per server and offered rate, p99 in ms (min / median / max over the rounds).
for server in a-chat tutorial; do
    ls "$out/$server"-*.json > /dev/null 2>&1 || continue
    echo "$server, $rounds rounds: p99 ms min/median/max per offered rate; sustained rate; CPU us per delivery"
    jq -s -r '
        def med: sort | .[(length - 1) / 2 | floor];
        def mmm: "\(min)/\(med)/\(max)";
        ([.[].steps[]] | group_by(.offered_per_sec)[] |
            "  \(.[0].offered_per_sec | floor)/s: p99 \([.[].latency_us_p99 / 1000 | . * 100 | round / 100] | mmm) ms over \(length) runs, CPU \([.[].server_cpu_us_per_delivery // 0 | . * 100 | round / 100] | mmm) us"),
        "  sustained (p99 <= limit, 90% delivered): \([.[].sustained_per_sec // 0] | mmm)/s"' \
        "$out/$server"-*.json
done
plots=()
for f in "$out"/*-*.json; do plots+=(--from "$f"); done
$bin bench --plot "$out/sweep.svg" "${plots[@]}"
echo "plot: $out/sweep.svg"
