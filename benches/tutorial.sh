#!/usr/bin/env bash
# Builds the async-std tutorial's own chat server (`examples/a-chat/` of the async-std crate on
# crates.io) in a scratch directory outside this repository, with its bind address made an
# argument, so that `a-chat bench` can load it side by side with a-chat.
#
#   bash benches/tutorial.sh [DIR]        # DIR defaults to /tmp/tutorial
#   DIR/target/release/a-chat-tutorial server 127.0.0.1:8081 &
#
# The only change to the example: `server` takes the address to bind as its argument (the
# example hard-codes 127.0.0.1:8080). Nothing of it is copied into this repository.
set -euo pipefail
dir=${1:-/tmp/tutorial}
mkdir -p "$dir/src"
cd "$dir"
cat > Cargo.toml <<'TOML'
[package]
name = "a-chat-tutorial"
version = "0.1.0"
edition = "2018"

[dependencies]
async-std = "1"
futures = "0.3"

[profile.release]
debug = 1
TOML
# The example's source, from the async-std release that cargo resolves (a stub main until then).
[ -f src/main.rs ] || echo 'fn main() {}' > src/main.rs
cargo fetch -q
src=$(cargo metadata --format-version 1 \
    | jq -r '.packages[] | select(.name == "async-std") | .manifest_path' | xargs dirname)
cp "$src/examples/a-chat/server.rs" "$src/examples/a-chat/client.rs" src/
sed 's/(Some("server"), None) => server::main(),/(Some("server"), addr) => server::main(addr.as_deref().unwrap_or("127.0.0.1:8080")),/' \
    "$src/examples/a-chat/main.rs" > src/main.rs
sed -i 's/^pub(crate) fn main() -> Result<()> {/pub(crate) fn main(addr: \&str) -> Result<()> {/;
        s/task::block_on(accept_loop("127.0.0.1:8080"))/task::block_on(accept_loop(addr))/' src/server.rs
grep -q 'accept_loop(addr)' src/server.rs && grep -q 'server::main(addr' src/main.rs \
    || { echo "tutorial.sh: the example's source changed; adapt the two edits" >&2; exit 1; }
cargo build --release -q
echo "$dir/target/release/a-chat-tutorial"
