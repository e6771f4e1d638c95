//! Section 3's graceful shutdown against the real server: signals, draining, deadline, exit status.

mod util;

use std::io::{ErrorKind, Read};
use std::net::TcpStream;
use std::time::Duration;

use util::{Client, ServerProcess, Signal, eventually};

/// Routes `count` messages of `size` bytes from a new peer `sender` to `receiver`, and waits
/// until the server has routed all of them (the sender's own last message came back).
fn queue_messages(server: &ServerProcess, receiver: &str, count: usize, size: usize) -> Client {
    let mut sender = Client::login(server.addr(), "sender");
    let mut script = String::new();
    for i in 0..count {
        script.push_str(&format!("{receiver}: {i} {}\n", "m".repeat(size)));
    }
    script.push_str("sender: all sent\n");
    sender.send(&script);
    sender.expect("from sender: all sent");
    sender
}

#[test]
fn sigterm_delivers_every_queued_message_then_exits_0() {
    let mut server = ServerProcess::start(&[]);
    let mut reader = Client::login(server.addr(), "reader");
    let mut sender = queue_messages(&server, "reader", 20_000, 10);
    server.signal(Signal::TERM);
    for i in 0..20_000 {
        reader.expect(&format!("from sender: {i} mmmmmmmmmm"));
    }
    reader.expect_eof();
    sender.expect_eof();
    drop((reader, sender));
    assert_eq!(server.wait_exit(util::WAIT).code(), Some(0));
    assert!(server.stderr().contains("shut down cleanly"));
}

#[test]
fn sigint_works_like_sigterm() {
    let mut server = ServerProcess::start(&[]);
    let mut alice = Client::login(server.addr(), "alice");
    server.signal(Signal::INT);
    alice.expect_eof();
    drop(alice);
    assert_eq!(server.wait_exit(util::WAIT).code(), Some(0));
}

#[test]
fn shutdown_stops_accepting() {
    let mut server = ServerProcess::start(&[]);
    let addr = server.addr();
    let mut alice = Client::login(addr, "alice");
    server.signal(Signal::TERM);
    server.wait_for_log("shutting down: ");
    match TcpStream::connect(addr) {
        Err(e) => assert_eq!(e.kind(), ErrorKind::ConnectionRefused),
        // With nothing listening on the freed port, a connect may pick that very port as its
        // own and connect to itself (TCP simultaneous open): that is not the server.
        Ok(stream) => assert_eq!(
            stream.local_addr().unwrap(),
            stream.peer_addr().unwrap(),
            "the server still accepts"
        ),
    }
    alice.expect_eof();
    drop(alice);
    assert_eq!(server.wait_exit(util::WAIT).code(), Some(0));
}

#[test]
fn lines_that_arrived_before_the_signal_are_routed() {
    let mut server = ServerProcess::start(&[]);
    let mut bob = Client::login(server.addr(), "bob");
    let mut alice = Client::login(server.addr(), "alice");
    // The lines are in the server's socket buffer before the signal, whether or not the
    // server has read them yet.
    alice.send("bob: one\nbob: two\nbob: three\n");
    server.signal(Signal::TERM);
    bob.expect("from alice: one");
    bob.expect("from alice: two");
    bob.expect("from alice: three");
    bob.expect_eof();
    alice.expect_eof();
    drop((alice, bob));
    assert_eq!(server.wait_exit(util::WAIT).code(), Some(0));
}

#[test]
fn peer_that_keeps_sending_is_drained_until_it_closes() {
    let mut server = ServerProcess::start(&[]);
    let mut alice = Client::login(server.addr(), "alice");
    server.signal(Signal::TERM);
    alice.expect_eof();
    // The server reads and drops what we still send, instead of resetting us.
    for _ in 0..100 {
        alice.send("alice: ignored\n");
    }
    drop(alice);
    assert_eq!(server.wait_exit(util::WAIT).code(), Some(0));
}

/// A peer that never reads, with far more queued than the kernel's buffers hold.
fn stalled_reader(server: &ServerProcess) -> (Client, Client) {
    let stalled = Client::login(server.addr(), "stalled");
    let sender = queue_messages(server, "stalled", 3000, 8000);
    (stalled, sender)
}

#[test]
fn shutdown_timeout_closes_stalled_peers_and_exits_1() {
    let mut server = ServerProcess::start(&["--max-queue", "100000000", "--shutdown-timeout", "1"]);
    let (_stalled, _sender) = stalled_reader(&server);
    server.signal(Signal::TERM);
    assert_eq!(server.wait_exit(util::WAIT).code(), Some(1));
    assert!(server.stderr().contains("routed bytes unsent"));
}

#[test]
fn second_signal_forces_the_exit() {
    let mut server =
        ServerProcess::start(&["--max-queue", "100000000", "--shutdown-timeout", "600"]);
    let (_stalled, _sender) = stalled_reader(&server);
    server.signal(Signal::TERM);
    server.wait_for_log("shutting down: ");
    server.signal(Signal::INT);
    assert_eq!(server.wait_exit(util::WAIT).code(), Some(1));
}

#[test]
fn stalled_peer_that_starts_reading_gets_everything() {
    let mut server = ServerProcess::start(&["--max-queue", "100000000"]);
    let (mut stalled, sender) = stalled_reader(&server);
    server.signal(Signal::TERM);
    server.wait_for_log("shutting down: ");
    drop(sender);
    let mut bytes = Vec::new();
    stalled.stream.read_to_end(&mut bytes).unwrap();
    let text = String::from_utf8(bytes).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 3000);
    for (i, line) in lines.iter().enumerate() {
        assert_eq!(*line, format!("from sender: {i} {}", "m".repeat(8000)));
    }
    drop(stalled);
    assert_eq!(server.wait_exit(util::WAIT).code(), Some(0));
}

#[test]
fn half_closed_peer_still_gets_its_replies() {
    let server = ServerProcess::start(&[]);
    let mut alice = Client::connect(server.addr());
    alice.send("alice\nalice: one\nalice: two\n");
    alice.shutdown_write();
    alice.expect("from alice: one");
    alice.expect("from alice: two");
    alice.expect_eof();
    // Alice's name was freed when she half-closed.
    eventually("alice's name is free", || {
        let mut again = Client::connect(server.addr());
        again.send("alice\nalice: back\n");
        (again.line() == "from alice: back").then_some(())
    });
}

#[test]
fn reset_during_shutdown_flush_does_not_stop_the_others() {
    let mut server = ServerProcess::start(&["--max-queue", "100000000"]);
    let mut reader = Client::login(server.addr(), "reader");
    let (stalled, mut sender) = stalled_reader(&server);
    sender.send("reader: last\n");
    reader.expect("from sender: last");
    server.signal(Signal::TERM);
    server.wait_for_log("shutting down: ");
    stalled.reset();
    reader.expect_eof();
    sender.expect_eof();
    drop((reader, sender));
    // The stalled peer's bytes were dropped when it reset: the exit status says so.
    assert_eq!(server.wait_exit(util::WAIT).code(), Some(1));
}

#[test]
fn signal_while_idle_exits_at_once() {
    let mut server = ServerProcess::start(&[]);
    server.signal(Signal::TERM);
    assert_eq!(server.wait_exit(Duration::from_secs(10)).code(), Some(0));
}
