//! The IO-free chat core: every connection's state, the name directory, timers and shutdown.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::io::{self, Read, Write};
use std::rc::Rc;
use std::time::{Duration, Instant};

use log::{info, warn};
use slab::Slab;

use crate::config::Config;
use crate::outbox::Outbox;
use crate::parse::{LineError, parse_message, parse_name};
use crate::peer::{CloseReason, Peer, Phase, ReadMode};
use crate::stats::Stats;

/// The bytes of one read call, shared by every connection.
const SCRATCH_LEN: usize = 64 * 1024;

/// Bytes read and dropped from a lingering connection per call, so that a peer that keeps
/// sending cannot hold the loop; the next readiness event brings it back.
const DISCARD_BUDGET: usize = SCRATCH_LEN;

/// How long a login waits when its name is held by a connection that may be closing: a
/// client that reconnects at once can beat its old connection's close to the server.
const CONTENTION_WAIT: Duration = Duration::from_millis(50);

/// Bytes read from one connection when the shutdown begins ("what has already arrived"): the
/// kernel's receive buffer holds less, so this only stops a peer that sends faster than we read.
const SHUTDOWN_READ_CAP: usize = 16 << 20;

/// What a connection needs from its transport: a byte pipe that can shut its write side.
///
/// The server implements it over a `mio` TCP stream; tests and fuzzers over memory. Reads and
/// writes are non-blocking: `WouldBlock` means "nothing now".
pub trait Transport: Read + Write {
    /// Shuts the write side (the peer reads end of stream once it has read everything).
    fn shutdown_write(&mut self) -> io::Result<()>;

    /// Whether the peer has already closed or reset the connection with nothing unread before
    /// that. Asked before a name is refused as taken, so that a client that reconnects at once
    /// gets its name back even if the old connection's close was not yet seen. Without IO to
    /// look at, `false`.
    fn is_closed_by_peer(&mut self) -> bool {
        false
    }
}

/// A login waiting for a name whose holder may be closing, with the input that followed it.
#[derive(Debug)]
struct Contender {
    /// The name line and everything read after it, as lines ended by `\n`, then the
    /// unfinished rest.
    input: Vec<u8>,
    login_deadline: Instant,
    /// A line after the name line was too long (found while the login waited).
    too_long: bool,
}

/// The result of [`Chat::on_readable`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReadOutcome {
    /// Nothing more to read now (`WouldBlock`), or the connection does not read any more.
    Drained,
    /// The budget ran out before `WouldBlock`: call again later, the readiness edge is spent.
    BudgetSpent,
}

/// The chat server without IO: connections, the directory of names, routing, timers and the
/// shutdown sequence. It never opens a socket or reads a clock; `now` comes from the caller.
///
/// Call order, for a driver: [`Chat::accept`] a transport; call [`Chat::on_readable`] and
/// [`Chat::on_writable`] when it is ready; at the end of each batch of events, flush with
/// [`Chat::pop_dirty`] and [`Chat::on_writable`], run [`Chat::handle_timeouts`], then
/// [`Chat::reap`] the closed connections.
#[derive(Debug)]
pub struct Chat<T> {
    pub(crate) config: Config,
    pub(crate) peers: Slab<Peer<T>>,
    /// Invariant: maps exactly the names of the peers in `Phase::Chatting` to their keys.
    pub(crate) directory: HashMap<Rc<str>, usize>,
    /// Connections logging in or logged in (not closing).
    active: usize,
    /// Deadlines by time; an entry whose peer has moved on is skipped when it comes up.
    timers: BinaryHeap<Reverse<(Instant, usize, u64)>>,
    next_generation: u64,
    /// Keys that may have bytes to write or a close to carry on (see `Peer::dirty`).
    dirty: Vec<usize>,
    /// Keys in `Phase::Closed`, waiting for [`Chat::reap`].
    closed: Vec<usize>,
    pub(crate) route_count: u64,
    /// Where routed messages are formatted before being copied into their shared buffer.
    pub(crate) format_buf: Vec<u8>,
    pub(crate) stats: Stats,
    shutting_down: bool,
    /// The input of connections in `Phase::Contending`, from their name line on.
    contenders: HashMap<usize, Contender>,
    /// The notices without arguments, allocated once.
    notices: [Rc<[u8]>; LineError::ALL.len()],
    scratch: Vec<u8>,
}

