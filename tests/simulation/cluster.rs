//! Several nodes, one chat: three in-memory servers in cluster mode share the in-memory Redis
//! of `fake_redis.rs` on one simulated clock. A seeded scheduler logs clients in (the same
//! names on different nodes), sends lines to local, remote, unknown and repeated names (now and
//! then to destinations that cannot be names: too long, a control character), lets clients
//! leave (some half-close right after a last line), and injects Redis's faults: replies delayed
//! and cut anywhere, a node's connection dropped, Redis unreachable for a while (sometimes
//! longer than the TTL), Redis restarted without its data or flushed under the nodes' feet, a
//! node killed (its names left to expire) and a node stopped gracefully. Every schedule is
//! checked against the contract's cluster rules (section 6):
//!
//! - no name is used by two logged-in clients at once, on any nodes (checked after every step);
//! - a message reaches only a client logged in under its destination's name, at most once, and
//!   in the order its sender sent it; from another node, only the very connection its name was
//!   routed to (the route line Redis published names it), never a later holder of the name;
//! - a notice about a destination reaches only a client that sent lines to it, never more
//!   often than it sent them (a bounce for a client that left never reaches the next holder of
//!   its name, on any node);
//! - every message is delivered or its sender told (`error: no such peer: D` or
//!   `error: cluster unavailable: D`), once the faults stop and the cluster has healed; excused
//!   are messages to a name whose client left or was closed meanwhile, messages of senders that
//!   were closed (not those of a sender that half-closed and that the server closed as asked:
//!   it was owed its notices first), and those Redis published into a connection that then
//!   broke (the at-most-once caveat of publish/subscribe).
//!
//! A failing seed is printed; replay it with
//! `CLUSTER_SIM_SEED=<seed> cargo test --test simulation cluster`.

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

use a_chat::Config;
use a_chat::sim::{MemoryServer, XorShift};

use super::fake_redis::FakeRedis;

const NODES: usize = 3;
const TTL: Duration = Duration::from_secs(3);
/// The names clients log in with; each may be held on any node, one at a time.
const NAMES: [&str; 6] = ["ann", "bob", "cy", "dee", "eve", "fay"];
/// Destinations: the names, and one nobody ever holds.
const DESTS: [&str; 7] = ["ann", "bob", "cy", "dee", "eve", "fay", "nobody"];
/// Destinations that can be no name, sometimes named too: one of a forbidden character, one
/// just over 32 bytes, and `bob` followed by `x`s to 255, 256, 257 and 259 bytes (a length cut
/// to a byte would make the last three ``, `b` and `bob`).
fn odd_dests() -> Vec<String> {
    let mut dests = vec!["b\u{7}ob".to_string(), "y".repeat(33)];
    dests.extend([252, 253, 254, 256].map(|xs| format!("bob{}", "x".repeat(xs))));
    dests
}

/// Clients per schedule at most.
const MAX_CLIENTS: usize = 40;

struct Node {
    server: MemoryServer,
    /// Killed (its clients gone, its names left to expire) or stopped gracefully and done.
    dead: bool,
    /// Its graceful shutdown began.
    stopping: bool,
}

struct Client {
    node: usize,
    id: u64,
    /// Its connection's number on its node (the CONN of the records).
    conn: u64,
    /// The name it is logged in under, once it is.
    name: Option<String>,
    /// Output not yet split into lines.
    partial: String,
    /// The step it was closed at (by the server, its node's death, or itself).
    closed_at: Option<u64>,
    /// It sent its name and was not answered yet.
    logging_in: bool,
    /// It half-closed right after a line: the server owes it the answers to its lines
    /// before it closes the connection (contract 6.3).
    half_closed: bool,
    /// Messages sent so far (the next one's number).
    sent: u64,
    /// Per sender client, the number of the last message received from it.
    last_from: HashMap<usize, u64>,
}

/// A message the model follows.
struct Message {
    dest: String,
    step: u64,
    delivered: u32,
}

