//! Section 10 of the contract against the real server, without a browser: the HTTP side of a
//! WebSocket listener (the page, errors, a malformed upgrade, `Origin`), the frames (binary
//! messages, pings, unmasked frames, messages over the bound), and the limits and shutdown
//! per WebSocket as per socket. (The protocol tests of section 2 run over `ws://` too:
//! `tests/protocol.rs`, module `ws`.)

mod util;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use tungstenite::Message;
use util::{Client, Net, ServerProcess, Signal, WAIT, http_get};

fn start(args: &[&str]) -> ServerProcess {
    ServerProcess::start_over(Net::Ws, args)
}

/// The messages until the server's close frame; returns its code.
fn close_code(client: &mut Client) -> Option<u16> {
    loop {
        match client.ws_message() {
            Message::Close(frame) => return frame.map(|frame| u16::from(frame.code)),
            Message::Text(_) | Message::Ping(_) | Message::Pong(_) => {}
            other => panic!("unexpected {other:?}"),
        }
    }
}

/// A masked frame as a client sends it (mask 1, 2, 3, 4).
fn masked_frame(first: u8, payload: &[u8]) -> Vec<u8> {
    let mask = [1, 2, 3, 4];
    let mut frame = vec![first];
    match payload.len() {
        n if n < 126 => frame.push(0x80 | n as u8),
        n if n < 65536 => {
            frame.push(0x80 | 126);
            frame.extend_from_slice(&(n as u16).to_be_bytes());
        }
        n => {
            frame.push(0x80 | 127);
            frame.extend_from_slice(&(n as u64).to_be_bytes());
        }
    }
    frame.extend_from_slice(&mask);
    frame.extend(payload.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
    frame
}

#[test]
fn browsers_and_tcp_peers_chat_with_each_other() {
    let server = start(&[]);
    let mut browser = server.login("browser");
    let mut plain = Client::login(server.addr(), "plain");
    browser.send("plain: from a browser\n");
    plain.expect("from browser: from a browser");
    plain.send("browser: from nc\n");
    browser.expect("from plain: from nc");
}

#[test]
fn a_message_holding_newlines_is_several_lines() {
    let server = start(&[]);
    let mut alice = server.login("alice");
    let ws = alice.ws.as_mut().unwrap();
    ws.send(Message::text("alice: one\nalice: two")).unwrap();
    alice.expect("from alice: one");
    alice.expect("from alice: two");
}

#[test]
fn the_page_is_served_at_the_root_and_other_paths_get_errors() {
    let server = start(&[]);
    let addr = server.ws_addrs[0];
    let (head, body) = http_get(addr, "GET / HTTP/1.1\r\nHost: x\r\n\r\n");
    assert!(head.starts_with("HTTP/1.1 200 OK\r\n"), "{head}");
    assert!(head.contains("Content-Type: text/html"), "{head}");
    assert!(body.contains("<html"), "{body}");
    let (head, _) = http_get(addr, "GET /nothing HTTP/1.1\r\n\r\n");
    assert!(head.starts_with("HTTP/1.1 404 "), "{head}");
    let (head, _) = http_get(addr, "POST /chat HTTP/1.1\r\nContent-Length: 0\r\n\r\n");
    assert!(head.starts_with("HTTP/1.1 405 "), "{head}");
    let (head, _) = http_get(addr, "GET /chat HTTP/1.1\r\n\r\n");
    assert!(head.starts_with("HTTP/1.1 400 "), "{head}");
    server.wait_for_log("WebSocket refused: the request for /chat was not a WebSocket upgrade");
}

#[test]
fn a_malformed_upgrade_gets_an_error_and_the_others_go_on() {
    let server = start(&[]);
    let addr = server.ws_addrs[0];
    let mut alice = server.login("alice");
    let (head, _) = http_get(addr, "\x00\x01\x02 garbage\r\n\r\n");
    assert!(head.starts_with("HTTP/1.1 400 "), "{head}");
    let old = "GET /chat HTTP/1.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
               Sec-WebSocket-Version: 8\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n";
    let (head, _) = http_get(addr, old);
    assert!(head.starts_with("HTTP/1.1 426 "), "{head}");
    assert!(head.contains("Sec-WebSocket-Version: 13"), "{head}");
    let huge = format!("GET / HTTP/1.1\r\nX: {}\r\n\r\n", "x".repeat(8000));
    let (head, _) = http_get(addr, &huge);
    assert!(head.starts_with("HTTP/1.1 431 "), "{head}");
    alice.send("alice: still here\n");
    alice.expect("from alice: still here");
}

#[test]
fn an_origin_not_listed_gets_403() {
    let server = start(&["--ws-origin", "http://chat.example"]);
    let addr = server.ws_addrs[0];
    let from = |origin: &'static str| {
        Client::connect(addr).upgrade_ws(move |mut request| {
            request
                .headers_mut()
                .insert("Origin", origin.parse().unwrap());
            request
        })
    };
    assert_eq!(from("http://evil.example").err(), Some("HTTP 403".into()));
    server.wait_for_log("which is not allowed");
    let mut alice = from("http://chat.example").expect("an allowed origin");
    alice.send("alice\nalice: hi\n");
    alice.expect("from alice: hi");
}

