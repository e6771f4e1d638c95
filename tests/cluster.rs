//! Section 6 of the contract against real processes: three `a-chat` nodes and a real
//! `redis-server` (each test its own, on a free loopback port), with a proxy in front of Redis
//! where a test needs to cut the line or feed the nodes bad input.

mod util;

use std::thread;
use std::time::{Duration, Instant};

use util::redis::{RedisProxy, RedisServer};
use util::{Client, ServerProcess, Signal, WAIT, eventually};

/// The TTL of the tests' nodes, in seconds: short, so that expiries are quick to see.
const TTL: &str = "2";

/// A node joined to the cluster of `url`.
fn node(url: &str, extra: &[&str]) -> ServerProcess {
    let mut args = vec!["--cluster", url, "--cluster-ttl", TTL];
    args.extend_from_slice(extra);
    let server = ServerProcess::start(&args);
    server.wait_for_log("cluster: joined as node");
    server
}

fn three_nodes(url: &str) -> [ServerProcess; 3] {
    [node(url, &[]), node(url, &[]), node(url, &[])]
}

/// Logs in, retrying while the answer is `error: name taken` or `error: cluster unavailable`
/// (a name being freed, a cluster recovering); panics on anything else.
fn login_eventually(addr: std::net::SocketAddr, name: &str) -> Client {
    eventually(&format!("{name} logs in"), || {
        let mut client = Client::connect(addr);
        client.send(&format!("{name}\n{name}: in?\n"));
        match client.line().as_str() {
            line if line == format!("from {name}: in?") => Some(client),
            "error: name taken" | "error: cluster unavailable" => None,
            other => panic!("{name}: unexpected {other:?}"),
        }
    })
}

#[test]
fn messages_cross_nodes_both_ways_and_unknown_names_are_told() {
    let redis = RedisServer::start();
    let [a, b, _c] = three_nodes(&redis.url());
    let mut alice = Client::login(a.addr(), "alice");
    let mut bob = Client::login(b.addr(), "bob");
    alice.send("bob: from node a\n");
    bob.expect("from alice: from node a");
    bob.send("alice: from node b\n");
    alice.expect("from bob: from node b");
    // A name no node holds, local and remote destinations in one line.
    alice.send("ghost, bob, alice: mixed\n");
    alice.expect("from alice: mixed");
    bob.expect("from alice: mixed");
    alice.expect("error: no such peer: ghost");
}

#[test]
fn one_line_fans_out_across_all_three_nodes() {
    let redis = RedisServer::start();
    let nodes = three_nodes(&redis.url());
    let mut peers: Vec<Client> = (0..6)
        .map(|i| Client::login(nodes[i % 3].addr(), &format!("p{i}")))
        .collect();
    peers[0].send("p0, p1, p2, p3, p4, p5, p1: to everyone\n");
    for peer in &mut peers {
        peer.expect("from p0: to everyone");
    }
    // Once each, whatever the node: the next line is the next message.
    peers[4].send("p0: again\n");
    peers[0].expect("from p4: again");
    // Two lines with the same text to the same remote peer (they may travel as one record):
    // two messages. A name nobody holds among names on two nodes: told, the rest delivered.
    peers[0].send("p1: twice\np1: twice\nghost, p2, p4, p5: mixed\n");
    peers[1].expect("from p0: twice");
    peers[1].expect("from p0: twice");
    for i in [2, 4, 5] {
        peers[i].expect("from p0: mixed");
    }
    peers[0].expect("error: no such peer: ghost");
    peers[3].send("p1, p0: last\n");
    peers[1].expect("from p3: last");
    peers[0].expect("from p3: last");
}

#[test]
fn ten_thousand_messages_cross_in_order() {
    let redis = RedisServer::start();
    let [a, b, _c] = three_nodes(&redis.url());
    let mut sender = Client::login(a.addr(), "sender");
    let mut receiver = Client::login(b.addr(), "receiver");
    let mut script = String::new();
    for i in 0..10_000 {
        script.push_str(&format!("receiver: {i}\n"));
    }
    sender.send(&script);
    for i in 0..10_000 {
        receiver.expect(&format!("from sender: {i}"));
    }
    let metrics = a.stderr();
    assert!(!metrics.contains("cluster unavailable"));
}

