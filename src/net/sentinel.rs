//! The driver's side of Redis Sentinel: the connection to one sentinel at a time as one more
//! source on the loop (its own token, after Redis's), fed to the IO-free
//! [`Sentinels`](crate::cluster::sentinel::Sentinels), which says which sentinel to connect to,
//! what to write, and what the sentinels told ([`News`], acted on by `redis.rs`). With
//! `rediss-sentinel://` the connection is TLS (the node's client configuration for Redis, the
//! sentinel's certificate checked against its host as the URL writes it).

use std::io;
#[cfg(feature = "tls")]
use std::sync::Arc;
use std::time::Instant;

use log::{debug, warn};
use mio::event::Event;
use mio::net::TcpStream;
use mio::{Interest, Registry};

use super::connection::Stream;
use super::layout::{Layout, Source};
use crate::cluster::sentinel::{News, Sentinels};
use crate::cluster::{ClusterConfig, RedisAddr};
use crate::io_errors::{interrupted, would_block};
#[cfg(feature = "tls")]
use crate::tls::TlsTransport;
#[cfg(feature = "tls")]
use rustls::pki_types::ServerName;

/// Bytes read from a sentinel per turn: its replies are a few dozen bytes; more waits for the
/// next turn, so that a flooding sentinel cannot hold the loop.
const READ_BUDGET: usize = 64 * 1024;

/// The connection to a sentinel, if there is one.
#[derive(Debug)]
pub(super) struct SentinelSocket {
    pub(super) sentinels: Sentinels,
    /// Over TLS (`rediss-sentinel://`): the client configuration, and the name each sentinel's
    /// certificate must show. Invariant: one name per sentinel, in the order of `sentinels`.
    #[cfg(feature = "tls")]
    tls: Option<(Arc<rustls::ClientConfig>, Vec<ServerName<'static>>)>,
    stream: Option<Stream>,
    connecting: bool,
    /// Whether `WRITABLE` is in the registered interest.
    writable: bool,
    /// The last read stopped at the budget, not at `WouldBlock`.
    unread: bool,
    /// One read's bytes. Invariant: 16 KiB.
    scratch: Vec<u8>,
}

impl SentinelSocket {
    /// The socket for the sentinels at `addrs` (the URL's, in the order `sentinels` was made
    /// with), over TLS if `config` says so; an error says why it cannot be (a host no
    /// certificate can name).
    pub(super) fn new(
        config: &ClusterConfig,
        sentinels: Sentinels,
        addrs: &[RedisAddr],
    ) -> Result<Self, String> {
        #[cfg(feature = "tls")]
        let tls = match (&config.tls_config, config.tls) {
            (Some(tls), true) => {
                let names = addrs
                    .iter()
                    .map(|addr| super::redis::server_name(config, addr))
                    .collect::<Result<Vec<_>, _>>()?;
                Some((tls.clone(), names))
            }
            // `redis.rs` says why TLS cannot be without its configuration.
            _ => None,
        };
        #[cfg(not(feature = "tls"))]
        let _ = (config, addrs);
        Ok(SentinelSocket {
            sentinels,
            #[cfg(feature = "tls")]
            tls,
            stream: None,
            connecting: false,
            writable: false,
            unread: false,
            scratch: vec![0; 16 * 1024],
        })
    }

    /// Whether input is waiting that no new readiness edge will announce.
    pub(super) fn has_unread_input(&self) -> bool {
        self.unread
    }

    /// A readiness event of the socket: what the sentinels told, if anything.
    pub(super) fn on_event(&mut self, registry: &Registry, event: &Event, now: Instant) {
        if self.connecting {
            if !(event.is_writable() || event.is_error() || event.is_write_closed()) {
                return;
            }
            match finish_connect(self.stream.as_mut().map(Stream::socket)) {
                Ok(false) => return,
                Ok(true) => {
                    debug!(
                        "cluster: connected to sentinel {}",
                        self.sentinels.current()
                    );
                    self.connecting = false;
                    self.sentinels.on_connected(now);
                }
                Err(e) => {
                    warn!(
                        "cluster: cannot connect to sentinel {}: {e}",
                        self.sentinels.current()
                    );
                    return self.drop_connection(registry, now);
                }
            }
        }
        if event.is_readable() || event.is_read_closed() || event.is_error() {
            self.read(registry, now);
        }
    }

    /// The turn's work: input left over, a sentinel overdue, a connection to make, and the
    /// output written. The news it brings waits in [`Sentinels::take_news`].
    pub(super) fn turn(&mut self, registry: &Registry, layout: &Layout, now: Instant) {
        if self.unread {
            self.read(registry, now);
        }
        if self.stream.is_some()
            && !self.unread
            && let Some(what) = self.sentinels.overdue(now)
        {
            warn!(
                "cluster: sentinel {}: {what}: trying the next one",
                self.sentinels.current()
            );
            self.drop_connection(registry, now);
        }
        if self.stream.is_none()
            && let Some(addr) = self.sentinels.wants_connection(now)
        {
            self.sentinels.on_connecting(now);
            if let Err(e) = self.connect(registry, layout, addr) {
                warn!("cluster: cannot connect to sentinel {addr}: {e}");
                self.sentinels.on_disconnected(now);
            }
        }
        if !self.connecting
            && let Err(e) = self.write(registry, layout)
        {
            warn!(
                "cluster: writing to sentinel {} failed: {e}",
                self.sentinels.current()
            );
            self.drop_connection(registry, now);
        }
    }

