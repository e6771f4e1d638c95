//! The IO-free chat core: every connection's state machine, the directory of names, routing,
//! timers and the shutdown sequence. It never opens a socket or reads a clock: a driver hands
//! it transports, readiness and the time.
//!
//! [`Chat`] composes parts that own their state and keep their own invariants (written on their
//! fields, tested in their files); its methods, spread over the files below by concern,
//! orchestrate them.
//!
//! | part (file) | owns |
//! | --- | --- |
//! | `Directory` (`directory.rs`) | the names logged in here to their keys, and the cluster claims in progress |
//! | `QueueLedger` (`queue_ledger.rs`) | what all queues hold (memory, bytes), the queues by size class, the costliest one |
//! | `RouteState` (`route_state.rs`) | the line being routed: its stamp, receivers gone mid-line, the format buffer |
//! | `WorkLists` (`work_lists.rs`) | the connections to flush, to read again and to hand back at the end of the turn |
//! | `Timers` (`timers.rs`) | deadlines with generations |
//! | `Peer`, `Outbox` (`peer.rs`, `outbox.rs`) | a connection's `Phase` and `CloseReason`; its outbound queue |
//!
//! | file | what `Chat` does there |
//! | --- | --- |
//! | `mod.rs` | [`Chat`]: the connection table, the public calls, reads, flushes |
//! | `lines.rs` | one peer's input framed into lines, each handled as its phase says |
//! | `login.rs` | the name line, and a login waiting for a name whose holder may be closing |
//! | `routing.rs` | one `DESTS: TEXT` line into its receivers' queues |
//! | `memory_bound.rs` | queueing under `max_queue` and `max_memory`, and which queue goes first |
//! | `closing.rs` | closing one connection, timeouts, reaping, and the graceful shutdown of all |
//! | `cluster.rs` | cluster mode: the link to Redis fed, its events applied |
//! | `lookups.rs` | cluster mode: each peer's budget of lookups in flight, its lines held meanwhile |
//! | `alloc_cost.rs` | what a queued buffer and a queue's entries really cost the allocator |
//! | `transport.rs` | the IO trait |
//! | `tests.rs` | the core's own tests through `MemoryServer` |

mod alloc_cost;
mod closing;
mod cluster;
mod directory;
mod lines;
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
mod work_lists;

use std::io;
use std::time::Instant;

use slab::Slab;

#[cfg(feature = "cluster")]
use crate::cluster::ClusterLink;
use crate::config::Config;
use crate::io_errors::{interrupted, would_block};
use crate::stats::Stats;

pub use peer::CloseReason;
pub use transport::Transport;
#[cfg(any(feature = "tls", feature = "ws"))]
pub(crate) use transport::write_own_bytes;

use closing::Shutdown;
use directory::Directory;
use lookups::InFlight;
use peer::{Peer, Phase, ReadMode};
use queue_ledger::QueueLedger;
use route_state::RouteState;
use timers::Timers;
use work_lists::WorkLists;

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
///    socket under it, then [`Chat::accept_registered`] the transport: the poll announces the
///    bytes that arrived before the registration (mio's does, edge-triggered). Under a poll
///    that would not, [`Chat::accept`] reads them at once.
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
    /// The connections to flush, to read again and to hand back at the end of the turn.
    work: WorkLists,
    /// The line being routed.
    route: RouteState,
    stats: Stats,
    /// Set once a graceful shutdown began.
    shutdown: Option<Shutdown>,
    /// What the queues hold together, and the queues by cost.
    ledger: QueueLedger,
    /// Cluster mode: the peers with lookups in flight, waiting for answers or holding lines.
    lookups: InFlight,
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
            work: WorkLists::default(),
            route: RouteState::default(),
            stats: Stats::default(),
            shutdown: None,
            ledger: QueueLedger::default(),
            lookups: InFlight::default(),
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
    /// `error: server full` and closed. For a poll that reports, at registration, a socket
    /// that is already readable (mio's: epoll and kqueue do), [`Chat::accept_registered`]
    /// saves the read.
    pub fn accept(&mut self, io: T, now: Instant) -> usize {
        let key = self.accept_registered(io, now);
        if matches!(self.peers[key].phase, Phase::AwaitingName { .. }) {
            self.read(key, now);
        }
        key
    }

    /// As [`Chat::accept`], without reading: the driver registered the socket first and its
    /// poll announces the bytes that arrived before the registration (epoll and kqueue report
    /// a socket that is already readable when it is registered, edge-triggered or not), so the
    /// first read waits for that event instead of costing a system call that usually finds
    /// nothing.
    pub fn accept_registered(&mut self, io: T, now: Instant) -> usize {
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
        for key in self.work.take_unread() {
            if let Some(peer) = self.peers.get_mut(key) {
                peer.unread = false;
                self.read(key, now);
            }
        }
        self.handle_timeouts(now);
        self.cluster_end_turn(now);
        self.finish_draining(now);
        while let Some(key) = self.work.pop_dirty(&mut self.peers) {
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
        self.work.has_unread()
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

    /// The number of connection `key` (its generation): never reused on this node.
    pub(crate) fn connection_number(&self, key: usize) -> Option<u64> {
        self.peers.get(key).map(|peer| peer.generation)
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

    /// Reads from `key` until `WouldBlock`, the end of its stream, a short read that the
    /// transport says drained it ([`Transport::short_read_drained`]), or the read budget; in the
    /// last case it is put on the list that [`Chat::end_turn`] reads again. In cluster mode, a
    /// logged-in peer whose lookups in flight are past its budget is not read (nor are the
    /// lines it sent meanwhile routed) until answers come back ([`Chat::awaits_lookups`]).
    fn read(&mut self, key: usize, now: Instant) {
        let mut scratch = std::mem::take(&mut self.scratch);
        let mut total = 0;
        let mut budget_spent = false;
        // The last read was short and the transport says it drained the socket.
        let mut drained = false;
        loop {
            let mode = self.read_mode(key);
            if mode == ReadMode::Stop {
                break;
            }
            if mode == ReadMode::Process && !self.route_held_lines(key, now) {
                // It waits for answers from the cluster; they put it back on the list.
                break;
            }
            // Only after the checks above: the bytes just read may have sent it to wait for
            // the cluster, and that wait must be noted for the answers to wake it.
            if drained {
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
                    // A short read that the transport says drained it: the `WouldBlock` read
                    // after it would be one more system call for nothing.
                    drained = n < scratch.len()
                        && self
                            .peers
                            .get(key)
                            .is_some_and(|peer| peer.io.short_read_drained());
                }
                Err(e) if would_block(&e) => break,
                Err(e) if interrupted(&e) => {}
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
        self.work.mark_unread(&mut self.peers, key);
    }

    /// Puts `key` on the list of connections to flush at the end of the turn.
    fn mark_dirty(&mut self, key: usize) {
        self.work.mark_dirty(&mut self.peers, key);
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
            Err(e) if would_block(&e) => {}
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
                Err(e) if would_block(&e) => break Ok(written),
                Err(e) if interrupted(&e) => {}
                Err(e) => break Err(CloseReason::Io(e.kind())),
            }
        };
        self.ledger.written(written);
        self.take_released(key);
        self.reindex(key);
        result
    }
}

#[cfg(test)]
mod tests;
