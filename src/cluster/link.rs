//! A node's link to Redis, without IO: the connection's life (connect, back-off, reconnect),
//! the requests in flight matched to their replies in order, the turn's work encoded into one
//! write (releases, claims, routed records, bounces: each a batch), the node's hold on its
//! names (renewed a third of the TTL apart, lapsed after the TTL by the node's own clock), the
//! deadline on Redis's answers (a third of the TTL too), the recovery windows it is told of, and
//! the events the chat core acts on.

use std::collections::VecDeque;
use std::ops::Range;
use std::rc::Rc;
use std::time::{Duration, Instant};

use log::{info, warn};

use super::records;
use super::resp::{self, Frame, Reply, Scanner};
use super::route_batch::RouteBatch;
use super::scripts;
use crate::stats::ClusterStats;

/// The first wait before connecting again; it doubles up to [`MAX_BACKOFF`].
const MIN_BACKOFF: Duration = Duration::from_millis(100);
const MAX_BACKOFF: Duration = Duration::from_secs(5);

/// Names or records per `EVALSHA` at most (one write may hold several).
const BATCH: usize = 512;

/// Route batches sent and not answered at most. Each turn's records go at the end of the turn
/// (no wait for an earlier batch's answer at low load); past this, they wait and join into
/// larger batches (fewer script runs when Redis is the bottleneck).
const MAX_ROUTES_IN_FLIGHT: usize = 16;

/// Bytes waiting for Redis past which the core stops reading the peers that have lookups in
/// flight (back-pressure: Redis does not keep up; `src/chat/lookups.rs`).
const CONGESTED: usize = 4 << 20;

/// Bytes waiting for Redis past which new work is refused as "unavailable": the queue must not
/// grow without bound even if peers' input was already read.
const MAX_OUTPUT: usize = 16 << 20;

/// A local connection, as the link names it in its events.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Who {
    pub(crate) key: usize,
    pub(crate) generation: u64,
}

/// The answer to a login's claim.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Claimed {
    Yes,
    /// Another node's peer holds the name.
    Taken,
    /// No answer from Redis (or the cluster recovers from a Redis restart).
    Unavailable,
}

/// What a routed message came to, when it is news for its sender.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Undelivered {
    NoSuchPeer,
    Unavailable,
}

/// What the core must act on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Event {
    Claim {
        who: Who,
        name: Rc<str>,
        outcome: Claimed,
    },
    /// After a reconnect, another node held a name of one of this node's peers.
    NameLost { name: String },
    /// A message from `who` to `dest` was not handed to a node.
    Route {
        who: Who,
        dest: Box<str>,
        outcome: Undelivered,
    },
    /// `count` of the destinations `who` routed ([`ClusterLink::route`]) have their answer:
    /// handed to a node, or a `Route` event before this one. Every routed destination is
    /// answered exactly once, the connection to Redis lost or not: the core counts its
    /// peers' lookups in flight by it.
    Answered { who: Who, count: usize },
    /// Records from other nodes (messages for peers here, bounces of messages from them): a
    /// channel message as it came, for the core to parse ([`super::records`]).
    Records(Vec<u8>),
    /// The hold on the names lapsed (no renewal for the TTL): every peer must go.
    HoldLost,
    /// Redis lost the node's key while it held names: the core gives them to
    /// [`ClusterLink::reclaim`].
    Reclaim,
}

/// A request sent on the current connection, waiting for its reply.
#[derive(Debug)]
enum Request {
    Hello,
    /// `SCRIPT LOAD` of the script whose SHA1 is this.
    Load(&'static str),
    Subscribe,
    Hold {
        sent_at: Instant,
        /// Sent with the node's peers' names said to exist.
        has_names: bool,
        /// The first of a connection (a reclaim of every name follows it anyway).
        first: bool,
    },
    /// Claims for logins.
    Claim {
        names: Vec<(Who, Rc<str>)>,
    },
    /// Claims of the names of peers already logged in, after a reconnect.
    Reclaim {
        names: Vec<Rc<str>>,
    },
    Release,
    Route(RouteBatch),
    Publish,
    Leave,
}

/// What a log line says about a request: its kind and size, not its bytes.
impl std::fmt::Display for Request {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Request::Hello => write!(f, "HELLO"),
            Request::Load(sha) => write!(f, "SCRIPT LOAD of {sha}"),
            Request::Subscribe => write!(f, "SUBSCRIBE"),
            Request::Hold { .. } => write!(f, "the hold's renewal"),
            Request::Claim { names } => write!(f, "a claim of {} names", names.len()),
            Request::Reclaim { names } => write!(f, "a reclaim of {} names", names.len()),
            Request::Release => write!(f, "a release"),
            Request::Route(batch) => write!(f, "a route to {} destinations", batch.dest_count()),
            Request::Publish => write!(f, "PUBLISH"),
            Request::Leave => write!(f, "the node's leave"),
        }
    }
}

