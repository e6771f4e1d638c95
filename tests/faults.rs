//! Fault injection against the real server: a hundred well-behaved peers chat while a hundred
//! chaos clients reset, half-close, stall, write one byte at a time, send over-long lines and
//! invalid UTF-8, try to log in under taken names and reconnect; then SIGTERM.
//!
//! Checked: the server never dies or panics; every message a well-behaved peer sent to another
//! arrives exactly once and in order; nothing arrives `from` a name its sender did not hold;
//! the server's RSS stays under [`RSS_BOUND_KB`]; at SIGTERM the well-behaved peers receive
//! everything and the server exits 0.
//!
//! `A_CHAT_FAULT_SECS` sets how long the chaos runs (default 15 s). `A_CHAT_SOAK_SECS` turns
//! it into a soak: the chaos runs that long while `a-chat bench` holds 15,000 more connections
//! under an open-loop load; the server's RSS is printed every 10 s and must stay flat, and the
//! load generator must report no loss.

mod util;

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Barrier, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use a_chat::sim::XorShift;
use util::{Client, ServerProcess, Signal, WAIT, eventually, reset_on_close};

const GOOD: usize = 100;
const CHAOS: usize = 100;
/// Names nobody holds that good peers also message (routing to the absent).
const STALL_NAMES: usize = 10;
/// The bound on the server's resident memory during the run: 100 stalled queues of
/// `--max-queue` 256 KiB would be 25 MiB; the rest is the server's own.
const RSS_BOUND_KB: u64 = 96 * 1024;

/// Fault kinds, counted for the report.
const KINDS: [&str; 9] = [
    "reset mid-line",
    "half-close",
    "stalled reader",
    "one-byte writes",
    "over-long line",
    "invalid utf-8",
    "duplicate login",
    "reconnect",
    "slow reader",
];

/// Problems seen by the client threads; the test fails if any.
type Violations = Arc<Mutex<Vec<String>>>;

fn env_secs(name: &str) -> Option<u64> {
    std::env::var(name).ok().and_then(|secs| secs.parse().ok())
}

fn chaos_secs() -> u64 {
    env_secs("A_CHAT_SOAK_SECS")
        .or_else(|| env_secs("A_CHAT_FAULT_SECS"))
        .unwrap_or(15)
}

/// In soak mode, the load generator at high connection count beside the chaos, for `secs`.
fn soak_load(addr: SocketAddr, secs: u64) -> std::process::Child {
    let rate = 5000;
    std::process::Command::new(util::binary())
        .args([
            "bench",
            "--addr",
            &addr.to_string(),
            "--prefix",
            "soak",
            "--json",
        ])
        .args(["--conns", "15000", "--senders", "1000", "--fanout", "4"])
        .args([
            "--rate",
            &rate.to_string(),
            "--messages",
            &(rate * secs / 1000).to_string(),
        ])
        .args(["--timeout", &(secs + 300).to_string()])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("start a-chat bench")
}

/// What a receiver saw: per sender name, the sequence numbers in arrival order.
type Received = HashMap<String, Vec<u64>>;

/// Reads `client` to the end, checking every routed line's marker against its sender's name.
fn read_all(
    mut client: Client,
    me: String,
    violations: Violations,
    done: mpsc::Sender<()>,
) -> Received {
    let mut received = Received::new();
    while let Some(line) = client.try_line() {
        if line == format!("from {me}: done") {
            let _ = done.send(());
            continue;
        }
        let Some(rest) = line.strip_prefix("from ") else {
            if !line.starts_with("error: ") {
                violations
                    .lock()
                    .unwrap()
                    .push(format!("{me} got {line:?}"));
            }
            continue;
        };
        let parsed = rest.split_once(": #").and_then(|(name, marker)| {
            let (owner, seq) = marker.rsplit_once('.')?;
            Some((name, owner, seq.parse::<u64>().ok()?))
        });
        match parsed {
            Some((name, owner, seq)) if name == owner => {
                let seqs = received.entry(name.to_string()).or_default();
                if seqs.last().is_some_and(|&last| last >= seq) {
                    violations
                        .lock()
                        .unwrap()
                        .push(format!("{me}: order/duplicate {line:?}"));
                }
                seqs.push(seq);
            }
            _ => violations
                .lock()
                .unwrap()
                .push(format!("{me}: spoofed or garbled {line:?}")),
        }
    }
    received
}

