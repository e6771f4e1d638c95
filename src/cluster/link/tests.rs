//! The link's unit tests: a link driven by hand, its output decoded, replies as Redis sends them.

use super::batches::BATCH;
use super::state::MIN_BACKOFF;
use super::*;
use crate::cluster::events::Undelivered;
use crate::cluster::records;
use redis_protocol::resp3::decode::complete::decode;
use redis_protocol::resp3::types::OwnedFrame;

const TTL: Duration = Duration::from_secs(3);

/// The commands in the link's output, as arrays of strings; the output is taken.
fn commands(link: &mut ClusterLink) -> Vec<Vec<String>> {
    let out = link.output().to_vec();
    link.consumed(out.len());
    let mut at = 0;
    let mut commands = Vec::new();
    while let Some((frame, used)) = decode(&out[at..]).expect("RESP") {
        at += used;
        let OwnedFrame::Array { data, .. } = frame else {
            panic!("{frame:?}");
        };
        commands.push(
            data.into_iter()
                .map(|part| match part {
                    OwnedFrame::BlobString { data, .. } => {
                        String::from_utf8_lossy(&data).into_owned()
                    }
                    other => panic!("{other:?}"),
                })
                .collect(),
        );
    }
    assert_eq!(at, out.len());
    commands
}

/// Redis's answers to node n1's handshake: HELLO, the scripts loaded, the subscription, and
/// the first hold (granted, no recovery window).
fn handshake_replies() -> Vec<u8> {
    let mut replies = b"%1\r\n+proto\r\n:3\r\n".to_vec();
    for sha in script_shas() {
        replies.extend_from_slice(format!("${}\r\n{sha}\r\n", sha.len()).as_bytes());
    }
    replies.extend_from_slice(b">3\r\n$9\r\nsubscribe\r\n$12\r\na-chat:to:n1\r\n:1\r\n");
    replies.extend_from_slice(b"*2\r\n:0\r\n:-2\r\n");
    replies
}

/// A link connected at `now`, its handshake answered (HELLO, the scripts, SUBSCRIBE, the
/// hold), its events taken.
fn joined(now: Instant) -> ClusterLink {
    let mut link = ClusterLink::new("n1".into(), TTL, now);
    assert!(link.wants_connection(now));
    link.on_connecting(now);
    link.on_connected(now, std::iter::empty());
    link.flush();
    let sent = commands(&mut link);
    assert_eq!(sent.len(), 1 + 4 + 1 + 1, "{sent:?}");
    link.on_input(&handshake_replies(), now).expect("handshake");
    assert!(link.is_available());
    link.take_events();
    link
}

fn who(key: usize) -> Who {
    Who { key, generation: 1 }
}

#[test]
fn a_turns_work_is_one_write_in_bounded_batches() {
    let now = Instant::now();
    let mut link = joined(now);
    for i in 0..3 {
        assert!(link.claim(who(i), format!("new{i}").into()));
        link.release(who(i), format!("old{i}").into());
    }
    // 1,200 destinations of one sender's text: records of 64 destinations, cut into
    // batches of about BATCH destinations.
    for i in 0..1200 {
        assert!(link.route(who(0), "alice", &format!("p{i}"), "hi"));
    }
    link.flush();
    let sent = commands(&mut link);
    let kinds: Vec<&str> = sent.iter().map(|c| c[1].as_str()).collect();
    let [hold, claim, release, route] = script_shas();
    assert_eq!(kinds.iter().filter(|&&k| k == release).count(), 1);
    assert_eq!(kinds.iter().filter(|&&k| k == claim).count(), 1);
    assert!(!kinds.contains(&hold));
    let routes: Vec<&Vec<String>> = sent.iter().filter(|c| c[1] == route).collect();
    assert_eq!(routes.len(), 3);
    for command in &routes {
        let keys: usize = command[2].parse().unwrap();
        assert!(keys <= BATCH + 64, "{keys} keys in one EVALSHA");
        assert_eq!(command.len(), 3 + keys + 2);
    }
    // Nothing more to write until something new happens.
    link.flush();
    assert!(link.output().is_empty());
}

