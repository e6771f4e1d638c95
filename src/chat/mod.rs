//! The IO-free chat core: every connection's state machine, the directory of names, routing,
//! timers and the shutdown sequence. It never opens a socket or reads a clock: a driver hands
//! it transports, readiness and the time.
//!
//! | file | owns |
//! | --- | --- |
//! | `mod.rs` | [`Chat`]: the connection table, reads, the per-turn work, queueing |
//! | `login.rs` | the name line, and a login waiting for a name whose holder may be closing |
//! | `routing.rs` | one `DESTS: TEXT` line into its receivers' queues |
//! | `closing.rs` | closing one connection, and the graceful shutdown of all |
//! | `cluster.rs` | cluster mode: the link to Redis fed, its events applied |
//! | `lookups.rs` | cluster mode: each peer's budget of lookups in flight, its lines held meanwhile |
//! | `memory_bound.rs` | the bound on all queues together, and which queue goes first |
//! | `alloc_cost.rs` | what a queued buffer and a queue's entries really cost the allocator |
//! | `peer.rs` | a connection's `Phase` and `CloseReason` |
//! | `outbox.rs`, `timers.rs`, `transport.rs` | the outbound queue, deadlines, the IO trait |

mod alloc_cost;
mod closing;
mod cluster;
mod directory;
mod login;
mod lookups;
mod memory_bound;
mod outbox;
mod peer;
mod queue_ledger;
mod route_state;
mod routing;
mod timers;
mod transport;

use std::io;
use std::rc::Rc;
use std::time::Instant;

use log::warn;
use slab::Slab;

#[cfg(feature = "cluster")]
use crate::cluster::ClusterLink;
use crate::config::Config;
use crate::parse::{LineError, parse_message};
use crate::stats::Stats;

pub use peer::CloseReason;
pub use transport::Transport;

use closing::Shutdown;
use directory::Directory;
use peer::{Peer, Phase, ReadMode};
use queue_ledger::QueueLedger;
use route_state::RouteState;
use timers::Timers;

/// Bytes read from one connection per call before the other connections get their turn.
pub const DEFAULT_READ_BUDGET: usize = 128 * 1024;

/// The bytes of one read call, shared by every connection.
const SCRATCH_LEN: usize = 64 * 1024;

/// The chat server without IO: connections, the directory of names, routing, timers and the
/// shutdown sequence. It never opens a socket or reads a clock; `now` comes from the caller.
///
/// # Call order
///
/// A driver owns the sockets and the clock, and makes these calls:
///
/// 1. **Accept.** Take the key the connection will get ([`Chat::vacant_key`]), register the
///    socket under it, then [`Chat::accept`] the transport. `accept` reads at once: bytes that
///    arrived with the connection are not announced again by an edge-triggered poll.
/// 2. **Events.** For each readiness event of a connection: [`Chat::on_readable`] reads up to
///    the read budget and handles every complete line (routed messages are only queued), and
///    [`Chat::on_writable`] notes that the transport takes bytes again.
/// 3. **End of the turn.** [`Chat::end_turn`], once after every poll, also after one that
///    returned no events (a timeout): that is when timers run. In this order it reads again
///    the connections whose read budget ran out (or that answers from the cluster let go on,
///    in cluster mode), runs the expired timers (a login retried
///    after contention routes lines; a timeout closes), finishes the shutdown's reading
///    stage, flushes every queue that grew with one vectored write, reports to the driver
///    whether each flushed connection still wants writability, and hands back the transports
///    of closed connections. Timers run before the flush because they queue bytes.
/// 4. **Sleep** no longer than until [`Chat::next_deadline`], and not at all while
///    [`Chat::has_unread_input`]: that input will not be announced by a new readiness edge.
///
/// [`Chat::begin_shutdown`] and [`Chat::force_close_all`] may be called between turns; their
/// effects go out at the next [`Chat::end_turn`].
#[derive(Debug)]
pub struct Chat<T> {
    config: Config,
    peers: Slab<Peer<T>>,
    /// The names logged in here, and those being claimed from the cluster.
    directory: Directory,
    /// Connections logging in or logged in (not closing).
    active: usize,
    timers: Timers,
    next_generation: u64,
    /// Keys that may have bytes to write or a close to carry on (see `Peer::dirty`).
    dirty: Vec<usize>,
    /// Keys whose last read stopped at the budget, not at `WouldBlock` (see `Peer::unread`).
    unread: Vec<usize>,
    /// Keys in `Phase::Closed`, waiting for the end of the turn.
    closed: Vec<usize>,
    /// The line being routed.
    route: RouteState,
    stats: Stats,
    /// Set once a graceful shutdown began.
    shutdown: Option<Shutdown>,
    /// What the queues hold together, and the queues by cost.
    ledger: QueueLedger,
    /// Cluster mode: the link to Redis.
    #[cfg(feature = "cluster")]
    cluster: Option<ClusterLink>,
    scratch: Vec<u8>,
    read_budget: usize,
}