/// A well-behaved peer: sends paced messages to other good peers, stalled names and dead
/// names, and reads everything. Returns, per destination, the sequence numbers it sent there,
/// and what it received.
fn good_peer(
    addr: SocketAddr,
    index: usize,
    logged_in: Arc<Barrier>,
    stop: Arc<AtomicBool>,
    violations: Violations,
) -> (HashMap<String, Vec<u64>>, thread::JoinHandle<Received>) {
    let me = format!("g{index}");
    let client = Client::login(addr, &me);
    // Every good peer holds its name before any chaos starts (chaos tries to take them).
    logged_in.wait();
    let mut writer = client.stream.try_clone().unwrap();
    let (done_tx, done_rx) = mpsc::channel();
    let reader = {
        let (me, violations) = (me.clone(), violations.clone());
        thread::spawn(move || read_all(client, me, violations, done_tx))
    };
    let mut rng = XorShift::new(index as u64 * 7919 + 1);
    let mut sent: HashMap<String, Vec<u64>> = HashMap::new();
    let mut seq = 0;
    while !stop.load(Ordering::Relaxed) {
        let mut dests = Vec::new();
        for _ in 0..2 {
            let peer = format!("g{}", rng.index(GOOD));
            if !dests.contains(&peer) {
                dests.push(peer);
            }
        }
        let stall = format!("stall{}", rng.index(STALL_NAMES));
        let line = format!(
            "{}, {stall}, dead{}: #{me}.{seq}\n",
            dests.join(","),
            rng.index(5)
        );
        if writer.write_all(line.as_bytes()).is_err() {
            violations
                .lock()
                .unwrap()
                .push(format!("{me} could not write"));
            break;
        }
        for dest in dests {
            sent.entry(dest).or_default().push(seq);
        }
        seq += 1;
        // Pacing, not synchronisation: the peers send at a steady rate.
        thread::sleep(Duration::from_millis(20));
    }
    // Once our own `done` comes back, every earlier line was routed.
    writer
        .write_all(format!("{me}: done\n").as_bytes())
        .unwrap();
    if done_rx.recv_timeout(WAIT).is_err() {
        violations
            .lock()
            .unwrap()
            .push(format!("{me}: done marker never came back"));
    }
    (sent, reader)
}

