#!/usr/bin/env bash
# The cost of TLS to Redis per cross-node delivery: two nodes over `redis://` against two
# nodes over `rediss://`, the same Redis (one plain port, one TLS port), side by side in one run.
#
#   bash benches/cluster_tls.sh [ROUNDS]
#
# Per round, K=1, 1,000 connections flat out, every message crossing (`a-chat bench
# --cross-node`); CPU per delivery is read from /proc for both nodes and Redis together. Redis
# runs as deployed: the default user off, the nodes under the README's ACL rule. The
# certificates (a CA, Redis's for 127.0.0.1) are made with openssl in a scratch directory.
# Needs redis-server (built with TLS, as Debian's is) and openssl; builds the release binary.
set -euo pipefail
rounds=${1:-3}
cd "$(dirname "$0")/.."
cargo build --release -q
bin=target/release/a-chat
for tool in redis-server openssl; do
    command -v $tool > /dev/null || { echo "$tool is missing: apt-get install -y $tool" >&2; exit 1; }
done
. "$(dirname "$0")/nodes.sh"
free_port() { python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }

openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 1 -subj /CN=bench-ca \
    -keyout "$tmp/ca.key" -out "$tmp/ca.pem" 2> /dev/null
openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj /CN=127.0.0.1 \
    -keyout "$tmp/redis.key" -out "$tmp/redis.csr" 2> /dev/null
printf 'subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\n' > "$tmp/ext"
openssl x509 -req -in "$tmp/redis.csr" -CA "$tmp/ca.pem" -CAkey "$tmp/ca.key" -CAcreateserial \
    -days 1 -extfile "$tmp/ext" -out "$tmp/redis.pem" 2> /dev/null

password=bench-pw
acl="resetkeys ~a-chat:node:* ~a-chat:name:* ~a-chat:cluster ~a-chat:recovering resetchannels &a-chat:to:* -@all +hello +script|load +evalsha +subscribe +publish +del +exists +set +get +mget +pttl"
port=$(free_port); tls_port=$(free_port)
# shellcheck disable=SC2086 # the rule is split into redis-server's arguments on purpose
redis-server --port "$port" --tls-port "$tls_port" --bind 127.0.0.1 --save '' --appendonly no \
    --loglevel warning --tls-cert-file "$tmp/redis.pem" --tls-key-file "$tmp/redis.key" \
    --tls-ca-cert-file "$tmp/ca.pem" --tls-auth-clients no \
    --user default off --user a-chat on ">$password" $acl \
    --user admin on '>admin-pw' '~*' '&*' +@all > /dev/null &
redis=$!; pids+=($redis)
for _ in $(seq 100); do
    redis-cli -p "$port" --user admin --pass admin-pw --no-auth-warning ping > /dev/null 2>&1 && break
    sleep 0.05
done
plain="redis://a-chat:$password@127.0.0.1:$port"
tls="rediss://a-chat:$password@127.0.0.1:$tls_port"
read -r p1 pa1 < <(start_node "$tmp/p1" --cluster "$plain"); pids+=($p1)
read -r p2 pa2 < <(start_node "$tmp/p2" --cluster "$plain"); pids+=($p2)
read -r t1 ta1 < <(start_node "$tmp/t1" --cluster "$tls" --cluster-ca "$tmp/ca.pem"); pids+=($t1)
read -r t2 ta2 < <(start_node "$tmp/t2" --cluster "$tls" --cluster-ca "$tmp/ca.pem"); pids+=($t2)
run() { # LABEL NODE-PID NODE-PID BENCH-ARGS...
    local label=$1 n1=$2 n2=$3; shift 3
    local json
    json=$($bin bench -q --json --conns 1000 --messages 800 --fanout 1 --cross-node \
        --server-pid "$n1" --server-pid "$n2" --server-pid "$redis" "$@")
    printf '%-10s K=1  %9.0f deliveries/s  lost %s  %5.2f us CPU/delivery\n' "$label" \
        "$(echo "$json" | field delivered_per_sec)" "$(echo "$json" | field lost)" \
        "$(echo "$json" | field server_cpu_us_per_delivery)"
}
for round in $(seq "$rounds"); do
    echo "round $round"
    run "redis://" "$p1" "$p2" --addr "$pa1" --addr "$pa2"
    run "rediss://" "$t1" "$t2" --addr "$ta1" --addr "$ta2"
done
