//! Section 8 of the contract against the real server, with certificates made at test time: TLS
//! and plain peers in one chat, handshakes that fail, stall or carry garbage, resets mid-record,
//! a graceful shutdown over TLS, and bad certificate files. (The protocol tests of section 2
//! run over TLS too: `tests/protocol.rs`, module `tls`.)

mod util;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::Command;

use util::{Client, ServerProcess, Signal, WAIT, binary, reset_on_close, tls};

#[test]
fn tls_and_plain_peers_chat_with_each_other() {
    let server = ServerProcess::start_with_tls(&[]);
    assert_eq!((server.addrs.len(), server.tls_addrs.len()), (1, 1));
    let mut secure = Client::login_over(util::Net::Tls, server.tls_addrs[0], "secure");
    let mut plain = Client::login(server.addr(), "plain");
    secure.send("plain: over tls\n");
    plain.expect("from secure: over tls");
    plain.send("secure, plain: in the clear\n");
    secure.expect("from plain: in the clear");
    plain.expect("from plain: in the clear");
}

#[test]
fn a_client_that_trusts_another_ca_fails_and_the_others_go_on() {
    let server = ServerProcess::start_with_tls(&[]);
    let addr = server.tls_addrs[0];
    let mut alice = Client::login_over(util::Net::Tls, addr, "alice");
    let mut doubter = Client::connect_tls_trusting(addr, tls::client_config(true));
    let error = doubter.tls_stream().write_all(b"mallory\n").unwrap_err();
    assert!(error.to_string().contains("UnknownIssuer"), "{error}");
    // The log line names the connection (alice is #0) and says what happened.
    server.wait_for_log("#1 TLS error: the client refused the server's certificate (alert: ");
    alice.send("alice: still here\n");
    alice.expect("from alice: still here");
}

#[test]
fn garbage_instead_of_a_client_hello_closes_that_connection_only() {
    let server = ServerProcess::start_with_tls(&[]);
    let addr = server.tls_addrs[0];
    let mut alice = Client::login_over(util::Net::Tls, addr, "alice");
    let mut garbage = TcpStream::connect(addr).unwrap();
    garbage.set_read_timeout(Some(WAIT)).unwrap();
    garbage
        .write_all(b"alice\nalice: not tls at all\n")
        .unwrap();
    let mut rest = Vec::new();
    // Closed by the server (a reset is fine too: it read nothing of ours it could answer).
    let _ = garbage.read_to_end(&mut rest);
    server.wait_for_log("TLS error");
    alice.send("alice: fine\n");
    alice.expect("from alice: fine");
    assert!(!server.stderr().contains("panicked"));
}

#[test]
fn a_handshake_that_stops_halfway_costs_its_slot_until_the_login_timeout() {
    let server = ServerProcess::start_with_tls(&["--login-timeout", "1", "--max-conns", "2"]);
    let addr = server.tls_addrs[0];
    // Half a ClientHello, then silence.
    let mut half = TcpStream::connect(addr).unwrap();
    half.set_read_timeout(Some(WAIT)).unwrap();
    let mut hello = Vec::new();
    let mut session = rustls::ClientConnection::new(
        tls::client_config(false),
        rustls::pki_types::ServerName::IpAddress(addr.ip().into()),
    )
    .unwrap();
    session.write_tls(&mut hello).unwrap();
    half.write_all(&hello[..hello.len() / 2]).unwrap();
    // Meanwhile, another peer is served.
    let mut alice = Client::login_over(util::Net::Tls, addr, "alice");
    alice.send("alice: while one stalls\n");
    alice.expect("from alice: while one stalls");
    // The stalled one is closed at its login timeout.
    let mut rest = Vec::new();
    half.read_to_end(&mut rest).unwrap();
    assert!(rest.is_empty());
    server.wait_for_log("disconnected: login timeout");
    // Its slot is free again: two peers fit.
    let mut bob = Client::login_over(util::Net::Tls, addr, "bob");
    bob.send("alice: hi\n");
    alice.expect("from bob: hi");
}

