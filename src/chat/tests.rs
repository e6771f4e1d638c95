//! The core's own tests: logins, lines, closes and the shutdown, driven through `MemoryServer`.

use std::time::Duration;

use crate::core::CloseReason;
use crate::sim::{MemoryServer, MemoryTransport};
use crate::{Config, LineError};

use super::login::CONTENTION_WAIT;
use super::*;

fn server() -> MemoryServer {
    MemoryServer::new(Config::default())
}

fn login(server: &mut MemoryServer, name: &str) -> u64 {
    let id = server.connect();
    server.send(id, format!("{name}\n").as_bytes());
    server.turn();
    assert!(server.is_open(id));
    id
}

fn phase(server: &mut MemoryServer, id: u64) -> Phase {
    let key = server
        .chat
        .peers
        .iter()
        .find(|(_, peer)| peer.io.id == id)
        .map(|(key, _)| key)
        .expect("open");
    server.chat.peers[key].phase.clone()
}

#[test]
fn login_and_message_self() {
    let mut s = server();
    let alice = login(&mut s, "alice");
    s.send(alice, b"alice: hi\n");
    s.turn();
    assert_eq!(s.take_output(alice), "from alice: hi\n");
    assert_eq!(s.chat.stats().peers_logged_in, 1);
    assert_eq!(s.chat.stats().messages_routed, 1);
}

#[test]
fn invalid_name_gets_notice_then_write_shut_then_close_on_peer_eof() {
    let mut s = server();
    let id = s.connect();
    s.send(id, b"bad:name\nalice: ignored\n");
    s.turn();
    assert_eq!(s.take_output(id), "error: invalid name\n");
    assert!(s.transport(id).write_shut);
    assert!(matches!(phase(&mut s, id), Phase::Lingering { .. }));
    // What the peer still sends is dropped, not processed.
    s.send(id, b"more\n");
    s.turn();
    assert!(s.is_open(id));
    s.transport(id).input_closed = true;
    s.turn();
    assert!(!s.is_open(id));
    assert_eq!(s.take_output(id), "");
    assert_eq!(s.chat.stats().rejected(LineError::InvalidName), 1);
}

#[test]
fn lingering_close_ends_after_the_grace_period() {
    let mut s = server();
    let id = s.connect();
    s.send(id, b"\n");
    s.turn();
    assert!(s.is_open(id));
    s.advance(Config::default().linger);
    assert!(!s.is_open(id));
}

#[test]
fn login_timeout_closes_without_a_notice() {
    let mut s = server();
    let id = s.connect();
    s.send(id, b"\xff\n");
    s.advance(Duration::from_secs(9));
    assert_eq!(s.take_output(id), "error: invalid utf-8\n");
    assert!(!s.transport(id).write_shut);
    s.advance(Duration::from_secs(1));
    assert_eq!(s.take_output(id), "");
    assert!(s.transport(id).write_shut);
}

#[test]
fn stale_timer_of_a_reused_key_does_not_touch_the_new_connection() {
    let mut s = server();
    let first = s.connect();
    s.transport(first).reset = true;
    s.turn();
    assert!(!s.is_open(first));
    s.advance(Duration::from_secs(5));
    let second = s.connect(); // takes the freed slab key
    s.send(second, b"bob\n");
    s.advance(Duration::from_secs(6)); // past the first one's login deadline
    assert!(s.is_open(second));
    assert_eq!(phase(&mut s, second), Phase::Chatting);
}

#[test]
fn name_taken_leaves_the_holder_alone() {
    let mut s = server();
    let bob = login(&mut s, "bob");
    let impostor = s.connect();
    s.send(impostor, b"bob\nbob: spoof\n");
    s.turn();
    // The holder might be closing: the login waits a moment before it is refused.
    assert_eq!(s.take_output(impostor), "");
    s.advance(CONTENTION_WAIT);
    assert_eq!(s.take_output(impostor), "error: name taken\n");
    assert_eq!(s.take_output(bob), "");
    assert_eq!(phase(&mut s, bob), Phase::Chatting);
}

#[test]
fn name_of_a_holder_that_hung_up_is_free() {
    let mut s = server();
    let old = login(&mut s, "bob");
    s.transport(old).input_closed = true;
    let new = s.connect();
    s.send(new, b"bob\nbob: back\n");
    s.turn();
    assert_eq!(s.take_output(new), "from bob: back\n");
}