impl<T: Transport> Chat<T> {
    /// An empty core with the given limits, reading at most [`DEFAULT_READ_BUDGET`] bytes from
    /// one connection per call.
    ///
    /// The directory of names is sized for `config.max_conns` names at once, so that it never
    /// grows while peers log in (see `Directory::new`).
    pub fn new(config: Config) -> Self {
        Chat {
            directory: Directory::new(config.max_conns),
            config,
            peers: Slab::new(),
            active: 0,
            timers: Timers::default(),
            next_generation: 0,
            dirty: Vec::new(),
            unread: Vec::new(),
            closed: Vec::new(),
            route: RouteState::default(),
            stats: Stats::default(),
            shutdown: None,
            ledger: QueueLedger::default(),
            #[cfg(feature = "cluster")]
            cluster: None,
            scratch: vec![0; SCRATCH_LEN],
            read_budget: DEFAULT_READ_BUDGET,
        }
    }

    /// The same core with another read budget (at least one byte): how many bytes one call
    /// reads from one connection before it stops and leaves the rest for the next turn.
    /// Small budgets make the rest-for-later path common, which tests want.
    pub fn with_read_budget(mut self, bytes: usize) -> Self {
        self.read_budget = bytes.max(1);
        self
    }

    /// The key that the next [`Chat::accept`] will return, for registering the transport's
    /// socket under a token derived from it before handing the transport over.
    pub fn vacant_key(&self) -> usize {
        self.peers.vacant_key()
    }

    /// Takes a new connection, reads what already arrived on it, and returns its key (the one
    /// [`Chat::vacant_key`] said). Past `max_conns`, or during a shutdown, it is answered
    /// `error: server full` and closed.
    pub fn accept(&mut self, io: T, now: Instant) -> usize {
        let generation = self.next_generation;
        self.next_generation += 1;
        let deadline = now + self.config.login_timeout;
        let phase = Phase::AwaitingName {
            deadline,
            contended: false,
        };
        let key = self.peers.insert(Peer::new(io, phase, generation));
        self.active += 1;
        self.stats.connections_accepted += 1;
        if self.active > self.config.max_conns || self.is_shutting_down() {
            self.stats.server_full += 1;
            self.queue_text(key, "error: server full\n");
            self.begin_close(key, CloseReason::ServerFull, now);
        } else {
            self.timers.push(deadline, key, generation);
            self.read(key, now);
        }
        key
    }

    /// `key` is readable: reads until `WouldBlock`, or until the read budget is spent (then
    /// the rest is read at [`Chat::end_turn`]), handling every complete line. Routed lines are
    /// queued for their receivers, and written at [`Chat::end_turn`].
    pub fn on_readable(&mut self, key: usize, now: Instant) {
        self.read(key, now);
    }

