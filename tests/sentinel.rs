//! Section 9's failover with Redis Sentinel against real processes: a master, its replica and
//! three sentinels (`tests/util/sentinel.rs`), and `a-chat` nodes started with
//! `--cluster redis-sentinel://...` that follow the master through forced failovers
//! (`SENTINEL FAILOVER`, and SIGKILL of the master), as the nodes' ACL user of the README's rule
//! (the default user off: `tests/util/redis.rs`). The time from the switch until every rule
//! of section 6 holds again is measured and printed (it depends on the machine: not asserted
//! beyond the tests' usual bound).

mod util;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use util::sentinel::SentinelSetup;
use util::{Client, ServerProcess, WAIT};

/// The nodes' TTL, in seconds: longer than a failover by SIGKILL takes (a second before the
/// sentinels call the master down, and their election), so that the peers outlive it.
const TTL: &str = "5";

fn node(url: &str) -> ServerProcess {
    node_with(url, &[])
}

/// A node with more options (`--cluster-ca FILE`).
fn node_with(url: &str, extra: &[&str]) -> ServerProcess {
    let server = ServerProcess::start(&[&["--cluster", url, "--cluster-ttl", TTL], extra].concat());
    server.wait_for_log("cluster: joined as node");
    server
}

/// How long a probe waits for its message before sending the next.
const PROBE: Duration = Duration::from_millis(100);

/// Whether a message from `from` (logged in as `name`) reaches `to` within [`PROBE`]; a
/// message sent while the node has no master may be refused or lost, so the probe says no.
fn crosses(from: &mut Client, name: &str, to: &mut Client, to_name: &str, n: &mut u32) -> bool {
    *n += 1;
    from.send(&format!("{to_name}: probe {n}\n"));
    let expected = format!("from {name}: probe {n}");
    let deadline = Instant::now() + PROBE;
    while let Some(left) = deadline.checked_duration_since(Instant::now()) {
        match to.line_within(left) {
            Some(line) if line == expected => return true,
            // An earlier probe, late.
            Some(line) if line.starts_with(&format!("from {name}: probe ")) => {}
            Some(line) => panic!("{to_name}: unexpected {line:?}"),
            None => return false,
        }
    }
    false
}

/// A login of `name` at `addr`: `Some(client)` if accepted, `None` if refused with `taken`
/// or `error: cluster unavailable` (rule 6.5, while the node has no master).
fn try_login(addr: SocketAddr, name: &str, taken_is_ok: bool) -> Option<Client> {
    let mut client = Client::connect(addr);
    client.send(&format!("{name}\n{name}: in?\n"));
    match client.line().as_str() {
        line if line == format!("from {name}: in?") => Some(client),
        "error: cluster unavailable" => None,
        "error: name taken" if taken_is_ok => None,
        other => panic!("{name} at {addr}: unexpected {other:?}"),
    }
}

/// A name's holder must never have a twin: a login of `name` on the other node is refused
/// (name taken, or unavailable while that node has no master), whatever the moment.
fn no_twin(addr: SocketAddr, name: &str) {
    if let Some(mut twin) = try_login(addr, name, true) {
        panic!(
            "{name} was given to a second peer at {addr} while its holder was connected ({:?})",
            twin.line_within(PROBE)
        );
    }
}

/// Waits until every rule of section 6 holds again after a switch seen at `switched`: alice
/// (on a) and bob (on b) reach each other, a new name logs in on one node and is taken on
/// the other, and a name no node holds is told; all the while no held name is given twice.
/// Returns how long after the switch they all held.
fn rules_hold_again(
    a: &ServerProcess,
    b: &ServerProcess,
    alice: &mut Client,
    bob: &mut Client,
    switched: Instant,
    round: u32,
) -> Duration {
    let mut n = round * 1000;
    let mut carols = 0;
    loop {
        assert!(
            switched.elapsed() < WAIT,
            "section 6 does not hold again {WAIT:?} after the switch"
        );
        no_twin(b.addr(), "alice");
        no_twin(a.addr(), "bob");
        if !crosses(alice, "alice", bob, "bob", &mut n)
            || !crosses(bob, "bob", alice, "alice", &mut n)
        {
            continue;
        }
        carols += 1;
        let carol = format!("carol{round}x{carols}");
        let Some(_carol) = try_login(a.addr(), &carol, false) else {
            continue;
        };
        // Taken on the other node (or that node is still without a master: try again).
        let mut twin = Client::connect(b.addr());
        twin.send(&format!("{carol}\n"));
        match twin.line().as_str() {
            "error: name taken" => {}
            "error: cluster unavailable" => continue,
            other => panic!("{carol}'s twin: unexpected {other:?}"),
        }
        let took = switched.elapsed();
        // A name no node holds (an answer from Redis) is told, after the probes' late notices.
        alice.send("ghost: anyone?\n");
        loop {
            match alice.line().as_str() {
                "error: no such peer: ghost" => break,
                line if line.starts_with("from bob: probe ")
                    || line.starts_with("error: cluster unavailable: bob") => {}
                other => panic!("alice: unexpected {other:?}"),
            }
        }
        return took;
    }
}