#[test]
fn a_name_is_unique_across_nodes_and_free_as_soon_as_its_peer_leaves() {
    let redis = RedisServer::start();
    let [a, b, c] = three_nodes(&redis.url());
    let alice = Client::login(a.addr(), "alice");
    for other in [&b, &c] {
        let mut impostor = Client::connect(other.addr());
        impostor.send("alice\nalice: spoof\n");
        impostor.expect_closed_after("error: name taken");
    }
    drop(alice);
    // Free on b once a has told Redis: one round trip after a saw the close.
    let mut again = login_eventually(b.addr(), "alice");
    again.send("alice: back, on b\n");
    again.expect("from alice: back, on b");
}

#[test]
fn a_killed_node_frees_its_names_within_the_ttl_not_before() {
    let redis = RedisServer::start();
    let [mut a, b, _c] = three_nodes(&redis.url());
    let mut alice = Client::login(a.addr(), "alice");
    let mut bob = Client::login(b.addr(), "bob");
    bob.send("alice: still there?\n");
    alice.expect("from bob: still there?");
    a.signal(Signal::KILL);
    a.wait_exit(WAIT);
    let killed = Instant::now();
    // Its hold was renewed a third of the TTL ago at most: the name is still held.
    let mut early = Client::connect(b.addr());
    early.send("alice\n");
    early.expect_closed_after("error: name taken");
    let ttl = Duration::from_secs(TTL.parse().unwrap());
    assert!(
        killed.elapsed() < ttl / 2,
        "the check came too late to mean anything"
    );
    alice = login_eventually(b.addr(), "alice");
    let freed = killed.elapsed();
    assert!(
        freed <= ttl + Duration::from_secs(2),
        "freed after {freed:?}"
    );
    alice.send("bob: alice is back\n");
    bob.expect("from alice: alice is back");
}

#[test]
fn a_node_stopped_with_sigterm_delivers_its_queues_and_frees_its_names_at_once() {
    let redis = RedisServer::start();
    let mut a = node(&redis.url(), &["--metrics", "127.0.0.1:0"]);
    let b = node(&redis.url(), &[]);
    let mut reader = Client::login(a.addr(), "reader");
    let mut sender = Client::login(b.addr(), "sender");
    let mut script = String::new();
    for i in 0..2000 {
        script.push_str(&format!("reader: {i}\n"));
    }
    sender.send(&script);
    // The reader reads nothing yet: wait until a has routed all of it into the reader's queue
    // (the reader's own login message, then the 2000).
    eventually("a has the messages", || {
        let routed = a.scrape().value("a_chat_messages_routed_total", &[]);
        (routed >= 2001.0).then_some(())
    });
    a.signal(Signal::TERM);
    for i in 0..2000 {
        reader.expect(&format!("from sender: {i}"));
    }
    reader.expect_eof();
    drop(reader);
    assert_eq!(a.wait_exit(WAIT).code(), Some(0));
    // Its names were released when the shutdown began, its key deleted at the end: free now,
    // with no wait for the TTL.
    let mut new_reader = Client::connect(b.addr());
    new_reader.send("reader\nreader: mine\n");
    new_reader.expect("from reader: mine");
    sender.send("ghost: x\n");
    sender.expect("error: no such peer: ghost");
}

#[test]
fn losing_redis_keeps_local_chat_refuses_what_needs_it_and_recovers() {
    let mut redis = RedisServer::start();
    let [a, b, _c] = three_nodes(&redis.url());
    let mut alice = Client::login(a.addr(), "alice");
    let mut anne = Client::login(a.addr(), "anne");
    let mut bob = Client::login(b.addr(), "bob");
    redis.kill();
    a.wait_for_log("cluster: lost the connection to Redis");
    // Local routing goes on.
    alice.send("anne: still local\n");
    anne.expect("from alice: still local");
    // A remote name: the sender is told.
    alice.send("bob: across?\n");
    alice.expect("error: cluster unavailable: bob");
    // A login: refused.
    let mut late = Client::connect(a.addr());
    late.send("carol\n");
    late.expect_closed_after("error: cluster unavailable");
    // Back before the TTL ran out: the nodes reconnect, reclaim their peers' names, and the
    // cluster works again (after the recovery window, for new logins).
    redis.restart();
    ping_across(&mut alice, &mut bob);
    let mut carol = login_eventually(b.addr(), "carol");
    carol.send("alice: hello after the restart\n");
    alice.expect("from carol: hello after the restart");
    // The names of the peers that stayed are still theirs.
    let mut impostor = Client::connect(b.addr());
    impostor.send("alice\n");
    impostor.expect_closed_after("error: name taken");
}

