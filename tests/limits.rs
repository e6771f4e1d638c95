//! The contract's limits against the real server: line length, queue size, connection count,
//! login timeout, running out of file descriptors, and the memory bound against the server's
//! resident memory.

mod util;

#[path = "../examples/flood.rs"]
#[allow(dead_code)]
mod flood;

use std::io::{ErrorKind, Read, Write};
use std::net::TcpStream;
use std::thread;
use std::time::{Duration, Instant};

use util::{Client, ServerProcess, eventually};

#[test]
fn line_of_max_line_bytes_passes_and_one_more_closes() {
    let server = ServerProcess::start(&["--max-line", "100"]);
    let mut bob = Client::login(server.addr(), "bob");
    let mut alice = Client::login(server.addr(), "alice");
    let fits = format!("bob: {}", "y".repeat(95));
    assert_eq!(fits.len(), 100);
    alice.send(&format!("{fits}\r\n"));
    bob.expect(&format!("from alice: {}", "y".repeat(95)));
    alice.send(&format!("{fits}z\n"));
    alice.expect_closed_after("error: line too long");
    // Bob is not affected.
    bob.send("bob: fine\n");
    bob.expect("from bob: fine");
}

#[test]
fn long_name_line_is_too_long() {
    let server = ServerProcess::start(&["--max-line", "10"]);
    let mut client = Client::connect(server.addr());
    client.send(&format!("{}\n", "n".repeat(11)));
    client.expect_closed_after("error: line too long");
}

#[test]
fn endless_line_is_cut_off_and_memory_stays_small() {
    let server = ServerProcess::start(&["--max-line", "100"]);
    let mut bob = Client::login(server.addr(), "bob");
    let mut flooder = Client::login(server.addr(), "flooder");
    let chunk = vec![b'x'; 64 * 1024];
    let mut sent = 0;
    // The server closes after its notice; the rest of the 50 MB meets a closed socket.
    while sent < 50 << 20 {
        match flooder.stream.write(&chunk) {
            Ok(n) => sent += n,
            Err(e) if matches!(e.kind(), ErrorKind::BrokenPipe | ErrorKind::ConnectionReset) => {
                break;
            }
            Err(e) => panic!("unexpected write error after {sent} bytes: {e}"),
        }
    }
    // The notice may have been destroyed by the reset our unread data caused; when it arrived,
    // it is the notice and nothing else.
    let mut rest = Vec::new();
    let _ = flooder.stream.read_to_end(&mut rest);
    assert!(
        rest.is_empty() || rest == b"error: line too long\n",
        "{:?}",
        String::from_utf8_lossy(&rest)
    );
    let peak_kb = server.memory().hwm_bytes / 1024;
    assert!(peak_kb < 32 * 1024, "server peak RSS {peak_kb} kB");
    bob.send("bob: still serving\n");
    bob.expect("from bob: still serving");
}

#[test]
fn slow_consumer_is_evicted_while_others_keep_chatting() {
    let server = ServerProcess::start(&["--max-queue", "65536"]);
    let addr = server.addr();
    let slow = Client::login(addr, "slow");
    let mut fast = Client::login(addr, "fast");
    let mut sender = Client::login(addr, "sender");
    const COUNT: usize = 20_000;
    let payload = "p".repeat(1000);

    // Fast keeps up, and the sender waits for it every BATCH messages: fast is never more
    // than BATCH messages behind, well within what the kernel's buffers hold.
    const BATCH: usize = 50;
    let (acks, acked) = std::sync::mpsc::channel();
    let reader = thread::spawn(move || {
        for i in 0..COUNT {
            fast.expect(&format!("from sender: {i} {}", "p".repeat(1000)));
            if (i + 1) % BATCH == 0 {
                acks.send(()).unwrap();
            }
        }
        fast
    });
    let mut writer = sender.stream.try_clone().unwrap();
    let writing = thread::spawn(move || {
        for batch in 0..COUNT / BATCH {
            let mut lines = String::new();
            for i in batch * BATCH..(batch + 1) * BATCH {
                lines.push_str(&format!("slow, fast: {i} {payload}\n"));
            }
            writer.write_all(lines.as_bytes()).unwrap();
            acked.recv_timeout(util::WAIT).expect("fast keeps up");
        }
        writer.write_all(b"sender: done\n").unwrap();
    });
    // The sender reads its own notices so that it is not a slow consumer itself.
    let mut saw_eviction = false;
    loop {
        let line = sender.line();
        match line.as_str() {
            "from sender: done" => break,
            "error: no such peer: slow" => saw_eviction = true,
            other => panic!("sender got {other:?}"),
        }
    }
    writing.join().unwrap();
    let mut fast = reader.join().unwrap();
    assert!(saw_eviction, "slow was never evicted");
    server.wait_for_log("slow is a slow consumer");
    assert!(server.memory().hwm_bytes < 64 << 20);
    fast.send("sender: thanks\n");
    sender.expect("from fast: thanks");
    drop(slow);
}

