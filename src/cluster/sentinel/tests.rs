//! The sentinel logic's unit tests: driven by hand, with replies as a sentinel sends them.

use super::*;

const DEADLINE: Duration = Duration::from_secs(1);

fn addr(port: u16) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], port))
}

fn three(now: Instant) -> Sentinels {
    Sentinels::new(
        vec![addr(26001), addr(26002), addr(26003)],
        "chat".into(),
        DEADLINE,
        now,
    )
}

/// The output taken, as text (the commands are plain enough to read).
fn sent(sentinels: &mut Sentinels) -> String {
    let out = String::from_utf8(sentinels.output().to_vec()).unwrap();
    sentinels.consumed(out.len());
    out
}

/// A sentinel's answers to HELLO and SUBSCRIBE.
const HANDSHAKE: &[u8] =
    b"%1\r\n$5\r\nproto\r\n:3\r\n>3\r\n$9\r\nsubscribe\r\n$14\r\n+switch-master\r\n:1\r\n";

fn answer(ip: &str, port: u16) -> Vec<u8> {
    let port = port.to_string();
    format!(
        "*2\r\n${}\r\n{ip}\r\n${}\r\n{port}\r\n",
        ip.len(),
        port.len()
    )
    .into_bytes()
}

fn switch(message: &str) -> Vec<u8> {
    format!(
        ">3\r\n$7\r\nmessage\r\n$14\r\n+switch-master\r\n${}\r\n{message}\r\n",
        message.len()
    )
    .into_bytes()
}

/// Connected to the first sentinel, its handshake answered, nothing asked.
fn connected(now: Instant) -> Sentinels {
    let mut sentinels = three(now);
    assert_eq!(sentinels.wants_connection(now), Some(addr(26001)));
    sentinels.on_connecting(now);
    sentinels.on_connected(now);
    let out = sent(&mut sentinels);
    assert!(
        out.contains("HELLO") && out.contains("+switch-master"),
        "{out}"
    );
    assert!(!out.contains("get-master-addr-by-name"), "{out}");
    sentinels.on_input(HANDSHAKE, now).unwrap();
    assert_eq!(sentinels.overdue(now + DEADLINE), None);
    sentinels
}

#[test]
fn the_master_is_asked_for_once_and_answered() {
    let now = Instant::now();
    let mut sentinels = connected(now);
    sentinels.ask(now);
    sentinels.ask(now);
    let out = sent(&mut sentinels);
    assert_eq!(out.matches("get-master-addr-by-name").count(), 1, "{out}");
    assert!(out.ends_with("$4\r\nchat\r\n"), "{out}");
    // Cut anywhere, the answer is read once it is whole.
    let reply = answer("127.0.0.1", 7000);
    sentinels.on_input(&reply[..7], now).unwrap();
    assert_eq!(sentinels.take_news(), vec![]);
    sentinels.on_input(&reply[7..], now).unwrap();
    assert_eq!(sentinels.take_news(), vec![News::Master(addr(7000))]);
    assert_eq!(sentinels.overdue(now + DEADLINE * 10), None);
}

#[test]
fn an_ask_before_the_connection_goes_with_the_handshake() {
    let now = Instant::now();
    let mut sentinels = three(now);
    sentinels.ask(now);
    sentinels.on_connecting(now);
    sentinels.on_connected(now);
    let out = sent(&mut sentinels);
    let subscribe = out.find("+switch-master").unwrap();
    assert!(
        out.find("get-master-addr-by-name").unwrap() > subscribe,
        "{out}"
    );
    let mut replies = HANDSHAKE.to_vec();
    replies.extend(answer("::1", 7001));
    sentinels.on_input(&replies, now).unwrap();
    assert_eq!(
        sentinels.take_news(),
        vec![News::Master("[::1]:7001".parse().unwrap())]
    );
}