/// Tries to log `name` in at `addr` while another node's peer holds it: the answer must be a
/// refusal. Returns it.
fn refused_login(addr: std::net::SocketAddr, name: &str) -> String {
    let mut client = Client::connect(addr);
    client.send(&format!("{name}\n{name}: in?\n"));
    let answer = client.line();
    assert!(
        answer == "error: name taken" || answer == "error: cluster unavailable",
        "a second {name} got {answer:?}"
    );
    client.expect_eof();
    answer
}

#[test]
fn redis_losing_its_data_never_gives_a_held_name_away() {
    let mut redis = RedisServer::start();
    let a = node(&redis.url(), &["--metrics", "127.0.0.1:0"]);
    let b = node(&redis.url(), &[]);
    let mut alice = Client::login(a.addr(), "alice");
    let held = |redis: &RedisServer| {
        redis
            .command(&["GET", "a-chat:name:alice"])
            .unwrap_or_default()
            != ""
    };
    // Flushed under the nodes' connections: b has no peers, but its next login meets the
    // missing cluster marker and waits; a claims alice again at its next renewal.
    redis.command(&["FLUSHALL"]).expect("FLUSHALL");
    assert!(!held(&redis));
    while !held(&redis) {
        refused_login(b.addr(), "alice");
    }
    assert_eq!(refused_login(b.addr(), "alice"), "error: name taken");
    // Restarted empty: whichever node comes back first, alice stays a's.
    redis.kill();
    redis.restart();
    while !held(&redis) {
        refused_login(b.addr(), "alice");
    }
    assert_eq!(refused_login(b.addr(), "alice"), "error: name taken");
    a.wait_for_log("claiming its names again");
    // And the cluster works again: a new name on b, after the recovery window.
    let mut bob = login_eventually(b.addr(), "bob");
    bob.send("alice: back\n");
    alice.expect("from bob: back");
    // The windows were logged as they opened and as they ended, with their lengths, and
    // counted.
    a.wait_for_log("cluster: a recovery window is open for");
    eventually("a's recovery window is over", || {
        let metrics = a.scrape();
        (metrics.value("a_chat_cluster_recovering", &[]) == 0.0).then_some(())
    });
    let log = a.stderr();
    let opened = log
        .matches("cluster: a recovery window is open for")
        .count();
    let ended = log
        .matches("cluster: the recovery window ended after")
        .count();
    assert!(opened >= 1 && ended == opened, "{log}");
    let counted = a
        .scrape()
        .value("a_chat_cluster_recovery_windows_total", &[]);
    assert_eq!(counted, opened as f64);
}

#[test]
fn a_redis_that_wants_a_password_is_said_so() {
    let redis = RedisServer::start_open(&["--requirepass", "x"]);
    let a = ServerProcess::start(&["--cluster", &redis.url(), "--cluster-ttl", TTL]);
    a.wait_for_log("cluster: dropping the connection to Redis: Redis requires a password (NOAUTH): give it in the cluster URL or in A_CHAT_REDIS_PASSWORD");
    assert!(!a.stderr().contains("Redis 6 or later"), "{}", a.stderr());
    let mut client = Client::connect(a.addr());
    client.send("alice\n");
    client.expect_closed_after("error: cluster unavailable");
}

#[test]
fn a_node_cut_off_longer_than_the_ttl_closes_its_peers() {
    let redis = RedisServer::start();
    let proxy = RedisProxy::start(redis.addr);
    let cut_off = node(&proxy.url(), &[]);
    let other = node(&redis.url(), &[]);
    let mut alice = Client::login(cut_off.addr(), "alice");
    proxy.blackhole(true);
    // No renewal for the TTL: the node closes its peers.
    alice.expect_closed_after("error: cluster unavailable");
    cut_off.wait_for_log("the hold on this node's names lapsed");
    // Its names are free elsewhere once its key expired.
    let _alice = login_eventually(other.addr(), "alice");
    proxy.blackhole(false);
}

