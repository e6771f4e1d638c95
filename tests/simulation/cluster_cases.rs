//! Cluster cases played step by step on the fake Redis of `fake_redis.rs`, where the seeded
//! schedules of `cluster.rs` would meet them too rarely: destinations that cannot be names
//! (answered on the sender's node, never cut short on the way), a sender that half-closes
//! right after its line (kept open for its notices), peers that flood the link with
//! lookups (held to their budget while the others chat on), and notices and messages that
//! follow connections, not names (rule 6.9).

use std::time::{Duration, Instant};

use a_chat::Config;
use a_chat::sim::MemoryServer;

use super::cluster::turn_node;
use super::fake_redis::FakeRedis;

const TTL: Duration = Duration::from_secs(3);

/// A few nodes on one fake Redis, one clock.
struct Cluster {
    redis: FakeRedis,
    nodes: Vec<MemoryServer>,
    now: Instant,
    /// Per node: Redis's socket is stuck both ways (nothing written reaches Redis, none of
    /// its replies reaches the node).
    stuck: Vec<bool>,
}

impl Cluster {
    /// `count` nodes with `config`, each in the cluster.
    fn new(count: usize, config: Config) -> Self {
        let mut cluster = Cluster::starting(count, config);
        cluster.turns(5);
        cluster
    }

    /// `count` nodes with `config`, just started: no turn yet, no connection to Redis made.
    fn starting(count: usize, config: Config) -> Self {
        let now = Instant::now();
        let nodes = (0..count)
            .map(|i| {
                let mut server = MemoryServer::new(config.clone());
                server.now = now;
                server.join_cluster(&format!("node{i}"), TTL);
                server
            })
            .collect();
        Cluster {
            redis: FakeRedis::new(now),
            nodes,
            now,
            stuck: vec![false; count],
        }
    }

    /// One millisecond: every node turns once, with Redis's replies so far.
    fn turn(&mut self) {
        self.now += Duration::from_millis(1);
        self.redis.now = self.now;
        for node in 0..self.nodes.len() {
            let stuck = self.stuck[node];
            let replies = if stuck {
                Vec::new()
            } else {
                self.redis.take(node, usize::MAX)
            };
            let server = &mut self.nodes[node];
            server.now = self.now;
            turn_node(&mut self.redis, node, server, &replies, true, !stuck);
        }
    }

    fn turns(&mut self, n: usize) {
        for _ in 0..n {
            self.turn();
        }
    }

    /// A client of `node` logged in as `name`.
    fn login(&mut self, node: usize, name: &str) -> u64 {
        let id = self.nodes[node].connect();
        self.nodes[node].send(id, format!("{name}\n").as_bytes());
        for _ in 0..10 {
            if self.nodes[node].is_logged_in(id) {
                return id;
            }
            self.turn();
        }
        panic!("{name} did not log in on node{node}");
    }
}

/// `bob` and `x`s, `len` bytes in all.
fn bob_and_xs(len: usize) -> String {
    format!("bob{}", "x".repeat(len - 3))
}

#[test]
fn destinations_that_cannot_be_names_are_answered_on_the_senders_node() {
    let mut cluster = Cluster::new(3, Config::default());
    let alice = cluster.login(0, "alice");
    let bob = cluster.login(1, "bob");
    let carol = cluster.login(2, "carol");
    let odd = [
        bob_and_xs(255),
        bob_and_xs(256),
        bob_and_xs(257),
        bob_and_xs(259),
        bob_and_xs(33),
        "b\u{7}ob".to_string(),
    ];
    for long in &odd {
        cluster.nodes[0].take_output(alice);
        let unknown = cluster.nodes[0].chat.stats().unknown_destinations;
        // Redis hears nothing from alice's node for now: the answers cannot come from it.
        cluster.stuck[0] = true;
        cluster.nodes[0].send(
            alice,
            format!("{long}: m1\n{long}, carol: m2\nbob, {long}: m3\n").as_bytes(),
        );
        cluster.turn();
        assert_eq!(
            cluster.nodes[0].take_output(alice),
            format!("error: no such peer: {long}\n").repeat(3),
            "{} bytes",
            long.len()
        );
        assert_eq!(
            cluster.nodes[0].chat.stats().unknown_destinations,
            unknown + 3
        );
        cluster.stuck[0] = false;
        cluster.turns(5);
        assert_eq!(cluster.nodes[1].take_output(bob), "from alice: m3\n");
        assert_eq!(cluster.nodes[2].take_output(carol), "from alice: m2\n");
        assert_eq!(cluster.nodes[0].take_output(alice), "");
    }
}