/// The connection's state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Conn {
    /// No connection; the next attempt at `retry_at`.
    Down {
        retry_at: Instant,
    },
    /// The driver is connecting, since then.
    Connecting {
        since: Instant,
    },
    Up,
}

/// A recovery window the node knows of.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Recovery {
    since: Instant,
    until: Instant,
}

/// The link of one node.
#[derive(Debug)]
pub(crate) struct ClusterLink {
    /// This node's ID.
    node: String,
    ttl: Duration,
    conn: Conn,
    backoff: Duration,
    /// Connections made so far.
    connections: u64,
    pending: VecDeque<Request>,
    /// Encoded requests not yet taken by the driver.
    out: Vec<u8>,
    /// Bytes from Redis not decoded yet: part of one frame, and what the last read brought.
    /// Invariant: at most [`resp::MAX_REPLY`] plus one read's bytes (the scanner refuses a
    /// larger frame), and so is its capacity.
    input: Vec<u8>,
    /// Where the frame at the start of `input` ends, found as its bytes come.
    scanner: Scanner,
    /// The latest time the driver gave the link (every call that brings one sets it): the
    /// turn's time for the calls that bring none ([`ClusterLink::flush`], ...).
    clock: Instant,
    /// Since when Redis owes an answer: the time the oldest waiting request was sent, or of the
    /// last answer if later. Invariant: `Some` exactly while connected with requests waiting
    /// (set at the latest by the turn's flush). Past [`ClusterLink::deadline`] the link is
    /// broken ([`ClusterLink::overdue`]).
    waiting_since: Option<Instant>,
    /// The recovery window Redis told of (the hold's answer), open until then: logged and
    /// counted when it opens and when it ends.
    recovery: Option<Recovery>,
    /// The turn's batches.
    releases: Vec<Rc<str>>,
    claims: Vec<(Who, Rc<str>)>,
    routes: RouteBatch,
    bounces: Vec<(String, Vec<u8>)>,
    /// Route batches sent and not answered yet: at [`MAX_ROUTES_IN_FLIGHT`], new records wait
    /// and go together when one is answered (batches then grow with the load).
    routes_in_flight: usize,
    /// The scripts' SHA1s, in the order of [`scripts::ALL`].
    shas: [&'static str; 4],
    /// A hold was granted once: the node was in the cluster (Redis missing `a-chat:cluster`
    /// then means Redis lost its data).
    joined: bool,
    /// Until when the node holds its names (the last renewal's send time plus the TTL).
    held_until: Option<Instant>,
    next_heartbeat: Option<Instant>,
    /// The node's key was deleted (or Redis was out of reach): it left the cluster.
    left: bool,
    leaving: bool,
    events: Vec<Event>,
    pub(crate) stats: ClusterStats,
}

impl ClusterLink {
    pub(crate) fn new(node: String, ttl: Duration, now: Instant) -> Self {
        ClusterLink {
            node,
            ttl,
            conn: Conn::Down { retry_at: now },
            backoff: MIN_BACKOFF,
            connections: 0,
            pending: VecDeque::new(),
            out: Vec::new(),
            input: Vec::new(),
            scanner: Scanner::default(),
            clock: now,
            waiting_since: None,
            recovery: None,
            releases: Vec::new(),
            claims: Vec::new(),
            routes: RouteBatch::default(),
            bounces: Vec::new(),
            routes_in_flight: 0,
            shas: script_shas(),
            joined: false,
            held_until: None,
            next_heartbeat: None,
            left: false,
            leaving: false,
            events: Vec::new(),
            stats: ClusterStats {
                enabled: true,
                ..ClusterStats::default()
            },
        }
    }

    /// This node's ID.
    pub(crate) fn node(&self) -> &str {
        &self.node
    }

    /// Whether logins and remote messages can go through Redis now: connected, holding, and
    /// not hopelessly behind.
    pub(crate) fn is_available(&self) -> bool {
        self.conn == Conn::Up && self.held_until.is_some() && self.backlog() < MAX_OUTPUT
    }

    /// Whether Redis is behind: the core stops reading its peers with lookups in flight.
    pub(crate) fn is_congested(&self) -> bool {
        self.conn == Conn::Up && self.backlog() > CONGESTED
    }

