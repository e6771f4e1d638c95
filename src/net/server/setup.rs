//! Making a server: over listeners or addresses, with its optional TLS and WebSocket listeners, metrics
//! endpoint and cluster, what it was made with, and its registration before the first poll.

use std::io;
use std::net::SocketAddr;
#[cfg(feature = "cluster")]
use std::time::Instant;

use mio::net::TcpListener;
use mio::{Interest, Registry};

use super::{Server, State};
use crate::chat::Chat;
use crate::config::Config;
use crate::net::layout::{Layout, Source};
use crate::net::listener::{Listener, bind_listener};
#[cfg(feature = "cluster")]
use crate::net::redis::RedisSocket;
use crate::net::sources::{Handshakes, MetricsEndpoint};
use crate::net::tokens::Tokens;
use crate::stats::Stats;

impl Server {
    /// A server over `listeners` (non-blocking, as `mio` makes them) that uses the tokens of
    /// `tokens`. Nothing is registered until [`Server::register`].
    ///
    /// Fails with `InvalidInput` when the share cannot hold the listeners and
    /// [`Config::max_conns`] connections (1024 in `Config::default()`), or runs past
    /// `usize::MAX`. Connections being refused or closed hold a token too without counting
    /// against `max_conns`: leave some headroom. Should the share still run out, the server
    /// says so in its log and pauses accepting (the backlog waits) until a token is free again.
    pub fn new(config: Config, listeners: Vec<TcpListener>, tokens: Tokens) -> io::Result<Server> {
        let layout = Layout {
            tokens,
            listeners: listeners.len(),
            metrics: false,
            redis: false,
        };
        layout.check_share(config.max_conns)?;
        let addrs = listeners
            .iter()
            .map(TcpListener::local_addr)
            .collect::<io::Result<Vec<_>>>()?;
        let listeners = listeners.into_iter().map(Listener::plain).collect();
        Ok(Server {
            chat: Chat::new(config),
            listeners,
            addrs,
            tls_addrs: Vec::new(),
            ws_addrs: Vec::new(),
            wss_addrs: Vec::new(),
            layout,
            metrics: None,
            redis: None,
            handshakes: Handshakes::default(),
            accept_paused_until: None,
            accept_starved: false,
            state: State::Running,
            warned_late: false,
            turn_ended: None,
            forced: false,
            counters: Stats::default(),
        })
    }

    /// Binds a listener on each address (see [`crate::bind_listener`]) and makes a server
    /// over them.
    pub fn bind(config: Config, addrs: &[SocketAddr], tokens: Tokens) -> io::Result<Server> {
        let listeners = addrs
            .iter()
            .map(|&addr| bind_listener(addr))
            .collect::<io::Result<Vec<_>>>()?;
        Server::new(config, listeners, tokens)
    }

    /// The addresses the plain listeners were bound to, with the ports actually bound, in the
    /// order given. They stay the same after the shutdown closed the listeners.
    pub fn local_addrs(&self) -> &[SocketAddr] {
        &self.addrs
    }

    /// The addresses of the TLS listeners ([`Server::with_tls_listener`]), likewise.
    pub fn tls_addrs(&self) -> &[SocketAddr] {
        &self.tls_addrs
    }

    /// Also serves the chat over TLS on `listener`, with `config` (see
    /// [`crate::tls::server_config_from_pem`]): peers on either kind of listener chat with each
    /// other. It takes one more token of the share, after the listeners given before; the
    /// handshake counts against the login timeout. Call before [`Server::register`].
    #[cfg(feature = "tls")]
    pub fn with_tls_listener(
        mut self,
        listener: TcpListener,
        config: std::sync::Arc<rustls::ServerConfig>,
    ) -> io::Result<Server> {
        self.layout.listeners += 1;
        self.layout.check_share(self.chat.config().max_conns)?;
        self.tls_addrs.push(listener.local_addr()?);
        self.listeners.push(Listener {
            socket: Some(listener),
            tls: Some(config),
            #[cfg(feature = "ws")]
            ws: None,
        });
        Ok(self)
    }

    /// The addresses of the WebSocket listeners ([`Server::with_ws_listener`]), likewise.
    pub fn ws_addrs(&self) -> &[SocketAddr] {
        &self.ws_addrs
    }

    /// The addresses of the WebSocket listeners over TLS ([`Server::with_wss_listener`]),
    /// likewise.
    pub fn wss_addrs(&self) -> &[SocketAddr] {
        &self.wss_addrs
    }