struct Sim {
    rng: XorShift,
    start: Instant,
    now: Instant,
    step: u64,
    redis: FakeRedis,
    /// Redis accepts connections.
    redis_up: bool,
    /// Redis stays unreachable until then.
    outage_until: Option<Instant>,
    nodes: Vec<Node>,
    clients: Vec<Client>,
    /// By sender client and message number.
    messages: HashMap<(usize, u64), Message>,
    /// Notices per sender client and destination.
    notices: HashMap<(usize, String), u32>,
    /// Notices per sender client, destination and kind.
    notices_by_kind: HashMap<(usize, String, &'static str), u32>,
    /// Messages sent per sender client and destination.
    sent_to: HashMap<(usize, String), u32>,
    /// Per message published through Redis: the node, the connection its destination's name
    /// was routed to, the text and the destination.
    routed_to: HashSet<(usize, u64, String, String)>,
    /// How many of Redis's published payloads `routed_to` has read.
    published_read: usize,
    /// Faults injected, by kind (to show the seeds reach them).
    faults: HashMap<&'static str, u32>,
}

impl Sim {
    fn new(seed: u64) -> Self {
        let now = Instant::now();
        let config = Config {
            max_conns: 1000,
            login_timeout: Duration::from_secs(3600),
            ..Config::default()
        };
        let nodes = (0..NODES)
            .map(|i| {
                let mut server = MemoryServer::new(config.clone());
                server.now = now;
                server.join_cluster(&format!("node{i}"), TTL);
                Node {
                    server,
                    dead: false,
                    stopping: false,
                }
            })
            .collect();
        Sim {
            rng: XorShift::new(seed),
            start: now,
            now,
            step: 0,
            redis: FakeRedis::new(now),
            redis_up: true,
            outage_until: None,
            nodes,
            clients: Vec::new(),
            messages: HashMap::new(),
            notices: HashMap::new(),
            notices_by_kind: HashMap::new(),
            sent_to: HashMap::new(),
            routed_to: HashSet::new(),
            published_read: 0,
            faults: HashMap::new(),
        }
    }

    /// With `CLUSTER_SIM_TRACE` set, what happens is printed (to replay a failing seed), the
    /// nodes' log included.
    fn trace(&self, what: std::fmt::Arguments<'_>) {
        static LOGGER: TraceLogger = TraceLogger;
        if std::env::var_os("CLUSTER_SIM_TRACE").is_some() && log::set_logger(&LOGGER).is_ok() {
            log::set_max_level(log::LevelFilter::Debug);
        }
        if std::env::var_os("CLUSTER_SIM_TRACE").is_some() {
            eprintln!("step {} t={:?}: {what}", self.step, self.now - self.start);
        }
    }

    fn chance(&mut self, one_in: usize) -> bool {
        self.rng.index(one_in) == 0
    }

    fn fault(&mut self, kind: &'static str) {
        self.trace(format_args!("fault: {kind}"));
        *self.faults.entry(kind).or_default() += 1;
    }

    fn run(&mut self, steps: u64) {
        for _ in 0..steps {
            self.act();
            self.inject_fault();
            self.tick(true);
        }
        self.heal();
    }

    /// What the clients do this step.
    fn act(&mut self) {
        for _ in 0..self.rng.index(4) {
            match self.rng.index(10) {
                0..=1 if self.clients.len() < MAX_CLIENTS => self.connect(),
                2 => self.leave(),
                _ => self.send_line(),
            }
        }
    }

    fn connect(&mut self) {
        let node = self.rng.index(NODES);
        if self.nodes[node].dead || self.nodes[node].stopping {
            return;
        }
        let name = NAMES[self.rng.index(NAMES.len())];
        self.trace(format_args!(
            "client {} connects to node{node} as {name}",
            self.clients.len()
        ));
        let server = &mut self.nodes[node].server;
        let id = server.connect();
        let conn = server.connection_number(id).expect("just connected");
        server.send(id, format!("{name}\n").as_bytes());
        self.clients.push(Client {
            node,
            id,
            conn,
            name: None,
            partial: String::new(),
            closed_at: None,
            logging_in: true,
            half_closed: false,
            sent: 0,
            last_from: HashMap::new(),
        });
    }

    fn logged_in(&self) -> Vec<usize> {
        (0..self.clients.len())
            .filter(|&i| {
                let client = &self.clients[i];
                client.name.is_some() && client.closed_at.is_none() && !client.half_closed
            })
            .collect()
    }

    fn leave(&mut self) {
        let candidates = self.logged_in();
        if candidates.is_empty() {
            return;
        }
        let i = candidates[self.rng.index(candidates.len())];
        let client = &mut self.clients[i];
        if self.rng.index(2) == 0 {
            // A last line, and its end of input with it: its answers are still owed.
            client.half_closed = true;
            self.trace(format_args!("client {i} half-closes after a line"));
            self.send_line_from(i);
        } else {
            client.closed_at = Some(self.step);
        }
        let client = &self.clients[i];
        self.nodes[client.node]
            .server
            .transport(client.id)
            .input_closed = true;
    }