#[test]
fn replies_match_their_requests_across_a_reconnect() {
    let now = Instant::now();
    let mut link = joined(now);
    assert!(link.claim(who(1), "alice".into()));
    assert!(link.route(who(2), "bob", "carol", "hi"));
    link.flush();
    commands(&mut link);
    // The connection breaks before the answers: both waiters hear "unavailable".
    link.on_disconnected(now);
    let events = link.take_events();
    assert!(events.contains(&Event::Claim {
        who: who(1),
        name: "alice".into(),
        outcome: Claimed::Unavailable
    }));
    assert!(events.contains(&Event::Route {
        who: who(2),
        dest: "carol".into(),
        outcome: Undelivered::Unavailable
    }));
    assert!(!link.wants_connection(now));
    let later = now + MIN_BACKOFF;
    assert!(link.wants_connection(later));
    // The new connection starts over: half a reply left from the old one is gone, and
    // the first answer goes to HELLO, not to the old claim.
    link.on_input(b"*2\r\n:1\r\n", later)
        .expect("half a reply is kept");
    link.on_connecting(later);
    link.on_connected(later, std::iter::empty());
    assert!(link.on_input(b"%1\r\n+proto\r\n:3\r\n", later).is_ok());
    assert!(link.take_events().is_empty());
}

#[test]
fn a_reply_nobody_waits_for_is_an_error() {
    let mut link = joined(Instant::now());
    let now = Instant::now();
    let error = link.on_input(b":42\r\n", now).unwrap_err().to_string();
    assert!(error.contains("a reply no request waits for"), "{error}");
    let mut link = joined(Instant::now());
    assert!(link.claim(who(1), "alice".into()));
    link.flush();
    let error = link.on_input(b"$2\r\nno\r\n", now).unwrap_err().to_string();
    assert!(
        error.contains("an unexpected reply to a claim of 1 names"),
        "{error}"
    );
    assert!(link.on_input(b"?what\r\n", now).is_err());
}

#[test]
fn every_routed_destination_is_answered_once_whatever_the_reply() {
    let now = Instant::now();
    let mut link = joined(now);
    let answered = |events: &[Event]| -> Vec<(Who, usize)> {
        events
            .iter()
            .filter_map(|event| match event {
                Event::Answered { who, count } => Some((*who, *count)),
                _ => None,
            })
            .collect()
    };
    // Delivered (one status for all) and unknown destinations alike are answered.
    for dest in ["bob", "carol"] {
        assert!(link.route(who(1), "alice", dest, "hi"));
    }
    assert!(link.route(who(2), "erin", "bob", "yo"));
    link.flush();
    commands(&mut link);
    link.on_input(b"*1\r\n:1\r\n", now).expect("route reply");
    assert_eq!(answered(&link.take_events()), [(who(1), 2), (who(2), 1)]);
    assert!(link.route(who(1), "alice", "ghost", "hi"));
    link.flush();
    commands(&mut link);
    link.on_input(b"*1\r\n:0\r\n", now).expect("route reply");
    let events = link.take_events();
    assert_eq!(
        events,
        [
            Event::Route {
                who: who(1),
                dest: "ghost".into(),
                outcome: Undelivered::NoSuchPeer
            },
            Event::Answered {
                who: who(1),
                count: 1
            }
        ]
    );
    // A reply of the wrong shape breaks the link, and its destinations are still answered.
    assert!(link.route(who(3), "dave", "bob", "hi"));
    link.flush();
    commands(&mut link);
    assert!(link.on_input(b"$2\r\nno\r\n", now).is_err());
    let events = link.take_events();
    assert!(events.contains(&Event::Route {
        who: who(3),
        dest: "bob".into(),
        outcome: Undelivered::Unavailable
    }));
    assert_eq!(answered(&events), [(who(3), 1)]);
}