/// One chaos client: injects faults until `stop`, counting them per kind.
fn chaos(
    addr: SocketAddr,
    index: usize,
    stop: Arc<AtomicBool>,
    counts: Arc<[AtomicU64; KINDS.len()]>,
    violations: Violations,
) {
    let mut rng = XorShift::new(index as u64 * 104_729 + 17);
    let mut round = 0;
    while !stop.load(Ordering::Relaxed) {
        round += 1;
        let me = format!("c{index}x{round}");
        let kind = rng.index(KINDS.len());
        counts[kind].fetch_add(1, Ordering::Relaxed);
        let good = format!("g{}", rng.index(GOOD));
        let Ok(mut stream) = TcpStream::connect(addr) else {
            violations.lock().unwrap().push("connect failed".into());
            return;
        };
        stream.set_read_timeout(Some(WAIT)).unwrap();
        let expect_notice = |stream: &mut TcpStream, notice: &str| {
            let mut bytes = Vec::new();
            let _ = stream.read_to_end(&mut bytes);
            let text = String::from_utf8_lossy(&bytes);
            if !text.contains(notice) {
                violations
                    .lock()
                    .unwrap()
                    .push(format!("{me}: expected {notice:?}, got {text:?}"));
            }
        };
        match kind {
            0 => {
                let _ = stream.write_all(format!("{me}\n{good}: #{me}.0\n{good}: part").as_bytes());
                reset_on_close(&stream);
            }
            1 => {
                let _ =
                    stream.write_all(format!("{me}\n{good}: #{me}.0\n{me}: #{me}.1\n").as_bytes());
                stream.shutdown(Shutdown::Write).unwrap();
                // The server delivers what it owes us, then closes.
                expect_notice(&mut stream, &format!("from {me}: #{me}.1"));
            }
            2 => {
                // A reader that stalls while a flooder fills its queue: it must be evicted as
                // a slow consumer, and nobody else may notice.
                let _ = stream.write_all(format!("{me}\n{me}: #{me}.0\n").as_bytes());
                let mut ack = [0; 64];
                let _ = stream.read(&mut ack); // logged in: its own message came back
                let mut flooder = Client::connect(addr);
                let line = format!("{me}: {}\n", "f".repeat(900));
                flooder.send(&format!("{me}f\n"));
                let flood = thread::spawn({
                    let mut writer = flooder.stream.try_clone().unwrap();
                    let sync = format!("{me}f: sync\n");
                    move || {
                        for _ in 0..8000 {
                            writer.write_all(line.as_bytes()).unwrap();
                        }
                        writer.write_all(sync.as_bytes()).unwrap()
                    }
                });
                // Once the flooder's own `sync` is back, every flood line was routed: more
                // than the stalled reader's kernel buffers and its 256 KiB queue can hold.
                let mut evicted = false;
                loop {
                    let line = flooder.line();
                    if line == format!("from {me}f: sync") {
                        break;
                    }
                    evicted |= line == format!("error: no such peer: {me}");
                }
                flood.join().unwrap();
                if !evicted {
                    violations
                        .lock()
                        .unwrap()
                        .push(format!("{me} was never evicted"));
                }
                flooder.reset();
                reset_on_close(&stream);
            }
            3 => {
                for byte in format!("{me}\r\n{good}: #{me}.0\r\n{me}: #{me}.1\r\n").bytes() {
                    if stream.write_all(&[byte]).is_err() {
                        break;
                    }
                }
                stream.shutdown(Shutdown::Write).unwrap();
                expect_notice(&mut stream, &format!("from {me}: #{me}.1"));
            }
            4 => {
                let _ =
                    stream.write_all(format!("{me}\n{good}: {}\n", "x".repeat(2000)).as_bytes());
                expect_notice(&mut stream, "error: line too long");
            }
            5 => {
                let _ = stream.write_all(format!("{me}\n{good}: ").as_bytes());
                let _ = stream.write_all(b"\xff\xfe\n");
                stream.shutdown(Shutdown::Write).unwrap();
                expect_notice(&mut stream, "error: invalid utf-8");
            }
            6 => {
                let _ = stream.write_all(format!("{good}\n{good}: #{good}.999999\n").as_bytes());
                expect_notice(&mut stream, "error: name taken");
            }
            8 => {
                // A slow reader: its queue fills and drains in small steps, in order.
                let mut script = format!("{me}\n");
                for i in 0..2000 {
                    script.push_str(&format!("{me}: #{me}.{i} {}\n", "s".repeat(80)));
                }
                let writer = {
                    let mut writer = stream.try_clone().unwrap();
                    thread::spawn(move || writer.write_all(script.as_bytes()))
                };
                let mut reader = std::io::BufReader::new(stream.try_clone().unwrap());
                for i in 0..2000 {
                    let mut line = String::new();
                    let _ = std::io::BufRead::read_line(&mut reader, &mut line);
                    if line != format!("from {me}: #{me}.{i} {}\n", "s".repeat(80)) {
                        violations
                            .lock()
                            .unwrap()
                            .push(format!("{me}: slow read got {line:?}"));
                        break;
                    }
                    if i % 100 == 0 {
                        // Reading slowly is the point here.
                        thread::sleep(Duration::from_millis(10));
                    }
                }
                let _ = writer.join();
            }
            _ => {
                let _ = stream.write_all(format!("{me}\n").as_bytes());
                drop(stream);
                let mut again = Client::connect(addr);
                again.send(&format!("{me}\n{me}: #{me}.0\n"));
                again.stream.shutdown(Shutdown::Write).unwrap();
                match again.try_line() {
                    Some(line) if line == format!("from {me}: #{me}.0") => {}
                    other => violations
                        .lock()
                        .unwrap()
                        .push(format!("{me}: reconnect got {other:?}")),
                }
            }
        }
    }
}

