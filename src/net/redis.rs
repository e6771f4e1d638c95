//! The driver's side of cluster mode: the socket to Redis as one more source on the loop, plain
//! or TLS (`rediss://`: a client [`TlsTransport`] over the socket, its handshake driven by the
//! same reads and writes, without IO of its own). It connects (without blocking) when the link
//! asks, feeds what it reads to the core, writes what the turn queued in one write, and drops
//! the connection when the link finds it broken (a reply it refuses, or Redis overdue) or TLS
//! fails. With `redis-sentinel://` the address comes from the sentinels (`sentinel.rs`): asked
//! before each connection, and followed when they announce a switch. With `rediss-sentinel://`
//! both the sentinels and the master are spoken to over TLS, the same client configuration for
//! both; the master's certificate is checked against the IP address the sentinels gave (an IP
//! SAN), a sentinel's against its host as the URL writes it.

use std::io;
use std::net::SocketAddr;
#[cfg(feature = "tls")]
use std::sync::Arc;
use std::time::Instant;

use log::{debug, error, info, warn};
use mio::event::Event;
use mio::net::TcpStream;
use mio::{Interest, Registry};

use super::connection::{Connection, Stream};
use super::layout::{Layout, Source};
use super::sentinel::SentinelSocket;
use crate::chat::Chat;
use crate::cluster::sentinel::{News, Sentinels};
use crate::cluster::{ClusterConfig, LinkError, RedisTarget};
use crate::io_errors::{interrupted, would_block};
#[cfg(feature = "tls")]
use crate::tls::TlsTransport;
#[cfg(feature = "tls")]
use rustls::pki_types::ServerName;

/// Bytes read from Redis per turn before the chat's connections get theirs.
const READ_BUDGET: usize = 1 << 20;

/// How to speak TLS to Redis: the client configuration, and the name its certificate must show.
#[cfg(feature = "tls")]
#[derive(Debug)]
struct RedisTls {
    config: Arc<rustls::ClientConfig>,
    /// The URL's host; `None` with sentinels: then the IP address they named.
    name: Option<ServerName<'static>>,
}

/// The connection to Redis, if there is one.
#[derive(Debug)]
pub(super) struct RedisSocket {
    /// The Redis connected to (or last connected to): with sentinels, the master they named.
    addr: SocketAddr,
    /// With `redis-sentinel://`: the connection to a sentinel, and the master it named that no
    /// connection used yet (each connection asks again).
    sentinel: Option<(SentinelSocket, Option<SocketAddr>)>,
    /// Whether a connection to Redis was ever made (a master other than `addr` is then a
    /// failover followed).
    connected_once: bool,
    /// Over TLS (`rediss://`), how.
    #[cfg(feature = "tls")]
    tls: Option<RedisTls>,
    stream: Option<Stream>,
    /// The connect is under way.
    connecting: bool,
    /// Whether `WRITABLE` is in the registered interest.
    writable: bool,
    /// The last read stopped at the budget, not at `WouldBlock`.
    unread: bool,
    /// One read's bytes, handed to the link at once. Invariant: 64 KiB; the link holds at most
    /// one reply's bytes (16 MiB) plus one read, so nothing from Redis grows past that.
    scratch: Vec<u8>,
}

impl RedisSocket {
    /// The socket for the Redis `config` names; an error says why it cannot be reached (TLS
    /// without its configuration, a host no certificate can name).
    pub(super) fn new(config: &ClusterConfig) -> Result<Self, String> {
        let (server, sentinel) = match &config.target {
            RedisTarget::Server(server) => (Some(server), None),
            RedisTarget::Sentinel { sentinels, master } => {
                let addrs = sentinels.iter().map(|sentinel| sentinel.addr).collect();
                // The link's deadline: a third of the TTL.
                let deadline = config.ttl / 3;
                let core = Sentinels::new(addrs, master.clone(), deadline, Instant::now());
                let socket = SentinelSocket::new(config, core, sentinels)?;
                (None, Some((socket, None)))
            }
        };
        #[cfg(feature = "tls")]
        let tls = match (&config.tls_config, config.tls) {
            (Some(tls), true) => Some(RedisTls {
                config: tls.clone(),
                name: server
                    .map(|server| server_name(config, server))
                    .transpose()?,
            }),
            (None, true) => {
                return Err(format!(
                    "{config}: TLS to Redis needs ClusterConfig::tls_config (whom to trust)"
                ));
            }
            (_, false) => None,
        };
        #[cfg(not(feature = "tls"))]
        if config.tls {
            return Err(format!("{config}: TLS to Redis needs the `tls` feature"));
        }
        Ok(RedisSocket {
            // With sentinels, the master they name at the first connection.
            addr: server.map_or(SocketAddr::from(([0, 0, 0, 0], 0)), |server| server.addr),
            sentinel,
            connected_once: false,
            #[cfg(feature = "tls")]
            tls,
            stream: None,
            connecting: false,
            writable: false,
            unread: false,
            scratch: vec![0; 64 * 1024],
        })
    }