#[test]
fn the_sentinels_are_asked_in_turn_and_a_round_without_an_answer_is_no_master() {
    let now = Instant::now();
    let mut sentinels = three(now);
    sentinels.ask(now);
    // The first refuses the connection; the second does not know the master; the third is
    // silent past the deadline.
    sentinels.on_connecting(now);
    sentinels.on_disconnected(now);
    assert_eq!(sentinels.wants_connection(now), Some(addr(26002)));
    sentinels.on_connecting(now);
    sentinels.on_connected(now);
    let mut replies = HANDSHAKE.to_vec();
    replies.extend(b"_\r\n");
    assert_eq!(
        sentinels.on_input(&replies, now),
        Err(SentinelError::UnknownMaster("chat".into()))
    );
    sentinels.on_disconnected(now);
    assert_eq!(sentinels.take_news(), vec![]);
    assert_eq!(sentinels.wants_connection(now), Some(addr(26003)));
    sentinels.on_connecting(now);
    sentinels.on_connected(now);
    assert_eq!(sentinels.overdue(now + DEADLINE / 2), None);
    let overdue = sentinels.overdue(now + DEADLINE).unwrap();
    assert_eq!(
        overdue.to_string(),
        "the sentinel did not answer HELLO within 1s"
    );
    sentinels.on_disconnected(now + DEADLINE);
    assert_eq!(sentinels.take_news(), vec![News::NoMaster]);
    // The next round starts with the first again, after the back-off.
    let later = now + DEADLINE;
    assert_eq!(sentinels.wants_connection(later), None);
    assert_eq!(
        sentinels.wants_connection(later + MIN_BACKOFF),
        Some(addr(26001))
    );
    // Asked again, it does not wait for the back-off.
    sentinels.ask(later);
    assert_eq!(sentinels.wants_connection(later), Some(addr(26001)));
}

#[test]
fn a_switch_of_this_master_is_news_and_of_another_is_not() {
    let now = Instant::now();
    let mut sentinels = connected(now);
    let mut input = switch("other 127.0.0.1 1 127.0.0.1 2");
    input.extend(switch("chat 127.0.0.1 7000 127.0.0.1 7001"));
    input.extend(switch("chat 127.0.0.1 7000 a-host-name 7001"));
    input.extend(switch("chat 127.0.0.1"));
    sentinels.on_input(&input, now).unwrap();
    assert_eq!(sentinels.take_news(), vec![News::Switched(addr(7001))]);
}

#[test]
fn hostile_and_wrong_replies_leave_the_sentinel() {
    let now = Instant::now();
    let cases: [(&[u8], &str); 5] = [
        (b"$999999999999\r\n", "larger than 16 MiB"),
        (
            b"-ERR no such command\r\n",
            "refused SENTINEL get-master-addr-by-name (ERR no such command)",
        ),
        (
            b"*2\r\n$4\r\nhost\r\n$4\r\nport\r\n",
            "unexpected reply to SENTINEL get-master-addr-by-name",
        ),
        (
            b":1\r\n",
            "unexpected reply to SENTINEL get-master-addr-by-name",
        ),
        (b"?\r\n", "does not parse"),
    ];
    for (reply, says) in cases {
        let mut sentinels = connected(now);
        sentinels.ask(now);
        sent(&mut sentinels);
        let error = sentinels.on_input(reply, now).unwrap_err();
        assert!(error.to_string().contains(says), "{error}");
        sentinels.on_disconnected(now);
        assert_eq!(sentinels.wants_connection(now), Some(addr(26002)));
    }
    // Nested past the bound.
    let mut sentinels = connected(now);
    let deep = "*1\r\n".repeat(40);
    assert_eq!(
        sentinels.on_input(deep.as_bytes(), now),
        Err(SentinelError::Reply(ReplyError::TooDeep))
    );
}

#[test]
fn a_closed_set_of_sentinels_makes_no_connection() {
    let now = Instant::now();
    let mut sentinels = connected(now);
    sentinels.close();
    sentinels.on_disconnected(now);
    sentinels.ask(now);
    assert_eq!(sentinels.wants_connection(now), None);
    assert_eq!(sentinels.next_deadline(), None);
}