impl<T: Transport> Chat<T> {
    /// An empty core with the given limits.
    pub fn new(config: Config) -> Self {
        Chat {
            config,
            peers: Slab::new(),
            directory: HashMap::new(),
            active: 0,
            timers: BinaryHeap::new(),
            next_generation: 0,
            dirty: Vec::new(),
            closed: Vec::new(),
            route_count: 0,
            format_buf: Vec::new(),
            stats: Stats::default(),
            shutting_down: false,
            contenders: HashMap::new(),
            notices: LineError::ALL.map(|error| Rc::from(error.notice().as_bytes())),
            scratch: vec![0; SCRATCH_LEN],
        }
    }

    /// Takes a new connection and returns its key. Past `max_conns` (or during shutdown) it is
    /// answered `error: server full` and closed.
    pub fn accept(&mut self, io: T, now: Instant) -> usize {
        let generation = self.next_generation;
        self.next_generation += 1;
        let deadline = now + self.config.login_timeout;
        let key = self.peers.insert(Peer {
            io,
            phase: Phase::AwaitingName {
                deadline,
                contended: false,
            },
            name: None,
            framer: Default::default(),
            outbox: Outbox::new(),
            generation,
            last_route: 0,
            dirty: false,
        });
        self.active += 1;
        if self.active > self.config.max_conns || self.shutting_down {
            self.queue_text(key, "error: server full\n");
            self.begin_close(key, CloseReason::ServerFull, now);
        } else {
            self.timers.push(Reverse((deadline, key, generation)));
        }
        key
    }

