//! The mio driver: listeners, sockets, tokens and readiness events around the IO-free core.

use std::io::{self, Read, Write};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use log::{debug, info, warn};
use mio::event::Event;
use mio::net::{TcpListener, TcpStream};
use mio::{Interest, Registry, Token};

use crate::chat::{Chat, ReadOutcome, Transport};
use crate::config::Config;
use crate::peer::CloseReason;
use crate::stats::Stats;

/// Bytes read from one connection per readiness turn before the others get theirs.
const READ_BUDGET: usize = 128 * 1024;

/// How long accepting pauses after the process or system ran out of file descriptors or memory.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);

/// The share of a `Poll`'s tokens the server may use: `count` tokens from `first` on.
///
/// The listeners take the first tokens, in the order given; the rest are for connections.
/// The server never registers, matches or reuses a token outside its share.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Tokens {
    /// The first token of the share.
    pub first: Token,
    /// How many tokens the share holds.
    pub count: usize,
}

impl Tokens {
    fn index_of(&self, token: Token) -> Option<usize> {
        token
            .0
            .checked_sub(self.first.0)
            .filter(|&index| index < self.count)
    }
}

/// A chat server on a `mio::Poll` it does not own.
///
/// The host registers it with [`Server::register`], hands it every event with
/// [`Server::handle_event`] (which says whether the event was the server's), calls
/// [`Server::process`] once after each batch of events, and folds [`Server::timeout`] into its
/// poll timeout. [`Server::begin_shutdown`] starts the graceful shutdown of the contract, and
/// [`Server::is_finished`] tells when it is over.
///
/// The server uses no thread, no global state, no signal handler and no `Waker`; several can
/// share one `Poll` with disjoint [`Tokens`]. See the crate documentation for a whole loop.
#[derive(Debug)]
pub struct Server {
    chat: Chat<Connection>,
    /// `None` once closed by the shutdown.
    listeners: Vec<Option<TcpListener>>,
    tokens: Tokens,
    /// Set while accepting is paused after running out of descriptors or memory.
    accept_paused_until: Option<Instant>,
    /// Set from an accept that failed for lack of resources until one succeeds: the episode
    /// is logged once, not at every retry.
    accept_starved: bool,
    /// Connections whose read budget ran out before `WouldBlock`.
    pending_reads: Vec<usize>,
    /// Set when the shutdown began: the time by which it is forced.
    shutdown_deadline: Option<Instant>,
}

/// A connection's socket and what is registered for it.
#[derive(Debug)]
struct Connection {
    stream: TcpStream,
    /// Whether `WRITABLE` is in the registered interest (only while its queue is non-empty).
    writable: bool,
    /// Whether the key is on `pending_reads`.
    pending_read: bool,
}

impl Read for Connection {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.stream.read(buf)
    }
}

