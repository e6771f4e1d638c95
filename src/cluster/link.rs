//! A node's link to Redis, without IO: the connection's life ([`State`]: connect, back-off,
//! handshake, joined, leave), the bytes from Redis framed and decoded, the deadline on Redis's
//! answers (a third of the TTL). Its parts, each in its own file under `link/` (the table of
//! `src/cluster/mod.rs`), do the rest: the lifecycles ([`State`], [`Hold`]), the requests and
//! their replies, the hold, the turn's batches, and why a link breaks ([`LinkError`]).

mod batches;
mod error;
mod hold;
mod replies;
mod requests;
mod state;
#[cfg(test)]
mod tests;

use std::collections::VecDeque;
use std::ops::Range;
use std::rc::Rc;
use std::time::{Duration, Instant};

use log::warn;

pub(crate) use self::error::LinkError;
use self::requests::Request;
use self::state::{Hold, Recovery, State};
use super::events::{Claimed, Event, Who};
use super::resp::{self, RespInput};
use super::route_batch::RouteBatch;
use super::scripts;
use crate::cluster::RedisPassword;
use crate::stats::ClusterStats;

/// Bytes waiting for Redis past which the core stops reading the peers that have lookups in
/// flight (back-pressure: Redis does not keep up; `src/chat/lookups.rs`).
const CONGESTED: usize = 4 << 20;

/// Bytes waiting for Redis past which new work is refused as "unavailable": the queue must not
/// grow without bound even if peers' input was already read.
const MAX_OUTPUT: usize = 16 << 20;

/// The link of one node.
#[derive(Debug)]
pub(crate) struct ClusterLink {
    /// This node's ID. Invariant: not empty, and holds no `/`, `,`, `:` or control character
    /// (name records are `ID/CONN`, records split at `,`), as the driver's hex IDs do not.
    node: String,
    ttl: Duration,
    /// The connection's life, the back-off and the hold's next renewal in it.
    state: State,
    /// Connections made so far.
    connections: u64,
    /// Whether each connection checks with `ROLE` that Redis is a master (its address came
    /// from a sentinel).
    check_role: bool,
    /// Whether a connection attempt has failed before the node ever joined (or broke after
    /// it). Until then the node is starting: a login's claim waits for the first attempt
    /// (rule 6.8) instead of being refused.
    failed_once: bool,
    /// Invariant: empty unless connected.
    pending: VecDeque<Request>,
    /// Encoded requests not yet taken by the driver.
    out: Vec<u8>,
    /// Bytes from Redis not decoded yet: part of one frame, and what the last read brought
    /// (bounded as [`RespInput`] says).
    input: RespInput,
    /// The latest time the driver gave the link (every call that brings one sets it): the
    /// turn's time for the calls that bring none ([`ClusterLink::flush`], ...).
    clock: Instant,
    /// Since when Redis owes an answer: the time the oldest waiting request was sent, or of the
    /// last answer if later. Invariant: `Some` exactly while connected with requests waiting
    /// (set at the latest by the turn's flush). Past [`ClusterLink::deadline`] the link is
    /// broken ([`ClusterLink::overdue`]).
    waiting_since: Option<Instant>,
    /// The node's hold on its names, by its own clock (it outlives connections).
    hold: Hold,
    /// The recovery window Redis told of (the hold's answer), open until then: logged and
    /// counted when it opens and when it ends.
    recovery: Option<Recovery>,
    /// The turn's batches.
    releases: Vec<(Who, Rc<str>)>,
    claims: Vec<(Who, Rc<str>)>,
    routes: RouteBatch,
    bounces: Vec<(String, Vec<u8>)>,
    /// Route batches sent and not answered yet: at the bound of `batches.rs`, new records wait
    /// and go together when one is answered (batches then grow with the load).
    routes_in_flight: usize,
    /// The user and password the handshake's `HELLO 3 AUTH` sends, if Redis wants them.
    credentials: Option<(String, RedisPassword)>,
    /// The scripts' SHA1s, in the order of [`scripts::ALL`].
    shas: [&'static str; 4],
    events: Vec<Event>,
    pub(crate) stats: ClusterStats,
}

impl ClusterLink {
    pub(crate) fn new(node: String, ttl: Duration, now: Instant) -> Self {
        debug_assert!(
            !node.is_empty()
                && !node
                    .chars()
                    .any(|c| matches!(c, '/' | ',' | ':') || c.is_control()),
            "a node ID fit for the records: {node:?}"
        );
        ClusterLink {
            node,
            ttl,
            state: State::new(now),
            connections: 0,
            check_role: false,
            failed_once: false,
            pending: VecDeque::new(),
            out: Vec::new(),
            input: RespInput::default(),
            clock: now,
            waiting_since: None,
            hold: Hold::Never,
            recovery: None,
            releases: Vec::new(),
            claims: Vec::new(),
            routes: RouteBatch::default(),
            bounces: Vec::new(),
            routes_in_flight: 0,
            credentials: None,
            shas: script_shas(),
            events: Vec::new(),
            stats: ClusterStats {
                enabled: true,
                ..ClusterStats::default()
            },
        }
    }