#[test]
fn a_reset_mid_record_closes_that_connection_only() {
    let server = ServerProcess::start_with_tls(&[]);
    let addr = server.tls_addrs[0];
    let mut alice = Client::login_over(util::Net::Tls, addr, "alice");
    let mut mallory = Client::login_over(util::Net::Tls, addr, "mallory");
    // A record's first half, then a reset.
    let mut record = Vec::new();
    let session = mallory.tls_session().unwrap();
    session.writer().write_all(b"alice: cut short\n").unwrap();
    session.write_tls(&mut record).unwrap();
    mallory
        .stream
        .write_all(&record[..record.len() / 2])
        .unwrap();
    reset_on_close(&mallory.stream);
    drop(mallory);
    util::eventually("mallory's name is free", || {
        alice.send("mallory, alice: there?\n");
        let first = alice.line();
        (first == "error: no such peer: mallory").then_some(())
    });
    alice.expect("from alice: there?");
    assert!(!server.stderr().contains("panicked"));
}

#[test]
fn graceful_shutdown_delivers_twenty_thousand_messages_then_close_notify() {
    let mut server = ServerProcess::start_with_tls(&[]);
    let addr = server.tls_addrs[0];
    let mut reader = Client::login_over(util::Net::Tls, addr, "reader");
    let mut sender = Client::login_over(util::Net::Tls, addr, "sender");
    let mut script = String::new();
    for i in 0..20_000 {
        script.push_str(&format!("reader: message {i}\n"));
    }
    script.push_str("sender: all sent\n");
    sender.send(&script);
    sender.expect("from sender: all sent");
    server.signal(Signal::TERM);
    for i in 0..20_000 {
        reader.expect(&format!("from sender: message {i}"));
    }
    reader.expect_eof();
    assert!(
        reader.closed_with_close_notify(),
        "close_notify before the end"
    );
    sender.expect_eof();
    assert!(sender.closed_with_close_notify());
    drop((reader, sender));
    assert_eq!(server.wait_exit(WAIT).code(), Some(0));
}

#[test]
fn bad_certificate_or_key_files_stop_the_server_at_start() {
    let files = tls::files();
    let dir = std::env::temp_dir().join(format!("a-chat-tls-bad-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let junk = dir.join("junk.pem");
    std::fs::write(&junk, "not a certificate\n").unwrap();
    let missing = dir.join("missing.pem");
    let cases = [
        (junk.as_path(), files.key.as_path(), "junk.pem"),
        (missing.as_path(), files.key.as_path(), "missing.pem"),
        (files.cert.as_path(), junk.as_path(), "junk.pem"),
        // A key that is not the certificate's.
        (files.cert.as_path(), files.cert.as_path(), "cert.pem"),
    ];
    for (cert, key, named) in cases {
        let output = Command::new(binary())
            .args([
                "server",
                "--listen",
                "127.0.0.1:0",
                "--listen-tls",
                "127.0.0.1:0",
            ])
            .arg("--tls-cert")
            .arg(cert)
            .arg("--tls-key")
            .arg(key)
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(2), "{stderr}");
        assert!(stderr.contains(named), "{stderr}");
        assert!(output.stdout.is_empty(), "nothing listened");
    }
    // TLS listeners need both files.
    let output = Command::new(binary())
        .args(["server", "--listen-tls", "127.0.0.1:0"])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&output.stderr).contains("--tls-cert"));
}

