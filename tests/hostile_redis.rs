//! Contract section 9, "Redis is input too", against a real `a-chat server --cluster` process
//! and a fake Redis written here: a loopback listener whose every connection gets what the
//! test scripts (a reply nested 5,000 deep, a bulk string announced at a terabyte, a line that
//! never ends, or silence). The node must stay alive, say what broke in its log, keep its
//! memory bounded, and reconnect with its back-off.

mod util;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use util::{Client, ServerProcess, WAIT, eventually};

/// The nodes' `--cluster-ttl` here: their deadline on Redis is a third of it, 1 s.
const TTL: &str = "3";
const DEADLINE: Duration = Duration::from_secs(1);

/// A fake Redis: each connection accepted is handed to `script` on its own thread.
struct FakeRedis {
    addr: SocketAddr,
    /// When each connection was accepted.
    accepted: Arc<Mutex<Vec<Instant>>>,
}

impl FakeRedis {
    fn start(script: impl Fn(TcpStream) + Copy + Send + 'static) -> FakeRedis {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let accepted = Arc::new(Mutex::new(Vec::new()));
        let log = accepted.clone();
        thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(stream) = stream else { return };
                log.lock().unwrap().push(Instant::now());
                thread::spawn(move || script(stream));
            }
        });
        FakeRedis { addr, accepted }
    }

    fn url(&self) -> String {
        format!("redis://{}", self.addr)
    }

    /// Waits until `n` connections were accepted in all; their times.
    fn wait_for_connections(&self, n: usize) -> Vec<Instant> {
        eventually(&format!("{n} connections to the fake Redis"), || {
            let accepted = self.accepted.lock().unwrap().clone();
            (accepted.len() >= n).then_some(accepted)
        })
    }
}

/// Reads (and drops) what the node sends until it closes.
fn drain(mut stream: TcpStream) {
    let mut buf = [0; 4096];
    while matches!(stream.read(&mut buf), Ok(n) if n > 0) {}
}

/// Sends `head`, then up to `flood` bytes of `x` for as long as the node takes them, then
/// reads until the node closes.
fn send_and_flood(mut stream: TcpStream, head: &[u8], flood: usize) {
    let reader = stream.try_clone().unwrap();
    let draining = thread::spawn(move || drain(reader));
    if stream.write_all(head).is_ok() {
        let chunk = vec![b'x'; 64 * 1024];
        let mut sent = 0;
        while sent < flood && stream.write_all(&chunk).is_ok() {
            sent += chunk.len();
        }
    }
    let _ = draining.join();
}

/// A node of the fake's cluster, with its log level showing warnings.
fn node(redis: &FakeRedis) -> ServerProcess {
    ServerProcess::start(&["--cluster", &redis.url(), "--cluster-ttl", TTL])
}

/// The node is alive and serving: a connection gets an answer (Redis being what it is, the
/// login is refused as the contract says, promptly).
fn assert_serving(server: &ServerProcess) {
    let mut client = Client::connect(server.addr());
    client.send("carol\n");
    client.expect_closed_after("error: cluster unavailable");
}

#[test]
fn a_reply_nested_5000_deep_is_a_reconnect_not_a_crash() {
    let redis = FakeRedis::start(|stream| {
        let mut deep = b"*1\r\n".repeat(5000);
        deep.extend_from_slice(b":1\r\n");
        send_and_flood(stream, &deep, 0);
    });
    let server = node(&redis);
    redis.wait_for_connections(2);
    server.wait_for_log("a reply from Redis nested deeper than 32 levels");
    assert_serving(&server);
    assert!(!server.stderr().contains("panicked"), "{}", server.stderr());
}

/// A node whose Redis sends `prefix` then floods 64 MiB: the reply is refused as larger than
/// 16 MiB, the node reconnects and serves on, and its peak resident memory stays well under
/// what was sent (the bound, the read buffer and the process's own).
fn flood_is_refused_as_too_large(prefix: &'static [u8]) {
    let redis = FakeRedis::start(move |stream| send_and_flood(stream, prefix, 64 << 20));
    let server = node(&redis);
    redis.wait_for_connections(2);
    server.wait_for_log("a reply from Redis larger than 16 MiB");
    assert_serving(&server);
    let memory = server.memory();
    assert!(
        memory.hwm_bytes < 48 << 20,
        "peak resident memory {} MiB",
        memory.hwm_bytes >> 20
    );
}

#[test]
fn a_huge_bulk_string_is_refused_at_its_header_and_memory_stays_bounded() {
    flood_is_refused_as_too_large(b"$999999999999\r\n");
}

#[test]
fn a_reply_that_never_ends_is_cut_at_16_mib() {
    // 64 MiB of one simple string, never ended: buffered up to the bound, then refused.
    flood_is_refused_as_too_large(b"+");
}

#[test]
fn a_hung_redis_is_left_after_the_deadline_and_tried_again() {
    // Accepts, reads, never answers.
    let redis = FakeRedis::start(drain);
    let server = node(&redis);
    let accepted = redis.wait_for_connections(2);
    server.wait_for_log("cluster: Redis did not answer HELLO within 1s");
    // The second attempt came after the deadline and the first back-off (100 ms), not much
    // later: a bounded wait, whatever the machine.
    let gap = accepted[1] - accepted[0];
    assert!(gap >= DEADLINE, "reconnected after {gap:?}");
    assert!(gap < DEADLINE + WAIT / 4, "reconnected after {gap:?}");
    // Meanwhile a login is answered, not left hanging.
    let start = Instant::now();
    assert_serving(&server);
    assert!(start.elapsed() < DEADLINE * 3);
    // And it goes on trying, with its back-off.
    redis.wait_for_connections(3);
}

#[test]
fn a_connect_that_never_completes_is_given_up_after_the_deadline() {
    // A listener with a backlog of 0 and one connection waiting unaccepted: the kernel drops
    // the node's SYNs, so its connect neither completes nor fails.
    let fd = rustix::net::socket(
        rustix::net::AddressFamily::INET,
        rustix::net::SocketType::STREAM,
        None,
    )
    .unwrap();
    rustix::net::bind(&fd, &SocketAddr::from(([127, 0, 0, 1], 0))).unwrap();
    rustix::net::listen(&fd, 0).unwrap();
    let listener = TcpListener::from(fd);
    let addr = listener.local_addr().unwrap();
    let _waiting = TcpStream::connect(addr).unwrap();
    let server = ServerProcess::start(&[
        "--cluster",
        &format!("redis://{addr}"),
        "--cluster-ttl",
        TTL,
    ]);
    let start = Instant::now();
    server.wait_for_log("cluster: the connection to Redis was not made within 1s");
    assert!(start.elapsed() < DEADLINE + WAIT / 4);
    assert_serving(&server);
    // Tried again, and given up again.
    eventually("a second attempt given up", || {
        let log = server.stderr();
        (log.matches("was not made within 1s").count() >= 2).then_some(())
    });
}