    /// Each connection checks with `ROLE` that Redis is a master, right after HELLO (the
    /// address comes from a sentinel, whose answer may be stale).
    pub(crate) fn check_role(&mut self) {
        self.check_role = true;
    }

    /// The sentinels named a new master: the next connection is made at once, whatever the
    /// back-off (contract section 9: rule 6 holds again within 2 s of the switch).
    pub(crate) fn retry_now(&mut self, now: Instant) {
        self.state.retry_now(now);
    }

    /// A failover was followed (the driver moved to a new master): counted.
    pub(crate) fn on_failover(&mut self) {
        self.stats.failovers += 1;
    }

    /// The link authenticates as `user` with `password` (`HELLO 3 AUTH`) on every connection.
    pub(crate) fn with_credentials(mut self, user: String, password: RedisPassword) -> Self {
        self.credentials = Some((user, password));
        self
    }

    /// The user the link authenticates as, if any.
    pub(super) fn user(&self) -> Option<&str> {
        self.credentials.as_ref().map(|(user, _)| user.as_str())
    }

    /// `text` from Redis with the password, should Redis have echoed it, as `***`.
    pub(super) fn scrubbed(&self, text: &str) -> String {
        match &self.credentials {
            Some((_, password)) if !password.expose().is_empty() => {
                text.replace(password.expose(), "***")
            }
            _ => text.to_string(),
        }
    }

    /// This node's ID.
    pub(crate) fn node(&self) -> &str {
        &self.node
    }

    /// Whether logins and remote messages can go through Redis now: connected, holding, and
    /// not hopelessly behind.
    pub(crate) fn is_available(&self) -> bool {
        self.state.is_connected() && self.hold.is_held() && self.backlog() < MAX_OUTPUT
    }

    /// Whether the node is starting: its first connection attempt is still being made (never
    /// joined, never failed, not leaving). Claims made meanwhile wait for it (rule 6.8).
    fn is_starting(&self) -> bool {
        !self.failed_once && !self.hold.was_granted() && !self.state.is_leaving()
    }

    /// Whether Redis is behind: the core stops reading its peers with lookups in flight.
    pub(crate) fn is_congested(&self) -> bool {
        self.state.is_connected() && self.backlog() > CONGESTED
    }

    /// Bytes for Redis not written yet, the records waiting for a batch to be answered included.
    fn backlog(&self) -> usize {
        self.out.len() + self.routes.bytes()
    }

    /// Whether the driver should open a connection now.
    pub(crate) fn wants_connection(&self, now: Instant) -> bool {
        self.state.retry_at().is_some_and(|at| at <= now)
    }

    /// The driver started connecting.
    pub(crate) fn on_connecting(&mut self, now: Instant) {
        self.clock = now;
        self.state.on_connecting(now);
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
        match self.state {
            State::Connecting { since, .. } => Some(since + self.deadline()),
            _ if self.state.is_connected() => {
                self.waiting_since.map(|since| since + self.deadline())
            }
            _ => None,
        }
    }

    /// What Redis left unanswered past [`ClusterLink::deadline`], if anything: then the link is
    /// broken, and the driver drops the connection (it checks once it has read all there was
    /// to read).
    pub(crate) fn overdue(&self, now: Instant) -> Option<LinkError> {
        if self.overdue_at().is_none_or(|at| at > now) {
            return None;
        }
        let deadline = self.deadline();
        Some(if self.state.is_connected() {
            LinkError::Overdue {
                request: self.pending.front().map(Request::to_string),
                deadline,
            }
        } else {
            LinkError::NotConnected(deadline)
        })
    }

    /// The connection is up: the first requests are queued: RESP3, the scripts, the node's
    /// channel, its hold, the releases that waited, and the reclaim of `names` (the peers
    /// logged in here, each with its connection). (The link says it reconnected once the hold
    /// is answered on it.)
    pub(crate) fn on_connected(
        &mut self,
        now: Instant,
        names: impl Iterator<Item = (Who, Rc<str>)>,
    ) {
        self.clock = now;
        self.state.on_connected(now + self.ttl / 3);
        self.connections += 1;
        if self.connections > 1 {
            self.stats.reconnects += 1;
        }
        self.out.clear();
        self.input.reset();
        self.waiting_since = Some(now);
        // Authenticated before anything else: nothing else is sent before HELLO's answer
        // would matter, as Redis answers in order and refuses the rest unauthenticated.
        match &self.credentials {
            Some((user, password)) => resp::encode_command(
                &mut self.out,
                &[
                    b"HELLO",
                    b"3",
                    b"AUTH",
                    user.as_bytes(),
                    password.expose().as_bytes(),
                ],
            ),
            None => resp::encode_command(&mut self.out, &[b"HELLO", b"3"]),
        }
        self.pending.push_back(Request::Hello);
        if self.check_role {
            resp::encode_command(&mut self.out, &[b"ROLE"]);
            self.pending.push_back(Request::Role);
        }
        // Redis may be new (restarted): the scripts are loaded before any EVALSHA.
        for (script, sha) in scripts::ALL.iter().zip(self.shas) {
            resp::encode_command(&mut self.out, &[b"SCRIPT", b"LOAD", script.as_bytes()]);
            self.pending.push_back(Request::Load(sha));
        }
        let channel = format!("{}{}", scripts::NODE_CHANNEL, self.node);
        resp::encode_command(&mut self.out, &[b"SUBSCRIBE", channel.as_bytes()]);
        self.pending.push_back(Request::Subscribe);
        let names: Vec<(Who, Rc<str>)> = names.collect();
        self.send_hold(now, !names.is_empty());
        if let Some(Request::Hold { first, .. }) = self.pending.back_mut() {
            *first = true;
        }
        self.encode_releases();
        self.reclaim(&names);
    }