    /// `key` is writable again: what is queued for it is written at [`Chat::end_turn`].
    pub fn on_writable(&mut self, key: usize) {
        if self
            .peers
            .get(key)
            .is_some_and(|peer| !peer.phase.is_closed())
        {
            self.mark_dirty(key);
        }
    }

    /// Finishes a turn of the driver's loop; see the call order on [`Chat`]. `on_interest` is
    /// called for each connection that was flushed, with whether it still has bytes to write,
    /// queued or the transport's own ([`Transport::wants_write`]): the driver asks for
    /// writability exactly then. An error from it closes that connection. `release` is handed the transport of each connection that was closed, to
    /// deregister and drop it, with the reason it was closed.
    pub fn end_turn(
        &mut self,
        now: Instant,
        mut on_interest: impl FnMut(usize, &mut T, bool) -> io::Result<()>,
        mut release: impl FnMut(usize, T, CloseReason),
    ) {
        for key in std::mem::take(&mut self.unread) {
            if let Some(peer) = self.peers.get_mut(key) {
                peer.unread = false;
                self.read(key, now);
            }
        }
        self.handle_timeouts(now);
        self.cluster_end_turn(now);
        self.finish_draining(now);
        while let Some(key) = self.pop_dirty() {
            self.flush(key, now);
            let Some(peer) = self.peers.get_mut(key) else {
                continue;
            };
            if peer.phase.is_closed() {
                continue;
            }
            let wants_write = !peer.outbox.is_empty() || peer.io.wants_write();
            if let Err(e) = on_interest(key, &mut peer.io, wants_write) {
                self.close_now(key, CloseReason::Io(e.kind()));
            }
        }
        self.cluster_flush();
        self.reap(&mut release);
    }

    /// The earliest time at which [`Chat::end_turn`] has a timer to run (it may find that the
    /// connection has moved on meanwhile).
    pub fn next_deadline(&self) -> Option<Instant> {
        [self.timers.next(), self.cluster_deadline()]
            .into_iter()
            .flatten()
            .min()
    }

    /// Whether some connection's read stopped at the budget: the driver must not sleep before
    /// the next [`Chat::end_turn`].
    pub fn has_unread_input(&self) -> bool {
        // A peer waiting for answers from the cluster is not on the list: its input waits for
        // them, not for a turn.
        !self.unread.is_empty()
    }

    /// Whether no connection is left.
    pub fn is_empty(&self) -> bool {
        self.peers.is_empty()
    }

    /// The transport of `key`, if it is still there.
    pub fn transport(&self, key: usize) -> Option<&T> {
        self.peers.get(key).map(|peer| &peer.io)
    }

    /// The transport of `key`, if it is still there.
    pub fn transport_mut(&mut self, key: usize) -> Option<&mut T> {
        self.peers.get_mut(key).map(|peer| &mut peer.io)
    }

    /// Whether `key` is logged in now (for tests and simulations).
    pub(crate) fn is_logged_in(&self, key: usize) -> bool {
        self.logged_in_name(key).is_some()
    }

    /// The keys of the connections logging in or logged in (not closing).
    fn active_keys(&self) -> Vec<usize> {
        self.peers
            .iter()
            .filter(|(_, peer)| peer.phase.is_active())
            .map(|(key, _)| key)
            .collect()
    }

    /// The name `key` is logged in as, if it is logged in now (for tests and simulations).
    pub(crate) fn logged_in_name(&self, key: usize) -> Option<&str> {
        let peer = self.peers.get(key)?;
        match peer.phase {
            Phase::Chatting => peer.name.as_deref(),
            _ => None,
        }
    }

    /// The counters now.
    pub fn stats(&self) -> Stats {
        let mut stats = Stats {
            connections_open: self.peers.len(),
            peers_logged_in: self.directory.len(),
            bytes_queued: self.ledger.bytes_queued(),
            queue_memory: self.ledger.memory(),
            max_memory: self.config.max_memory,
            ..self.stats
        };
        self.cluster_stats(&mut stats);
        stats
    }

