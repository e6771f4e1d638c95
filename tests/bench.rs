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

#[test]
fn over_websockets_plain_and_tls() {
    let files = util::tls::files();
    let server = ServerProcess::start(&[
        "--listen-ws",
        "127.0.0.1:0",
        "--listen-wss",
        "127.0.0.1:0",
        "--tls-cert",
        files.cert.to_str().unwrap(),
        "--tls-key",
        files.key.to_str().unwrap(),
    ]);
    let ca = files.ca.to_str().unwrap().to_string();
    let args = ["--conns", "40", "--messages", "30", "--fanout", "2"];
    let ws = bench(server.ws_addrs[0], &[&["--ws"][..], &args].concat());
    let wss = bench(
        server.wss_addrs[0],
        &[&["--wss", "--ca", &ca][..], &args].concat(),
    );
    for output in [ws, wss] {
        let json = String::from_utf8(output.stdout).unwrap();
        assert!(output.status.success(), "bench failed: {json}");
        assert_eq!(number(&json, "delivered"), 40.0 * 30.0 * 2.0);
        assert_eq!(number(&json, "lost"), 0.0);
    }
    // A plain bench at a WebSocket port gets HTTP errors, not a hang.
    let output = bench(server.ws_addrs[0], &["--conns", "2", "--messages", "1"]);
    assert!(!output.status.success());
}

/// The sweep's JSON, parsed.
fn sweep_json(output: &Output) -> serde_json::Value {
    let text = String::from_utf8_lossy(&output.stdout);
    serde_json::from_str(&text).unwrap_or_else(|e| {
        panic!(
            "not JSON ({e}): {text}\n{}",
            String::from_utf8_lossy(&output.stderr)
        )
    })
}

/// The rows of an `.hgrm` file: value (ms), percentile, total count (and 1/(1-p)).
fn parse_hgrm(text: &str) -> Vec<Vec<f64>> {
    let mut lines = text.lines();
    let header: Vec<&str> = lines.next().expect("a header").split_whitespace().collect();
    assert_eq!(
        header,
        ["Value", "Percentile", "TotalCount", "1/(1-Percentile)"]
    );
    lines
        .filter(|line| !line.trim().is_empty() && !line.starts_with('#'))
        .map(|line| {
            line.split_whitespace()
                .map(|field| field.parse::<f64>().expect("a number"))
                .collect()
        })
        .collect()
}