impl Write for Connection {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.stream.write(buf)
    }

    fn write_vectored(&mut self, bufs: &[io::IoSlice<'_>]) -> io::Result<usize> {
        self.stream.write_vectored(bufs)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Transport for Connection {
    fn shutdown_write(&mut self) -> io::Result<()> {
        match self.stream.shutdown(std::net::Shutdown::Write) {
            // The peer is already gone; the close that follows is all that is left to do.
            Err(e) if e.kind() == io::ErrorKind::NotConnected => Ok(()),
            other => other,
        }
    }

    fn is_closed_by_peer(&mut self) -> bool {
        // End of stream at the head of the receive queue, or a reset.
        match self.stream.peek(&mut [0; 1]) {
            Ok(0) => true,
            Ok(_) => false,
            Err(e) => e.kind() == io::ErrorKind::ConnectionReset,
        }
    }
}

impl Server {
    /// A server over `listeners` (non-blocking, as `mio` makes them) that uses the tokens of
    /// `tokens`. Nothing is registered until [`Server::register`].
    ///
    /// Fails with `InvalidInput` when the share cannot hold the listeners and `max_conns`
    /// connections, or runs past `usize::MAX`. Connections being refused or closed hold a
    /// token too without counting against `max_conns`: leave some headroom. Should the share
    /// still run out, the server says so in its log and pauses accepting (the backlog waits)
    /// until a token is free again.
    pub fn new(config: Config, listeners: Vec<TcpListener>, tokens: Tokens) -> io::Result<Server> {
        let needed = listeners.len().saturating_add(config.max_conns.max(1));
        if tokens.count < needed || tokens.first.0.checked_add(tokens.count).is_none() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!(
                    "a token share of {} from {} cannot hold {} listeners and {} connections",
                    tokens.count,
                    tokens.first.0,
                    listeners.len(),
                    config.max_conns
                ),
            ));
        }
        Ok(Server {
            chat: Chat::new(config),
            listeners: listeners.into_iter().map(Some).collect(),
            tokens,
            accept_paused_until: None,
            accept_starved: false,
            pending_reads: Vec::new(),
            shutdown_deadline: None,
        })
    }

    /// Binds a listener on each address (see [`crate::bind_listener`]) and makes a server
    /// over them.
    pub fn bind(config: Config, addrs: &[SocketAddr], tokens: Tokens) -> io::Result<Server> {
        let listeners = addrs
            .iter()
            .map(|&addr| crate::bind_listener(addr))
            .collect::<io::Result<Vec<_>>>()?;
        Server::new(config, listeners, tokens)
    }

    /// The addresses the listeners are bound to, with the ports actually bound.
    pub fn local_addrs(&self) -> io::Result<Vec<SocketAddr>> {
        self.listeners
            .iter()
            .flatten()
            .map(|l| l.local_addr())
            .collect()
    }

    /// Registers the listeners. Call once, before the first poll.
    pub fn register(&mut self, registry: &Registry) -> io::Result<()> {
        for (index, listener) in self.listeners.iter_mut().enumerate() {
            if let Some(listener) = listener {
                let token = Token(self.tokens.first.0 + index);
                registry.register(listener, token, Interest::READABLE)?;
            }
        }
        Ok(())
    }

    /// Handles `event` if its token is in the server's share; returns whether it was.
    pub fn handle_event(&mut self, registry: &Registry, event: &Event) -> bool {
        let Some(index) = self.tokens.index_of(event.token()) else {
            return false;
        };
        let now = Instant::now();
        if index < self.listeners.len() {
            if self.accept_paused_until.is_none() {
                self.accept_all(registry, now);
            }
            return true;
        }
        let key = index - self.listeners.len();
        if event.is_writable() || event.is_write_closed() || event.is_error() {
            self.chat.on_writable(key, now);
            self.sync_interest(registry, key);
        }
        if event.is_readable() || event.is_read_closed() || event.is_error() {
            self.read(key, now);
        }
        true
    }

    /// Finishes a batch of events: gives connections with unread input another turn, flushes
    /// every queue that grew (one vectored write each), runs expired timers, retries accepting
    /// after a back-off, and closes what was closed. Call once after each poll.
    pub fn process(&mut self, registry: &Registry) {
        let now = Instant::now();
        for key in std::mem::take(&mut self.pending_reads) {
            if let Some(connection) = self.chat.transport_mut(key) {
                connection.pending_read = false;
                self.read(key, now);
            }
        }
        self.chat.handle_timeouts(now);
        if self.accept_paused_until.is_some_and(|until| until <= now) {
            self.accept_paused_until = None;
            // Edge-triggered: the backlog may hold connections that no new event will announce.
            self.accept_all(registry, now);
        }
        if self
            .shutdown_deadline
            .is_some_and(|deadline| deadline <= now)
        {
            warn!("shutdown timeout passed: closing the remaining connections");
            self.chat.force_close_all();
        }
        while let Some(key) = self.chat.pop_dirty() {
            self.chat.on_writable(key, now);
            self.sync_interest(registry, key);
        }
        self.reap(registry);
    }

    /// How long the host may sleep before the server needs [`Server::process`] again:
    /// `None` for as long as it likes, zero when it has work left from this turn.
    pub fn timeout(&self) -> Option<Duration> {
        if !self.pending_reads.is_empty() {
            return Some(Duration::ZERO);
        }
        let next = [
            self.chat.next_deadline(),
            self.accept_paused_until,
            self.shutdown_deadline,
        ]
        .into_iter()
        .flatten()
        .min()?;
        Some(next.saturating_duration_since(Instant::now()))
    }

    /// Starts the graceful shutdown: the listeners are deregistered and closed, what already
    /// arrived on each connection is routed, every queue is flushed, each connection's write
    /// side is shut once its queue is empty, and connections close as their peers close.
    /// After the configured `shutdown_timeout` the rest are closed. Calling it again does
    /// nothing; see [`Server::force_shutdown`].
    pub fn begin_shutdown(&mut self, registry: &Registry) {
        if self.shutdown_deadline.is_some() {
            return;
        }
        let now = Instant::now();
        self.shutdown_deadline = Some(now + self.chat.config().shutdown_timeout);
        for mut listener in self.listeners.iter_mut().filter_map(Option::take) {
            let _ = registry.deregister(&mut listener);
        }
        self.accept_paused_until = None;
        self.chat.begin_shutdown(now);
        let stats = self.chat.stats();
        info!(
            "shutting down: {} connections open, {} bytes queued",
            stats.connections_open, stats.bytes_queued
        );
        self.process(registry);
    }

    /// Closes every connection now, dropping what is still queued (a second signal, or the
    /// host's own deadline). Begins the shutdown first if it had not begun.
    pub fn force_shutdown(&mut self, registry: &Registry) {
        self.begin_shutdown(registry);
        self.chat.force_close_all();
        self.reap(registry);
    }

    /// Whether a shutdown began.
    pub fn is_shutting_down(&self) -> bool {
        self.shutdown_deadline.is_some()
    }

    /// Whether the shutdown is over: every connection is closed.
    pub fn is_finished(&self) -> bool {
        self.is_shutting_down() && self.chat.is_empty()
    }

    /// The counters now.
    pub fn stats(&self) -> Stats {
        self.chat.stats()
    }

    fn read(&mut self, key: usize, now: Instant) {
        if self.chat.on_readable(key, READ_BUDGET, now) == ReadOutcome::BudgetSpent
            && let Some(connection) = self.chat.transport_mut(key)
            && !connection.pending_read
        {
            connection.pending_read = true;
            self.pending_reads.push(key);
        }
    }

    fn accept_all(&mut self, registry: &Registry, now: Instant) {
        for index in 0..self.listeners.len() {
            while let Some(listener) = &self.listeners[index] {
                if self.accept_paused_until.is_some() {
                    return;
                }
                match listener.accept() {
                    Ok((stream, addr)) => {
                        if std::mem::take(&mut self.accept_starved) {
                            info!("accepting again");
                        }
                        self.admit(registry, stream, addr, now);
                    }
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(e) if e.kind() == io::ErrorKind::ConnectionAborted => {}
                    Err(e) if out_of_resources(&e) => {
                        if !std::mem::replace(&mut self.accept_starved, true) {
                            warn!(
                                "accept failed ({e}): pausing accepts, retrying every {ACCEPT_BACKOFF:?}"
                            );
                        }
                        self.accept_paused_until = Some(now + ACCEPT_BACKOFF);
                        return;
                    }
                    Err(e) => {
                        warn!("accept failed: {e}");
                        break;
                    }
                }
            }
        }
    }

    fn admit(
        &mut self,
        registry: &Registry,
        mut stream: TcpStream,
        addr: SocketAddr,
        now: Instant,
    ) {
        let key = self.chat.peers.vacant_key();
        let Some(token) = self.connection_token(key) else {
            // Cannot happen while `max_conns` is below the share; the connection is refused,
            // and accepting pauses so that the rest wait in the backlog.
            warn!("token share full: refusing a connection from {addr}, pausing accepts");
            let _ = stream.write(b"error: server full\n");
            self.accept_paused_until = Some(now + ACCEPT_BACKOFF);
            return;
        };
        // Messages are batched in user space: one vectored write per connection per turn.
        let _ = stream.set_nodelay(true);
        if let Err(e) = registry.register(&mut stream, token, Interest::READABLE) {
            warn!("cannot register a connection from {addr}: {e}");
            return;
        }
        let connection = Connection {
            stream,
            writable: false,
            pending_read: false,
        };
        let accepted = self.chat.accept(connection, now);
        debug_assert_eq!(accepted, key);
        info!("#{key} connected from {addr}");
        // Bytes may have arrived with the connection; edge-triggered readiness may not say so.
        self.read(key, now);
    }

    fn connection_token(&self, key: usize) -> Option<Token> {
        let index = key.checked_add(self.listeners.len())?;
        (index < self.tokens.count).then(|| Token(self.tokens.first.0 + index))
    }

    /// Asks for writability exactly while the connection has bytes queued.
    fn sync_interest(&mut self, registry: &Registry, key: usize) {
        let wants_write = self.chat.wants_write(key);
        let Some(token) = self.connection_token(key) else {
            return;
        };
        let Some(connection) = self.chat.transport_mut(key) else {
            return;
        };
        if connection.writable == wants_write {
            return;
        }
        let interest = if wants_write {
            Interest::READABLE | Interest::WRITABLE
        } else {
            Interest::READABLE
        };
        match registry.reregister(&mut connection.stream, token, interest) {
            Ok(()) => connection.writable = wants_write,
            Err(e) => self.chat.close_now(key, CloseReason::Io(e.kind())),
        }
    }

    fn reap(&mut self, registry: &Registry) {
        self.chat.reap(|key, mut connection| {
            if let Err(e) = registry.deregister(&mut connection.stream) {
                debug!("#{key} deregister failed: {e}");
            }
        });
    }
}

/// Accept errors that mean "no descriptors or memory now": back off instead of spinning.
fn out_of_resources(error: &io::Error) -> bool {
    matches!(
        error.raw_os_error(),
        Some(libc_errno::EMFILE | libc_errno::ENFILE | libc_errno::ENOBUFS | libc_errno::ENOMEM)
    )
}

/// The Linux errno values of [`out_of_resources`], from rustix (no libc dependency needed).
mod libc_errno {
    use rustix::io::Errno;
    pub(super) const EMFILE: i32 = Errno::MFILE.raw_os_error();
    pub(super) const ENFILE: i32 = Errno::NFILE.raw_os_error();
    pub(super) const ENOBUFS: i32 = Errno::NOBUFS.raw_os_error();
    pub(super) const ENOMEM: i32 = Errno::NOMEM.raw_os_error();
}
