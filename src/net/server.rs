//! [`Server`]: the chat core on a share of a host's `mio::Poll`: listeners, accepting,
//! readiness events, the end of each turn, and the shutdown.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use log::{debug, info, warn};
use mio::event::Event;
use mio::{Events, Interest, Registry};

use super::connection::Connection;
use super::layout::{Layout, Source};
use super::listener::Listener;
use super::sources::{Handshakes, MetricsEndpoint, RedisSocket};
use crate::chat::Chat;
use crate::stats::Stats;

mod accept;
mod setup;

/// A timer handled this much later than it was due means the host does not call
/// [`Server::handle_events`] after every poll: it is warned once.
const LATE: Duration = Duration::from_secs(1);

/// Where the server is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Running,
    /// The graceful shutdown began; at `deadline` it is forced.
    ShuttingDown {
        deadline: Instant,
    },
    /// Every connection is closed and every source deregistered: the server does nothing more.
    Finished,
}

/// A chat server on a `mio::Poll` it does not own.
///
/// # The host's loop
///
/// 1. Make it with [`Server::new`] or [`Server::bind`], then [`Server::register`] it once,
///    before the first poll.
/// 2. Poll with a timeout no longer than [`Server::timeout`] (the shorter of it and the host's
///    own; `None` means the server needs no wake-up).
/// 3. After **every** poll, also one that returned no events, call
///    [`Server::handle_events`] with the whole batch. It takes the events whose tokens are in
///    its share and then does the turn's work: the TLS handshake steps queued by earlier
///    turns (at most `HANDSHAKE_STEPS_PER_TURN` a turn, the newly due ones included), reads
///    left over from a spent read budget, expired timers (login timeouts, closes, the
///    shutdown deadline, the accept back-off), one vectored write per grown queue, and the
///    removal of closed connections. The other events
///    are the host's ([`Tokens::contains`](crate::Tokens::contains) tells them apart). A host that calls it only when
///    events came never runs the timers; the server warns once in its log when it sees a timer
///    handled more than a second late.
/// 4. To stop, [`Server::begin_shutdown`] (graceful, contract section 3) or
///    [`Server::force_shutdown`] (drops what is still queued), and go on polling until
///    [`Server::is_finished`].
///
/// A finished server is inert: it has deregistered and closed every socket, [`Server::timeout`]
/// is `None`, [`Server::handle_events`] does nothing, and it logs nothing more. A host may
/// outlive it and keep polling its own sources, or run other servers on the same `Poll`.
///
/// The server uses no thread, no global state, no signal handler and no `Waker`; several can
/// share one `Poll` with disjoint [`Tokens`](crate::Tokens). It is not `Send` (messages share their buffers
/// through `Rc`): make it on the thread that runs its `Poll`. See the crate documentation for a
/// whole loop.
#[derive(Debug)]
pub struct Server {
    chat: Chat<Connection>,
    listeners: Vec<Listener>,
    /// The plain listeners' addresses, kept after they are closed.
    addrs: Vec<SocketAddr>,
    /// The TLS listeners' addresses, likewise.
    tls_addrs: Vec<SocketAddr>,
    /// The WebSocket listeners' addresses, likewise.
    ws_addrs: Vec<SocketAddr>,
    /// The WebSocket-over-TLS listeners' addresses, likewise.
    wss_addrs: Vec<SocketAddr>,
    layout: Layout,
    metrics: Option<MetricsEndpoint>,
    redis: Option<RedisSocket>,
    /// TLS handshakes waiting for a turn, and the turn's budget of handshake steps.
    handshakes: Handshakes,
    /// Set while accepting is paused after running out of descriptors or memory.
    accept_paused_until: Option<Instant>,
    /// Set from an accept that failed for lack of resources until one succeeds: the episode
    /// is logged once, not at every retry.
    accept_starved: bool,
    state: State,
    /// Whether the late-timer warning was given.
    warned_late: bool,
    /// When the last turn ended: a timer due before that was late because of the turn itself
    /// (a long one, a starved process), not because the host slept through it.
    turn_ended: Option<Instant>,
    /// The shutdown was forced: nothing is waited for any more.
    forced: bool,
    /// The driver's own counters (accept pauses, loop turns, events); the core keeps the rest.
    counters: Stats,
}

impl Server {
    /// Handles the events of `events` whose tokens are in its share, then does the turn's
    /// work. Call once after every poll, also when it returned no events; see the host's loop
    /// on [`Server`]. Does nothing once the server is finished.
    pub fn handle_events(&mut self, registry: &Registry, events: &Events) {
        if self.state == State::Finished {
            return;
        }
        let now = Instant::now();
        self.warn_if_late(now);
        self.counters.loop_turns += 1;
        self.handshakes.begin_turn(&mut self.chat, now);
        for event in events.iter() {
            self.handle_event(registry, event, now);
        }
        self.end_turn(registry, now);
        self.turn_ended = Some(Instant::now());
    }