#[test]
fn a_sweep_finds_saturation_and_draws_it() {
    let server = ServerProcess::start(&[]);
    let dir = std::env::temp_dir().join(format!("a-chat-sweep-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let svg = dir.join("curve.svg");
    let hgrm = dir.join("step");
    // 200 messages/s to 49 receivers each keeps up anywhere; 100,000/s (4.9 million copies
    // a second, twice the most this server delivers flat out) saturates any machine. The
    // steps last 0.5 s: "kept up" means 90% of the offered rate arrived within the step, and a
    // step of 0.1 s read a 10 ms stall of a loaded machine at its end as falling behind. The
    // saturated step sends about 50,000 messages, which the receivers' queues absorb.
    let output = bench(
        server.addr(),
        &[
            "--conns",
            "50",
            "--fanout",
            "49",
            "--sweep",
            "--rates",
            "200,100000",
            "--step-secs",
            "0.5",
            "--warmup-secs",
            "0.05",
            "--p99-limit-ms",
            "1000",
            "--label",
            "this server",
            "--plot",
            svg.to_str().unwrap(),
            "--hgrm",
            hgrm.to_str().unwrap(),
        ],
    );
    let json = sweep_json(&output);
    assert_eq!(output.status.code(), Some(0), "{json}");
    assert_eq!(json["result"], "pass");
    assert_eq!(json["sustained_per_sec"], 200.0, "{json}");
    assert_eq!(json["saturated_per_sec"], 100000.0, "{json}");
    let steps = json["steps"].as_array().unwrap();
    assert_eq!(steps.len(), 2);
    assert!(steps[0]["saturated"].is_null());
    assert!(steps[1]["saturated"].is_string());
    for step in steps {
        assert_eq!(step["lost"], 0);
        assert!(
            step["latency_us_p99"].as_u64().unwrap() <= step["latency_us_max"].as_u64().unwrap()
        );
    }

    // The plot: an SVG document with both charts' captions, the run's label and the
    // saturation in its legend, and the curves drawn.
    let text = std::fs::read_to_string(&svg).unwrap();
    let doc = roxmltree::Document::parse(&text).expect("the plot is well-formed XML");
    assert_eq!(doc.root_element().tag_name().name(), "svg");
    let texts: Vec<&str> = doc
        .descendants()
        .filter(|node| node.has_tag_name("text"))
        .filter_map(|node| node.text())
        .collect();
    for needle in [
        "Latency from scheduled send to arrival, against offered rate",
        "Delivered against offered rate",
        "this server",
        "saturation: kept up with 200/s",
        "p99",
    ] {
        assert!(
            texts.iter().any(|t| t.contains(needle)),
            "no {needle:?} in {texts:?}"
        );
    }
    assert!(texts.iter().any(|t| t.contains("K=49")), "{texts:?}");
    let lines = doc
        .descendants()
        .filter(|node| node.has_tag_name("polyline") || node.has_tag_name("path"))
        .count();
    assert!(lines >= 7, "only {lines} lines drawn");

    // One .hgrm per step, each a percentile distribution up to 100%.
    for rate in ["200", "100000"] {
        let path = format!("{}-{rate}.hgrm", hgrm.display());
        let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
        let rows = parse_hgrm(&text);
        assert!(rows.len() > 5, "{text}");
        assert!(
            rows.windows(2)
                .all(|w| w[0][0] <= w[1][0] && w[0][1] <= w[1][1])
        );
        assert_eq!(rows.last().unwrap()[1], 1.0);
        assert!(text.contains("#[Max     ="), "{text}");
    }

    // A saved sweep drawn again, beside another: no run, one plot of two curves.
    let saved = dir.join("saved.json");
    std::fs::write(&saved, json.to_string()).unwrap();
    let both = dir.join("both.svg");
    let output = Command::new(binary())
        .args(["bench", "--plot", both.to_str().unwrap()])
        .args([
            "--from",
            saved.to_str().unwrap(),
            "--from",
            saved.to_str().unwrap(),
        ])
        .output()
        .unwrap();
    assert!(output.status.success(), "{output:?}");
    let text = std::fs::read_to_string(&both).unwrap();
    let doc = roxmltree::Document::parse(&text).unwrap();
    assert!(
        doc.descendants()
            .any(|node| node.text().map(str::trim) == Some("a-chat bench --sweep: 2 runs"))
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_sweep_sees_loss_and_fails() {
    let addr = lossy_server(7);
    let output = bench(
        addr,
        &[
            "--conns",
            "20",
            "--sweep",
            "--rates",
            "200,400",
            "--step-secs",
            "0.2",
            "--warmup-secs",
            "0",
            "--grace",
            "0.5",
        ],
    );
    let json = sweep_json(&output);
    assert_eq!(output.status.code(), Some(1), "{json}");
    assert_eq!(json["result"], "fail");
    let steps = json["steps"].as_array().unwrap();
    // The first lossy step ends the sweep.
    assert_eq!(steps.len(), 1, "{json}");
    assert!(steps[0]["lost"].as_u64().unwrap() > 0, "{json}");
}

#[test]
fn progress_is_shown_on_standard_error_for_longer_runs() {
    let server = ServerProcess::start(&[]);
    let output = Command::new(binary())
        .args(["bench", "--addr", &server.addr().to_string()])
        .args(["--conns", "20", "--rate", "100", "--messages", "15", "-q"])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(output.status.success(), "{output:?}");
    let stderr = String::from_utf8_lossy(&output.stderr);
    let lines: Vec<&str> = stderr
        .lines()
        .filter(|l| l.starts_with("bench: "))
        .collect();
    // 300 messages at 100/s: three seconds, so a line from the second second on.
    assert!(!lines.is_empty(), "{stderr}");
    assert!(
        lines[0].contains("20/20 logged in") && lines[0].contains("lost"),
        "{stderr}"
    );
    // Not with --json, unless asked.
    let output = bench(
        server.addr(),
        &["--conns", "20", "--rate", "100", "--messages", "15"],
    );
    assert!(!String::from_utf8_lossy(&output.stderr).contains("bench: "));
}