    /// Bytes for Redis not written yet, the records waiting for a batch to be answered included.
    fn backlog(&self) -> usize {
        self.out.len() + self.routes.bytes()
    }

    /// Whether the driver should open a connection now.
    pub(crate) fn wants_connection(&self, now: Instant) -> bool {
        !self.left && matches!(self.conn, Conn::Down { retry_at } if retry_at <= now)
    }

    /// The driver started connecting.
    pub(crate) fn on_connecting(&mut self, now: Instant) {
        self.clock = now;
        self.conn = Conn::Connecting { since: now };
    }

    /// How long Redis may take to accept a connection, or to answer a request waiting: a third
    /// of the TTL, the period of the hold's renewals (so that a hung Redis is left, and a new
    /// connection made, before a hold granted earlier lapses).
    pub(crate) fn deadline(&self) -> Duration {
        to_millis(self.ttl / 3)
    }

    /// When the connection in the making, or the oldest request waiting, is past
    /// [`ClusterLink::deadline`].
    fn overdue_at(&self) -> Option<Instant> {
        match self.conn {
            Conn::Connecting { since } => Some(since + self.deadline()),
            Conn::Up => self.waiting_since.map(|since| since + self.deadline()),
            Conn::Down { .. } => None,
        }
    }

    /// What Redis left unanswered past [`ClusterLink::deadline`], if anything: then the link is
    /// broken, and the driver drops the connection (it checks once it has read all there was
    /// to read).
    pub(crate) fn overdue(&self, now: Instant) -> Option<String> {
        if self.overdue_at().is_none_or(|at| at > now) {
            return None;
        }
        let deadline = self.deadline();
        Some(match (&self.conn, self.pending.front()) {
            (Conn::Up, Some(request)) => {
                format!("Redis did not answer {request} within {deadline:?}")
            }
            (Conn::Up, None) => format!("Redis did not answer within {deadline:?}"),
            _ => format!("the connection to Redis was not made within {deadline:?}"),
        })
    }

    /// The connection is up: the first requests are queued: RESP3, the scripts, the node's
    /// channel, its hold, the releases that waited, and the reclaim of `names`.
    pub(crate) fn on_connected<'a>(
        &mut self,
        now: Instant,
        names: impl Iterator<Item = &'a Rc<str>>,
    ) {
        self.clock = now;
        self.conn = Conn::Up;
        self.connections += 1;
        if self.connections > 1 {
            self.stats.reconnects += 1;
            info!("cluster: reconnected to Redis");
        }
        self.out.clear();
        self.input.clear();
        self.scanner.reset();
        self.waiting_since = Some(now);
        resp::encode_command(&mut self.out, &[b"HELLO", b"3"]);
        self.pending.push_back(Request::Hello);
        // Redis may be new (restarted): the scripts are loaded before any EVALSHA.
        for (script, sha) in scripts::ALL.iter().zip(self.shas) {
            resp::encode_command(&mut self.out, &[b"SCRIPT", b"LOAD", script.as_bytes()]);
            self.pending.push_back(Request::Load(sha));
        }
        let channel = format!("{}{}", scripts::NODE_CHANNEL, self.node);
        resp::encode_command(&mut self.out, &[b"SUBSCRIBE", channel.as_bytes()]);
        self.pending.push_back(Request::Subscribe);
        let names: Vec<Rc<str>> = names.cloned().collect();
        self.send_hold(now, !names.is_empty());
        if let Some(Request::Hold { first, .. }) = self.pending.back_mut() {
            *first = true;
        }
        self.encode_releases();
        self.reclaim(&names);
    }

    /// Claims `names` again, for peers logged in here (after a reconnect, or when Redis lost
    /// this node's key); a name another node holds now comes back as [`Event::NameLost`].
    pub(crate) fn reclaim(&mut self, names: &[Rc<str>]) {
        if self.conn != Conn::Up {
            return; // the next connection reclaims them all
        }
        for chunk in names.chunks(BATCH) {
            self.encode_claims(chunk.iter().map(|name| &**name), b"again");
            self.pending.push_back(Request::Reclaim {
                names: chunk.to_vec(),
            });
        }
    }