#[test]
fn the_hold_lapses_by_the_nodes_clock() {
    let now = Instant::now();
    let mut link = joined(now);
    // Renewals go out a third of the TTL apart, and are not answered.
    link.on_timer(now + TTL / 3, true);
    link.flush();
    let sent = commands(&mut link);
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0][1], script_shas()[0]);
    link.on_timer(now + TTL - Duration::from_millis(1), true);
    assert!(!link.take_events().contains(&Event::HoldLost));
    // The TTL after the last granted renewal was sent: lapsed, whatever Redis says later.
    link.check_lapse(now + TTL);
    assert_eq!(link.take_events(), vec![Event::HoldLost]);
    assert!(!link.is_available());
}

#[test]
fn a_renewal_that_finds_the_key_gone_claims_the_names_again() {
    let now = Instant::now();
    let mut link = joined(now);
    link.on_timer(now + TTL / 3, true);
    link.flush();
    commands(&mut link);
    link.on_input(b"*2\r\n:0\r\n:-2\r\n", now)
        .expect("hold reply");
    assert_eq!(link.take_events(), vec![Event::Reclaim]);
    link.reclaim(&[(who(1), "alice".into())]);
    link.flush();
    let sent = commands(&mut link);
    assert_eq!(sent[0][1], script_shas()[1]);
    assert_eq!(
        sent[0][3..],
        ["a-chat:name:alice", "n1", "again", "3000", "1"]
    );
    link.on_input(b"*1\r\n:0\r\n", now).expect("reclaim reply");
    assert_eq!(
        link.take_events(),
        vec![Event::NameLost {
            who: who(1),
            name: "alice".into()
        }]
    );
}
#[test]
fn a_hostile_reply_is_a_broken_link_and_never_grows_the_input_past_the_bound() {
    let now = Instant::now();
    // 5,000 nested arrays: refused (no stack overflow), in a sentence.
    let mut link = joined(now);
    let mut deep = b"*1\r\n".repeat(5000);
    deep.extend_from_slice(b":1\r\n");
    let error = link.on_input(&deep, now).unwrap_err().to_string();
    assert_eq!(
        error,
        "a reply from Redis nested deeper than 32 levels (the limit)"
    );
    // A bulk string announced far past the bound: refused at its header.
    let mut link = joined(now);
    let error = link
        .on_input(b"$999999999999\r\n", now)
        .unwrap_err()
        .to_string();
    assert_eq!(error, "a reply from Redis larger than 16 MiB (the limit)");
    // A line that never ends, 64 KiB a read: the input stays within the bound until the
    // frame passes it, and then it is refused.
    let mut link = joined(now);
    let chunk = vec![b'a'; 64 * 1024];
    link.on_input(b"+", now).unwrap();
    let error = loop {
        match link.on_input(&chunk, now) {
            Ok(()) => assert!(link.input.held() <= resp::MAX_REPLY + chunk.len()),
            Err(e) => break e.to_string(),
        }
    };
    assert!(error.contains("larger than 16 MiB"), "{error}");
    assert!(link.input.held() <= resp::MAX_REPLY + chunk.len());
    // The driver drops the connection: the next one starts with nothing of it.
    link.on_disconnected(now);
    assert_eq!(link.input.held(), 0);
}