#[test]
fn login_timeout_closes_a_silent_connection() {
    let server = ServerProcess::start(&["--login-timeout", "0.3"]);
    let mut silent = Client::connect(server.addr());
    let mut undecided = Client::connect(server.addr());
    undecided.send_bytes(b"\xff\n");
    undecided.expect("error: invalid utf-8");
    let start = Instant::now();
    // Closed without a word: the contract names no notice for a login timeout.
    silent.expect_eof();
    undecided.expect_eof();
    assert!(start.elapsed() < Duration::from_secs(10));
    // A peer that logged in in time is not touched by the timer.
    let mut alice = Client::login(server.addr(), "alice");
    thread::sleep(Duration::from_millis(500));
    alice.send("alice: still here\n");
    alice.expect("from alice: still here");
}

#[test]
fn max_conns_refuses_one_more() {
    let server = ServerProcess::start(&["--max-conns", "2"]);
    let a = Client::login(server.addr(), "a");
    let _b = Client::login(server.addr(), "b");
    let mut c = Client::connect(server.addr());
    c.expect_closed_after("error: server full");
    drop(a);
    // Once `a` is gone there is room again.
    eventually("a slot frees up", || {
        let mut d = Client::connect(server.addr());
        d.send("d\nd: in\n");
        (d.line() == "from d: in").then_some(())
    });
}

#[test]
fn out_of_file_descriptors_backs_off_and_keeps_serving() {
    let server = ServerProcess::start_with_nofile(&["--max-conns", "10000"], 128);
    let addr = server.addr();
    let mut alice = Client::login(addr, "alice");
    let mut bob = Client::login(addr, "bob");
    // Far more connections than descriptors: the backlog holds the rest.
    let flood: Vec<TcpStream> = (0..300)
        .map(|_| TcpStream::connect(addr).expect("connect lands in the backlog"))
        .collect();
    server.wait_for_log("pausing accepts");
    // Served while saturated, and not spinning: little CPU over a second of saturation.
    let before = server.cpu_time();
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(1) {
        alice.send("bob: ping\n");
        bob.expect("from alice: ping");
        thread::sleep(Duration::from_millis(50));
    }
    let used = server.cpu_time() - before;
    assert!(
        used < Duration::from_millis(300),
        "server used {used:?} of CPU in 1 s while saturated"
    );
    drop(flood);
    // The backlog drains by itself after the back-off: a new client gets in.
    eventually("a new client is served after the flood", || {
        let mut late = Client::connect(addr);
        late.send("late\nlate: hi\n");
        late.try_line().filter(|line| line == "from late: hi")
    });
}

#[test]
fn max_memory_bounds_all_queues_together_and_evicts_the_largest_first() {
    const BOUND: usize = 16 << 20;
    let server = ServerProcess::start(&[
        "--max-memory",
        "16M",
        "--max-queue",
        "1G",
        "--metrics",
        "127.0.0.1:0",
    ]);
    let addr = server.addr();
    let login_small = |name: &str| {
        let mut client = Client::connect_with_receive_buffer(addr, 4096);
        client.send(&format!("{name}\n{name}: in\n"));
        client.expect(&format!("from {name}: in"));
        client
    };
    // A hundred receivers that never read, with small receive buffers. The kernel still takes
    // a few MiB for each on the server's side of the connection (its send buffer grows), so
    // the twenty heavy ones are sent 8 MiB each: well past that, their queues grow. The eighty
    // light ones are sent 96 KiB each: 7.5 MiB together, under the bound even if the kernel
    // took none of it.
    let heavy: Vec<Client> = (0..20).map(|i| login_small(&format!("h{i}"))).collect();
    let light: Vec<Client> = (0..80).map(|i| login_small(&format!("l{i}"))).collect();
    // A peer that reads all along.
    let mut watcher = Client::login(addr, "watcher");
    let rounds = 128;
    let watching = thread::spawn(move || {
        for round in 0..rounds {
            watcher.expect(&format!("from sender: round {round}"));
        }
        watcher
    });
    let mut sender = Client::login(addr, "sender");
    let base = server.memory().rss_bytes;
    let pad = "x".repeat(8000);
    let mut peak_queue_memory = 0.0_f64;
    for round in 0..rounds {
        // Distinct messages: each is a buffer of its own.
        let mut script = String::new();
        for copy in 0..8 {
            for i in 0..20 {
                script.push_str(&format!("h{i}: {round}.{copy} {pad}\n"));
            }
        }
        if round % 10 == 0 {
            for i in 0..80 {
                script.push_str(&format!("l{i}: {round} {pad}\n"));
            }
        }
        script.push_str(&format!("watcher: round {round}\n"));
        sender.send(&script);
        if round % 16 == 15 {
            let held = server.scrape().value("a_chat_queue_memory_bytes", &[]);
            assert!(held <= BOUND as f64, "{held} bytes held");
            peak_queue_memory = peak_queue_memory.max(held);
        }
    }
    let watcher = watching
        .join()
        .expect("the watcher got every round, in order");
    let metrics = server.scrape();
    let evicted = |limit| metrics.value("a_chat_slow_consumers_evicted_total", &[("limit", limit)]);
    assert_eq!(evicted("max_queue"), 0.0);
    assert!(
        (10.0..=20.0).contains(&evicted("max_memory")),
        "{} evicted",
        evicted("max_memory")
    );
    // Only heavy ones went: every light receiver is still there, and a message to itself
    // comes back after its backlog.
    let logged_in = metrics.value("a_chat_peers_logged_in", &[]);
    assert_eq!(logged_in, 20.0 - evicted("max_memory") + 80.0 + 2.0);
    for (i, mut client) in light.into_iter().enumerate() {
        client.send(&format!("l{i}: still here\n"));
        loop {
            let line = client.line();
            if line == format!("from l{i}: still here") {
                break;
            }
            assert!(line.starts_with("from sender: "), "{line}");
        }
    }
    assert!(metrics.value("a_chat_queue_memory_bytes", &[]) <= BOUND as f64);
    assert!(
        peak_queue_memory > (BOUND / 2) as f64,
        "the bound was approached"
    );
    // The server's memory stayed within the bound and its base (plus allocator slack).
    let grown = server.memory().hwm_bytes.saturating_sub(base);
    eprintln!(
        "evicted {}, queue memory peak {peak_queue_memory} B, RSS peak {grown} B over the base",
        evicted("max_memory")
    );
    assert!(
        grown < 2 * BOUND as u64,
        "peak RSS {grown} bytes over the base"
    );
    assert!(!server.stderr().contains("panicked"));
    drop((heavy, sender, watcher));
}