    /// The connection broke (or could not be made, or Redis broke the protocol): what waited
    /// for an answer is failed, and a new attempt is planned after the back-off.
    pub(crate) fn on_disconnected(&mut self, now: Instant) {
        if self.conn == Conn::Up {
            warn!("cluster: lost the connection to Redis");
        }
        self.clock = now;
        self.waiting_since = None;
        self.scanner.reset();
        self.conn = Conn::Down {
            retry_at: now + self.backoff,
        };
        self.backoff = (self.backoff * 2).min(MAX_BACKOFF);
        self.out.clear();
        // A hostile reply may have grown it to the bound: given back.
        self.input = Vec::new();
        self.next_heartbeat = None;
        self.routes_in_flight = 0;
        self.stats.connected = false;
        for request in std::mem::take(&mut self.pending) {
            self.fail(request);
        }
        for (who, name) in std::mem::take(&mut self.claims) {
            self.events.push(Event::Claim {
                who,
                name,
                outcome: Claimed::Unavailable,
            });
        }
        let routes = std::mem::take(&mut self.routes);
        self.fail(Request::Route(routes));
        // The bounces wait for the next connection: their senders are told late, not never.
        if self.leaving {
            self.left = true;
        }
    }

    /// A request that will get no answer: its waiters hear "unavailable".
    fn fail(&mut self, request: Request) {
        match request {
            Request::Claim { names } => {
                for (who, name) in names {
                    self.events.push(Event::Claim {
                        who,
                        name,
                        outcome: Claimed::Unavailable,
                    });
                }
            }
            Request::Route(batch) => {
                for (who, dest) in batch.dests() {
                    self.events.push(Event::Route {
                        who,
                        dest: dest.into(),
                        outcome: Undelivered::Unavailable,
                    });
                }
                self.answered(&batch);
            }
            _ => {}
        }
    }

    /// Every destination of `batch` is answered: one [`Event::Answered`] per run of
    /// destinations of one sender.
    fn answered(&mut self, batch: &RouteBatch) {
        let mut run: Option<(Who, usize)> = None;
        for who in batch.senders() {
            match &mut run {
                Some((last, count)) if *last == who => *count += 1,
                _ => {
                    if let Some((who, count)) = run.replace((who, 1)) {
                        self.events.push(Event::Answered { who, count });
                    }
                }
            }
        }
        if let Some((who, count)) = run {
            self.events.push(Event::Answered { who, count });
        }
    }

    /// Bytes from Redis, read at `now`. An error means the connection must be dropped (and
    /// made again): it says why in a sentence.
    pub(crate) fn on_input(&mut self, bytes: &[u8], now: Instant) -> Result<(), String> {
        self.clock = now;
        self.append_input(bytes);
        let waiting = self.pending.len();
        let mut at = 0;
        let result = loop {
            // Each byte is scanned once, and a frame decoded once it is complete.
            let frame = match self.scanner.scan(&self.input[at..]) {
                Ok(Some(len)) => resp::decode_frame(&self.input[at..at + len]).map(|f| (f, len)),
                Ok(None) => break Ok(()),
                Err(e) => Err(e),
            };
            match frame {
                Ok((frame, len)) => {
                    let base = at;
                    at += len;
                    if let Err(e) = self.on_frame(frame, base) {
                        break Err(e);
                    }
                }
                Err(e) => break Err(e.to_string()),
            }
        };
        if self.pending.len() < waiting {
            // Redis answered: the deadline runs again for the next request waiting.
            self.waiting_since = (!self.pending.is_empty()).then_some(now);
        }
        self.input.drain(..at);
        if self.input.is_empty() && self.input.capacity() > 64 * 1024 {
            self.input = Vec::new();
        }
        result
    }

    /// Bytes from Redis held undecoded (the input's capacity).
    pub(crate) fn input_held(&self) -> usize {
        self.input.capacity()
    }

    /// Appends a read's bytes to the input, growing it (by doubling) no further than the
    /// invariant's bound.
    fn append_input(&mut self, bytes: &[u8]) {
        let needed = self.input.len() + bytes.len();
        if needed > self.input.capacity() {
            let bound = (resp::MAX_REPLY + bytes.len()).max(needed);
            let target = (self.input.capacity() * 2).clamp(needed, bound);
            self.input.reserve_exact(target - self.input.len());
        }
        self.input.extend_from_slice(bytes);
    }

    /// The bytes at `range` of a frame decoded at `base` of the input.
    fn input_at(&self, base: usize, range: &Range<usize>) -> &[u8] {
        &self.input[base + range.start..base + range.end]
    }