    fn send_line(&mut self) {
        let candidates = self.logged_in();
        if candidates.is_empty() {
            return;
        }
        let sender = candidates[self.rng.index(candidates.len())];
        self.send_line_from(sender);
    }

    fn send_line_from(&mut self, sender: usize) {
        let mut line = String::new();
        let mut dests: Vec<String> = Vec::new();
        for _ in 0..1 + self.rng.index(3) {
            let dest = if self.chance(10) {
                let odd = odd_dests();
                odd[self.rng.index(odd.len())].clone()
            } else {
                DESTS[self.rng.index(DESTS.len())].to_string()
            };
            if !line.is_empty() {
                line.push_str(", ");
            }
            line.push_str(&dest);
            if !dests.contains(&dest) {
                dests.push(dest);
            }
        }
        let n = self.clients[sender].sent;
        self.clients[sender].sent += 1;
        line.push_str(&format!(": c{sender}n{n}\n"));
        // One message per distinct destination, numbered alike: the text names the line.
        for (k, dest) in dests.iter().enumerate() {
            *self.sent_to.entry((sender, dest.clone())).or_default() += 1;
            self.messages.insert(
                (sender, n * 4 + k as u64),
                Message {
                    dest: dest.to_string(),
                    step: self.step,
                    delivered: 0,
                },
            );
        }
        let client = &self.clients[sender];
        self.trace(format_args!(
            "client {sender} (node{}) sends {}",
            client.node,
            line.trim_end()
        ));
        let client = &self.clients[sender];
        self.nodes[client.node]
            .server
            .send(client.id, line.as_bytes());
    }

    fn inject_fault(&mut self) {
        if self.chance(40) {
            let node = self.rng.index(NODES);
            if self.redis.is_connected(node) {
                self.fault("connection dropped");
                self.redis.drop_conn(node);
                self.nodes[node].server.redis_disconnected();
            }
        }
        if self.redis_up && self.chance(150) {
            // Up to twice the TTL: often the nodes' holds lapse meanwhile.
            let outage = Duration::from_millis(200 + self.rng.below(6000));
            self.fault("redis unreachable");
            self.redis_up = false;
            self.outage_until = Some(self.now + outage);
            for node in 0..NODES {
                if self.redis.is_connected(node) {
                    self.redis.drop_conn(node);
                    self.nodes[node].server.redis_disconnected();
                }
            }
        }
        if self.chance(300) {
            self.fault("redis restarted empty");
            for node in 0..NODES {
                if self.redis.is_connected(node) {
                    self.nodes[node].server.redis_disconnected();
                }
            }
            self.redis.restart_empty();
        }
        if self.chance(400) {
            self.fault("redis flushed");
            self.redis.flush_all();
        }
        let alive = self.nodes.iter().filter(|node| !node.dead).count();
        if alive == NODES && self.chance(500) {
            let node = self.rng.index(NODES);
            if self.chance(2) {
                self.fault("node killed");
                self.kill(node);
            } else if !self.nodes[node].stopping {
                self.fault("node stopped");
                self.nodes[node].stopping = true;
                self.nodes[node].server.begin_shutdown();
            }
        }
    }

    fn kill(&mut self, node: usize) {
        self.nodes[node].dead = true;
        self.redis.drop_conn(node);
        for client in &mut self.clients {
            if client.node == node && client.closed_at.is_none() {
                client.closed_at = Some(self.step);
            }
        }
    }

    /// One step of the clock: Redis's replies reach the nodes (some of them, when `faulty`),
    /// each node turns, its output reaches Redis; then the clients read, and the model checks.
    fn tick(&mut self, faulty: bool) {
        self.step += 1;
        let by = if faulty { self.rng.below(400) } else { 100 };
        self.now += Duration::from_millis(by);
        self.redis.now = self.now;
        if self.outage_until.is_some_and(|until| until <= self.now) {
            self.outage_until = None;
            self.redis_up = true;
        }
        for node in 0..NODES {
            if self.nodes[node].dead {
                continue;
            }
            let max = if faulty && self.chance(3) {
                self.rng.index(200)
            } else {
                usize::MAX
            };
            let replies = self.redis.take(node, max);
            if !replies.is_empty() {
                self.trace(format_args!(
                    "node{node} <- {:?}",
                    String::from_utf8_lossy(&replies)
                ));
            }
            let server = &mut self.nodes[node].server;
            server.now = self.now;
            turn_node(&mut self.redis, node, server, &replies, self.redis_up, true);
            if self.nodes[node].stopping && self.nodes[node].server.chat.is_empty() {
                // Finished: its connection to Redis closes.
                self.nodes[node].dead = true;
                self.redis.drop_conn(node);
            }
        }
        self.read_routes();
        self.read_outputs();
        self.check_names();
    }