#[test]
fn bad_input_from_redis_is_a_reconnect_never_a_panic() {
    let redis = RedisServer::start();
    let proxy = RedisProxy::start(redis.addr);
    let a = node(&proxy.url(), &[]);
    let b = node(&redis.url(), &[]);
    let mut alice = Client::login(a.addr(), "alice");
    let mut bob = Client::login(b.addr(), "bob");
    let reconnects = || a.stderr().matches("cluster: reconnected to Redis").count();
    // Each fault goes in while a is connected through the proxy and done with its handshake
    // (a message crossed), so that it is the fault the log must name.
    let settle = |alice: &mut Client, bob: &mut Client, connections: usize| {
        proxy.wait_for_connections(connections);
        ping_across(alice, bob);
    };
    settle(&mut alice, &mut bob, 1);
    // A reply no request waits for (or, if the last crossing's own reply is still on its
    // way, a reply of the wrong shape for it).
    proxy.inject(b":42\r\n");
    eventually("a drops the connection", || {
        let log = a.stderr();
        (log.contains("a reply no request waits for") || log.contains("an unexpected reply"))
            .then_some(())
    });
    eventually("a reconnects", || (reconnects() >= 1).then_some(()));
    settle(&mut alice, &mut bob, 2);
    // Half a reply, then the connection closes.
    proxy.inject(b"*3\r\n$7\r\nmessage\r\n$5\r\nab");
    proxy.cut();
    eventually("a reconnects again", || (reconnects() >= 2).then_some(()));
    settle(&mut alice, &mut bob, 3);
    // Something that is not RESP at all.
    proxy.inject(b"?garbage\r\n");
    a.wait_for_log("a reply from Redis that does not parse");
    eventually("a reconnects once more", || {
        (reconnects() >= 3).then_some(())
    });
    proxy.wait_for_connections(4);
    ping_across(&mut alice, &mut bob);
    assert!(!a.stderr().contains("panicked"));
}

/// Sends from `alice` to `bob` (on another node) until a message crosses; a try refused as
/// unavailable (the node is reconnecting) is tried again.
fn ping_across(alice: &mut Client, bob: &mut Client) {
    eventually("a message crosses from alice to bob", || {
        alice.send("bob, alice: ping\n");
        let first = alice.line();
        if first == "from alice: ping" {
            bob.expect("from alice: ping");
            return Some(());
        }
        assert_eq!(first, "error: cluster unavailable: bob");
        alice.expect("from alice: ping");
        thread::sleep(Duration::from_millis(100));
        None
    });
}

#[test]
fn an_idle_nodes_traffic_does_not_grow_with_its_peers() {
    let redis = RedisServer::start();
    let a = node(&redis.url(), &[]);
    let count_over_a_second = || {
        let before = redis.commands_processed();
        thread::sleep(Duration::from_millis(1500));
        redis.commands_processed() - before
    };
    let _one = Client::login(a.addr(), "one");
    let with_one = count_over_a_second();
    let _many: Vec<Client> = (0..200)
        .map(|i| Client::login(a.addr(), &format!("peer{i}")))
        .collect();
    let with_many = count_over_a_second();
    // Heartbeats only (and the INFO calls that count them): about the same with 201 peers.
    assert!(
        with_many <= with_one + 3,
        "{with_one} with one peer, {with_many} with 201"
    );
}

#[test]
fn cluster_counters_are_in_the_metrics() {
    let redis = RedisServer::start();
    let a = node(&redis.url(), &["--metrics", "127.0.0.1:0"]);
    let b = node(&redis.url(), &[]);
    let mut alice = Client::login(a.addr(), "alice");
    let mut bob = Client::login(b.addr(), "bob");
    alice.send("bob: one\nbob: two\n");
    bob.expect("from alice: one");
    bob.expect("from alice: two");
    bob.send("alice: back\n");
    alice.expect("from bob: back");
    let metrics = a.scrape();
    assert_eq!(metrics.value("a_chat_cluster_redis_connected", &[]), 1.0);
    assert_eq!(
        metrics.value("a_chat_cluster_messages_sent_total", &[]),
        2.0
    );
    assert_eq!(
        metrics.value("a_chat_cluster_messages_received_total", &[]),
        1.0
    );
    assert_eq!(metrics.value("a_chat_cluster_reconnects_total", &[]), 0.0);
}

#[test]
fn a_destination_that_cannot_be_a_name_is_answered_locally_and_never_misrouted() {
    let redis = RedisServer::start();
    let [a, b, c] = three_nodes(&redis.url());
    let mut alice = Client::login(a.addr(), "alice");
    let mut bob = Client::login(b.addr(), "bob");
    let mut carol = Client::login(c.addr(), "carol");
    // `bob` and 256 `x`: 259 bytes, 3 once cut to a byte; and lengths around 256.
    for extra in [256, 252, 253, 254] {
        let long = format!("bob{}", "x".repeat(extra));
        alice.send(&format!("{long}: m1\n{long}, carol: m2\nbob, {long}: m3\n"));
        for _ in 0..3 {
            alice.expect(&format!("error: no such peer: {long}"));
        }
        carol.expect("from alice: m2");
        // Bob gets m3 and nothing before it (never m2, whose destinations did not name him).
        bob.expect("from alice: m3");
    }
    // Nothing else came: the next lines are the next messages.
    alice.send("bob, carol, alice: end\n");
    alice.expect("from alice: end");
    bob.expect("from alice: end");
    carol.expect("from alice: end");
}