#[test]
fn a_sender_that_half_closes_at_once_gets_its_notices_then_is_closed() {
    let config = Config {
        shutdown_timeout: Duration::from_secs(5),
        ..Config::default()
    };
    let mut cluster = Cluster::new(2, config);
    let bob = cluster.login(1, "bob");
    // Its name, lines to a name no node holds and to a peer on the other node, its end.
    let u1 = cluster.nodes[0].connect();
    cluster.nodes[0].send(u1, b"u1\nzed: anyone?\nbob, zed: hi\n");
    cluster.nodes[0].transport(u1).input_closed = true;
    cluster.turns(100);
    assert_eq!(cluster.nodes[1].take_output(bob), "from u1: hi\n");
    assert_eq!(
        cluster.nodes[0].take_output(u1),
        "error: no such peer: zed\nerror: no such peer: zed\n"
    );
    assert!(!cluster.nodes[0].is_open(u1));
    assert!(cluster.nodes[0].transport(u1).write_shut);
    assert_eq!(
        cluster.nodes[0].close_reason(u1),
        Some(&a_chat::core::CloseReason::PeerClosed)
    );
    // With no answer from Redis, it waits no longer than the shutdown timeout.
    let u2 = cluster.login(0, "u2");
    cluster.stuck[0] = true;
    cluster.nodes[0].send(u2, b"zed: anyone?\n");
    cluster.nodes[0].transport(u2).input_closed = true;
    cluster.turns(10);
    assert!(cluster.nodes[0].is_open(u2));
    assert!(!cluster.nodes[0].transport(u2).write_shut);
    cluster.now += Duration::from_secs(5);
    cluster.turn();
    assert!(!cluster.nodes[0].is_open(u2));
    assert_eq!(
        cluster.nodes[0].close_reason(u2),
        Some(&a_chat::core::CloseReason::TimedOut)
    );
}

/// A line from a flooder: `names` distinct names nobody holds, and a long text.
fn flood_line(names: usize, text: usize) -> String {
    let dests: Vec<String> = (0..names).map(|i| format!("n{i}")).collect();
    format!("{}: {}\n", dests.join(","), "t".repeat(text))
}

#[test]
fn a_flooding_peer_waits_for_its_answers_and_the_others_chat_on() {
    let mut cluster = Cluster::new(2, Config::default());
    let flooder = cluster.login(0, "flooder");
    let u1 = cluster.login(0, "u1");
    let u2 = cluster.login(0, "u2");
    let bob = cluster.login(1, "bob");
    // Its reads are short: what it has not sent yet stays in its socket.
    cluster.nodes[0].transport(flooder).read_chunk = 1000;
    // Redis does not answer node0 for now: every lookup stays in flight.
    cluster.stuck[0] = true;
    let lines = 40;
    cluster.nodes[0].send(flooder, flood_line(300, 100).repeat(lines).as_bytes());
    cluster.turns(20);
    // Its budget is spent: the rest of its input waits in its socket.
    assert!(!cluster.nodes[0].transport(flooder).input.is_empty());
    cluster.nodes[0].send(u1, b"u2: local\n");
    cluster.turn();
    assert_eq!(cluster.nodes[0].take_output(u2), "from u1: local\n");
    // Redis answers: the flooder is read again, line after line, and told about each name.
    cluster.stuck[0] = false;
    for _ in 0..200 {
        cluster.turn();
        if cluster.nodes[0].transport(flooder).input.is_empty() {
            break;
        }
    }
    cluster.turns(10);
    let notices = cluster.nodes[0].take_output(flooder);
    assert_eq!(notices.lines().count(), lines * 300);
    assert!(notices.starts_with("error: no such peer: n0\nerror: no such peer: n1\n"));
    cluster.nodes[0].send(u1, b"bob: remote\n");
    cluster.turns(5);
    assert_eq!(cluster.nodes[1].take_output(bob), "from u1: remote\n");
}