    /// What Redis published since the last call: each message record's destinations with the
    /// connections the route line names for them.
    fn read_routes(&mut self) {
        for (node, payload) in &self.redis.published[self.published_read..] {
            let payload = String::from_utf8_lossy(payload);
            let mut conns = Vec::new();
            for line in payload.lines() {
                if let Some(line) = line.strip_prefix("R,") {
                    conns = line.split(':').rev().map(str::to_string).collect();
                    continue;
                }
                let Some(rest) = line.strip_prefix("M,") else {
                    continue;
                };
                let fields: Vec<&str> = rest.splitn(5, ',').collect();
                let (dests, text) = (fields[3], fields[4]);
                for dest in dests.split(':') {
                    let conn = conns.pop().expect("a connection per destination");
                    let conn = conn.parse().expect("a connection number");
                    self.routed_to
                        .insert((*node, conn, text.to_string(), dest.to_string()));
                }
            }
        }
        self.published_read = self.redis.published.len();
    }

    fn read_outputs(&mut self) {
        for i in 0..self.clients.len() {
            let client = &self.clients[i];
            let node = &mut self.nodes[client.node];
            if !node.server.is_open(client.id) && client.closed_at.is_none() {
                if client.half_closed && !node.dead {
                    // Closed by the server once its answers were written, or for a reason.
                    let reason = node.server.close_reason(client.id).cloned();
                    self.trace(format_args!(
                        "client {i} closed after its half-close: {reason:?}"
                    ));
                }
                self.clients[i].closed_at = Some(self.step);
                self.trace(format_args!("client {i} closed"));
            }
            let client = &self.clients[i];
            if client.logging_in
                && let Some(name) = self.nodes[client.node].server.logged_in_name(client.id)
            {
                let name = name.to_string();
                self.trace(format_args!(
                    "client {i} (node{}) logged in as {name}",
                    self.clients[i].node
                ));
                let client = &mut self.clients[i];
                client.name = Some(name);
                client.logging_in = false;
            }
            let client = &self.clients[i];
            let output = self.nodes[client.node].server.take_output(client.id);
            self.clients[i].partial.push_str(&output);
            while let Some(end) = self.clients[i].partial.find('\n') {
                let line: String = self.clients[i].partial.drain(..=end).collect();
                self.on_line(i, line.trim_end_matches('\n'));
            }
        }
    }

