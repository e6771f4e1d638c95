//! Section 2 of the contract against the real server: login, routing, notices and ordering;
//! every test runs three times, over plain TCP (`plain::`), over TLS (`tls::`, section 8) and
//! over a WebSocket (`ws::`, section 10: each line one text message).

mod util;

use util::{Net, ServerProcess};

/// Each test function, taking the `Net` to run over, becomes a `#[test]` in `plain` and one in
/// `tls`.
macro_rules! over_both {
    ($(fn $name:ident($net:ident) $body:block)*) => {
        $(fn $name($net: Net) $body)*
        mod plain {
            $(#[test] fn $name() { super::$name(super::Net::Plain) })*
        }
        mod tls {
            $(#[test] fn $name() { super::$name(super::Net::Tls) })*
        }
        mod ws {
            $(#[test] fn $name() { super::$name(super::Net::Ws) })*
        }
    };
}

/// One test per invalid name: the notice, then the connection closes.
macro_rules! invalid_name {
    ($($test:ident: $line:expr;)*) => {
        over_both! {
            $(fn $test(net) {
                let server = ServerProcess::start_over(net, &[]);
                let mut client = server.connect();
                client.send_bytes($line);
                client.expect_closed_after("error: invalid name");
            })*
        }
    };
}

mod invalid_names {
    use super::*;

    invalid_name! {
        name_empty: b"\n";
        name_blank: b"  \t \r\n";
        name_33_bytes: format!("{}\n", "n".repeat(33)).as_bytes();
        name_with_comma: b"al,ice\n";
        name_with_colon: b"al:ice\n";
        name_with_control: b"al\x07ice\n";
        name_with_tab_inside: b"al\tice\n";
        name_with_byte_order_mark: "\u{feff}bob\n".as_bytes();
        name_with_zero_width_space: "\u{200b}bob\n".as_bytes();
        name_with_line_separator: "bob\u{2028}\n".as_bytes();
        name_with_no_break_space: "bob\u{a0}\n".as_bytes();
        name_with_hangul_filler: "bob\u{3164}\n".as_bytes();
    }
}

over_both! {
    fn names_are_trimmed_and_may_be_32_bytes(net) {
        let server = ServerProcess::start_over(net, &[]);
        let long = "n".repeat(32);
        let mut a = server.connect();
        a.send("  \t spaced name \r\n");
        a.send("spaced name: hi\n");
        a.expect("from spaced name: hi");
        let mut b = server.login(&long);
        b.send(&format!("{long}, spaced name: x\n"));
        b.expect(&format!("from {long}: x"));
        a.expect(&format!("from {long}: x"));
    }

    fn routes_to_each_named_peer_with_the_senders_name(net) {
        let server = ServerProcess::start_over(net, &[]);
        let mut alice = server.login("alice");
        let mut bob = server.login("bob");
        let mut carol = server.login("carol");
        alice.send("bob, carol: hello there\n");
        bob.expect("from alice: hello there");
        carol.expect("from alice: hello there");
        // Alice got nothing: the next thing she reads is her own message.
        alice.send("alice: me\n");
        alice.expect("from alice: me");
    }

    fn message_splits_at_first_colon_and_trims(net) {
        let server = ServerProcess::start_over(net, &[]);
        let mut alice = server.login("alice");
        let mut bob = server.login("bob");
        alice.send("  bob ,, , :   time: 12:30  \n");
        bob.expect("from alice: time: 12:30");
        alice.send("bob:\n");
        bob.expect("from alice: ");
    }

    fn peer_named_twice_gets_the_message_once(net) {
        let server = ServerProcess::start_over(net, &[]);
        let mut alice = server.login("alice");
        let mut bob = server.login("bob");
        alice.send("bob, bob ,alice, bob: once\n");
        bob.expect("from alice: once");
        alice.expect("from alice: once");
        alice.send("bob: next\n");
        bob.expect("from alice: next");
    }

    fn unknown_destinations_get_one_notice_each_in_order(net) {
        let server = ServerProcess::start_over(net, &[]);
        let mut alice = server.login("alice");
        let mut bob = server.login("bob");
        alice.send("ghost, bob, alice, ghost, spook: boo\n");
        alice.expect("error: no such peer: ghost");
        alice.expect("from alice: boo");
        alice.expect("error: no such peer: spook");
        bob.expect("from alice: boo");
    }

    fn line_without_colon_gets_a_notice_and_stays_open(net) {
        let server = ServerProcess::start_over(net, &[]);
        let mut alice = server.login("alice");
        alice.send("hello everyone\n");
        alice.expect("error: expected 'dest: message'");
        alice.send("alice: still here\n");
        alice.expect("from alice: still here");
    }

    fn blank_lines_are_ignored(net) {
        let server = ServerProcess::start_over(net, &[]);
        let mut alice = server.login("alice");
        alice.send("\n   \n\t\r\n");
        alice.send("alice: after blanks\n");
        alice.expect("from alice: after blanks");
    }

    fn invalid_utf8_is_dropped_and_the_connection_stays_open(net) {
        let server = ServerProcess::start_over(net, &[]);
        let mut alice = server.login("alice");
        let mut bob = server.login("bob");
        alice.send_bytes(b"bob: caf\xe9\n");
        alice.expect("error: invalid utf-8");
        alice.send("bob: café\n");
        bob.expect("from alice: café");
    }

    fn invalid_utf8_name_line_keeps_waiting_for_a_name(net) {
        let server = ServerProcess::start_over(net, &[]);
        let mut client = server.connect();
        client.send_bytes(b"\xff\xfe\n");
        client.expect("error: invalid utf-8");
        client.send("dave\ndave: ok\n");
        client.expect("from dave: ok");
    }

    fn crlf_lines_work_like_lf_lines(net) {
        let server = ServerProcess::start_over(net, &[]);
        let mut alice = server.connect();
        alice.send("alice\r\n");
        let mut bob = server.login("bob");
        alice.send("bob: windows\r\n");
        bob.expect("from alice: windows");
        // A lone `\r` inside a line is text, and is trimmed only at the ends.
        alice.send("bob: a\rb\r\n");
        bob.expect("from alice: a\rb");
    }

    fn duplicate_name_is_refused_and_the_holder_is_not_disturbed(net) {
        let server = ServerProcess::start_over(net, &[]);
        let mut bob = server.login("bob");
        let mut alice = server.login("alice");
        let mut impostor = server.connect();
        impostor.send("bob\n");
        // Whatever the impostor sends after its refused name is not routed.
        impostor.send("alice: I am bob\n");
        impostor.expect_closed_after("error: name taken");
        alice.send("bob: are you there?\n");
        bob.expect("from alice: are you there?");
        bob.send("alice: yes\n");
        alice.expect("from bob: yes");
    }

    fn name_is_free_once_its_holder_disconnects(net) {
        let server = ServerProcess::start_over(net, &[]);
        let mut alice = server.login("alice");
        let bob = server.login("bob");
        drop(bob);
        // Until the server has seen bob's close, a probe reaches him instead of a notice: each
        // probe also goes to alice herself, so that she knows when its answer is complete.
        let mut probe = 0;
        util::eventually("bob's name is freed", || {
            probe += 1;
            alice.send(&format!("bob, alice: probe {probe}\n"));
            let first = alice.line();
            if first == "error: no such peer: bob" {
                alice.expect(&format!("from alice: probe {probe}"));
                return Some(());
            }
            assert_eq!(first, format!("from alice: probe {probe}"));
            None
        });
        let mut bob = server.login("bob");
        alice.send("bob: welcome back\n");
        bob.expect("from alice: welcome back");
    }

    fn reconnecting_at_once_gets_the_name_back(net) {
        let server = ServerProcess::start_over(net, &[]);
        for _ in 0..20 {
            let bob = server.login("bob");
            drop(bob);
        }
        server.login("bob");
    }

    fn one_byte_writes_are_reassembled(net) {
        let server = ServerProcess::start_over(net, &[]);
        let mut bob = server.login("bob");
        let mut alice = server.connect();
        for byte in b"alice\r\nbob: slow and steady\r\n" {
            alice.send_bytes(&[*byte]);
        }
        bob.expect("from alice: slow and steady");
    }

    fn large_pipelined_write_routes_every_line_in_order(net) {
        let server = ServerProcess::start_over(net, &[]);
        let mut bob = server.login("bob");
        let mut carol = server.login("carol");
        let mut alice = server.connect();
        let mut script = String::from("alice\n");
        for i in 0..5000 {
            script.push_str(&format!("bob,carol: message {i} {}\n", "x".repeat(i % 300)));
        }
        alice.send(&script);
        for i in 0..5000 {
            let expected = format!("from alice: message {i} {}", "x".repeat(i % 300));
            assert_eq!(bob.line(), expected.trim_end());
            assert_eq!(carol.line(), expected.trim_end());
        }
    }

    fn two_thousand_messages_arrive_in_order(net) {
        let server = ServerProcess::start_over(net, &[]);
        let mut alice = server.login("alice");
        let mut bob = server.login("bob");
        for i in 0..2000 {
            alice.send(&format!("bob: {i}\n"));
        }
        for i in 0..2000 {
            bob.expect(&format!("from alice: {i}"));
        }
    }

    fn only_error_and_from_lines_are_ever_sent(net) {
        let server = ServerProcess::start_over(net, &[]);
        let mut alice = server.connect();
        alice.send_bytes(b"\xff\nalice\nnope\n\xfe\nghost: x\n :x\nalice: done\n");
        let mut lines = Vec::new();
        loop {
            let line = alice.line();
            assert!(
                line.starts_with("error: ") || line.starts_with("from "),
                "{line:?}"
            );
            if line == "from alice: done" {
                break;
            }
            lines.push(line);
        }
        assert_eq!(
            lines,
            [
                "error: invalid utf-8",
                "error: expected 'dest: message'",
                "error: invalid utf-8",
                "error: no such peer: ghost",
            ]
        );
    }
}

/// Bytes that arrive before the server accepts the connection are read when it does: the
/// server registers the socket before its first read and relies on the poll to announce what
/// is already there (`Chat::accept_registered`). The server is stopped while the clients
/// connect and send, so that their connections wait in the backlog with their lines.
#[test]
fn lines_sent_before_the_server_accepts_are_read() {
    let server = ServerProcess::start(&[]);
    server.pause();
    let mut alice = server.connect();
    alice.send("alice\nalice: before the accept\n");
    let mut bob = server.connect();
    bob.send("bob\nbob: before the accept\n");
    server.signal(util::Signal::CONT);
    alice.expect("from alice: before the accept");
    bob.expect("from bob: before the accept");
    alice.send("bob: after\n");
    bob.expect("from alice: after");
}