    fn on_frame(&mut self, frame: Frame, base: usize) -> Result<(), String> {
        if let Frame::Push(parts) = &frame {
            match parts.first().map(|kind| self.input_at(base, kind)) {
                Some(b"message") if parts.len() == 3 => {
                    let payload = self.input_at(base, &parts[2]).to_vec();
                    self.events.push(Event::Records(payload));
                    return Ok(());
                }
                Some(b"subscribe") if matches!(self.pending.front(), Some(Request::Subscribe)) => {}
                // Other pushes (invalidations, and the like) are not for us.
                _ => return Ok(()),
            }
        }
        let Some(request) = self.pending.pop_front() else {
            return Err(format!("a reply no request waits for: {frame:?}"));
        };
        let reply = match frame {
            Frame::Error(error) => {
                if matches!(request, Request::Hello | Request::Load(_)) {
                    if error.starts_with("NOAUTH") {
                        return Err("Redis requires a password (NOAUTH); password support is \
                                    not configured"
                            .to_string());
                    }
                    return Err(format!(
                        "Redis refused {request} ({error}): Redis 6 or later is needed"
                    ));
                }
                warn!("cluster: Redis answered {request} with an error: {error}");
                if matches!(request, Request::Route(_)) {
                    self.routes_in_flight = self.routes_in_flight.saturating_sub(1);
                }
                self.fail(request);
                return Ok(());
            }
            Frame::Push(_) => None,
            Frame::Reply(reply) => Some(reply),
        };
        let unexpected = |request: &Request| format!("an unexpected reply to {request}: {reply:?}");
        match &request {
            Request::Hello | Request::Release | Request::Publish => {}
            Request::Load(sha) => {
                let loaded = match &reply {
                    Some(Reply::Bytes(range)) => self.input_at(base, range) == sha.as_bytes(),
                    _ => false,
                };
                if !loaded {
                    return Err(unexpected(&request));
                }
            }
            Request::Subscribe => {
                if reply.is_some() {
                    return Err(unexpected(&request));
                }
            }
            Request::Hold {
                sent_at,
                has_names,
                first,
            } => {
                let (existed, recovering_ms) = match &reply {
                    Some(Reply::Integers(answer)) if answer.len() == 2 => (answer[0], answer[1]),
                    _ => return Err(unexpected(&request)),
                };
                self.on_recovery_news(recovering_ms);
                if existed == 0 && *has_names && !*first {
                    // Redis lost this node's key while the node held names (its own clock
                    // says the hold never lapsed): Redis lost its data, and the recovery
                    // window the script opened is for claiming them again.
                    warn!("cluster: Redis had lost this node's key: claiming its names again");
                    self.events.push(Event::Reclaim);
                }
                if self.held_until.is_none() {
                    info!(
                        "cluster: joined as node {} ({} hold)",
                        self.node,
                        if existed == 1 { "kept its" } else { "a new" }
                    );
                }
                self.held_until = Some(*sent_at + self.ttl);
                self.joined = true;
                self.backoff = MIN_BACKOFF;
            }
            Request::Claim { names } => {
                let outcomes = match &reply {
                    Some(Reply::Integers(outcomes)) if outcomes.len() == names.len() => outcomes,
                    _ => return Err(unexpected(&request)),
                };
                for ((who, name), &outcome) in names.iter().zip(outcomes) {
                    let outcome = match outcome {
                        1 => Claimed::Yes,
                        0 => Claimed::Taken,
                        _ => Claimed::Unavailable,
                    };
                    self.events.push(Event::Claim {
                        who: *who,
                        name: name.clone(),
                        outcome,
                    });
                }
            }
            Request::Reclaim { names } => {
                let outcomes = match &reply {
                    Some(Reply::Integers(outcomes)) if outcomes.len() == names.len() => outcomes,
                    _ => return Err(unexpected(&request)),
                };
                for (name, &outcome) in names.iter().zip(outcomes) {
                    if outcome == 0 {
                        self.events.push(Event::NameLost {
                            name: name.to_string(),
                        });
                    }
                }
            }
            Request::Route(batch) => {
                self.routes_in_flight = self.routes_in_flight.saturating_sub(1);
                let outcomes = match &reply {
                    // One status for all: the records went to one node together.
                    Some(Reply::Integers(outcomes))
                        if outcomes.len() == 1 || outcomes.len() == batch.dest_count() =>
                    {
                        outcomes
                    }
                    _ => {
                        // Its senders are told, as for a connection lost with it in flight.
                        let error = unexpected(&request);
                        self.fail(request);
                        return Err(error);
                    }
                };
                for (i, (who, dest)) in batch.dests().enumerate() {
                    let outcome = match outcomes[if outcomes.len() == 1 { 0 } else { i }] {
                        1 => {
                            self.stats.messages_sent += 1;
                            continue;
                        }
                        0 => Undelivered::NoSuchPeer,
                        _ => Undelivered::Unavailable,
                    };
                    self.events.push(Event::Route {
                        who,
                        dest: dest.into(),
                        outcome,
                    });
                }
                self.answered(batch);
            }
            Request::Leave => self.left = true,
        }
        Ok(())
    }