    fn on_line(&mut self, receiver: usize, line: &str) {
        self.trace(format_args!(
            "client {receiver} (node{}) got {line}",
            self.clients[receiver].node
        ));
        if let Some((kind, dest)) = line
            .strip_prefix("error: no such peer: ")
            .map(|dest| ("no such peer", dest))
            .or_else(|| {
                line.strip_prefix("error: cluster unavailable: ")
                    .map(|dest| ("unavailable", dest))
            })
        {
            *self
                .notices
                .entry((receiver, dest.to_string()))
                .or_default() += 1;
            // Of each kind, at most one per message sent (a line to a name whose login on the
            // sender's own node was still claiming it may get both kinds, when the link
            // breaks before the route's answer: its record came back first).
            let told = self
                .notices_by_kind
                .entry((receiver, dest.to_string(), kind))
                .or_default();
            *told += 1;
            let sent = self
                .sent_to
                .get(&(receiver, dest.to_string()))
                .copied()
                .unwrap_or(0);
            assert!(
                *told <= sent,
                "client {receiver} (node{}) got {line:?} {told} time(s), and sent {sent} \
                 message(s) to {dest}: a notice meant for another connection",
                self.clients[receiver].node
            );
            return;
        }
        if matches!(
            line,
            "error: name taken" | "error: cluster unavailable" | "error: server full"
        ) {
            self.clients[receiver].logging_in = false;
            return;
        }
        let Some((from, text)) = line
            .strip_prefix("from ")
            .and_then(|rest| rest.split_once(": "))
        else {
            panic!("client {receiver} got {line:?}");
        };
        let (sender, n) = parse_text(text).unwrap_or_else(|| panic!("client {receiver}: {line:?}"));
        let own_name = self.clients[receiver].name.clone();
        assert_eq!(
            self.clients[sender].name.as_deref(),
            Some(from),
            "client {receiver} got {line:?} from client {sender}"
        );
        let last = self.clients[receiver].last_from.insert(sender, n);
        assert!(
            last.is_none_or(|last| last < n),
            "client {receiver} got c{sender}n{n} after n{}",
            last.unwrap_or_default()
        );
        // Which destination of the line reached this client: the one with its name.
        let key = (0..4)
            .map(|k| (sender, n * 4 + k))
            .find(|key| {
                self.messages
                    .get(key)
                    .is_some_and(|message| Some(&message.dest) == own_name.as_ref())
            })
            .unwrap_or_else(|| {
                panic!("client {receiver} ({own_name:?}) got {line:?}, not sent to its name")
            });
        let (sender_node, receiver_node) = (self.clients[sender].node, self.clients[receiver].node);
        if sender_node != receiver_node {
            let routed = (
                receiver_node,
                self.clients[receiver].conn,
                text.to_string(),
                own_name.clone().unwrap_or_default(),
            );
            assert!(
                self.routed_to.contains(&routed),
                "client {receiver} (node{receiver_node}, connection {}) got {line:?}, routed \
                 to another connection of that name",
                self.clients[receiver].conn
            );
        }
        let message = self.messages.get_mut(&key).expect("found");
        message.delivered += 1;
        assert_eq!(message.delivered, 1, "c{sender}n{n} delivered twice");
    }

    /// No name is held by two logged-in clients, whatever their nodes.
    fn check_names(&self) {
        let mut holders: HashMap<&str, usize> = HashMap::new();
        for (i, client) in self.clients.iter().enumerate() {
            let node = &self.nodes[client.node];
            if node.dead {
                continue;
            }
            if let Some(name) = node.server.logged_in_name(client.id)
                && let Some(other) = holders.insert(name, i)
            {
                panic!(
                    "step {}: {name} is held by client {other} (node{}) and client {i} (node{})",
                    self.step, self.clients[other].node, client.node
                );
            }
        }
    }

    /// The faults stop, Redis comes back, time runs on until every node is back in the
    /// cluster and nothing moves any more.
    fn heal(&mut self) {
        self.outage_until = None;
        self.redis_up = true;
        // Past the longest back-off and a recovery window.
        for _ in 0..150 {
            self.tick(false);
        }
    }