#[test]
fn login_waiting_for_a_closing_holder_gets_the_name_and_keeps_its_input() {
    let mut s = server();
    let old = login(&mut s, "bob");
    let alice = login(&mut s, "alice");
    let new = s.connect_with(MemoryTransport {
        read_chunk: 5,
        ..MemoryTransport::default()
    });
    s.send(new, b"bob\nalice: one\nalice: tw");
    s.turn();
    assert!(matches!(phase(&mut s, new), Phase::Contending(_)));
    // The old connection's close arrives while the new login waits; more input too.
    s.transport(old).input_closed = true;
    s.send(new, b"o\nbob: three\n");
    s.turn();
    s.advance(CONTENTION_WAIT);
    assert_eq!(s.take_output(alice), "from bob: one\nfrom bob: two\n");
    assert_eq!(s.take_output(new), "from bob: three\n");
}

#[test]
fn over_max_conns_is_server_full() {
    let mut s = MemoryServer::new(Config {
        max_conns: 1,
        ..Config::default()
    });
    let first = login(&mut s, "a");
    let second = s.connect();
    s.turn();
    assert_eq!(s.take_output(second), "error: server full\n");
    assert!(s.transport(second).write_shut);
    // The refused one does not count: closing `first` makes room.
    s.transport(first).input_closed = true;
    s.turn();
    let third = s.connect();
    s.send(third, b"c\nc: in\n");
    s.turn();
    assert_eq!(s.take_output(third), "from c: in\n");
}

#[test]
fn half_closed_peer_is_logged_out_and_gets_its_queue() {
    let mut s = server();
    let alice = login(&mut s, "alice");
    s.transport(alice).write_window = 0;
    s.send(alice, b"alice: one\nalice: two\n");
    s.transport(alice).input_closed = true;
    s.turn();
    assert_eq!(s.chat.stats().peers_logged_in, 0);
    assert!(s.is_open(alice));
    s.transport(alice).write_window = usize::MAX;
    s.turn();
    assert!(!s.is_open(alice));
    assert_eq!(s.take_output(alice), "from alice: one\nfrom alice: two\n");
    assert!(s.transport(alice).write_shut);
}

#[test]
fn line_too_long_closes_after_earlier_lines() {
    let mut s = MemoryServer::new(Config {
        max_line: 10,
        ..Config::default()
    });
    let id = login(&mut s, "al");
    s.send(id, b"al: short\nal: far too long\nal: never\n");
    s.turn();
    assert_eq!(s.take_output(id), "from al: short\nerror: line too long\n");
    assert_eq!(
        phase(&mut s, id),
        Phase::Lingering {
            reason: CloseReason::Rejected(LineError::LineTooLong),
            deadline: Some(s.now + Config::default().linger)
        }
    );
}

#[test]
fn one_byte_reads_frame_the_same_lines() {
    let mut s = server();
    let bob = login(&mut s, "bob");
    let alice = s.connect_with(MemoryTransport {
        read_chunk: 1,
        ..MemoryTransport::default()
    });
    s.send(alice, b"alice\r\nbob: one byte at a time\r\n");
    s.settle(1000);
    assert_eq!(s.take_output(bob), "from alice: one byte at a time\n");
}

#[test]
fn reset_closes_at_once() {
    let mut s = server();
    let alice = login(&mut s, "alice");
    s.transport(alice).reset = true;
    s.turn();
    assert!(!s.is_open(alice));
    assert_eq!(s.chat.stats().connections_open, 0);
}

#[test]
fn shutdown_routes_what_arrived_then_flushes_and_waits_for_peers() {
    let mut s = server();
    let alice = login(&mut s, "alice");
    let bob = login(&mut s, "bob");
    s.transport(bob).write_window = 5;
    s.send(alice, b"bob: before the signal\n");
    s.begin_shutdown();
    assert!(s.chat.is_shutting_down());
    // Alice's line was read and routed; reading has stopped.
    s.send(alice, b"bob: after\n");
    assert!(s.transport(alice).write_shut);
    s.transport(bob).write_window = usize::MAX;
    s.turn();
    assert_eq!(s.take_output(bob), "from alice: before the signal\n");
    assert!(s.transport(bob).write_shut);
    // Each connection closes when its peer does.
    for id in [alice, bob] {
        assert!(s.is_open(id));
        s.transport(id).input_closed = true;
    }
    s.turn();
    assert!(s.chat.is_empty());
    assert_eq!(s.chat.stats().bytes_unsent_at_shutdown, 0);
}

#[test]
fn forced_shutdown_counts_what_was_dropped() {
    let mut s = server();
    let alice = login(&mut s, "alice");
    s.transport(alice).write_window = 0;
    s.send(alice, b"alice: stuck\n");
    s.turn();
    s.begin_shutdown();
    s.chat.force_close_all();
    s.turn();
    assert!(s.chat.is_empty());
    assert_eq!(
        s.chat.stats().bytes_unsent_at_shutdown,
        "from alice: stuck\n".len() as u64
    );
}