    /// Also serves the chat to browsers on `listener` (contract section 10): `GET /` answers
    /// with the chat page, `GET /chat` upgrades to a WebSocket whose text messages are the
    /// peer's lines (see [`crate::ws::WsTransport`]); its peers chat with every other kind. It
    /// takes one more token of the share, after the listeners given before; its connections
    /// count against `max_conns`, and the request and upgrade against the login timeout. Call
    /// before [`Server::register`].
    #[cfg(feature = "ws")]
    pub fn with_ws_listener(
        mut self,
        listener: TcpListener,
        config: std::sync::Arc<crate::ws::WsConfig>,
    ) -> io::Result<Server> {
        self.layout.listeners += 1;
        self.layout.check_share(self.chat.config().max_conns)?;
        self.ws_addrs.push(listener.local_addr()?);
        let max_line = self.chat.config().max_line;
        self.listeners.push(Listener {
            socket: Some(listener),
            #[cfg(feature = "tls")]
            tls: None,
            ws: Some((config, max_line)),
        });
        Ok(self)
    }

    /// [`Server::with_ws_listener`] over TLS with `tls` (the handshake first, then the HTTP
    /// request; both count against the login timeout).
    #[cfg(all(feature = "ws", feature = "tls"))]
    pub fn with_wss_listener(
        mut self,
        listener: TcpListener,
        config: std::sync::Arc<crate::ws::WsConfig>,
        tls: std::sync::Arc<rustls::ServerConfig>,
    ) -> io::Result<Server> {
        self.layout.listeners += 1;
        self.layout.check_share(self.chat.config().max_conns)?;
        self.wss_addrs.push(listener.local_addr()?);
        let max_line = self.chat.config().max_line;
        self.listeners.push(Listener {
            socket: Some(listener),
            tls: Some(tls),
            ws: Some((config, max_line)),
        });
        Ok(self)
    }

    /// The token share it was given.
    pub fn tokens(&self) -> Tokens {
        self.layout.tokens
    }

    /// Serves `GET /metrics` (the Prometheus text of [`crate::metrics::render`], with this
    /// process's memory and CPU time) on `listener`, from the same loop. It takes
    /// `1 + METRICS_CONNECTIONS` (17) more tokens of the share, after the listeners; its
    /// connections do not count against `max_conns`, and it closes with the listeners when the
    /// shutdown begins. Call before [`Server::register`].
    #[cfg(feature = "metrics")]
    pub fn with_metrics(mut self, listener: TcpListener) -> io::Result<Server> {
        self.layout.metrics = true;
        self.layout.check_share(self.chat.config().max_conns)?;
        self.metrics = Some(MetricsEndpoint::new(listener)?);
        Ok(self)
    }

    /// Joins a cluster through the Redis of `config` (contract section 6): logins claim their
    /// names there, and messages for names held on other nodes go through it. It takes one
    /// more token of the share, after the listeners and the metrics endpoint. The connection is
    /// made at the first turn, and made again by itself after a failure, with a back-off; until
    /// the node has joined, logins are refused with `error: cluster unavailable`. Call before
    /// [`Server::register`].
    #[cfg(feature = "cluster")]
    pub fn with_cluster(mut self, config: crate::cluster::ClusterConfig) -> io::Result<Server> {
        self.layout.redis = true;
        self.layout.check_share(self.chat.config().max_conns)?;
        let node = crate::net::redis::node_id(self.addrs.first().or(self.tls_addrs.first()));
        let link = crate::cluster::ClusterLink::new(node, config.ttl, Instant::now());
        self.chat.join_cluster(link);
        self.redis = Some(RedisSocket::new(config.redis));
        Ok(self)
    }

    /// The ID this node has in its cluster, if it is in one.
    pub fn cluster_node(&self) -> Option<&str> {
        #[cfg(feature = "cluster")]
        if let Some(link) = self.chat.cluster() {
            return Some(link.node());
        }
        None
    }

    /// The metrics endpoint's address, with the port actually bound, if it has one.
    pub fn metrics_addr(&self) -> Option<SocketAddr> {
        self.metrics.as_ref().map(MetricsEndpoint::local_addr)
    }

    /// Registers the listeners (and the metrics endpoint's). Call once, before the first poll.
    pub fn register(&mut self, registry: &Registry) -> io::Result<()> {
        for (index, listener) in self.listeners.iter_mut().enumerate() {
            if let Some(listener) = &mut listener.socket
                && let Some(token) = self.layout.token(Source::Listener(index))
            {
                registry.register(listener, token, Interest::READABLE)?;
            }
        }
        if let Some(metrics) = &mut self.metrics {
            metrics.register(registry, &self.layout)?;
        }
        Ok(())
    }
}