#[test]
fn chaos_does_not_lose_or_spoof_messages_and_shutdown_is_clean() {
    let mut server = ServerProcess::start(&[
        "--max-queue",
        "262144",
        "--max-line",
        "1024",
        "--login-timeout",
        "2",
        "--shutdown-timeout",
        "30",
        "--metrics",
        "127.0.0.1:0",
    ]);
    let addr = server.addr();
    let stop = Arc::new(AtomicBool::new(false));
    let violations: Violations = Arc::default();
    let counts: Arc<[AtomicU64; KINDS.len()]> = Arc::new(Default::default());

    let logged_in = Arc::new(Barrier::new(GOOD + 1));
    let good: Vec<_> = (0..GOOD)
        .map(|i| {
            let (logged_in, stop, violations) =
                (logged_in.clone(), stop.clone(), violations.clone());
            thread::spawn(move || good_peer(addr, i, logged_in, stop, violations))
        })
        .collect();
    logged_in.wait();
    let chaos_threads: Vec<_> = (0..CHAOS)
        .map(|i| {
            let (stop, counts, violations) = (stop.clone(), counts.clone(), violations.clone());
            thread::spawn(move || chaos(addr, i, stop, counts, violations))
        })
        .collect();

    let soak = env_secs("A_CHAT_SOAK_SECS").map(|secs| soak_load(addr, secs));
    let start = Instant::now();
    let mut peak_rss_kb = 0;
    let mut timeline: Vec<u64> = Vec::new();
    let mut next_report = Duration::ZERO;
    while start.elapsed() < Duration::from_secs(chaos_secs()) {
        let rss = server.memory().rss_bytes / 1024;
        peak_rss_kb = peak_rss_kb.max(rss);
        let bound = if soak.is_some() {
            4 * RSS_BOUND_KB
        } else {
            RSS_BOUND_KB
        };
        assert!(rss < bound, "server RSS {rss} kB over the bound");
        if soak.is_some() && start.elapsed() >= next_report {
            println!(
                "soak t={:>4} s server RSS {rss} kB",
                start.elapsed().as_secs()
            );
            timeline.push(rss);
            next_report += Duration::from_secs(10);
        }
        thread::sleep(Duration::from_millis(200));
    }
    if let Some(soak) = soak {
        // The chaos and the good peers go on while the load generator finishes.
        let output = soak.wait_with_output().unwrap();
        let report = String::from_utf8_lossy(&output.stdout);
        println!("soak load: {report}");
        assert!(
            output.status.success(),
            "the load generator saw loss or errors: {report}"
        );
        // Flat: the last third of the run is no higher than the middle third, within slack.
        let third = timeline.len() / 3;
        if third > 0 {
            let middle = timeline[third..2 * third].iter().max().unwrap();
            let last = timeline[2 * third..].iter().max().unwrap();
            assert!(
                *last <= middle + middle / 10 + 4096,
                "RSS grows: {timeline:?}"
            );
        }
    }
    stop.store(true, Ordering::Relaxed);
    for thread in chaos_threads {
        thread.join().unwrap();
    }
    let good: Vec<_> = good
        .into_iter()
        .map(|thread| thread.join().unwrap())
        .collect();
    // Every chaos connection is gone (the lingering ones within their grace period): only the
    // good peers remain, so the shutdown owes bytes to readers only.
    let metrics = eventually("only the good peers are connected", || {
        let metrics = server.scrape();
        (metrics.value("a_chat_connections_open", &[]) == GOOD as f64).then_some(metrics)
    });
    let evicted = metrics.value(
        "a_chat_slow_consumers_evicted_total",
        &[("limit", "max_queue")],
    );
    let stalled = counts[KINDS.iter().position(|k| *k == "stalled reader").unwrap()]
        .load(Ordering::Relaxed) as f64;
    assert!(
        evicted >= stalled,
        "{evicted} evicted, {stalled} stalled readers"
    );

    server.signal(Signal::TERM);
    let mut received: Vec<Received> = Vec::new();
    let mut sent: Vec<HashMap<String, Vec<u64>>> = Vec::new();
    for (sent_by_one, reader) in good {
        received.push(reader.join().unwrap());
        sent.push(sent_by_one);
    }
    let status = server.wait_exit(WAIT);

    let violations = violations.lock().unwrap();
    assert!(
        violations.is_empty(),
        "{} violations, first: {:?}",
        violations.len(),
        &violations[..violations.len().min(5)]
    );
    let log = server.stderr();
    assert!(!log.contains("panicked"), "server panicked:\n{log}");
    assert_eq!(
        status.code(),
        Some(0),
        "exit status; log tail:\n{}",
        &log[log.len().saturating_sub(2000)..]
    );

    // Good to good: exactly what was sent, in order.
    let mut checked = 0;
    for (s, sent_by_s) in sent.iter().enumerate() {
        for (dest, seqs) in sent_by_s {
            let r: usize = dest[1..].parse().unwrap();
            let got = received[r]
                .get(&format!("g{s}"))
                .cloned()
                .unwrap_or_default();
            assert_eq!(&got, seqs, "g{r} from g{s}");
            checked += seqs.len();
        }
    }
    let faults: Vec<String> = KINDS
        .iter()
        .zip(counts.iter())
        .map(|(kind, count)| format!("{kind}: {}", count.load(Ordering::Relaxed)))
        .collect();
    println!(
        "fault run: {} s, {checked} good-to-good messages checked, {evicted} slow consumers evicted, \
         peak RSS {peak_rss_kb} kB; faults: {}",
        chaos_secs(),
        faults.join(", ")
    );
    assert!(checked > 1000, "too little traffic to mean anything");
    assert!(counts.iter().all(|count| count.load(Ordering::Relaxed) > 0));
}