    fn check(&self) {
        for node in self.nodes.iter().filter(|node| !node.dead) {
            assert!(
                !node.server.redis_wants_connection(),
                "a node is still out of the cluster"
            );
        }
        // Per sender and destination: the messages neither delivered nor excused.
        let mut missing: HashMap<(usize, &str), u32> = HashMap::new();
        let lost_texts: Vec<String> = self
            .redis
            .lost
            .iter()
            .flat_map(|payload| {
                String::from_utf8_lossy(payload)
                    .lines()
                    .filter_map(|record| record.rsplit_once(',').map(|(_, text)| text.to_string()))
                    .collect::<Vec<_>>()
            })
            .collect();
        for (&(sender, number), message) in &self.messages {
            if message.delivered > 0
                || (self.clients[sender].closed_at.is_some() && !self.owed(sender, &message.dest))
            {
                continue;
            }
            let text = format!("c{sender}n{}", number / 4);
            if lost_texts.contains(&text) {
                continue;
            }
            // A client under the destination's name that was closed since: what was handed
            // to it may have died with it.
            let receiver_gone = self.clients.iter().any(|client| {
                client.name.as_deref() == Some(message.dest.as_str())
                    && client.closed_at.is_some_and(|at| at >= message.step)
            });
            if receiver_gone {
                continue;
            }
            *missing.entry((sender, &message.dest)).or_default() += 1;
        }
        for ((sender, dest), count) in missing {
            let told = self
                .notices
                .get(&(sender, dest.to_string()))
                .copied()
                .unwrap_or(0);
            assert!(
                told >= count,
                "client {sender} ({:?}): {count} message(s) to {dest} neither delivered nor told \
                 ({told} notices)",
                self.clients[sender].name
            );
        }
    }
}

/// One turn of `server`, node `node`, against `redis`: `replies` (bytes Redis sent it) in,
/// the turn, a connection made if it wants one (`redis_up`: Redis accepts it), and, when
/// `writes`, what it wrote handed to Redis (left in the node's link otherwise: Redis's socket
/// takes nothing).
pub(super) fn turn_node(
    redis: &mut FakeRedis,
    node: usize,
    server: &mut MemoryServer,
    replies: &[u8],
    redis_up: bool,
    writes: bool,
) {
    if !replies.is_empty() && server.redis_input(replies).is_err() {
        panic!("node{node} found the fake's replies broken");
    }
    server.turn();
    if server.redis_wants_connection() {
        if redis_up {
            redis.connect(node);
        }
        server.redis_connect(redis_up);
    }
    if writes {
        let out = server.take_redis_output();
        if let Err(e) = redis.feed(node, &out) {
            panic!("node{node} wrote something that is not RESP: {e}");
        }
    }
}

impl Sim {
    /// Whether `client`, closed now, was owed every answer to its lines: it half-closed, and
    /// the server closed the connection as the peer asked (once they were written), not for
    /// another reason (a timeout, the cluster lost; a killed node closes nothing). The answers
    /// are the lookups' (no holder, Redis unavailable): a bounce (`B,CONN,SENDER,DEST`: the
    /// holder's node found the receiver gone) comes when it pleases, maybe after the close.
    fn owed(&self, client: usize, dest: &str) -> bool {
        let conn = self.clients[client].conn;
        let bounce = self.clients[client]
            .name
            .as_ref()
            .map(|name| format!("B,{conn},{name},{dest}\n"));
        let bounced = bounce.is_some_and(|bounce| {
            self.redis.published.iter().any(|(node, payload)| {
                *node == self.clients[client].node
                    && String::from_utf8_lossy(payload).contains(&bounce)
            })
        });
        let client = &self.clients[client];
        let node = &self.nodes[client.node];
        !bounced
            && client.half_closed
            && node.server.close_reason(client.id) == Some(&a_chat::core::CloseReason::PeerClosed)
    }
}

struct TraceLogger;

impl log::Log for TraceLogger {
    fn enabled(&self, _: &log::Metadata<'_>) -> bool {
        true
    }

    fn log(&self, record: &log::Record<'_>) {
        eprintln!("  log {} {}", record.level(), record.args());
    }

    fn flush(&self) {}
}

/// `cSnN` back to the sender's index and the message number.
fn parse_text(text: &str) -> Option<(usize, u64)> {
    let (sender, n) = text.strip_prefix('c')?.split_once('n')?;
    Some((sender.parse().ok()?, n.parse().ok()?))
}

fn run_seed(seed: u64) -> (usize, HashMap<&'static str, u32>) {
    let mut sim = Sim::new(seed);
    sim.run(400);
    sim.check();
    let delivered = sim
        .messages
        .values()
        .filter(|message| message.delivered > 0)
        .count();
    (delivered, sim.faults)
}

#[test]
fn cluster_schedules_keep_names_unique_and_lose_nothing_in_silence() {
    if let Ok(seed) = std::env::var("CLUSTER_SIM_SEED") {
        run_seed(seed.parse().expect("CLUSTER_SIM_SEED is a number"));
        return;
    }
    let mut delivered = 0;
    let mut faults: HashMap<&'static str, u32> = HashMap::new();
    for seed in 0..300 {
        match std::panic::catch_unwind(|| run_seed(seed)) {
            Ok((count, seen)) => {
                delivered += count;
                for (kind, n) in seen {
                    *faults.entry(kind).or_default() += n;
                }
            }
            Err(_) => panic!("seed {seed} failed: replay with CLUSTER_SIM_SEED={seed}"),
        }
    }
    println!("{delivered} messages delivered; faults: {faults:?}");
    assert!(delivered > 10_000, "only {delivered} messages delivered");
    for kind in [
        "connection dropped",
        "redis unreachable",
        "redis restarted empty",
        "redis flushed",
        "node killed",
        "node stopped",
    ] {
        assert!(
            faults.get(kind).is_some_and(|&n| n >= 5),
            "the seeds reach {kind} too rarely: {faults:?}"
        );
    }
}