#[test]
fn a_client_that_half_closes_at_once_gets_its_cluster_notices() {
    let redis = RedisServer::start();
    let [a, _b, _c] = three_nodes(&redis.url());
    let mut client = std::process::Command::new(util::binary())
        .args(["client", &a.addr().to_string()])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::inherit())
        .spawn()
        .unwrap();
    let mut stdin = client.stdin.take().unwrap();
    std::io::Write::write_all(&mut stdin, b"u1\nzed: anyone?\n").unwrap();
    drop(stdin);
    let mut stdout = client.stdout.take().unwrap();
    let reading = thread::spawn(move || {
        let mut out = String::new();
        std::io::Read::read_to_string(&mut stdout, &mut out).unwrap();
        out
    });
    let start = Instant::now();
    let status = loop {
        if let Some(status) = client.try_wait().unwrap() {
            break status;
        }
        if start.elapsed() > WAIT {
            client.kill().unwrap();
            panic!("the client did not exit");
        }
        thread::sleep(Duration::from_millis(10));
    };
    assert!(status.success());
    assert_eq!(reading.join().unwrap(), "error: no such peer: zed\n");
}

#[test]
fn reconnected_is_logged_once_the_link_has_joined_not_when_tcp_connects() {
    let redis = RedisServer::start();
    let proxy = RedisProxy::start(redis.addr);
    let a = node(&proxy.url(), &["-v"]);
    let connects = || a.stderr().matches("cluster: connected to").count();
    proxy.wait_for_connections(1);
    // The line goes silent and is cut: the node connects again through the proxy, and its
    // handshake hangs in the silence.
    proxy.blackhole(true);
    proxy.cut();
    a.wait_for_log("cluster: lost the connection to Redis");
    proxy.wait_for_connections(2);
    eventually("a connects again over TCP", || {
        (connects() >= 2).then_some(())
    });
    assert!(
        !a.stderr().contains("cluster: reconnected to Redis"),
        "{}",
        a.stderr()
    );
    // The handshake is answered: now the node has reconnected.
    proxy.blackhole(false);
    a.wait_for_log("cluster: reconnected to Redis");
}

#[test]
fn a_login_the_instant_a_node_starts_is_never_refused() {
    // Rule 6.8: each node is logged into the moment its `listening on` line is read, before it
    // has joined; the login waits for the node's first connection to Redis.
    let redis = RedisServer::start();
    let url = redis.url();
    for round in 0..10 {
        let mut clients = Vec::new();
        let mut nodes = Vec::new();
        for i in 0..3 {
            let server = ServerProcess::start(&["--cluster", &url, "--cluster-ttl", TTL]);
            let name = format!("r{round}n{i}");
            let mut client = Client::connect(server.addr());
            client.send(&format!("{name}\n{name}: here\n"));
            clients.push((name, client));
            nodes.push(server);
        }
        for (name, client) in &mut clients {
            let line = client.line();
            assert_eq!(line, format!("from {name}: here"), "round {round}");
        }
    }
}

#[test]
fn a_node_whose_redis_is_down_at_start_refuses_logins_then_joins_by_itself() {
    let mut redis = RedisServer::start();
    redis.kill();
    // The bound on a refusal: the connect deadline, a third of `--cluster-ttl` (2 s here; a
    // refused connection fails sooner).
    let node = ServerProcess::start(&["--cluster", &redis.url(), "--cluster-ttl", "6"]);
    let deadline = Duration::from_secs(2);
    let started = Instant::now();
    let mut early = Client::connect(node.addr());
    early.send("alice\nalice: in?\n");
    early.expect_closed_after("error: cluster unavailable");
    let waited = started.elapsed();
    assert!(waited <= deadline, "refused after {waited:?}");
    redis.restart();
    node.wait_for_log("cluster: joined as node");
    let mut alice = Client::connect(node.addr());
    alice.send("alice\nalice: in\n");
    alice.expect("from alice: in");
}

/// A node whose names outlive a pause of several seconds (`--cluster-ttl 10`): a test may
/// stop it (SIGSTOP) while Redis still routes to it.
fn patient_node(url: &str) -> ServerProcess {
    let server = ServerProcess::start(&["--cluster", url, "--cluster-ttl", "10"]);
    server.wait_for_log("cluster: joined as node");
    server
}