    /// The hold's answer said how long the recovery window has left (in ms; 0 or less: none
    /// is open). A window is logged and counted once when it opens and once when it ends,
    /// whichever node opened it; it ends by the node's clock (or at an answer that finds it
    /// gone).
    fn on_recovery_news(&mut self, left_ms: i64) {
        let now = self.clock;
        let left = Duration::from_millis(u64::try_from(left_ms).unwrap_or(0));
        if left.is_zero() {
            self.end_recovery(now);
            return;
        }
        match &mut self.recovery {
            Some(window) => window.until = now + left,
            None => {
                info!(
                    "cluster: a recovery window is open for {left:?}: Redis lost its data, and \
                     until the nodes have claimed their peers' names again, new logins get \
                     `error: cluster unavailable`"
                );
                self.stats.recovery_windows += 1;
                self.recovery = Some(Recovery {
                    since: now,
                    until: now + left,
                });
            }
        }
        self.stats.recovering = true;
    }

    /// The recovery window, if one was open, is over.
    fn end_recovery(&mut self, now: Instant) {
        if let Some(window) = self.recovery.take() {
            info!(
                "cluster: the recovery window ended after {:?}: logins are accepted again",
                to_millis(now.saturating_duration_since(window.since))
            );
            self.stats.recovering = false;
        }
    }

    /// The events since the last call.
    pub(crate) fn take_events(&mut self) -> Vec<Event> {
        std::mem::take(&mut self.events)
    }

    /// The earliest time the link has something to do: connect again, renew the hold, find
    /// that the hold lapsed, that Redis is overdue, or that a recovery window ended.
    pub(crate) fn next_deadline(&self) -> Option<Instant> {
        let retry = match self.conn {
            Conn::Down { retry_at } if !self.left => Some(retry_at),
            _ => None,
        };
        let recovery = self.recovery.map(|window| window.until);
        [
            retry,
            self.next_heartbeat,
            self.held_until,
            self.overdue_at(),
            recovery,
        ]
        .into_iter()
        .flatten()
        .min()
    }

    /// Runs the link's timers: the hold's renewal, its lapse, and the recovery window's end.
    pub(crate) fn on_timer(&mut self, now: Instant, has_names: bool) {
        self.clock = now;
        if self.recovery.is_some_and(|window| window.until <= now) {
            self.end_recovery(now);
        }
        if self.conn == Conn::Up && !self.leaving && self.next_heartbeat.is_some_and(|at| at <= now)
        {
            self.send_hold(now, has_names);
        }
        self.check_lapse(now);
    }

    /// Whether the hold lapsed by the node's clock: then [`Event::HoldLost`]. Checked by the
    /// timers, and before Redis's bytes are read (a renewal's reply read late must not hide
    /// a lapse that came before it).
    pub(crate) fn check_lapse(&mut self, now: Instant) {
        if self.held_until.is_some_and(|until| until <= now) {
            warn!(
                "cluster: the hold on this node's names lapsed ({:?} without a renewal)",
                self.ttl
            );
            self.held_until = None;
            self.events.push(Event::HoldLost);
        }
    }

    fn send_hold(&mut self, now: Instant, has_names: bool) {
        let key = format!("{}{}", scripts::NODE_KEY, self.node);
        let ttl = self.ttl.as_millis().max(1).to_string();
        let flag = |on: bool| -> &'static [u8] { if on { b"1" } else { b"0" } };
        let args: [&[u8]; 7] = [
            b"EVALSHA",
            self.shas[scripts::HOLD_INDEX].as_bytes(),
            b"1",
            key.as_bytes(),
            ttl.as_bytes(),
            flag(has_names),
            flag(self.joined),
        ];
        resp::encode_command(&mut self.out, &args);
        self.pending.push_back(Request::Hold {
            sent_at: now,
            has_names,
            first: false,
        });
        self.next_heartbeat = Some(now + self.ttl / 3);
    }

    /// Asks for `name` for the login `who`; `false` if Redis cannot be asked now.
    pub(crate) fn claim(&mut self, who: Who, name: Rc<str>) -> bool {
        if !self.is_available() || self.leaving {
            return false;
        }
        self.claims.push((who, name));
        true
    }

    /// Gives `name` back (its peer left). While disconnected, it is given back after the next
    /// connect.
    pub(crate) fn release(&mut self, name: Rc<str>) {
        self.releases.push(name);
    }

    /// Routes TEXT from `sender` (connection `who`) to `dest` on another node; `false` if Redis
    /// cannot be asked now.
    pub(crate) fn route(&mut self, who: Who, sender: &str, dest: &str, text: &str) -> bool {
        if !self.is_available() {
            return false;
        }
        self.routes.push(&self.node, who, sender, dest, text);
        true
    }