    /// Reads from `key` until `WouldBlock`, or until `budget` bytes were read, handling every
    /// complete line. Lines routed to other peers are queued for them; flush at the batch's end.
    pub fn on_readable(&mut self, key: usize, budget: usize, now: Instant) -> ReadOutcome {
        let mut scratch = std::mem::take(&mut self.scratch);
        let mut total = 0;
        let outcome = loop {
            let Some(peer) = self.peers.get_mut(key) else {
                break ReadOutcome::Drained;
            };
            let mode = peer.phase.read_mode();
            if mode == ReadMode::Stop {
                break ReadOutcome::Drained;
            }
            if total >= budget {
                break ReadOutcome::BudgetSpent;
            }
            match peer.io.read(&mut scratch) {
                Ok(0) => {
                    self.on_end_of_input(key, now);
                    break ReadOutcome::Drained;
                }
                Ok(n) => {
                    total += n;
                    if mode == ReadMode::Process {
                        self.on_bytes(key, &scratch[..n], now);
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break ReadOutcome::Drained,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    self.close_now(key, CloseReason::Io(e.kind()));
                    break ReadOutcome::Drained;
                }
            }
        };
        self.scratch = scratch;
        outcome
    }

    /// Writes what is queued for `key` until `WouldBlock` or empty; once a closing connection's
    /// queue is empty, shuts its write side and starts reading and dropping its input.
    pub fn on_writable(&mut self, key: usize, now: Instant) {
        let Some(peer) = self.peers.get_mut(key) else {
            return;
        };
        if matches!(peer.phase, Phase::Closed { .. }) {
            return;
        }
        if let Err(reason) = self.write_queued(key) {
            self.close_now(key, reason);
            return;
        }
        let peer = &mut self.peers[key];
        if !peer.outbox.is_empty() {
            return;
        }
        if let Phase::Closing {
            reason,
            input_ended,
            ..
        } = &peer.phase
        {
            let (reason, input_ended) = (reason.clone(), *input_ended);
            if let Err(e) = peer.io.shutdown_write() {
                self.close_now(key, CloseReason::Io(e.kind()));
            } else if input_ended {
                self.close_now(key, reason);
            } else {
                let deadline = self.close_deadline(now, self.config.linger);
                self.set_deadline_phase(key, Phase::Lingering { reason, deadline });
                self.on_readable(key, DISCARD_BUDGET, now);
            }
        }
    }

    /// Writes what is queued for `key` until it is empty or the transport says `WouldBlock`.
    fn write_queued(&mut self, key: usize) -> Result<(), CloseReason> {
        let peer = &mut self.peers[key];
        while !peer.outbox.is_empty() {
            let before = peer.outbox.queued();
            match peer.outbox.write_to(&mut peer.io) {
                Ok(0) => return Err(CloseReason::Io(io::ErrorKind::WriteZero)),
                Ok(_) => self.stats.bytes_queued -= before - peer.outbox.queued(),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(()),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(CloseReason::Io(e.kind())),
            }
        }
        Ok(())
    }

    /// Whether `key` has bytes waiting to be written (the driver asks for writability then).
    pub fn wants_write(&self, key: usize) -> bool {
        self.peers.get(key).is_some_and(|peer| {
            !peer.outbox.is_empty() && !matches!(peer.phase, Phase::Closed { .. })
        })
    }

    /// The next connection that may have something to write or a close to carry on: call
    /// [`Chat::on_writable`] for it. Call until `None` at the end of every batch of events.
    pub fn pop_dirty(&mut self) -> Option<usize> {
        while let Some(key) = self.dirty.pop() {
            if let Some(peer) = self.peers.get_mut(key)
                && std::mem::take(&mut peer.dirty)
            {
                return Some(key);
            }
        }
        None
    }

    /// Closes what timed out: logins, lingering closes.
    pub fn handle_timeouts(&mut self, now: Instant) {
        while let Some(&Reverse((at, key, generation))) = self.timers.peek() {
            if at > now {
                break;
            }
            self.timers.pop();
            let Some(peer) = self.peers.get(key) else {
                continue;
            };
            if peer.generation != generation || peer.phase.deadline() != Some(at) {
                continue;
            }
            match &peer.phase {
                // No notice: the contract names none for a login timeout. The close is the
                // same orderly one (write side shut, input drained) as after a notice.
                Phase::AwaitingName { .. } => self.begin_close(key, CloseReason::LoginTimeout, now),
                Phase::Contending { .. } => self.retry_login(key, now),
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

    /// The earliest time at which [`Chat::handle_timeouts`] has something to do (it may find
    /// that the connection has moved on meanwhile).
    pub fn next_deadline(&self) -> Option<Instant> {
        self.timers.peek().map(|Reverse((at, _, _))| *at)
    }

    /// Starts a graceful shutdown: reads what already arrived on every connection and routes
    /// its complete lines, then stops reading; queues are flushed as usual, each connection's
    /// write side is shut once its queue is empty, and it is closed when the peer closes.
    pub fn begin_shutdown(&mut self, now: Instant) {
        if self.shutting_down {
            return;
        }
        self.shutting_down = true;
        let keys: Vec<usize> = self.peers.iter().map(|(key, _)| key).collect();
        for &key in &keys {
            if self.peers[key].phase.read_mode() == ReadMode::Process {
                self.on_readable(key, SHUTDOWN_READ_CAP, now);
            }
        }
        for key in keys {
            if self.peers[key].phase.is_active() {
                self.begin_close(key, CloseReason::Shutdown, now);
            }
        }
    }

    /// Closes every connection at once, dropping what is still queued (counted in
    /// [`Stats::bytes_unsent_at_shutdown`] during a shutdown).
    pub fn force_close_all(&mut self) {
        let keys: Vec<usize> = self.peers.iter().map(|(key, _)| key).collect();
        for key in keys {
            self.close_now(key, CloseReason::Forced);
        }
    }

    /// Whether a shutdown was begun.
    pub fn is_shutting_down(&self) -> bool {
        self.shutting_down
    }

    /// Whether no connection is left.
    pub fn is_empty(&self) -> bool {
        self.peers.is_empty()
    }

    /// Removes the closed connections, handing each transport to `release` (to deregister
    /// and drop it). Logs one disconnect line per connection.
    pub fn reap(&mut self, mut release: impl FnMut(usize, T)) {
        for key in std::mem::take(&mut self.closed) {
            let peer = self.peers.remove(key);
            if let Phase::Closed { reason } = &peer.phase {
                match &peer.name {
                    Some(name) => info!("#{key} {name} disconnected: {reason}"),
                    None => info!("#{key} disconnected: {reason}"),
                }
            }
            release(key, peer.io);
        }
        if self.peers.is_empty() {
            // Give back the table's memory after a burst of connections.
            self.peers.shrink_to_fit();
        }
    }

    /// The transport of `key`, if it is still there.
    pub fn transport_mut(&mut self, key: usize) -> Option<&mut T> {
        self.peers.get_mut(key).map(|peer| &mut peer.io)
    }

    /// The counters now.
    pub fn stats(&self) -> Stats {
        Stats {
            connections_open: self.peers.len(),
            peers_logged_in: self.directory.len(),
            ..self.stats
        }
    }

    /// The configuration in force.
    pub fn config(&self) -> &Config {
        &self.config
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
        if let Some(contender) = self.contenders.get_mut(&key) {
            // The rest of this read waits with the name line, in order.
            contender.input.extend(peer.framer.take_unfinished());
            contender.too_long |= result.is_err();
        } else if result.is_err() && peer.phase.read_mode() == ReadMode::Process {
            self.reject(key, LineError::LineTooLong, now);
        }
    }

    fn on_line(&mut self, key: usize, line: &[u8], now: Instant) {
        match self.peers[key].phase {
            Phase::AwaitingName {
                deadline,
                contended,
            } => match parse_name(line) {
                Ok(name) if !self.name_is_held(name, now) => self.log_in(key, name),
                Ok(_) if !contended => self.contend(key, line, deadline, now),
                Ok(_) => self.reject(key, LineError::NameTaken, now),
                Err(error) => self.reject(key, error, now),
            },
            Phase::Contending { .. } => {
                let input = &mut self.contenders.get_mut(&key).expect("contender").input;
                input.extend_from_slice(line);
                input.push(b'\n');
            }
            Phase::Chatting => match parse_message(line) {
                Ok(None) => {}
                Ok(Some(message)) => self.route(key, message),
                Err(error) => self.reject(key, error, now),
            },
            // Lines after a closing one are not looked at.
            _ => {}
        }
    }

    /// Whether a connected peer holds `name`. A holder that has already hung up is logged out
    /// first: its name is free at once.
    fn name_is_held(&mut self, name: &str, now: Instant) -> bool {
        let Some(&holder) = self.directory.get(name) else {
            return false;
        };
        if !self.peers[holder].io.is_closed_by_peer() {
            return true;
        }
        self.on_end_of_input(holder, now);
        false
    }

    /// Holds the login of `key`, whose name line is `line`, for [`CONTENTION_WAIT`]: the
    /// holder's close may be on its way. Its later lines wait with it.
    fn contend(&mut self, key: usize, line: &[u8], login_deadline: Instant, now: Instant) {
        let mut input = Vec::with_capacity(line.len() + 1);
        input.extend_from_slice(line);
        input.push(b'\n');
        self.contenders.insert(
            key,
            Contender {
                input,
                login_deadline,
                too_long: false,
            },
        );
        self.set_deadline_phase(
            key,
            Phase::Contending {
                retry_at: now + CONTENTION_WAIT,
            },
        );
    }

    /// Asks for the name again, this time for good, and catches up with the input.
    fn retry_login(&mut self, key: usize, now: Instant) {
        let Some(contender) = self.contenders.remove(&key) else {
            return;
        };
        let deadline = contender.login_deadline;
        self.set_deadline_phase(
            key,
            Phase::AwaitingName {
                deadline,
                contended: true,
            },
        );
        self.on_bytes(key, &contender.input, now);
        let peer = &self.peers[key];
        if contender.too_long && peer.phase.read_mode() == ReadMode::Process {
            self.reject(key, LineError::LineTooLong, now);
        }
        // Edge-triggered readiness was spent while it waited: read what came meanwhile.
        self.on_readable(key, SHUTDOWN_READ_CAP, now);
    }

    fn log_in(&mut self, key: usize, name: &str) {
        let name: Rc<str> = Rc::from(name);
        self.directory.insert(name.clone(), key);
        let peer = &mut self.peers[key];
        peer.phase = Phase::Chatting;
        info!("#{key} logged in as {name}");
        peer.name = Some(name);
    }

    /// Sends the notice for `error` to `key`, and closes the connection if the rule says so.
    fn reject(&mut self, key: usize, error: LineError, now: Instant) {
        self.stats.lines_rejected[error.index()] += 1;
        let notice = self.notices[error.index()].clone();
        if !self.queue(key, notice) {
            return;
        }
        if error.closes_connection() {
            self.begin_close(key, CloseReason::Rejected(error), now);
        }
    }

    /// Queues a notice made of `text` for `key`.
    pub(crate) fn queue_text(&mut self, key: usize, text: &str) -> bool {
        self.queue(key, Rc::from(text.as_bytes()))
    }

    /// Queues `bytes` for `key`, or disconnects it as a slow consumer if its queue would exceed
    /// `max_queue`. Returns whether it was queued.
    pub(crate) fn queue(&mut self, key: usize, bytes: Rc<[u8]>) -> bool {
        let max_queue = self.config.max_queue;
        if self.peers[key].outbox.queued() + bytes.len() > max_queue {
            // Queues are normally flushed once per batch; under pressure, flush this one now,
            // so that only a peer that really does not read is called slow.
            if let Err(reason) = self.write_queued(key) {
                self.close_now(key, reason);
                return false;
            }
        }
        let peer = &mut self.peers[key];
        if peer.outbox.queued() + bytes.len() > max_queue {
            match &peer.name {
                Some(name) => warn!("#{key} {name} is a slow consumer: disconnecting"),
                None => warn!("#{key} is a slow consumer: disconnecting"),
            }
            self.stats.slow_consumers_evicted += 1;
            self.close_now(key, CloseReason::SlowConsumer);
            return false;
        }
        self.stats.bytes_queued += bytes.len();
        peer.outbox.push(bytes);
        self.mark_dirty(key);
        true
    }

    fn mark_dirty(&mut self, key: usize) {
        let peer = &mut self.peers[key];
        if !peer.dirty {
            peer.dirty = true;
            self.dirty.push(key);
        }
    }

    /// Leaves the logged-in or logging-in state: frees the name at once.
    fn retire(&mut self, key: usize) {
        let peer = &self.peers[key];
        if !peer.phase.is_active() {
            return;
        }
        self.active -= 1;
        self.contenders.remove(&key);
        if peer.phase == Phase::Chatting
            && let Some(name) = &peer.name
        {
            self.directory.remove(name);
        }
    }

    /// Stops processing `key`'s input; its queue is flushed, then its write side shut.
    fn begin_close(&mut self, key: usize, reason: CloseReason, now: Instant) {
        self.retire(key);
        let deadline = self.close_deadline(now, self.config.linger);
        self.set_deadline_phase(
            key,
            Phase::Closing {
                reason,
                deadline,
                input_ended: false,
            },
        );
        self.mark_dirty(key);
    }

    /// The peer closed its side: it is logged out, and what is queued for it still goes out.
    fn on_end_of_input(&mut self, key: usize, now: Instant) {
        match &self.peers[key].phase {
            Phase::AwaitingName { .. } | Phase::Contending { .. } | Phase::Chatting => {
                self.retire(key);
                let deadline = self.close_deadline(now, self.config.shutdown_timeout);
                self.set_deadline_phase(
                    key,
                    Phase::Closing {
                        reason: CloseReason::PeerClosed,
                        deadline,
                        input_ended: true,
                    },
                );
                self.mark_dirty(key);
            }
            Phase::Lingering { reason, .. } => {
                let reason = reason.clone();
                self.close_now(key, reason);
            }
            Phase::Closing { .. } | Phase::Closed { .. } => {}
        }
    }

    /// During a shutdown the host's deadline bounds every close; otherwise `after` from now.
    fn close_deadline(&self, now: Instant, after: std::time::Duration) -> Option<Instant> {
        (!self.shutting_down).then(|| now + after)
    }

    fn set_deadline_phase(&mut self, key: usize, phase: Phase) {
        let peer = &mut self.peers[key];
        if let Some(at) = phase.deadline() {
            self.timers.push(Reverse((at, key, peer.generation)));
        }
        peer.phase = phase;
    }

    /// Closes `key` now, dropping what is queued for it.
    pub(crate) fn close_now(&mut self, key: usize, reason: CloseReason) {
        if matches!(self.peers[key].phase, Phase::Closed { .. }) {
            return;
        }
        self.retire(key);
        let peer = &mut self.peers[key];
        let dropped = peer.outbox.clear();
        self.stats.bytes_queued -= dropped;
        if self.shutting_down {
            self.stats.bytes_unsent_at_shutdown += dropped as u64;
        }
        peer.phase = Phase::Closed { reason };
        self.closed.push(key);
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use crate::memory::{MemoryServer, MemoryTransport};
    use crate::{CloseReason, Config, LineError};

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
        assert!(matches!(phase(&mut s, new), Phase::Contending { .. }));
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
    fn idle_peer_owns_no_buffers() {
        let mut s = server();
        let alice = login(&mut s, "alice");
        s.send(alice, b"alice: x\nalice: partial");
        s.turn();
        s.send(alice, b" line\n");
        s.turn();
        let key = s.chat.directory["alice"];
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
