//! `a-chat bench` for real: against the real server in each load shape, and against a lossy
//! stand-in server, where it must see the loss and fail.

mod util;

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::process::{Command, Output, Stdio};
use std::sync::{Arc, Mutex};
use std::thread;

use util::{ServerProcess, binary};

fn bench(addr: SocketAddr, args: &[&str]) -> Output {
    Command::new(binary())
        .args([
            "bench",
            "--addr",
            &addr.to_string(),
            "--json",
            "--timeout",
            "60",
        ])
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("run a-chat bench")
}

/// The value of `"key":` in the report's flat JSON object.
fn field<'a>(json: &'a str, key: &str) -> &'a str {
    let start = json
        .find(&format!("\"{key}\":"))
        .unwrap_or_else(|| panic!("no {key} in {json}"))
        + key.len()
        + 3;
    let rest = &json[start..];
    let end = rest.find([',', '}']).unwrap();
    rest[..end].trim_matches('"')
}

fn number(json: &str, key: &str) -> f64 {
    field(json, key)
        .parse()
        .unwrap_or_else(|_| panic!("{key} is not a number in {json}"))
}

/// Runs one bench against a fresh server and checks the report's books.
fn passes(args: &[&str], expected: f64) -> String {
    let server = ServerProcess::start(&[]);
    let pid = server.pid().to_string();
    let mut all = vec!["--server-pid", pid.as_str()];
    all.extend(args);
    let output = bench(server.addr(), &all);
    let json = String::from_utf8(output.stdout).unwrap();
    assert!(output.status.success(), "bench failed: {json}");
    assert_eq!(field(&json, "result"), "pass");
    assert_eq!(number(&json, "expected"), expected);
    assert_eq!(number(&json, "delivered"), expected);
    for zero in ["lost", "duplicates", "out_of_order", "malformed"] {
        assert_eq!(number(&json, zero), 0.0, "{zero} in {json}");
    }
    assert!(number(&json, "server_rss_kb_idle") > 0.0);
    json
}

#[test]
fn flat_out_fan_out_3() {
    let json = passes(
        &[
            "--conns",
            "60",
            "--senders",
            "20",
            "--messages",
            "50",
            "--fanout",
            "3",
        ],
        20.0 * 50.0 * 3.0,
    );
    assert!(number(&json, "latency_us_max") >= number(&json, "latency_us_p50"));
}

#[test]
fn closed_loop_window() {
    passes(
        &[
            "--conns",
            "30",
            "--senders",
            "5",
            "--messages",
            "40",
            "--window",
            "1",
        ],
        200.0,
    );
}

#[test]
fn open_loop_rate() {
    let json = passes(
        &[
            "--conns",
            "30",
            "--senders",
            "10",
            "--messages",
            "20",
            "--rate",
            "2000",
            "--bytes",
            "100",
        ],
        200.0,
    );
    assert_eq!(field(&json, "mode"), "rate=2000");
}

#[test]
fn idle_connections_are_held_and_measured() {
    let json = passes(&["--conns", "300", "--idle"], 0.0);
    assert_eq!(number(&json, "logged_in"), 300.0);
    assert!(number(&json, "server_rss_bytes_per_idle_conn") > 0.0);
}

#[test]
fn only_loopback_unless_allowed() {
    // Not a loopback address, yet harmless should the check ever go: 0.0.0.0 reaches this host.
    let output = bench("0.0.0.0:9".parse().unwrap(), &["--conns", "1"]);
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("--allow-remote"));
}

/// A stand-in chat server that speaks the protocol but drops every `drop_every`-th routed copy.
fn lossy_server(drop_every: usize) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let peers: Arc<Mutex<HashMap<String, TcpStream>>> = Arc::default();
    let routed = Arc::new(Mutex::new(0usize));
    thread::spawn(move || {
        for stream in listener.incoming() {
            let stream = stream.unwrap();
            let (peers, routed) = (peers.clone(), routed.clone());
            thread::spawn(move || {
                let mut lines = BufReader::new(stream.try_clone().unwrap()).lines();
                let Some(Ok(name)) = lines.next() else { return };
                peers.lock().unwrap().insert(name.clone(), stream);
                for line in lines {
                    let Ok(line) = line else { return };
                    let Some((dests, text)) = line.split_once(':') else {
                        continue;
                    };
                    for dest in dests.split(',').map(str::trim) {
                        let mut count = routed.lock().unwrap();
                        *count += 1;
                        let login = text.trim() == "login";
                        if !login && *count % drop_every == 0 {
                            continue;
                        }
                        if let Some(peer) = peers.lock().unwrap().get_mut(dest) {
                            let _ = peer
                                .write_all(format!("from {name}: {}\n", text.trim()).as_bytes());
                        }
                    }
                }
            });
        }
    });
    addr
}

#[test]
fn loss_is_seen_and_fails_the_run() {
    let addr = lossy_server(7);
    let output = bench(
        addr,
        &[
            "--conns",
            "20",
            "--senders",
            "5",
            "--messages",
            "30",
            "--fanout",
            "2",
            "--grace",
            "0.5",
        ],
    );
    let json = String::from_utf8(output.stdout).unwrap();
    assert_eq!(output.status.code(), Some(1), "{json}");
    assert_eq!(field(&json, "result"), "fail");
    assert!(number(&json, "lost") > 0.0, "{json}");
}

#[test]
fn over_tls_with_a_given_ca() {
    let server = ServerProcess::start_with_tls(&[]);
    let ca = util::tls::files().ca.to_str().unwrap().to_string();
    let output = bench(
        server.tls_addrs[0],
        &[
            "--tls",
            "--ca",
            &ca,
            "--conns",
            "40",
            "--messages",
            "30",
            "--fanout",
            "2",
        ],
    );
    let json = String::from_utf8(output.stdout).unwrap();
    assert!(output.status.success(), "bench failed: {json}");
    assert_eq!(field(&json, "tls"), "1");
    assert_eq!(number(&json, "delivered"), 40.0 * 30.0 * 2.0);
    assert_eq!(number(&json, "lost"), 0.0);
    // Without the CA, the handshakes fail and the run says so.
    let output = bench(
        server.tls_addrs[0],
        &["--tls", "--conns", "2", "--messages", "1"],
    );
    assert!(!output.status.success());
}