    /// The news since the last call.
    pub(super) fn take_news(&mut self) -> Vec<News> {
        self.sentinels.take_news()
    }

    /// Closes the connection for good (the node has left, or the server is finished).
    pub(super) fn close(&mut self, registry: &Registry) {
        self.sentinels.close();
        if let Some(mut stream) = self.stream.take() {
            let _ = registry.deregister(stream.socket());
        }
        self.connecting = false;
        self.unread = false;
    }

    fn connect(
        &mut self,
        registry: &Registry,
        layout: &Layout,
        addr: std::net::SocketAddr,
    ) -> io::Result<()> {
        let mut stream = TcpStream::connect(addr)?;
        let token = layout
            .token(Source::Sentinel)
            .expect("the layout holds a sentinel");
        registry.register(&mut stream, token, Interest::READABLE | Interest::WRITABLE)?;
        let _ = stream.set_nodelay(true);
        #[cfg(feature = "tls")]
        if let Some((config, names)) = &self.tls {
            let name = names[self.sentinels.current_index()].clone();
            // The ClientHello waits in the session for the first write.
            let session = TlsTransport::client(config.clone(), name, stream)?;
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

    fn read(&mut self, registry: &Registry, now: Instant) {
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
                    warn!(
                        "cluster: sentinel {} closed the connection",
                        self.sentinels.current()
                    );
                    return self.drop_connection(registry, now);
                }
                Ok(n) => {
                    total += n;
                    if let Err(e) = self.sentinels.on_input(&self.scratch[..n], now) {
                        warn!(
                            "cluster: sentinel {}: {e}: trying the next one",
                            self.sentinels.current()
                        );
                        return self.drop_connection(registry, now);
                    }
                }
                Err(e) if would_block(&e) => return,
                Err(e) if interrupted(&e) => {}
                Err(e) => {
                    #[cfg(feature = "tls")]
                    if let Some(failure) = stream.take_tls_failure() {
                        warn!(
                            "cluster: TLS with sentinel {} failed: {failure}{}: trying the next \
                             one",
                            self.sentinels.current(),
                            super::redis::redis_hint(&failure)
                        );
                        return self.drop_connection(registry, now);
                    }
                    warn!(
                        "cluster: reading from sentinel {} failed: {e}",
                        self.sentinels.current()
                    );
                    return self.drop_connection(registry, now);
                }
            }
        }
    }

    fn write(&mut self, registry: &Registry, layout: &Layout) -> io::Result<()> {
        let Some(stream) = &mut self.stream else {
            return Ok(());
        };
        let transport = stream.transport();
        // Records the TLS session holds (its handshake's, or what did not fit) go first.
        let flushed = match transport.flush() {
            Err(e) if would_block(&e) => false,
            other => other.map(|()| true)?,
        };
        while flushed && !self.sentinels.output().is_empty() {
            // Over TLS, `WouldBlock` also while the handshake is under way: the read that
            // ends it makes the stream want to write.
            match transport.write(self.sentinels.output()) {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(n) => self.sentinels.consumed(n),
                Err(e) if would_block(&e) => break,
                Err(e) if interrupted(&e) => {}
                Err(e) => return Err(e),
            }
        }
        let wanted = stream.wants_write() || !self.sentinels.output().is_empty();
        if wanted != self.writable {
            let interest = if wanted {
                Interest::READABLE | Interest::WRITABLE
            } else {
                Interest::READABLE
            };
            let token = layout
                .token(Source::Sentinel)
                .expect("the layout holds a sentinel");
            registry.reregister(stream.socket(), token, interest)?;
            self.writable = wanted;
        }
        Ok(())
    }

    fn drop_connection(&mut self, registry: &Registry, now: Instant) {
        if let Some(mut stream) = self.stream.take() {
            let _ = registry.deregister(stream.socket());
        }
        self.connecting = false;
        self.unread = false;
        self.sentinels.on_disconnected(now);
    }
}

/// `Ok(true)` once a non-blocking connect is made, `Ok(false)` while under way.
pub(super) fn finish_connect(stream: Option<&mut TcpStream>) -> io::Result<bool> {
    let Some(stream) = stream else {
        return Err(io::ErrorKind::NotConnected.into());
    };
    if let Some(error) = stream.take_error()? {
        return Err(error);
    }
    match stream.peer_addr() {
        Ok(_) => Ok(true),
        Err(e) if e.kind() == io::ErrorKind::NotConnected => Ok(false),
        Err(e) => Err(e),
    }
}
