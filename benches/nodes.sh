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