/// What the server's peak resident memory may exceed `--max-memory` and its resident memory
/// before a flood by (README, "Memory bound"): 4 MiB and an eighth of the bound.
fn slack(bound: u64) -> u64 {
    (4 << 20) + bound / 8
}

/// A server whose queues together may hold `bound` bytes, each as much as it likes, with its
/// metrics endpoint.
fn bounded_at(bound: u64) -> ServerProcess {
    ServerProcess::start(&[
        "--max-memory",
        &bound.to_string(),
        "--max-queue",
        "1G",
        "--metrics",
        "127.0.0.1:0",
    ])
}

#[test]
fn max_memory_bounds_resident_memory_under_a_fan_out_of_empty_messages() {
    // 300 receivers that never read, each line naming them all with an empty text: each
    // line is a 48-byte buffer and 300 slots of 16 bytes, where the old count saw 13 bytes.
    const BOUND: u64 = 8 << 20;
    const RECEIVERS: usize = 300;
    let server = bounded_at(BOUND);
    let receivers = flood::receivers(server.addr(), RECEIVERS).expect("receivers logged in");
    let base = server.memory().rss_bytes;
    let outcome = flood::fan_out(server.addr(), RECEIVERS, 20_000).expect("the flood");
    let peak = server.memory().hwm_bytes;
    let metrics = server.scrape();
    let evicted = metrics.value(
        "a_chat_slow_consumers_evicted_total",
        &[("limit", "max_memory")],
    );
    let grown = peak.saturating_sub(base);
    eprintln!("{outcome:?}; {evicted} evicted; peak RSS {grown} B over the base");
    assert!(evicted > 0.0, "no eviction for memory");
    assert!(metrics.value("a_chat_queue_memory_bytes", &[]) <= BOUND as f64);
    assert!(
        grown <= BOUND + slack(BOUND),
        "peak RSS {grown} bytes over the base of {base}"
    );
    assert!(!server.stderr().contains("panicked"));
    drop(receivers);
}

#[test]
fn max_memory_bounds_resident_memory_under_a_flood_of_notices_before_login() {
    // 200 connections that never read, each sending 20,000 lines that are not UTF-8 before its
    // name: each line earns a notice of 21 bytes, a 48-byte buffer and a 16-byte slot.
    const BOUND: u64 = 8 << 20;
    const CONNS: usize = 200;
    let server = bounded_at(BOUND);
    let base = server.memory().rss_bytes;
    let conns = flood::notices(server.addr(), CONNS, 20_000).expect("the flood");
    // Each connection ends logged in, or disconnected for memory.
    let metrics = eventually("every connection logged in or evicted", || {
        let metrics = server.scrape();
        let evicted = metrics.value(
            "a_chat_slow_consumers_evicted_total",
            &[("limit", "max_memory")],
        );
        let logged_in = metrics.value("a_chat_peers_logged_in", &[]);
        (evicted + logged_in == CONNS as f64).then_some(metrics)
    });
    let grown = server.memory().hwm_bytes.saturating_sub(base);
    let evicted = metrics.value(
        "a_chat_slow_consumers_evicted_total",
        &[("limit", "max_memory")],
    );
    eprintln!("{evicted} evicted; peak RSS {grown} B over the base");
    assert!(evicted > 0.0, "no eviction for memory");
    assert!(metrics.value("a_chat_queue_memory_bytes", &[]) <= BOUND as f64);
    assert!(
        grown <= BOUND + slack(BOUND),
        "peak RSS {grown} bytes over the base of {base}"
    );
    drop(conns);
}