#[test]
fn chat_across_nodes_goes_on_after_a_forced_failover_and_after_the_master_is_killed() {
    let mut setup = SentinelSetup::start();
    let url = setup.url();
    let a = node(&url);
    let b = node(&url);
    let mut alice = Client::login(a.addr(), "alice");
    let mut bob = Client::login(b.addr(), "bob");
    let mut n = 0;
    assert!(
        crosses(&mut alice, "alice", &mut bob, "bob", &mut n) || {
            // The first message may wait for the subscription on a slow machine: once more.
            crosses(&mut alice, "alice", &mut bob, "bob", &mut n)
        }
    );

    let (master, switched) = setup.failover();
    let took = rules_hold_again(&a, &b, &mut alice, &mut bob, switched, 1);
    eprintln!("SENTINEL FAILOVER: section 6 held again {took:?} after the switch");
    for node in [&a, &b] {
        node.wait_for_log(&format!("cluster: following a failover to {master}"));
    }

    let (master, switched) = setup.kill_master();
    let took = rules_hold_again(&a, &b, &mut alice, &mut bob, switched, 2);
    eprintln!("SIGKILL of the master: section 6 held again {took:?} after the switch");
    for node in [&a, &b] {
        node.wait_for_log(&format!("cluster: following a failover to {master}"));
    }
}

#[test]
fn over_rediss_sentinel_chat_across_nodes_goes_on_after_a_forced_failover() {
    // TLS only, to the sentinels and to the master: the master's certificate is checked
    // against the IP address the sentinels name (127.0.0.1, an IP SAN of the test PKI).
    let setup = SentinelSetup::start_tls();
    let url = setup.url();
    assert!(url.starts_with("rediss-sentinel://"), "{url}");
    let ca = util::tls::files().ca.to_str().unwrap();
    let a = node_with(&url, &["--cluster-ca", ca]);
    let b = node_with(&url, &["--cluster-ca", ca]);
    let mut alice = Client::login(a.addr(), "alice");
    let mut bob = Client::login(b.addr(), "bob");
    let mut n = 0;
    assert!(
        crosses(&mut alice, "alice", &mut bob, "bob", &mut n)
            || crosses(&mut alice, "alice", &mut bob, "bob", &mut n)
    );
    let (master, switched) = setup.failover();
    let took = rules_hold_again(&a, &b, &mut alice, &mut bob, switched, 1);
    eprintln!("SENTINEL FAILOVER over TLS: section 6 held again {took:?} after the switch");
    for node in [&a, &b] {
        node.wait_for_log(&format!("cluster: following a failover to {master}"));
    }
}

#[test]
fn sentinels_whose_certificate_is_from_another_ca_are_refused_in_a_sentence() {
    let setup = SentinelSetup::start_tls();
    let other = util::tls::files().other_ca.to_str().unwrap();
    let a = ServerProcess::start(&["--cluster", &setup.url(), "--cluster-ca", other]);
    a.wait_for_log("cluster: TLS with sentinel 127.0.0.1:");
    a.wait_for_log("(for Redis, that file is --cluster-ca FILE)");
    // No master, so rule 6.5: logins are refused.
    let mut alice = Client::connect(a.addr());
    alice.send("alice\n");
    alice.expect("error: cluster unavailable");
}

#[test]
fn sentinels_that_do_not_answer_are_passed_over_in_turn() {
    let setup = SentinelSetup::start();
    let mut sentinels: Vec<SocketAddr> = setup.sentinels.iter().map(|s| s.addr).collect();
    // Two addresses where nothing listens ahead of the real sentinels: asked in turn.
    let nobody = |_| {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap()
    };
    let missing: Vec<SocketAddr> = (0..2).map(nobody).collect();
    sentinels.splice(0..0, missing);
    let addrs: Vec<String> = sentinels.iter().map(ToString::to_string).collect();
    let url = format!(
        "redis-sentinel://{}:{}@{}/{}",
        util::redis::NODE_USER,
        util::redis::NODE_PASSWORD,
        addrs.join(","),
        util::sentinel::MASTER
    );
    let a = node(&url);
    let mut alice = Client::login(a.addr(), "alice");
    alice.send("alice: hi\n");
    alice.expect("from alice: hi");
}