    /// Tells node `origin` that its peer `sender`'s message to `dest` found no peer here.
    pub(crate) fn bounce(&mut self, origin: &str, sender: &str, dest: &str) {
        if self.conn != Conn::Up {
            return;
        }
        let index = match self.bounces.iter().position(|(node, _)| node == origin) {
            Some(index) => index,
            None => {
                self.bounces.push((origin.to_string(), Vec::new()));
                self.bounces.len() - 1
            }
        };
        records::write_bounce(&mut self.bounces[index].1, sender, dest);
    }

    /// The node leaves: its key is deleted (its names are free at once, whatever is left of
    /// them). [`ClusterLink::has_left`] says when it is done.
    pub(crate) fn leave(&mut self) {
        if self.leaving {
            return;
        }
        self.leaving = true;
        self.next_heartbeat = None;
        if self.conn != Conn::Up {
            self.left = true;
            return;
        }
        let key = format!("{}{}", scripts::NODE_KEY, self.node);
        resp::encode_command(&mut self.out, &[b"DEL", key.as_bytes()]);
        self.pending.push_back(Request::Leave);
        self.start_waiting();
    }

    /// Whether the node is out of the cluster (its key deleted, or Redis out of reach).
    pub(crate) fn has_left(&self) -> bool {
        self.left
    }

    /// Encodes the turn's batches; what it writes is [`ClusterLink::output`].
    pub(crate) fn flush(&mut self) {
        if self.conn != Conn::Up {
            return;
        }
        // Releases first: a name given up and taken again in one turn ends taken.
        self.encode_releases();
        let claims = std::mem::take(&mut self.claims);
        for chunk in claims.chunks(BATCH) {
            self.encode_claims(chunk.iter().map(|(_, name)| &**name), b"new");
            self.pending.push_back(Request::Claim {
                names: chunk.to_vec(),
            });
        }
        self.encode_routes();
        for (origin, payload) in std::mem::take(&mut self.bounces) {
            let channel = format!("{}{origin}", scripts::NODE_CHANNEL);
            resp::encode_command(&mut self.out, &[b"PUBLISH", channel.as_bytes(), &payload]);
            self.pending.push_back(Request::Publish);
        }
        self.stats.connected = self.is_available();
        self.start_waiting();
    }

    /// Requests were queued (by the turn, at the link's `clock`): if none waited, Redis
    /// owes an answer from now on.
    fn start_waiting(&mut self) {
        if self.waiting_since.is_none() && self.conn == Conn::Up && !self.pending.is_empty() {
            self.waiting_since = Some(self.clock);
        }
    }

    fn encode_releases(&mut self) {
        if self.conn != Conn::Up || self.releases.is_empty() {
            return;
        }
        let releases = std::mem::take(&mut self.releases);
        for chunk in releases.chunks(BATCH) {
            self.encode_names(
                scripts::RELEASE_INDEX,
                chunk.iter().map(|name| &**name),
                &[],
            );
            self.pending.push_back(Request::Release);
        }
    }

    fn encode_claims<'a>(&mut self, names: impl Iterator<Item = &'a str>, mode: &[u8]) {
        let ttl = self.ttl.as_millis().max(1).to_string();
        self.encode_names(scripts::CLAIM_INDEX, names, &[mode, ttl.as_bytes()]);
    }

    /// `EVALSHA` of script `index` with the keys of `names`, the node's ID, then `extra`.
    fn encode_names<'a>(
        &mut self,
        index: usize,
        names: impl Iterator<Item = &'a str>,
        extra: &[&[u8]],
    ) {
        let keys: Vec<String> = names
            .map(|name| format!("{}{name}", scripts::NAME_KEY))
            .collect();
        let count = keys.len().to_string();
        let mut args: Vec<&[u8]> = vec![b"EVALSHA", self.shas[index].as_bytes(), count.as_bytes()];
        args.extend(keys.iter().map(|key| key.as_bytes()));
        args.push(self.node.as_bytes());
        args.extend_from_slice(extra);
        resp::encode_command(&mut self.out, &args);
    }

    /// Sends the records routed this turn (and those that waited), in `EVALSHA`s of about
    /// [`BATCH`] destinations each, unless [`MAX_ROUTES_IN_FLIGHT`] batches are unanswered.
    fn encode_routes(&mut self) {
        if self.routes_in_flight >= MAX_ROUTES_IN_FLIGHT || self.routes.is_empty() {
            return;
        }
        for batch in std::mem::take(&mut self.routes).into_chunks(BATCH) {
            batch.encode(self.shas[scripts::ROUTE_INDEX], &mut self.out);
            self.pending.push_back(Request::Route(batch));
            self.routes_in_flight += 1;
        }
    }

    /// Encoded requests for Redis, not written yet.
    pub(crate) fn output(&self) -> &[u8] {
        &self.out
    }

    /// The driver wrote the first `n` bytes of [`ClusterLink::output`].
    pub(crate) fn consumed(&mut self, n: usize) {
        self.out.drain(..n);
        if self.out.is_empty() && self.out.capacity() > 64 * 1024 {
            self.out = Vec::new();
        }
    }
}