    /// Whether the master's address comes from sentinels (the layout then holds their token).
    pub(super) fn has_sentinels(&self) -> bool {
        self.sentinel.is_some()
    }

    /// Whether input is waiting that no new readiness edge will announce.
    pub(super) fn has_unread_input(&self) -> bool {
        self.unread
            || self
                .sentinel
                .as_ref()
                .is_some_and(|(socket, _)| socket.has_unread_input())
    }

    /// When the sentinels' connection has something to do (the link's deadlines are the core's).
    pub(super) fn next_deadline(&self) -> Option<Instant> {
        self.sentinel
            .as_ref()
            .and_then(|(socket, _)| socket.sentinels.next_deadline())
    }

    /// A readiness event of the sentinel's socket.
    pub(super) fn on_sentinel_event(
        &mut self,
        registry: &Registry,
        layout: &Layout,
        event: &Event,
        chat: &mut Chat<Connection>,
        now: Instant,
    ) {
        if let Some((socket, _)) = &mut self.sentinel {
            socket.on_event(registry, event, now);
        }
        self.on_news(registry, layout, chat, now);
    }

    /// Acts on what the sentinels told: a master to connect to, a switch to follow (the
    /// connection to the old master dropped, the new one made at once), or a round with no
    /// master (the link's attempt failed: rule 6.5 meanwhile).
    fn on_news(
        &mut self,
        registry: &Registry,
        layout: &Layout,
        chat: &mut Chat<Connection>,
        now: Instant,
    ) {
        let Some((socket, _)) = &mut self.sentinel else {
            return;
        };
        let master = socket.sentinels.master().to_string();
        for news in socket.take_news() {
            match news {
                News::Master(addr) => {
                    if let Some((_, fresh)) = &mut self.sentinel {
                        *fresh = Some(addr);
                    }
                }
                News::Switched(addr) => {
                    info!("cluster: the sentinels switched {master} to {addr}");
                    if self.stream.is_some() && self.addr != addr {
                        self.drop_connection(registry, chat, now);
                    }
                    if self.stream.is_none() {
                        if let Some((_, fresh)) = &mut self.sentinel {
                            *fresh = Some(addr);
                        }
                        if let Some(link) = chat.cluster_mut() {
                            link.retry_now(now);
                        }
                    }
                }
                News::NoMaster => {
                    warn!("cluster: no sentinel named the master of {master}");
                    if let Some(link) = chat.cluster_mut() {
                        link.on_connecting(now);
                    }
                    chat.on_cluster_disconnected(now);
                }
            }
        }
        // A master named in this turn is connected to in this turn.
        self.connect_if_wanted(registry, layout, chat, now);
    }

    /// A connection to make, if the link wants one: to the server, or to the master the
    /// sentinels named (asked for first if none is at hand).
    fn connect_if_wanted(
        &mut self,
        registry: &Registry,
        layout: &Layout,
        chat: &mut Chat<Connection>,
        now: Instant,
    ) {
        let Some(link) = chat.cluster_mut() else {
            return;
        };
        if self.stream.is_some() || !link.wants_connection(now) {
            return;
        }
        if let Some((socket, fresh)) = &mut self.sentinel {
            let Some(addr) = fresh.take() else {
                socket.sentinels.ask(now);
                return;
            };
            if self.connected_once && addr != self.addr {
                info!("cluster: following a failover to {addr}");
                link.on_failover();
            }
            self.addr = addr;
        }
        link.on_connecting(now);
        if let Err(e) = self.connect(registry, layout) {
            warn!("cluster: cannot connect to {}: {e}", self.addr);
            chat.on_cluster_disconnected(now);
        }
    }

    /// A readiness event of the socket.
    pub(super) fn on_event(
        &mut self,
        registry: &Registry,
        event: &Event,
        chat: &mut Chat<Connection>,
        now: Instant,
    ) {
        if self.connecting {
            if !(event.is_writable() || event.is_error() || event.is_write_closed()) {
                return;
            }
            match self.finish_connect() {
                Ok(false) => return,
                Ok(true) => {
                    debug!("cluster: connected to {}", self.addr);
                    self.connecting = false;
                    self.connected_once = true;
                    chat.on_cluster_connected(now);
                }
                Err(e) => {
                    warn!("cluster: cannot connect to {}: {e}", self.addr);
                    return self.drop_connection(registry, chat, now);
                }
            }
        }
        if event.is_readable() || event.is_read_closed() || event.is_error() {
            self.read(registry, chat, now);
        }
    }