#[test]
fn new_connection_during_shutdown_is_refused() {
    let mut s = server();
    s.begin_shutdown();
    let late = s.connect();
    s.turn();
    assert_eq!(s.take_output(late), "error: server full\n");
}

#[test]
fn a_contended_login_catches_up_within_the_read_budget() {
    let mut s = server();
    let old = login(&mut s, "bob");
    let alice = login(&mut s, "alice");
    let new = s.connect_with(MemoryTransport {
        read_chunk: 1000,
        ..MemoryTransport::default()
    });
    let lines: String = (0..2000).map(|i| format!("alice: {i}\n")).collect();
    assert!(lines.len() > 3 * 4096);
    s.send(new, format!("bob\n{lines}").as_bytes());
    s.turn();
    assert!(matches!(phase(&mut s, new), Phase::Contending(_)));
    s.transport(old).input_closed = true;
    s.advance(CONTENTION_WAIT);
    // The retry read one budget's worth, and left the rest for the next turns.
    assert!(s.chat.has_unread_input());
    let first = s.take_output(alice);
    assert!(
        first.lines().count() < 2000,
        "{} lines",
        first.lines().count()
    );
    let mut turns = 0;
    while s.chat.has_unread_input() {
        s.turn();
        turns += 1;
        assert!(turns < 100);
    }
    let all = first + &s.take_output(alice);
    let expected: String = (0..2000).map(|i| format!("from bob: {i}\n")).collect();
    assert_eq!(all, expected);
}

#[test]
fn shutdown_reads_a_long_input_over_several_turns_before_closing_anyone() {
    let mut s = server();
    let alice = s.connect_with(MemoryTransport {
        read_chunk: 1000,
        ..MemoryTransport::default()
    });
    s.send(alice, b"alice\n");
    let bob = login(&mut s, "bob");
    let lines: String = (0..3000).map(|i| format!("bob: {i}\n")).collect();
    assert!(lines.len() > 4 * 4096);
    s.send(alice, lines.as_bytes());
    s.chat.begin_shutdown(s.now);
    assert!(s.chat.has_unread_input());
    assert!(s.transport(alice).input.len() > 2 * 4096);
    // Nobody is closed while alice's input is still being read: bob still has his name.
    assert_eq!(phase(&mut s, bob), Phase::Chatting);
    let mut turns = 0;
    while s.chat.has_unread_input() {
        s.turn();
        turns += 1;
        assert!(turns < 100);
    }
    s.turn();
    // Input sent after the reading stage is not read.
    s.send(alice, b"bob: too late\n");
    s.turn();
    let expected: String = (0..3000).map(|i| format!("from alice: {i}\n")).collect();
    assert_eq!(s.take_output(bob), expected);
    assert!(s.transport(bob).write_shut && s.transport(alice).write_shut);
}

#[test]
fn idle_peer_owns_no_buffers() {
    let mut s = server();
    let alice = login(&mut s, "alice");
    s.send(alice, b"alice: x\nalice: partial");
    s.turn();
    s.send(alice, b" line\n");
    s.turn();
    let key = s.chat.directory.look_up(&s.chat.peers, "alice").unwrap();
    let peer = &s.chat.peers[key];
    assert_eq!(peer.framer.buffered(), 0);
    assert!(peer.outbox.is_empty());
    assert_eq!(s.chat.stats().bytes_queued, 0);
    assert_eq!(
        s.take_output(alice),
        "from alice: x\nfrom alice: partial line\n"
    );
}

#[test]
fn a_short_read_that_drained_the_transport_is_the_last_read() {
    let mut s = server();
    let alice = login(&mut s, "alice");
    let before = s.transport(alice).reads;
    s.send(alice, b"alice: one\nalice: two\n");
    s.turn();
    assert_eq!(s.take_output(alice), "from alice: one\nfrom alice: two\n");
    // One read took it all; no second read to learn `WouldBlock`.
    assert_eq!(s.transport(alice).reads - before, 1);
}

#[test]
fn a_short_read_with_the_end_of_stream_behind_it_reads_on_to_the_end() {
    let mut s = server();
    let alice = login(&mut s, "alice");
    s.send(alice, b"alice: bye\n");
    s.transport(alice).input_closed = true;
    s.turn();
    assert_eq!(s.take_output(alice), "from alice: bye\n");
    assert!(!s.is_open(alice));
}

#[test]
fn a_read_cut_short_by_the_chunk_size_is_not_taken_for_drained() {
    let mut s = server();
    let alice = s.connect_with(MemoryTransport {
        read_chunk: 3,
        ..MemoryTransport::default()
    });
    s.send(alice, b"alice\nalice: hi\n");
    s.turn();
    assert_eq!(s.take_output(alice), "from alice: hi\n");
}
