//! A TLS handshake flood against a real `a-chat server`, and the self-message latency of a peer
//! already logged in meanwhile (issue 17, item 8). The flood opens bursts of connections to the
//! TLS listener, then sends each of them the same `ClientHello` in one tight loop, so that the
//! whole burst's handshakes are due at once; it never finishes a handshake. The probe, a plain
//! connection logged in before the flood, messages itself over and over (one message in flight,
//! 1 ms apart) and reports its round trips before and during the flood.
//!
//! ```text
//! cargo run --release --example tls_flood -- [--server BIN] [--bursts N] [--burst N]
//!     [--tls-cert FILE --tls-key FILE]
//! ```
//!
//! `--server` defaults to `target/release/a-chat`; without `--tls-cert`, an ECDSA P-256
//! certificate is made for the run.

use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread;
use std::time::{Duration, Instant};

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let option = |name: &str| {
        args.iter()
            .position(|arg| arg == name)
            .and_then(|at| args.get(at + 1).cloned())
    };
    let server = option("--server").unwrap_or_else(|| "target/release/a-chat".into());
    let bursts: usize = option("--bursts").map_or(10, |n| n.parse().expect("--bursts N"));
    let burst: usize = option("--burst").map_or(2000, |n| n.parse().expect("--burst N"));
    let (cert, key) = match (option("--tls-cert"), option("--tls-key")) {
        (Some(cert), Some(key)) => (cert, key),
        _ => make_certificate(),
    };

    let mut child = Command::new(&server)
        .args(["-q", "server", "--listen", "127.0.0.1:0"])
        .args([
            "--listen-tls",
            "127.0.0.1:0",
            "--tls-cert",
            &cert,
            "--tls-key",
            &key,
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("start the server");
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut addr = |suffix: &str| -> SocketAddr {
        let line = lines.next().expect("a listening line").unwrap();
        let rest = line
            .strip_prefix("listening on ")
            .expect("a listening line");
        rest.strip_suffix(suffix).unwrap_or(rest).parse().unwrap()
    };
    let (plain, tls) = (addr(""), addr(" (tls)"));

    let stop = Arc::new(AtomicBool::new(false));
    let flooding = Arc::new(AtomicBool::new(false));
    let probe = {
        let (stop, flooding) = (stop.clone(), flooding.clone());
        thread::spawn(move || probe(plain, &stop, &flooding))
    };
    thread::sleep(Duration::from_secs(1));
    flooding.store(true, Ordering::Relaxed);
    let hello = client_hello();
    let started = Instant::now();
    for _ in 0..bursts {
        let mut sockets: Vec<TcpStream> = (0..burst)
            .map(|_| TcpStream::connect(tls).expect("connect to the TLS listener"))
            .collect();
        for socket in &mut sockets {
            let _ = socket.write_all(&hello);
        }
        thread::sleep(Duration::from_millis(300));
    }
    let flood_time = started.elapsed();
    thread::sleep(Duration::from_millis(300));
    stop.store(true, Ordering::Relaxed);
    let (before, during) = probe.join().unwrap();
    let _ = child.kill();
    let _ = child.wait();
    println!(
        "{bursts} bursts of {burst} ClientHellos in {:.1} s against {server}",
        flood_time.as_secs_f64()
    );
    report("before the flood", before);
    report("during the flood", during);
}

/// Self-messages, one in flight, 1 ms apart: the round trips before and during the flood.
fn probe(
    addr: SocketAddr,
    stop: &AtomicBool,
    flooding: &AtomicBool,
) -> (Vec<Duration>, Vec<Duration>) {
    let mut stream = TcpStream::connect(addr).expect("connect the probe");
    stream.set_nodelay(true).unwrap();
    stream.write_all(b"probe\n").unwrap();
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    let (mut before, mut during) = (Vec::new(), Vec::new());
    let mut line = String::new();
    while !stop.load(Ordering::Relaxed) {
        let sent = Instant::now();
        stream.write_all(b"probe: ping\n").unwrap();
        line.clear();
        reader
            .read_line(&mut line)
            .expect("the probe's message back");
        assert_eq!(line, "from probe: ping\n");
        let rtt = sent.elapsed();
        if flooding.load(Ordering::Relaxed) {
            during.push(rtt);
        } else {
            before.push(rtt);
        }
        thread::sleep(Duration::from_millis(1));
    }
    (before, during)
}

fn report(label: &str, mut rtts: Vec<Duration>) {
    rtts.sort();
    let at = |q: f64| rtts[((rtts.len() - 1) as f64 * q) as usize];
    println!(
        "{label}: {} round trips, p50 {:?}, p99 {:?}, max {:?}",
        rtts.len(),
        at(0.5),
        at(0.99),
        at(1.0)
    );
}

/// A `ClientHello` for `localhost`, as a client sends it first.
fn client_hello() -> Vec<u8> {
    let config = a_chat::tls::client_config(rustls::RootCertStore::empty()).unwrap();
    let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
    let mut session = rustls::ClientConnection::new(config, name).unwrap();
    let mut hello = Vec::new();
    session.write_tls(&mut hello).unwrap();
    hello
}

/// An ECDSA P-256 certificate for `localhost`, written to a temporary directory.
fn make_certificate() -> (String, String) {
    let dir = std::env::temp_dir().join(format!("a-chat-tls-flood-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let key = rcgen::KeyPair::generate().unwrap();
    let cert = rcgen::CertificateParams::new(vec!["localhost".to_string()])
        .unwrap()
        .self_signed(&key)
        .unwrap();
    let (cert_path, key_path) = (dir.join("cert.pem"), dir.join("key.pem"));
    std::fs::write(&cert_path, cert.pem()).unwrap();
    std::fs::write(&key_path, key.serialize_pem()).unwrap();
    let path = |p: std::path::PathBuf| p.to_str().unwrap().to_string();
    (path(cert_path), path(key_path))
}