    /// Before the core's end of the turn: input left over from a spent read budget, and a
    /// connection to make. (What they bring is flushed by the core's end of the turn.)
    pub(super) fn before_turn_end(
        &mut self,
        registry: &Registry,
        layout: &Layout,
        chat: &mut Chat<Connection>,
        now: Instant,
    ) {
        if self.unread {
            self.read(registry, chat, now);
        }
        // A connection not made, or a request not answered, within the link's deadline: checked
        // once all that Redis sent is read, so that an answer waiting unread is not silence.
        if self.stream.is_some()
            && !self.unread
            && let Some(what) = chat.cluster().and_then(|link| link.overdue(now))
        {
            if self.is_tls_handshaking() {
                warn!(
                    "cluster: the TLS handshake with Redis at {} was not over in time (is its \
                     port a TLS port? redis:// speaks plain TCP): dropping the connection to \
                     reconnect",
                    self.addr
                );
            } else {
                warn!("cluster: {what}: dropping the connection to reconnect");
            }
            self.drop_connection(registry, chat, now);
        }
        self.connect_if_wanted(registry, layout, chat, now);
        if let Some((socket, _)) = &mut self.sentinel {
            socket.turn(registry, layout, now);
            self.on_news(registry, layout, chat, now);
        }
    }

    /// Whether the connection is a TLS session whose handshake is not over.
    fn is_tls_handshaking(&self) -> bool {
        match &self.stream {
            #[cfg(feature = "tls")]
            Some(Stream::Tls(tls)) => tls.is_handshaking(),
            _ => false,
        }
    }

    /// After the core's end of the turn: what the turn queued for Redis, in one write.
    pub(super) fn after_turn_end(
        &mut self,
        registry: &Registry,
        layout: &Layout,
        chat: &mut Chat<Connection>,
        now: Instant,
    ) {
        if self.connecting {
            return;
        }
        if let Err(e) = self.write(chat) {
            warn!("cluster: writing to Redis failed: {e}");
            return self.drop_connection(registry, chat, now);
        }
        if let Err(e) = self.sync_interest(registry, layout, chat) {
            warn!("cluster: cannot register the Redis connection: {e}");
            self.drop_connection(registry, chat, now);
        }
    }

    /// Closes the connections, the sentinel's too (the node has left, or the server is
    /// finished).
    pub(super) fn close(&mut self, registry: &Registry) {
        if let Some((socket, _)) = &mut self.sentinel {
            socket.close(registry);
        }
        self.close_redis(registry);
    }

    /// Closes the connection to Redis.
    fn close_redis(&mut self, registry: &Registry) {
        if let Some(mut stream) = self.stream.take() {
            let _ = registry.deregister(stream.socket());
        }
        self.connecting = false;
        self.unread = false;
    }

    fn connect(&mut self, registry: &Registry, layout: &Layout) -> io::Result<()> {
        let mut stream = TcpStream::connect(self.addr)?;
        let token = layout.token(Source::Redis).expect("the layout holds Redis");
        registry.register(&mut stream, token, Interest::READABLE | Interest::WRITABLE)?;
        let _ = stream.set_nodelay(true);
        #[cfg(feature = "tls")]
        if let Some(tls) = &self.tls {
            // The certificate names the URL's host, or the master's IP as the sentinels gave it.
            let name = (tls.name.clone()).unwrap_or_else(|| ServerName::from(self.addr.ip()));
            // The ClientHello waits in the session for the first write.
            let session = TlsTransport::client(tls.config.clone(), name, stream)?;
            self.stream = Some(Stream::Tls(Box::new(session)));
            self.connecting = true;
            self.writable = true;
            return Ok(());
        }
        self.stream = Some(Stream::Plain(stream));
        self.connecting = true;
        self.writable = true;
        Ok(())
    }

    /// `Ok(true)` once connected, `Ok(false)` while under way.
    fn finish_connect(&mut self) -> io::Result<bool> {
        let Some(stream) = &mut self.stream else {
            return Err(io::ErrorKind::NotConnected.into());
        };
        let stream = stream.socket();
        if let Some(error) = stream.take_error()? {
            return Err(error);
        }
        match stream.peer_addr() {
            Ok(_) => Ok(true),
            Err(e) if e.kind() == io::ErrorKind::NotConnected => Ok(false),
            Err(e) => Err(e),
        }
    }