    /// The configuration in force.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// Reads from `key` until `WouldBlock`, the end of its stream, or the read budget; in the
    /// last case it is put on the list that [`Chat::end_turn`] reads again. In cluster mode, a
    /// logged-in peer whose lookups in flight are past its budget is not read (nor are the
    /// lines it sent meanwhile routed) until answers come back ([`Chat::awaits_lookups`]).
    fn read(&mut self, key: usize, now: Instant) {
        let mut scratch = std::mem::take(&mut self.scratch);
        let mut total = 0;
        let mut budget_spent = false;
        loop {
            let mode = self.read_mode(key);
            if mode == ReadMode::Stop {
                break;
            }
            if mode == ReadMode::Process && !self.route_held_lines(key, now) {
                // It waits for answers from the cluster; they put it back on the list.
                break;
            }
            if total >= self.read_budget {
                budget_spent = true;
                break;
            }
            match self.peers[key].io.read(&mut scratch) {
                Ok(0) => {
                    self.on_end_of_input(key, now);
                    break;
                }
                Ok(n) => {
                    total += n;
                    if mode == ReadMode::Process {
                        self.on_bytes(key, &scratch[..n], now);
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    self.close_now(key, CloseReason::Io(e.kind()));
                    break;
                }
            }
        }
        self.scratch = scratch;
        // A read may have left the transport bytes of its own to write (TLS handshake records
        // the socket did not take): the flush at the end of the turn sees to them.
        if let Some(peer) = self.peers.get(key)
            && peer.io.wants_write()
            && !peer.phase.is_closed()
        {
            self.mark_dirty(key);
        }
        if budget_spent {
            self.mark_unread(key);
        }
        self.note_shutdown_read(key, total, budget_spent);
    }

    /// Puts `key` on the list of connections to read again at the end of a turn.
    fn mark_unread(&mut self, key: usize) {
        let peer = &mut self.peers[key];
        if !std::mem::replace(&mut peer.unread, true) {
            self.unread.push(key);
        }
    }

    /// Frames `bytes` from `key` and handles each complete line.
    fn on_bytes(&mut self, key: usize, bytes: &[u8], now: Instant) {
        let max_line = self.config.max_line;
        let mut framer = std::mem::take(&mut self.peers[key].framer);
        let result = framer.feed(bytes, max_line, |line| self.on_line(key, line, now));
        let Some(peer) = self.peers.get_mut(key) else {
            return;
        };
        peer.framer = framer;
        if let Phase::Contending(contender) | Phase::Claiming(contender) = &mut peer.phase {
            // The rest of this read waits with the name line, in order.
            contender.input.extend(peer.framer.take_unfinished());
            contender.too_long |= result.is_err();
        } else if result.is_err() && peer.phase.read_mode() == ReadMode::Process {
            match &mut peer.held {
                // The lines before it are routed first.
                Some(held) => held.too_long = true,
                None => self.reject(key, LineError::LineTooLong, now),
            }
        }
    }

    fn on_line(&mut self, key: usize, line: &[u8], now: Instant) {
        match &mut self.peers[key].phase {
            &mut Phase::AwaitingName {
                deadline,
                contended,
            } => self.on_name_line(key, line, deadline, contended, now),
            Phase::Contending(contender) | Phase::Claiming(contender) => {
                contender.input.extend_from_slice(line);
                contender.input.push(b'\n');
            }
            Phase::Chatting => {
                if self.peers[key].held.is_some() || self.awaits_lookups(key) {
                    self.hold_line(key, line);
                } else {
                    self.on_message_line(key, line, now);
                }
            }
            // Lines after a closing one are not looked at.
            Phase::Closing { .. } | Phase::Lingering { .. } | Phase::Closed { .. } => {}
        }
    }

    /// A line of the logged-in peer `key`: routed, or answered with a notice.
    fn on_message_line(&mut self, key: usize, line: &[u8], now: Instant) {
        match parse_message(line) {
            Ok(None) => {}
            Ok(Some(message)) => self.route(key, message),
            Err(error) => self.reject(key, error, now),
        }
    }

    /// Sends the notice for `error` to `key`, and closes the connection if the rule says so.
    fn reject(&mut self, key: usize, error: LineError, now: Instant) {
        self.stats.lines_rejected[error.index()] += 1;
        if !self.queue_text(key, error.notice()) {
            return;
        }
        if error.closes_connection() {
            self.begin_close(key, CloseReason::Rejected(error), now);
        }
    }

    /// Queues a notice made of `text` for `key` (a buffer of its own, charged to the memory
    /// bound).
    fn queue_text(&mut self, key: usize, text: &str) -> bool {
        self.queue(key, Rc::from(text.as_bytes()), false)
    }

    /// Queues `bytes` (never empty) for `key`; `counted` says whether the buffer is already
    /// counted in the memory of all queues together (queued for another receiver of the same
    /// line), so that only the entry it takes is added.
    ///
    /// A queue whose cost would exceed `max_queue` (its buffers in full, shared or not, and
    /// its entries; see `Outbox::cost`) is flushed, and if that is not enough, its peer is
    /// disconnected as a slow consumer. Then, while the queues together would pass
    /// `max_memory`, the costliest queue is flushed, and its peer disconnected if it takes
    /// nothing, then the next (`make_room`). Returns whether `bytes` was queued. Constant time
    /// unless the memory bound is reached.
    fn queue(&mut self, key: usize, bytes: Rc<[u8]>, counted: bool) -> bool {
        debug_assert!(!bytes.is_empty());
        let max_queue = self.config.max_queue;
        let fits = |outbox: &outbox::Outbox| {
            let cost = outbox.push_cost(bytes.len());
            outbox.cost() + cost.buffer + cost.entries <= max_queue
        };
        if !fits(&self.peers[key].outbox) {
            // Queues are normally flushed once per turn; under pressure, flush this one now,
            // so that only a peer that really does not read is called slow.
            if let Err(reason) = self.write_queued(key) {
                self.close_now(key, reason);
                return false;
            }
        }
        let peer = &mut self.peers[key];
        if !fits(&peer.outbox) {
            match &peer.name {
                Some(name) => warn!("#{key} {name} is a slow consumer: disconnecting"),
                None => warn!("#{key} is a slow consumer: disconnecting"),
            }
            self.stats.slow_consumers_evicted += 1;
            self.close_now(key, CloseReason::SlowConsumer);
            return false;
        }
        let charge = |cost: outbox::PushCost| cost.entries + if counted { 0 } else { cost.buffer };
        let mut cost = peer.outbox.push_cost(bytes.len());
        while self.ledger.memory() + charge(cost) > self.config.max_memory {
            if !self.make_room(key, charge(cost)) {
                return false;
            }
            // Making room may have flushed this very queue (the costliest), and changed what
            // the push adds to it; once it does not change, room was made, or no queue is left.
            let now = self.peers[key].outbox.push_cost(bytes.len());
            if now == cost {
                break;
            }
            cost = now;
        }
        let len = bytes.len();
        let entries = self.peers[key].outbox.push(bytes);
        debug_assert_eq!(entries, cost.entries);
        self.ledger
            .queued(len, charge(cost) - cost.entries + entries);
        self.reindex(key);
        self.mark_dirty(key);
        true
    }

    fn mark_dirty(&mut self, key: usize) {
        let peer = &mut self.peers[key];
        if !std::mem::replace(&mut peer.dirty, true) {
            self.dirty.push(key);
        }
    }

    /// The next connection that may have something to write or a close to carry on.
    fn pop_dirty(&mut self) -> Option<usize> {
        while let Some(key) = self.dirty.pop() {
            if let Some(peer) = self.peers.get_mut(key)
                && std::mem::take(&mut peer.dirty)
            {
                return Some(key);
            }
        }
        None
    }

    /// Writes what is queued for `key` until `WouldBlock` or empty; once a closing connection's
    /// queue is empty, carries its close on.
    fn flush(&mut self, key: usize, now: Instant) {
        if self.peers[key].phase.is_closed() {
            return;
        }
        if let Err(reason) = self.write_queued(key) {
            self.close_now(key, reason);
            return;
        }
        if !self.peers[key].outbox.is_empty() {
            return;
        }
        // Bytes of the transport's own (TLS records, a close_notify) follow the queue.
        match self.peers[key].io.flush() {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
            Err(e) => {
                self.close_now(key, CloseReason::Io(e.kind()));
                return;
            }
        }
        self.on_flushed(key, now);
    }

    /// Writes what is queued for `key` until it is empty or the transport says `WouldBlock`;
    /// returns how many bytes it wrote.
    fn write_queued(&mut self, key: usize) -> Result<usize, CloseReason> {
        let peer = &mut self.peers[key];
        let mut written = 0;
        let result = loop {
            if peer.outbox.is_empty() {
                break Ok(written);
            }
            match peer.outbox.write_to(&mut peer.io) {
                Ok(0) => break Err(CloseReason::Io(io::ErrorKind::WriteZero)),
                Ok(n) => written += n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break Ok(written),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => break Err(CloseReason::Io(e.kind())),
            }
        };
        self.ledger.written(written);
        self.take_released(key);
        self.reindex(key);
        result
    }

    /// Runs the expired timers: logins, contention retries, closes.
    fn handle_timeouts(&mut self, now: Instant) {
        while let Some((at, key, generation)) = self.timers.pop_due(now) {
            let Some(peer) = self.peers.get(key) else {
                continue;
            };
            if peer.generation != generation || peer.phase.deadline() != Some(at) {
                continue;
            }
            match &peer.phase {
                // No notice: the contract names none for a login timeout. The close is the
                // same orderly one (write side shut, input drained) as after a notice.
                Phase::AwaitingName { .. } | Phase::Claiming(_) => {
                    self.stats.login_timeouts += 1;
                    self.begin_close(key, CloseReason::LoginTimeout, now);
                }
                Phase::Contending(_) => self.retry_login(key, now),
                Phase::Closing { reason, .. } | Phase::Lingering { reason, .. } => {
                    let reason = match reason {
                        CloseReason::PeerClosed => CloseReason::TimedOut,
                        other => other.clone(),
                    };
                    self.close_now(key, reason);
                }
                Phase::Chatting | Phase::Closed { .. } => {}
            }
        }
    }

    /// Removes the closed connections, handing each transport to `release`. Logs one
    /// disconnect line per connection.
    fn reap(&mut self, release: &mut impl FnMut(usize, T, CloseReason)) {
        for key in std::mem::take(&mut self.closed) {
            let peer = self.peers.remove(key);
            let Phase::Closed { reason } = peer.phase else {
                unreachable!("only closed connections are on the list");
            };
            match &peer.name {
                Some(name) => log::info!("#{key} {name} disconnected: {reason}"),
                None => log::info!("#{key} disconnected: {reason}"),
            }
            release(key, peer.io, reason);
        }
        if self.peers.is_empty() {
            // Give back the table's memory after a burst of connections.
            self.peers.shrink_to_fit();
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use crate::memory::{MemoryServer, MemoryTransport};
    use crate::{CloseReason, Config, LineError};

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
        let key = s.chat.directory.look_up("alice").unwrap();
        let peer = &s.chat.peers[key];
        assert_eq!(peer.framer.buffered(), 0);
        assert!(peer.outbox.is_empty());
        assert_eq!(s.chat.stats().bytes_queued, 0);
        assert_eq!(
            s.take_output(alice),
            "from alice: x\nfrom alice: partial line\n"
        );
    }
}