#[test]
fn a_request_unanswered_past_the_deadline_breaks_the_link() {
    let now = Instant::now();
    let deadline = TTL / 3;
    // The connection is not made: overdue at the deadline.
    let mut link = ClusterLink::new("n1".into(), TTL, now);
    link.on_connecting(now);
    assert_eq!(link.next_deadline(), Some(now + deadline));
    assert_eq!(
        link.overdue(now + deadline - Duration::from_millis(1)),
        None
    );
    let overdue = link.overdue(now + deadline).expect("overdue").to_string();
    assert!(overdue.contains("not made within 1s"), "{overdue}");
    // Made, and HELLO never answered.
    link.on_disconnected(now + deadline);
    let later = now + deadline + MIN_BACKOFF;
    link.on_connecting(later);
    link.on_connected(later, std::iter::empty());
    link.flush();
    assert_eq!(
        link.overdue(later + deadline - Duration::from_millis(1)),
        None
    );
    assert_eq!(
        link.overdue(later + deadline)
            .map(|e| e.to_string())
            .as_deref(),
        Some("Redis did not answer HELLO within 1s")
    );
    // Each answer restarts the wait for the next request; none waiting, no deadline.
    let mut link = joined(now);
    assert_eq!(link.overdue(now + TTL), None);
    let t1 = now + Duration::from_millis(300);
    link.on_timer(t1, false);
    assert!(link.claim(who(1), "alice".into()));
    link.flush();
    assert_eq!(link.overdue(t1 + deadline - Duration::from_millis(1)), None);
    assert!(link.next_deadline().is_some_and(|at| at <= t1 + deadline));
    let t2 = t1 + Duration::from_millis(500);
    link.on_input(b"*1\r\n:1\r\n", t2).expect("claim reply");
    assert_eq!(link.overdue(t1 + deadline), None);
    let t3 = t1 + Duration::from_millis(900);
    link.on_timer(t3, true);
    link.flush();
    assert_eq!(
        link.overdue(t3 + deadline)
            .map(|e| e.to_string())
            .as_deref(),
        Some("Redis did not answer the hold's renewal within 1s")
    );
}

#[test]
fn a_password_wanted_is_said_in_a_sentence() {
    let now = Instant::now();
    let mut link = ClusterLink::new("n1".into(), TTL, now);
    link.on_connecting(now);
    link.on_connected(now, std::iter::empty());
    let error = link
        .on_input(
            b"-NOAUTH HELLO must be called with the client already authenticated\r\n",
            now,
        )
        .unwrap_err()
        .to_string();
    assert_eq!(
        error,
        "Redis requires a password (NOAUTH): give it in the cluster URL or in A_CHAT_REDIS_PASSWORD"
    );
    let mut link = ClusterLink::new("n1".into(), TTL, now);
    link.on_connecting(now);
    link.on_connected(now, std::iter::empty());
    let error = link
        .on_input(b"-ERR unknown command 'HELLO'\r\n", now)
        .unwrap_err()
        .to_string();
    assert!(error.contains("Redis 6 or later is needed"), "{error}");
}

#[test]
fn the_handshake_authenticates_first_and_a_refusal_never_shows_the_password() {
    let now = Instant::now();
    let mut link = ClusterLink::new("n1".into(), TTL, now)
        .with_credentials("node".into(), RedisPassword::from("hunter2"));
    link.on_connecting(now);
    link.on_connected(now, std::iter::empty());
    let sent = commands(&mut link);
    assert_eq!(sent[0], ["HELLO", "3", "AUTH", "node", "hunter2"]);
    assert!(
        sent[1..]
            .iter()
            .all(|c| !c.contains(&"hunter2".to_string()))
    );
    let error = link
        .on_input(
            b"-WRONGPASS invalid username-password pair or user is disabled.\r\n",
            now,
        )
        .unwrap_err();
    assert!(matches!(error, LinkError::Refused { .. }));
    assert_eq!(
        error.to_string(),
        "redis refused the password for user node \
         (WRONGPASS invalid username-password pair or user is disabled.)"
    );
    // A Redis that echoes the arguments it refuses (one older than 6) has them scrubbed.
    let mut link = ClusterLink::new("n1".into(), TTL, now)
        .with_credentials("node".into(), RedisPassword::from("hunter2"));
    link.on_connecting(now);
    link.on_connected(now, std::iter::empty());
    let error = link
        .on_input(
            b"-ERR unknown command `HELLO`, with args beginning with: `3`, `AUTH`, `node`, `hunter2`, \r\n",
            now,
        )
        .unwrap_err()
        .to_string();
    assert!(
        !error.contains("hunter2") && error.contains("***"),
        "{error}"
    );
    assert!(!format!("{link:?}").contains("hunter2"));
}