#[test]
fn the_client_speaks_tls_with_a_given_ca() {
    let server = ServerProcess::start_with_tls(&[]);
    let addr = server.tls_addrs[0].to_string();
    let ca = tls::files().ca.to_str().unwrap().to_string();
    let mut child = Command::new(binary())
        .args(["client", "--tls", "--ca", &ca, &addr])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"carol\ncarol: secret\n")
        .unwrap();
    // End of input: the client half-closes, the server closes, the client exits 0.
    util::eventually("the client exits", || child.try_wait().unwrap());
    let output = child.wait_with_output().unwrap();
    assert_eq!(
        String::from_utf8_lossy(&output.stdout),
        "from carol: secret\n"
    );
    assert!(output.status.success());
}

#[test]
fn a_flood_of_client_hellos_gets_a_bounded_number_of_handshake_steps_per_turn() {
    const FLOOD: usize = 300;
    let server =
        ServerProcess::start_with_tls(&["--metrics", "127.0.0.1:0", "--login-timeout", "2"]);
    let addr = server.tls_addrs[0];
    let mut alice = Client::login(server.addr(), "alice");
    // One ClientHello, sent by every socket of the flood.
    let mut hello = Vec::new();
    rustls::ClientConnection::new(
        tls::client_config(false),
        rustls::pki_types::ServerName::IpAddress(addr.ip().into()),
    )
    .unwrap()
    .write_tls(&mut hello)
    .unwrap();
    // The whole flood waits in the backlog while the server is stopped: its next turn accepts
    // all of it at once, whatever the machine's speed.
    server.signal(Signal::STOP);
    let flood: Vec<TcpStream> = (0..FLOOD)
        .map(|_| {
            let mut stream = TcpStream::connect(addr).unwrap();
            stream.write_all(&hello).unwrap();
            stream.set_read_timeout(Some(WAIT)).unwrap();
            stream
        })
        .collect();
    alice.send("alice: during the flood\n");
    server.signal(Signal::CONT);
    alice.expect("from alice: during the flood");
    // Every handshake gets its step in the end: each socket reads the server's first flight.
    for mut stream in &flood {
        let mut buf = [0; 64];
        assert!(stream.read(&mut buf).unwrap() > 0, "a ServerHello");
    }
    alice.send("alice: after the flood\n");
    alice.expect("from alice: after the flood");
    let metrics = server.scrape();
    let most = metrics.value("a_chat_tls_handshake_steps_max_per_turn", &[]);
    assert!(
        (1.0..=a_chat::HANDSHAKE_STEPS_PER_TURN as f64).contains(&most),
        "{most} handshake steps in one turn"
    );
    // All arrived in one turn: all but the budget's worth waited for later turns.
    let deferred = metrics.value("a_chat_tls_handshakes_deferred_total", &[]);
    assert!(
        deferred >= (FLOOD - a_chat::HANDSHAKE_STEPS_PER_TURN) as f64,
        "{deferred} handshakes deferred"
    );
    // The login timeout covers them: none finished, all are closed at it.
    let metrics = util::eventually("the flood's login timeouts", || {
        let metrics = server.scrape();
        (metrics.value("a_chat_connections_open", &[]) == 1.0).then_some(metrics)
    });
    let timeouts = metrics.value(
        "a_chat_logins_refused_total",
        &[("reason", "login_timeout")],
    );
    assert_eq!(timeouts, FLOOD as f64);
}

#[test]
fn a_ca_marked_server_certificate_is_refused_with_a_sentence_on_both_sides() {
    let (cert, key) = tls::ca_marked_files();
    // `-v`: a peer's own close is logged at `debug`, and the end waits for that line.
    let server = ServerProcess::start_with_tls_files(&["-v"], &cert, &key);
    let cert = cert.to_str().unwrap();
    let addr = server.tls_addrs[0].to_string();
    let output = Command::new(binary())
        .args(["client", "--tls", "--ca", cert, &addr])
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success());
    assert_eq!(
        stderr.trim_end(),
        "a-chat: error: the certificate is a CA certificate used as a server certificate; \
         make one with CA:FALSE (see README, TLS)"
    );
    // (The client does not send the alert rustls queued: the server sees it close.)
    server.wait_for_log("#0 disconnected");
}