    /// How long the host may sleep before the server needs [`Server::handle_events`] again:
    /// `None` for as long as it likes (always, once finished), zero when it has work left
    /// from this turn.
    pub fn timeout(&self) -> Option<Duration> {
        if self.state == State::Finished {
            return None;
        }
        if self.chat.has_unread_input() {
            return Some(Duration::ZERO);
        }
        if self.handshakes.is_pending()
            || self
                .redis
                .as_ref()
                .is_some_and(RedisSocket::has_unread_input)
        {
            return Some(Duration::ZERO);
        }
        let now = Instant::now();
        let next = self.next_deadline(now)?;
        Some(next.saturating_duration_since(now))
    }

    /// The earliest of every deadline the server keeps: the core's timers, the accept
    /// back-off, the shutdown deadline and the metrics endpoint's. [`Server::timeout`] sleeps
    /// until it; the late-timer warning measures against it.
    fn next_deadline(&self, now: Instant) -> Option<Instant> {
        let shutdown_deadline = match self.state {
            State::ShuttingDown { deadline } => Some(deadline),
            State::Running | State::Finished => None,
        };
        let metrics = self.metrics.as_ref().and_then(|m| m.next_deadline(now));
        let sentinel = self.redis.as_ref().and_then(RedisSocket::next_deadline);
        [
            self.chat.next_deadline(),
            self.accept_paused_until,
            shutdown_deadline,
            metrics,
            sentinel,
        ]
        .into_iter()
        .flatten()
        .min()
    }

    /// Starts the graceful shutdown: the listeners are deregistered and closed, what already
    /// arrived on each connection is routed, every queue is flushed, each connection's write
    /// side is shut once its queue is empty, and connections close as their peers close.
    /// After the configured `shutdown_timeout` the rest are closed. Calling it again, or on a
    /// finished server, does nothing; see [`Server::force_shutdown`].
    pub fn begin_shutdown(&mut self, registry: &Registry) {
        if self.state != State::Running {
            return;
        }
        let now = Instant::now();
        self.state = State::ShuttingDown {
            deadline: now + self.chat.config().shutdown_timeout,
        };
        for listener in &mut self.listeners {
            if let Some(mut socket) = listener.socket.take() {
                let _ = registry.deregister(&mut socket);
            }
        }
        if let Some(metrics) = &mut self.metrics {
            metrics.close_all(registry);
        }
        self.accept_paused_until = None;
        self.chat.begin_shutdown(now);
        let stats = self.chat.stats();
        info!(
            "shutting down: {} connections open, {} bytes queued",
            stats.connections_open, stats.bytes_queued
        );
        self.end_turn(registry, now);
    }

    /// Closes every connection now, dropping what is still queued (a second signal, or the
    /// host's own deadline). Begins the shutdown first if it had not begun. The server is
    /// finished when it returns.
    pub fn force_shutdown(&mut self, registry: &Registry) {
        if self.state == State::Finished {
            return;
        }
        self.begin_shutdown(registry);
        self.chat.force_close_all();
        self.forced = true;
        self.end_turn(registry, Instant::now());
    }

    /// Whether a shutdown began (it may be over).
    pub fn is_shutting_down(&self) -> bool {
        self.state != State::Running
    }

    /// Whether the shutdown is over: every connection is closed and the server is inert.
    pub fn is_finished(&self) -> bool {
        self.state == State::Finished
    }

    /// The counters now.
    pub fn stats(&self) -> Stats {
        let (metrics_requests, metrics_connections_evicted) = self
            .metrics
            .as_ref()
            .map_or((0, 0), MetricsEndpoint::counts);
        Stats {
            accept_pauses: self.counters.accept_pauses,
            loop_turns: self.counters.loop_turns,
            events_handled: self.counters.events_handled,
            metrics_requests,
            metrics_connections_evicted,
            #[cfg(feature = "tls")]
            tls_handshakes_deferred: self.handshakes.deferred,
            #[cfg(feature = "tls")]
            tls_handshake_steps_max_per_turn: u64::try_from(self.handshakes.max_steps)
                .unwrap_or(u64::MAX),
            ..self.chat.stats()
        }
    }