#[test]
fn a_recovery_window_is_counted_once_and_ends_on_time() {
    let now = Instant::now();
    let mut link = joined(now);
    assert_eq!(link.stats.recovery_windows, 0);
    let hold = |link: &mut ClusterLink, at: Instant, left_ms: i64| {
        link.on_timer(at, true);
        link.flush();
        commands(link);
        let reply = format!("*2\r\n:1\r\n:{left_ms}\r\n");
        link.on_input(reply.as_bytes(), at).expect("hold reply");
    };
    let t1 = now + TTL / 3;
    hold(&mut link, t1, 3000);
    assert_eq!(link.stats.recovery_windows, 1);
    assert!(link.stats.recovering);
    assert!(link.next_deadline().is_some_and(|at| at <= t1 + TTL));
    // The next renewal finds it still open: the same window.
    let t2 = t1 + TTL / 3;
    hold(&mut link, t2, 2000);
    assert_eq!(link.stats.recovery_windows, 1);
    // It ends by the node's clock.
    link.on_timer(t2 + Duration::from_millis(1999), true);
    assert!(link.stats.recovering);
    link.on_timer(t2 + Duration::from_millis(2000), true);
    assert!(!link.stats.recovering);
    // A later one is another window.
    let t3 = t2 + TTL;
    hold(&mut link, t3, 500);
    assert_eq!(link.stats.recovery_windows, 2);
    // A renewal that finds it gone ends it at once.
    hold(&mut link, t3 + Duration::from_millis(100), -2);
    assert!(!link.stats.recovering);
    assert_eq!(link.stats.recovery_windows, 2);
}

#[test]
fn a_reply_of_the_wrong_shape_is_told_in_a_sentence() {
    let now = Instant::now();
    let mut link = joined(now);
    let error = link.on_input(b":42\r\n", now).unwrap_err().to_string();
    assert_eq!(error, "a reply no request waits for (an integer)");
    let mut link = joined(now);
    assert!(link.claim(who(1), "alice".into()));
    assert!(link.claim(who(2), "bob".into()));
    link.flush();
    let error = link.on_input(b"$2\r\nno\r\n", now).unwrap_err().to_string();
    assert_eq!(
        error,
        "an unexpected reply to a claim of 2 names (a string of 2 bytes)"
    );
    let mut link = joined(now);
    assert!(link.claim(who(1), "alice".into()));
    link.flush();
    let error = link.on_input(b"*1\r\n:1\r\n*3\r\n:1\r\n:2\r\n:3\r\n", now);
    assert_eq!(
        error.map_err(|e| e.to_string()),
        Err("a reply no request waits for (an array of 3 integers)".to_string())
    );
}

#[test]
fn a_route_batch_holds_at_most_a_few_mib_of_records() {
    let now = Instant::now();
    let mut link = joined(now);
    // 300 destinations, each with a text of its own of 33 KiB (a large `--max-line`): about
    // 10 MiB of records, which in one script run would be one publish of 10 MiB to their node.
    let text = "x".repeat(33 * 1024);
    for i in 0..300 {
        assert!(link.route(who(i), &format!("s{i}"), &format!("p{i}"), &text));
    }
    link.flush();
    let sent = commands(&mut link);
    let route = script_shas()[scripts::ROUTE_INDEX];
    let mut dests = 0;
    for command in sent.iter().filter(|c| c[1] == route) {
        let keys: usize = command[2].parse().unwrap();
        dests += keys;
        let records = &command[3 + keys];
        assert!(
            records.len() <= 4 << 20,
            "{} bytes of records in one EVALSHA",
            records.len()
        );
    }
    assert_eq!(dests, 300);
}