#[test]
fn while_the_link_is_congested_a_peer_with_no_lookups_in_flight_is_still_read() {
    let config = Config {
        max_conns: 200,
        ..Config::default()
    };
    let mut cluster = Cluster::new(2, config);
    let flooders: Vec<u64> = (0..80)
        .map(|i| cluster.login(0, &format!("f{i}")))
        .collect();
    let u1 = cluster.login(0, "u1");
    let u2 = cluster.login(0, "u2");
    let bob = cluster.login(1, "bob");
    // Redis's socket takes nothing from node0: what the flooders route piles up in its link.
    cluster.stuck[0] = true;
    let line = flood_line(320, 6000);
    for &flooder in &flooders {
        cluster.nodes[0].send(flooder, line.repeat(4).as_bytes());
    }
    cluster.turns(20);
    assert!(cluster.nodes[0].redis_congested());
    // Local chat goes on: u1 has nothing in flight.
    cluster.nodes[0].send(u1, b"u2, bob: both\n");
    cluster.turn();
    assert_eq!(cluster.nodes[0].take_output(u2), "from u1: both\n");
    // Now u1 has a lookup in flight: while the link is congested, it waits for its answer.
    cluster.nodes[0].send(u1, b"u2: after\n");
    cluster.turns(3);
    assert_eq!(cluster.nodes[0].take_output(u2), "");
    cluster.stuck[0] = false;
    for _ in 0..500 {
        cluster.turn();
        let done = flooders
            .iter()
            .all(|&f| cluster.nodes[0].transport(f).input.is_empty());
        if done {
            break;
        }
    }
    cluster.turns(100);
    assert_eq!(cluster.nodes[0].take_output(u2), "from u1: after\n");
    assert_eq!(cluster.nodes[1].take_output(bob), "from u1: both\n");
    for &flooder in &flooders {
        assert_eq!(
            cluster.nodes[0].take_output(flooder).lines().count(),
            4 * 320
        );
    }
}

#[test]
fn a_login_while_the_node_starts_waits_for_its_first_attempt_at_redis() {
    // Rule 6.8: two logins for one name, each on a node that has not reached Redis yet, and
    // lines after them: each is answered once its node joins (the second after the wait for a
    // holder that may be leaving, 50 ms), the lines in order.
    let mut cluster = Cluster::starting(2, Config::default());
    let first = cluster.nodes[0].connect();
    cluster.nodes[0].send(first, b"alice\nalice: one\nalice: two\n");
    let second = cluster.nodes[1].connect();
    cluster.nodes[1].send(second, b"alice\nalice: three\n");
    cluster.turns(100);
    assert_eq!(
        cluster.nodes[0].take_output(first),
        "from alice: one\nfrom alice: two\n"
    );
    assert_eq!(cluster.nodes[1].take_output(second), "error: name taken\n");

    // A first attempt that fails: the login that waited for it is refused.
    let mut node = MemoryServer::new(Config::default());
    node.join_cluster("lonely", TTL);
    let id = node.connect();
    node.send(id, b"carol\ncarol: hi\n");
    node.turn();
    assert!(node.redis_wants_connection());
    node.redis_connect(false);
    node.turn();
    assert_eq!(node.take_output(id), "error: cluster unavailable\n");
}

/// Node `node`'s connection `id` closes at once (reset), and the node turns.
fn reset(cluster: &mut Cluster, node: usize, id: u64) {
    cluster.nodes[node].transport(id).reset = true;
    cluster.turn();
}