    /// The connection broke (or could not be made, or Redis broke the protocol): what waited
    /// for an answer is failed, and a new attempt is planned after the back-off.
    pub(crate) fn on_disconnected(&mut self, now: Instant) {
        if self.state.is_connected() {
            warn!("cluster: lost the connection to Redis");
        }
        self.clock = now;
        self.waiting_since = None;
        self.state.on_disconnected(now);
        self.out.clear();
        self.input.reset();
        self.routes_in_flight = 0;
        self.stats.connected = false;
        self.failed_once = true;
        for request in std::mem::take(&mut self.pending) {
            self.fail(request);
        }
        self.fail_claims();
        let routes = std::mem::take(&mut self.routes);
        self.fail(Request::Route(routes));
        // The bounces wait for the next connection: their senders are told late, not never.
    }

    /// The turn's claims not sent (or waiting for the first attempt, rule 6.8) are answered
    /// "unavailable".
    fn fail_claims(&mut self) {
        for (who, name) in std::mem::take(&mut self.claims) {
            self.events.push(Event::Claim {
                who,
                name,
                outcome: Claimed::Unavailable,
            });
        }
    }

    /// Bytes from Redis, read at `now`. An error means the connection must be dropped (and
    /// made again): it says why in a sentence.
    pub(crate) fn on_input(&mut self, bytes: &[u8], now: Instant) -> Result<(), LinkError> {
        self.clock = now;
        self.input.append(bytes);
        let waiting = self.pending.len();
        let mut at = 0;
        let result = loop {
            match self.input.next_frame(at) {
                Ok(Some((frame, len))) => {
                    let base = at;
                    at += len;
                    if let Err(e) = self.on_frame(frame, base) {
                        break Err(e);
                    }
                }
                Ok(None) => break Ok(()),
                Err(e) => break Err(e.into()),
            }
        };
        if self.pending.len() < waiting {
            // Redis answered: the deadline runs again for the next request waiting.
            self.waiting_since = (!self.pending.is_empty()).then_some(now);
        }
        self.input.consume(at);
        result
    }

    /// Bytes from Redis held undecoded (the input's capacity).
    pub(crate) fn input_held(&self) -> usize {
        self.input.held()
    }

    /// The bytes at `range` of a frame decoded at `base` of the input.
    fn input_at(&self, base: usize, range: &Range<usize>) -> &[u8] {
        self.input.at(base, range)
    }

    /// The events since the last call.
    pub(crate) fn take_events(&mut self) -> Vec<Event> {
        std::mem::take(&mut self.events)
    }

    /// The earliest time the link has something to do: connect again, renew the hold, find
    /// that the hold lapsed, that Redis is overdue, or that a recovery window ended.
    pub(crate) fn next_deadline(&self) -> Option<Instant> {
        let recovery = self.recovery.map(|window| window.until);
        [
            self.state.retry_at(),
            self.state.renew_at(),
            self.hold.until(),
            self.overdue_at(),
            recovery,
        ]
        .into_iter()
        .flatten()
        .min()
    }

    /// The node leaves: its key is deleted (its names are free at once, whatever is left of
    /// them). [`ClusterLink::has_left`] says when it is done.
    pub(crate) fn leave(&mut self) {
        if self.state.is_leaving() {
            return;
        }
        // Claims not sent (some may have waited for the first attempt) will not be now.
        self.fail_claims();
        if !self.state.on_leave() {
            return;
        }
        let key = format!("{}{}", scripts::NODE_KEY, self.node);
        resp::encode_command(&mut self.out, &[b"DEL", key.as_bytes()]);
        self.pending.push_back(Request::Leave);
        self.start_waiting();
    }

    /// Whether the node is out of the cluster (its key deleted, or Redis out of reach).
    pub(crate) fn has_left(&self) -> bool {
        self.state.has_left()
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