#[test]
fn a_claim_made_while_starting_waits_for_the_first_attempt() {
    let now = Instant::now();
    // Before the first attempt even began: the claim waits, and nothing is sent for it.
    let mut link = ClusterLink::new("n1".into(), TTL, now);
    assert!(link.claim(who(1), "alice".into()));
    link.flush();
    assert!(link.output().is_empty());
    link.on_connecting(now);
    link.on_connected(now, std::iter::empty());
    assert!(link.claim(who(2), "bob".into()));
    link.flush();
    // The handshake only: the claims wait for the hold's answer.
    assert_eq!(commands(&mut link).len(), 1 + 4 + 1 + 1);
    link.on_input(&handshake_replies(), now).expect("handshake");
    link.flush();
    let sent = commands(&mut link);
    let claim = script_shas()[1];
    assert_eq!(sent.len(), 1, "{sent:?}");
    assert_eq!(sent[0][1], claim);
    for name in ["alice", "bob"] {
        assert!(sent[0].iter().any(|arg| arg.ends_with(name)), "{sent:?}");
    }

    // A first attempt that fails answers the claims that waited for it, and after it a node
    // without Redis refuses at once (rule 6.5).
    let mut link = ClusterLink::new("n1".into(), TTL, now);
    assert!(link.claim(who(1), "alice".into()));
    link.on_connecting(now);
    link.on_disconnected(now);
    assert_eq!(
        link.take_events(),
        vec![Event::Claim {
            who: who(1),
            name: "alice".into(),
            outcome: Claimed::Unavailable
        }]
    );
    assert!(!link.claim(who(2), "bob".into()));
}

#[test]
fn claims_releases_routes_and_bounces_name_their_connections() {
    let now = Instant::now();
    let mut link = joined(now);
    let (alice, bob) = (
        Who {
            key: 3,
            generation: 41,
        },
        Who {
            key: 3,
            generation: u64::MAX,
        },
    );
    link.release(alice, "alice".into());
    assert!(link.claim(bob, "alice".into()));
    assert!(link.route(bob, "alice", "carol", "hi"));
    link.bounce(
        "n2",
        records::Sender {
            conn: 7,
            name: "erin",
        },
        "dave",
    );
    link.flush();
    let sent = commands(&mut link);
    let [_, claim, release, route] = script_shas();
    // Redis deletes the name only if connection 41 holds it, and gives it to the new one.
    assert_eq!(sent[0][1], release);
    assert_eq!(sent[0][2..], ["1", "a-chat:name:alice", "n1", "41"]);
    assert_eq!(sent[1][1], claim);
    assert_eq!(
        sent[1][2..],
        [
            "1",
            "a-chat:name:alice",
            "n1",
            "new",
            "3000",
            "18446744073709551615"
        ]
    );
    assert_eq!(sent[2][1], route);
    assert_eq!(sent[2][4], "M,n1,18446744073709551615,alice,carol,hi\n");
    assert_eq!(sent[3], ["PUBLISH", "a-chat:to:n2", "B,7,erin,dave\n"]);
}

#[test]
fn with_sentinels_each_connection_checks_that_redis_is_the_master() {
    let now = Instant::now();
    let hello = b"%1\r\n+proto\r\n:3\r\n";
    for (role, joins) in [
        (&b"*3\r\n$6\r\nmaster\r\n:0\r\n*0\r\n"[..], true),
        (
            &b"*5\r\n$5\r\nslave\r\n$9\r\n127.0.0.1\r\n:7000\r\n$9\r\nconnected\r\n:1\r\n"[..],
            false,
        ),
        (
            &b"-NOPERM this user has no permissions to run the 'role' command\r\n"[..],
            false,
        ),
    ] {
        let mut link = ClusterLink::new("n1".into(), TTL, now);
        link.check_role();
        link.on_connecting(now);
        link.on_connected(now, std::iter::empty());
        link.flush();
        let sent = commands(&mut link);
        assert_eq!(sent[1], vec!["ROLE"], "{sent:?}");
        let mut replies = hello.to_vec();
        replies.extend_from_slice(role);
        replies.extend_from_slice(&handshake_replies()[hello.len()..]);
        match link.on_input(&replies, now) {
            Ok(()) => assert!(joins && link.is_available()),
            Err(error) => {
                assert!(!joins, "{error}");
                let error = error.to_string();
                assert!(
                    error.starts_with(
                        "Redis at the address the sentinels gave is not the master (ROLE: slave)"
                    ) || error.ends_with("its ACL user needs +role"),
                    "{error}"
                );
            }
        }
    }
}