    fn handle_event(&mut self, registry: &Registry, event: &Event, now: Instant) {
        let Some(source) = self.layout.source(event.token()) else {
            return;
        };
        self.counters.events_handled += 1;
        match source {
            Source::Listener(_) if self.accept_paused_until.is_none() => {
                self.accept_all(registry, now);
            }
            Source::Connection(key) => {
                if event.is_writable() || event.is_write_closed() || event.is_error() {
                    self.chat.on_writable(key);
                }
                if event.is_read_closed() || event.is_error() {
                    // See `Connection::short_read_drained`.
                    if let Some(connection) = self.chat.transport_mut(key) {
                        connection.peer_closing = true;
                    }
                }
                if event.is_readable() || event.is_read_closed() || event.is_error() {
                    self.on_readable(key, now);
                }
            }
            Source::MetricsListener => {
                let stats = self.stats();
                if let Some(metrics) = &mut self.metrics {
                    metrics.on_listener(registry, &self.layout, now, &stats);
                }
            }
            Source::MetricsConnection(slot) => {
                let stats = self.stats();
                if let Some(metrics) = &mut self.metrics {
                    metrics.on_connection(registry, slot, &stats);
                }
            }
            Source::Redis => {
                if let Some(redis) = &mut self.redis {
                    redis.on_event(registry, event, &mut self.chat, now);
                }
            }
            Source::Sentinel => {
                if let Some(redis) = &mut self.redis {
                    redis.on_sentinel_event(registry, &self.layout, event, &mut self.chat, now);
                }
            }
            _ => {}
        }
    }

    /// The work of every turn, after the events: the accept back-off and the shutdown
    /// deadline, then the core's own end of turn (see [`Chat`]).
    fn end_turn(&mut self, registry: &Registry, now: Instant) {
        if self.accept_paused_until.is_some_and(|until| until <= now) {
            self.accept_paused_until = None;
            // Edge-triggered: the backlog may hold connections that no new event will announce.
            self.accept_all(registry, now);
        }
        if let State::ShuttingDown { deadline } = self.state
            && deadline <= now
        {
            warn!("shutdown timeout passed: closing the remaining connections");
            self.chat.force_close_all();
        }
        if self.metrics.is_some() {
            let stats = self.stats();
            if let Some(metrics) = &mut self.metrics {
                metrics.end_turn(registry, &self.layout, now, &stats);
            }
        }
        if let Some(redis) = &mut self.redis {
            redis.before_turn_end(registry, &self.layout, &mut self.chat, now);
        }
        let layout = self.layout;
        self.chat.end_turn(
            now,
            |key, connection, wants_write| {
                if connection.writable == wants_write {
                    return Ok(());
                }
                let interest = if wants_write {
                    Interest::READABLE | Interest::WRITABLE
                } else {
                    Interest::READABLE
                };
                let token = layout
                    .token(Source::Connection(key))
                    .expect("a connection's key has a token");
                registry.reregister(connection.socket(), token, interest)?;
                connection.writable = wants_write;
                Ok(())
            },
            |key, mut connection, _| {
                #[cfg(feature = "tls")]
                if let Some(failure) = connection.take_tls_failure() {
                    info!("#{key} TLS error: {failure}");
                }
                #[cfg(feature = "ws")]
                if let Some(failure) = connection.take_ws_failure() {
                    info!("#{key} WebSocket {failure}");
                }
                if let Err(e) = registry.deregister(connection.socket()) {
                    debug!("#{key} deregister failed: {e}");
                }
            },
        );
        if self.state != State::Running && self.chat.is_empty() {
            self.leave_cluster();
        }
        if let Some(redis) = &mut self.redis {
            redis.after_turn_end(registry, &self.layout, &mut self.chat, now);
        }
        if self.state != State::Running && self.chat.is_empty() && self.has_left_cluster() {
            if let Some(redis) = &mut self.redis {
                redis.close(registry);
            }
            self.state = State::Finished;
        }
    }

    /// Cluster mode, once the shutdown has closed every connection: the node's key is deleted
    /// (its names were released as the shutdown began).
    fn leave_cluster(&mut self) {
        #[cfg(feature = "cluster")]
        if let Some(link) = self.chat.cluster_mut() {
            link.leave();
        }
    }

    /// Whether the node is out of its cluster (or in none): its key deleted, or Redis out of
    /// reach, or the shutdown forced.
    fn has_left_cluster(&self) -> bool {
        #[cfg(feature = "cluster")]
        if let Some(link) = self.chat.cluster() {
            let forced = matches!(self.state, State::ShuttingDown { deadline } if deadline <= Instant::now());
            return link.has_left() || forced || self.forced;
        }
        true
    }

    fn warn_if_late(&mut self, now: Instant) {
        if self.warned_late {
            return;
        }
        if let Some(due) = self.next_deadline(now)
            && now.saturating_duration_since(due) > LATE
            && self.turn_ended.is_none_or(|ended| ended < due)
        {
            self.warned_late = true;
            warn!(
                "a timer was handled {:?} late: call Server::handle_events after every poll, \
                 also when it returned no events",
                now - due
            );
        }
    }

    /// `key` is readable: the core reads it, through the handshake queue while its TLS
    /// handshake is under way.
    fn on_readable(&mut self, key: usize, now: Instant) {
        self.handshakes.on_readable(&mut self.chat, key, now);
    }
}