    fn read(&mut self, registry: &Registry, chat: &mut Chat<Connection>, now: Instant) {
        self.unread = false;
        let mut total = 0;
        loop {
            let Some(stream) = &mut self.stream else {
                return;
            };
            if total >= READ_BUDGET {
                self.unread = true;
                return;
            }
            match stream.transport().read(&mut self.scratch) {
                Ok(0) => {
                    warn!("cluster: Redis closed the connection");
                    return self.drop_connection(registry, chat, now);
                }
                Ok(n) => {
                    total += n;
                    match chat.on_cluster_input(&self.scratch[..n], now) {
                        Ok(()) => {}
                        Err(e @ LinkError::Refused { .. }) => {
                            // Once per attempt: the back-off paces them.
                            error!("cluster: {e}: trying again after the back-off");
                            return self.drop_connection(registry, chat, now);
                        }
                        Err(e) => {
                            warn!("cluster: dropping the connection to Redis: {e}");
                            return self.drop_connection(registry, chat, now);
                        }
                    }
                }
                Err(e) if would_block(&e) => return,
                Err(e) if interrupted(&e) => {}
                Err(e) => {
                    #[cfg(feature = "tls")]
                    if let Some(failure) = stream.take_tls_failure() {
                        // Counted as Redis out of reach: tried again after the back-off.
                        error!(
                            "cluster: TLS with Redis at {} failed: {failure}{}",
                            self.addr,
                            redis_hint(&failure)
                        );
                        return self.drop_connection(registry, chat, now);
                    }
                    warn!("cluster: reading from Redis failed: {e}");
                    return self.drop_connection(registry, chat, now);
                }
            }
        }
    }

    fn write(&mut self, chat: &mut Chat<Connection>) -> io::Result<()> {
        let (Some(stream), Some(link)) = (&mut self.stream, chat.cluster_mut()) else {
            return Ok(());
        };
        let transport = stream.transport();
        // Records the TLS session holds (its handshake's, or what did not fit) go first.
        match transport.flush() {
            Err(e) if would_block(&e) => return Ok(()),
            other => other?,
        }
        while !link.output().is_empty() {
            match transport.write(link.output()) {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(n) => link.consumed(n),
                // Over TLS, also while the handshake is under way: the read that ends it
                // makes the stream want to write.
                Err(e) if would_block(&e) => return Ok(()),
                Err(e) if interrupted(&e) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    fn sync_interest(
        &mut self,
        registry: &Registry,
        layout: &Layout,
        chat: &Chat<Connection>,
    ) -> io::Result<()> {
        let Some(stream) = &mut self.stream else {
            return Ok(());
        };
        let wanted =
            stream.wants_write() || chat.cluster().is_some_and(|link| !link.output().is_empty());
        if wanted != self.writable {
            let interest = if wanted {
                Interest::READABLE | Interest::WRITABLE
            } else {
                Interest::READABLE
            };
            let token = layout.token(Source::Redis).expect("the layout holds Redis");
            registry.reregister(stream.socket(), token, interest)?;
            self.writable = wanted;
        }
        Ok(())
    }

    fn drop_connection(&mut self, registry: &Registry, chat: &mut Chat<Connection>, now: Instant) {
        self.close_redis(registry);
        chat.on_cluster_disconnected(now);
    }
}

/// The name `server`'s TLS certificate must show: its host as the URL writes it.
#[cfg(feature = "tls")]
pub(super) fn server_name(
    config: &ClusterConfig,
    server: &crate::cluster::RedisAddr,
) -> Result<ServerName<'static>, String> {
    ServerName::try_from(server.host.clone()).map_err(|e| {
        format!(
            "{config}: {} cannot name a TLS certificate: {e}",
            server.host
        )
    })
}

/// What a TLS failure's sentence (written for `a-chat client`) means in the options of a node.
#[cfg(feature = "tls")]
pub(super) fn redis_hint(failure: &crate::tls::TlsError) -> &'static str {
    use rustls::{AlertDescription, CertificateError, Error};
    match &failure.error {
        Error::InvalidCertificate(CertificateError::UnknownIssuer) => {
            " (for Redis, that file is --cluster-ca FILE)"
        }
        Error::AlertReceived(AlertDescription::CertificateRequired) => {
            ": give the node one with --cluster-cert FILE --cluster-key FILE"
        }
        Error::InvalidMessage(_) | Error::InappropriateMessage { .. } => {
            " (for Redis: is its port a TLS port? redis:// speaks plain TCP)"
        }
        _ => "",
    }
}

/// A node ID for this server: unique enough among the nodes of one cluster (the process, the
/// time it started, the address it serves).
pub(super) fn node_id(addr: Option<&SocketAddr>) -> String {
    use std::hash::{BuildHasher, Hasher};
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher.write_u32(std::process::id());
    if let Ok(since) = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH) {
        hasher.write_u128(since.as_nanos());
    }
    if let Some(addr) = addr {
        hasher.write(addr.to_string().as_bytes());
    }
    format!("{:016x}", hasher.finish())
}