#[test]
fn a_binary_message_gets_a_notice_and_is_dropped() {
    let server = start(&[]);
    let mut alice = server.login("alice");
    let ws = alice.ws.as_mut().unwrap();
    ws.send(Message::binary(b"alice: binary".to_vec())).unwrap();
    alice.expect("error: expected text");
    alice.send("alice: text\n");
    alice.expect("from alice: text");
}

#[test]
fn pings_are_answered_with_their_payload() {
    let server = start(&[]);
    let mut alice = server.login("alice");
    let ws = alice.ws.as_mut().unwrap();
    ws.send(Message::Ping(b"are you there".to_vec().into()))
        .unwrap();
    match alice.ws_message() {
        Message::Pong(payload) => assert_eq!(&payload[..], b"are you there"),
        other => panic!("expected a pong, got {other:?}"),
    }
    alice.send("alice: after the ping\n");
    alice.expect("from alice: after the ping");
}

#[test]
fn a_message_over_the_bound_closes_with_1009_and_the_others_go_on() {
    let server = start(&["--max-line", "100"]);
    let mut bob = server.login("bob");
    let mut alice = server.login("alice");
    // Past 100 + a small constant: closed, not answered `error: line too long`.
    let ws = alice.ws.as_mut().unwrap();
    let big = "x".repeat(300);
    ws.send(Message::text(format!("bob: {big}"))).unwrap();
    assert_eq!(close_code(&mut alice), Some(1009));
    server.wait_for_log("WebSocket closed with code 1009: the client sent a message of");
    server.wait_for_log("alice disconnected");
    bob.send("alice, bob: gone?\n");
    bob.expect("error: no such peer: alice");
    bob.expect("from bob: gone?");
}

#[test]
fn a_frame_declaring_a_huge_length_closes_with_1009_at_its_header() {
    let server = start(&["--max-line", "100"]);
    let mut alice = server.login("alice");
    // A header that claims 1 GiB, and only a little of it.
    let mut frame = vec![0x81, 0x80 | 127];
    frame.extend_from_slice(&(1u64 << 30).to_be_bytes());
    frame.extend_from_slice(&[1, 2, 3, 4]);
    frame.extend_from_slice(&[0; 64]);
    alice.stream.write_all(&frame).unwrap();
    assert_eq!(close_code(&mut alice), Some(1009));
    // The server lingers for the client's close, then closes.
    alice.ws.as_mut().unwrap().close(None).ok();
    alice.ws.as_mut().unwrap().flush().ok();
    let mut rest = Vec::new();
    let _ = alice.stream.read_to_end(&mut rest);
}

#[test]
fn an_unmasked_client_frame_closes_with_1002() {
    let server = start(&[]);
    let mut alice = server.login("alice");
    alice.stream.write_all(&[0x81, 0x02, b'h', b'i']).unwrap();
    assert_eq!(close_code(&mut alice), Some(1002));
    server.wait_for_log("WebSocket closed with code 1002: the client sent a frame without a mask");
}

#[test]
fn fragments_are_reassembled_and_control_frames_may_come_between() {
    let server = start(&[]);
    let mut alice = server.login("alice");
    let mut bytes = masked_frame(0x01, b"alice: frag");
    bytes.extend(masked_frame(0x89, b"ping"));
    bytes.extend(masked_frame(0x80, b"mented"));
    alice.stream.write_all(&bytes).unwrap();
    let mut pong = false;
    let line = loop {
        match alice.ws_message() {
            Message::Pong(_) => pong = true,
            Message::Text(text) => break text.to_string(),
            other => panic!("{other:?}"),
        }
    };
    assert_eq!(line, "from alice: fragmented");
    assert!(pong || matches!(alice.ws_message(), Message::Pong(_)));
}

#[test]
fn websockets_count_against_max_conns() {
    let server = start(&["--max-conns", "1"]);
    let mut alice = server.login("alice");
    let mut full = Client::connect_ws(server.ws_addrs[0]);
    full.expect("error: server full");
    assert_eq!(close_code(&mut full), Some(1001));
    alice.send("alice: still in\n");
    alice.expect("from alice: still in");
}