/// `duration` cut to whole milliseconds (for log lines: `3.333s`, not `3.333333333s`).
fn to_millis(duration: Duration) -> Duration {
    Duration::from_millis(u64::try_from(duration.as_millis()).unwrap_or(u64::MAX))
}

/// The SHA1s of [`scripts::ALL`], computed once per process.
fn script_shas() -> [&'static str; 4] {
    static SHAS: std::sync::OnceLock<[String; 4]> = std::sync::OnceLock::new();
    let shas = SHAS.get_or_init(|| scripts::ALL.map(scripts::sha));
    [&shas[0], &shas[1], &shas[2], &shas[3]]
}

#[cfg(test)]
mod tests {
    use super::*;
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
        let mut replies = b"%1\r\n+proto\r\n:3\r\n".to_vec();
        for sha in script_shas() {
            replies.extend_from_slice(format!("${}\r\n{sha}\r\n", sha.len()).as_bytes());
        }
        replies.extend_from_slice(b">3\r\n$9\r\nsubscribe\r\n$12\r\na-chat:to:n1\r\n:1\r\n");
        replies.extend_from_slice(b"*2\r\n:0\r\n:-2\r\n");
        link.on_input(&replies, now).expect("handshake");
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
            link.release(format!("old{i}").into());
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
        let error = link.on_input(b":42\r\n", now).unwrap_err();
        assert!(error.contains("a reply no request waits for"), "{error}");
        let mut link = joined(Instant::now());
        assert!(link.claim(who(1), "alice".into()));
        link.flush();
        let error = link.on_input(b"$2\r\nno\r\n", now).unwrap_err();
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
        link.reclaim(&["alice".into()]);
        link.flush();
        let sent = commands(&mut link);
        assert_eq!(sent[0][1], script_shas()[1]);
        assert_eq!(sent[0][3..], ["a-chat:name:alice", "n1", "again", "3000"]);
        link.on_input(b"*1\r\n:0\r\n", now).expect("reclaim reply");
        assert_eq!(
            link.take_events(),
            vec![Event::NameLost {
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
        let error = link.on_input(&deep, now).unwrap_err();
        assert_eq!(
            error,
            "a reply from Redis nested deeper than 32 levels (the limit)"
        );
        // A bulk string announced far past the bound: refused at its header.
        let mut link = joined(now);
        let error = link.on_input(b"$999999999999\r\n", now).unwrap_err();
        assert_eq!(error, "a reply from Redis larger than 16 MiB (the limit)");
        // A line that never ends, 64 KiB a read: the input stays within the bound until the
        // frame passes it, and then it is refused.
        let mut link = joined(now);
        let chunk = vec![b'a'; 64 * 1024];
        link.on_input(b"+", now).unwrap();
        let error = loop {
            match link.on_input(&chunk, now) {
                Ok(()) => assert!(link.input.capacity() <= resp::MAX_REPLY + chunk.len()),
                Err(e) => break e,
            }
        };
        assert!(error.contains("larger than 16 MiB"), "{error}");
        assert!(link.input.capacity() <= resp::MAX_REPLY + chunk.len());
        // The driver drops the connection: the next one starts with nothing of it.
        link.on_disconnected(now);
        assert!(link.input.is_empty());
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
        let overdue = link.overdue(now + deadline).expect("overdue");
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
            link.overdue(later + deadline).as_deref(),
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
            link.overdue(t3 + deadline).as_deref(),
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
            .unwrap_err();
        assert_eq!(
            error,
            "Redis requires a password (NOAUTH); password support is not configured"
        );
        let mut link = ClusterLink::new("n1".into(), TTL, now);
        link.on_connecting(now);
        link.on_connected(now, std::iter::empty());
        let error = link
            .on_input(b"-ERR unknown command 'HELLO'\r\n", now)
            .unwrap_err();
        assert!(error.contains("Redis 6 or later is needed"), "{error}");
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
}