#[test]
fn a_bounce_for_a_departed_sender_never_reaches_the_next_holder_of_its_name() {
    let redis = RedisServer::start();
    let url = redis.url();
    let [a, b, c] = [patient_node(&url), patient_node(&url), patient_node(&url)];
    let mut alice = Client::login(a.addr(), "alice");
    let mut amy = Client::login(a.addr(), "amy");
    let bob = Client::login(b.addr(), "bob");
    let mut bo2 = Client::login(b.addr(), "bo2");
    let mut carol = Client::login(c.addr(), "carol");
    // Bob's node is stopped; bob leaves (his end waits there), and Redis still routes his
    // name to it: the messages to him wait there too, behind his end.
    b.pause();
    drop(bob);
    alice.send("bob, carol: from alice\n");
    amy.send("bob, carol: from amy\n");
    // Carol's copies went in the same script runs: bob's are on their way.
    carol.expect("from alice: from alice");
    carol.expect("from amy: from amy");
    // The senders leave, and their names are taken again: on their node, and on another.
    drop(alice);
    drop(amy);
    let mut eve = login_eventually(a.addr(), "alice");
    let mut fay = login_eventually(c.addr(), "amy");
    // Bob's node goes on: it finds bob gone and bounces both messages, in its first turn.
    b.signal(Signal::CONT);
    bo2.send("bo2: awake\n");
    bo2.expect("from bo2: awake");
    // A marker sent by bob's node after the bounces reaches their node after them: the new
    // holders' first line is the marker, not a notice meant for a connection that is gone.
    bo2.send("alice, amy: marker\n");
    eve.expect("from bo2: marker");
    fay.expect("from bo2: marker");
}

#[test]
fn a_message_to_a_receiver_who_left_and_came_back_goes_to_nobody_and_its_sender_is_told() {
    let redis = RedisServer::start();
    let url = redis.url();
    let [a, b, c] = [patient_node(&url), patient_node(&url), patient_node(&url)];
    let mut alice = Client::login(a.addr(), "alice");
    let bob = Client::login(b.addr(), "bob");
    let mut carol = Client::login(c.addr(), "carol");
    // Bob's node is stopped; bob leaves, a message is routed to him, and he comes back under
    // the same name, all waiting there in that order.
    b.pause();
    drop(bob);
    alice.send("bob, carol: lost\n");
    carol.expect("from alice: lost");
    let mut again = Client::connect(b.addr());
    again.send("bob\nbob: me\n");
    b.signal(Signal::CONT);
    // The message went to nobody: its sender is told, and the new session never sees it.
    alice.expect("error: no such peer: bob");
    again.expect("from bob: me");
    alice.send("bob: marker\n");
    again.expect("from alice: marker");
}

#[test]
fn a_name_record_names_its_connection_and_an_earlier_versions_claims_are_still_read() {
    let redis = RedisServer::start();
    let a = node(&redis.url(), &[]);
    let alice = Client::login(a.addr(), "alice");
    let first = redis.command(&["GET", "a-chat:name:alice"]).expect("GET");
    let (node_id, conn) = first.split_once('/').expect("a record of NODE/CONN");
    assert!(a.stderr().contains(&format!("joined as node {node_id} ")));
    assert!(conn.parse::<u64>().is_ok(), "{first:?}");
    // The same name again, after its peer left: another connection, never the same number.
    drop(alice);
    let _alice = login_eventually(a.addr(), "alice");
    let again = redis.command(&["GET", "a-chat:name:alice"]).expect("GET");
    assert!(again.starts_with(&format!("{node_id}/")), "{again:?}");
    assert_ne!(again, first);
    // Claims of an earlier version (the node's ID alone): one of a live node holds its name,
    // one of a node gone is free.
    for args in [
        ["SET", "a-chat:node:oldnode", "1"],
        ["SET", "a-chat:name:olga", "oldnode"],
        ["SET", "a-chat:name:otto", "gonenode"],
    ] {
        assert_eq!(redis.command(&args).as_deref(), Some("OK"));
    }
    assert_eq!(refused_login(a.addr(), "olga"), "error: name taken");
    let _otto = Client::login(a.addr(), "otto");
    let otto = redis.command(&["GET", "a-chat:name:otto"]).expect("GET");
    assert!(otto.starts_with(&format!("{node_id}/")), "{otto:?}");
}