#[test]
fn the_login_timeout_covers_the_upgrade() {
    let server = start(&["--login-timeout", "1"]);
    let mut silent = TcpStream::connect(server.ws_addrs[0]).unwrap();
    silent.set_read_timeout(Some(WAIT)).unwrap();
    let started = Instant::now();
    let mut rest = Vec::new();
    silent.read_to_end(&mut rest).unwrap();
    assert!(rest.is_empty());
    assert!(started.elapsed() >= Duration::from_millis(900));
    server.wait_for_log("disconnected: login timeout");
}

#[test]
fn a_slow_reader_is_disconnected_as_a_slow_consumer() {
    let server = start(&["--max-queue", "65536"]);
    let addr = server.ws_addrs[0];
    let mut slow = Client::connect_with_receive_buffer(addr, 4096)
        .upgrade_ws(|request| request)
        .unwrap();
    slow.send("slow\nslow: in\n");
    slow.expect("from slow: in");
    let mut fast = server.login("fast");
    let text = "y".repeat(1000);
    for i in 0..20_000 {
        fast.send(&format!("slow: {text}\n"));
        if i % 100 == 0 && server.stderr().contains("slow consumer") {
            break;
        }
    }
    server.wait_for_log("slow consumer");
    fast.send("fast: unaffected\n");
    loop {
        let line = fast.line();
        if line == "from fast: unaffected" {
            break;
        }
        assert!(line.starts_with("error: no such peer: slow"), "{line}");
    }
}

#[test]
fn graceful_shutdown_delivers_every_queued_line_then_closes_with_1001() {
    let mut server = start(&[]);
    let mut reader = server.login("reader");
    let mut writer = server.login("writer");
    let mut script = String::new();
    for i in 0..2000 {
        script.push_str(&format!("reader: line {i}\n"));
    }
    script.push_str("writer: sent\n");
    writer.send(&script);
    writer.expect("from writer: sent");
    server.signal(Signal::TERM);
    for i in 0..2000 {
        reader.expect(&format!("from writer: line {i}"));
    }
    assert_eq!(close_code(&mut reader), Some(1001));
    // The client answers the close; the server closes.
    reader.ws.as_mut().unwrap().close(None).ok();
    reader.ws.as_mut().unwrap().flush().ok();
    writer.shutdown_write();
    assert!(server.wait_exit(WAIT).success(), "{}", server.stderr());
}

#[test]
fn a_half_sent_frame_at_shutdown_does_not_stop_it() {
    let mut server = start(&[]);
    let mut alice = server.login("alice");
    let frame = masked_frame(0x81, b"alice: never finished");
    alice.stream.write_all(&frame[..frame.len() / 2]).unwrap();
    alice.stream.flush().unwrap();
    alice.send("");
    server.signal(Signal::TERM);
    assert_eq!(close_code(&mut alice), Some(1001));
    drop(alice);
    assert!(server.wait_exit(WAIT).success(), "{}", server.stderr());
}

#[test]
fn wss_browsers_chat_with_plain_peers_and_get_1001_at_shutdown() {
    let files = util::tls::files();
    let mut server = ServerProcess::start(&[
        "--listen-wss",
        "127.0.0.1:0",
        "--tls-cert",
        files.cert.to_str().unwrap(),
        "--tls-key",
        files.key.to_str().unwrap(),
    ]);
    let addr = server.wss_addrs[0];
    let tcp = TcpStream::connect(addr).unwrap();
    tcp.set_read_timeout(Some(WAIT)).unwrap();
    let name = rustls::pki_types::ServerName::IpAddress(addr.ip().into());
    let session = rustls::ClientConnection::new(util::tls::client_config(false), name).unwrap();
    let tls = rustls::StreamOwned::new(session, tcp);
    let (mut browser, _) = tungstenite::client::client(format!("wss://{addr}/chat"), tls)
        .expect("an upgrade over TLS");
    let mut plain = Client::login(server.addr(), "plain");
    browser.send(Message::text("secure")).unwrap();
    browser.send(Message::text("plain: over wss")).unwrap();
    plain.expect("from secure: over wss");
    plain.send("secure: back\n");
    let text = loop {
        if let Message::Text(text) = browser.read().unwrap() {
            break text.to_string();
        }
    };
    assert_eq!(text, "from plain: back");
    server.signal(Signal::TERM);
    let code = loop {
        if let Message::Close(frame) = browser.read().unwrap() {
            break frame.map(|frame| u16::from(frame.code));
        }
    };
    assert_eq!(code, Some(1001));
    let _ = browser.close(None);
    let _ = browser.flush();
    plain.shutdown_write();
    assert!(server.wait_exit(WAIT).success(), "{}", server.stderr());
}