#[test]
fn a_bounce_for_a_departed_sender_never_reaches_the_next_holder_of_its_name() {
    let mut cluster = Cluster::new(3, Config::default());
    let alice = cluster.login(0, "alice");
    let amy = cluster.login(0, "amy");
    let bob = cluster.login(1, "bob");
    let carol = cluster.login(2, "carol");
    let (alice_conn, amy_conn) = (
        cluster.nodes[0].connection_number(alice).unwrap(),
        cluster.nodes[0].connection_number(amy).unwrap(),
    );
    // Bob's node hears nothing from Redis and tells it nothing: bob leaves there, and Redis
    // still routes his name to it.
    cluster.stuck[1] = true;
    reset(&mut cluster, 1, bob);
    cluster.nodes[0].send(alice, b"bob, carol: from alice\n");
    cluster.nodes[0].send(amy, b"bob, carol: from amy\n");
    cluster.turns(3);
    assert_eq!(
        cluster.nodes[2].take_output(carol),
        "from alice: from alice\nfrom amy: from amy\n"
    );
    // The senders leave; their names are taken again, on their node and on another.
    reset(&mut cluster, 0, alice);
    reset(&mut cluster, 0, amy);
    cluster.turns(3);
    let eve = cluster.login(0, "alice");
    let fay = cluster.login(2, "amy");
    // Bob's node reads the messages now and bounces them to the senders' connections.
    cluster.stuck[1] = false;
    cluster.turns(10);
    for (conn, name) in [(alice_conn, "alice"), (amy_conn, "amy")] {
        let bounce = format!("B,{conn},{name},bob\n");
        assert!(
            cluster.redis.published.iter().any(|(node, payload)| {
                *node == 0 && String::from_utf8_lossy(payload).contains(&bounce)
            }),
            "no bounce {bounce:?}"
        );
    }
    assert_eq!(cluster.nodes[0].take_output(eve), "");
    assert_eq!(cluster.nodes[2].take_output(fay), "");
    // The new holders chat as any peer does.
    cluster.nodes[2].send(carol, b"alice, amy: hi\n");
    cluster.turns(3);
    assert_eq!(cluster.nodes[0].take_output(eve), "from carol: hi\n");
    assert_eq!(cluster.nodes[2].take_output(fay), "from carol: hi\n");
}

#[test]
fn a_message_routed_to_an_earlier_connection_of_a_name_goes_to_nobody_and_is_bounced() {
    let mut cluster = Cluster::new(2, Config::default());
    let alice = cluster.login(0, "alice");
    let bob = cluster.login(1, "bob");
    let old_bob = cluster.nodes[1].connection_number(bob).unwrap();
    // Bob leaves and comes back on the same node, under the same name.
    reset(&mut cluster, 1, bob);
    cluster.turns(3);
    let bob = cluster.login(1, "bob");
    let new_bob = cluster.nodes[1].connection_number(bob).unwrap();
    assert_ne!(old_bob, new_bob);
    let alice_conn = cluster.nodes[0].connection_number(alice).unwrap();
    // A record routed to the earlier connection (Redis asked before bob left), arriving
    // now: nobody gets it, and alice is told.
    let record = format!("R,{old_bob}\nM,node0,{alice_conn},alice,bob,late\n");
    cluster.redis.publish_to(1, record.as_bytes());
    cluster.turns(5);
    assert_eq!(cluster.nodes[1].take_output(bob), "");
    assert_eq!(
        cluster.nodes[0].take_output(alice),
        "error: no such peer: bob\n"
    );
    // One routed to the new connection is delivered.
    let record = format!("R,{new_bob}\nM,node0,{alice_conn},alice,bob,now\n");
    cluster.redis.publish_to(1, record.as_bytes());
    cluster.turns(5);
    assert_eq!(cluster.nodes[1].take_output(bob), "from alice: now\n");
    assert_eq!(cluster.nodes[0].take_output(alice), "");
    // Records whose connections are no numbers are refused, with no panic and no delivery.
    for bad in [
        format!("R,{new_bob}x\nM,node0,{alice_conn},alice,bob,bad\n"),
        format!("R,99999999999999999999\nM,node0,{alice_conn},alice,bob,bad\n"),
        format!("M,node0,{alice_conn},alice,bob,bad\n"),
        format!("R,{new_bob}\nM,node0,-1,alice,bob,bad\n"),
    ] {
        cluster.redis.publish_to(1, bad.as_bytes());
        cluster.turns(3);
        assert_eq!(cluster.nodes[1].take_output(bob), "", "{bad:?}");
    }
}
