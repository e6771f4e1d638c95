# Shared by the cluster bench scripts (sourced, not run): a scratch directory and the processes
# to stop when the script ends, starting a server and reading its address, and a field of the
# bench's --json output. Needs $bin (the a-chat binary) set before it is sourced.
tmp=$(mktemp -d)
pids=()
trap 'kill "${pids[@]}" 2>/dev/null; rm -rf "$tmp"' EXIT

start_node() { # LOG [ARGS...]: starts a server, prints its pid and address
    local log=$1; shift
    $bin server --listen 127.0.0.1:0 -q "$@" > "$log" &
    local pid=$!
    for _ in $(seq 200); do grep -q "listening on" "$log" && break; sleep 0.05; done
    echo "$pid $(awk '/listening on/ {print $3; exit}' "$log")"
}
field() { grep -o "\"$1\":[^,}]*" | head -1 | cut -d: -f2; }
# Redis as deployed (contract section 9): the default user off, the nodes' user `a-chat` under
# the README's least-privilege ACL rule, and `admin` for the scripts' own redis-cli commands.
node_acl="resetkeys ~a-chat:node:* ~a-chat:name:* ~a-chat:cluster ~a-chat:recovering resetchannels &a-chat:to:* -@all +hello +script|load +evalsha +subscribe +publish +del +exists +set +get +mget +pttl"
redis_password=bench-pw
start_redis() { # PORT [REDIS-SERVER-ARGS...]: starts redis-server with the users, prints its pid
    local port=$1; shift
    # shellcheck disable=SC2086 # the rule is split into redis-server's arguments on purpose
    redis-server --port "$port" --bind 127.0.0.1 --save '' --appendonly no --loglevel warning \
        --user default off --user a-chat on ">$redis_password" $node_acl \
        --user admin on '>admin-pw' '~*' '&*' +@all "$@" > /dev/null &
    local pid=$!
    for _ in $(seq 100); do redis_cli -p "$port" ping > /dev/null 2>&1 && break; sleep 0.05; done
    echo "$pid"
}
redis_cli() { redis-cli --user admin --pass admin-pw --no-auth-warning "$@"; }
redis_url() { echo "redis://a-chat:$redis_password@127.0.0.1:$1"; } # PORT
