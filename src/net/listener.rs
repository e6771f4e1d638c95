//! Listening sockets: binding them with a backlog sized for connection bursts, not the usual
//! 128, and what a server keeps of each (the socket, its TLS and WebSocket configurations).

use std::io;
use std::net::SocketAddr;

use mio::net::{TcpListener, TcpStream};
use rustix::net::{AddressFamily, SocketFlags, SocketType, bind, listen, socket_with, sockopt};

use super::connection::Stream;
#[cfg(feature = "tls")]
use crate::tls::TlsTransport;
#[cfg(feature = "ws")]
use crate::ws::{WsConfig, WsTransport};

/// The listen backlog asked for; the kernel caps it at `net.core.somaxconn`.
pub const LISTEN_BACKLOG: i32 = 4096;

/// Binds a non-blocking listener on `addr` with `SO_REUSEADDR` and [`LISTEN_BACKLOG`].
///
/// An IPv6 address listens for IPv6 only, so that `[::]:8080` and `0.0.0.0:8080` can be
/// given together.
pub fn bind_listener(addr: SocketAddr) -> io::Result<TcpListener> {
    let family = match addr {
        SocketAddr::V4(_) => AddressFamily::INET,
        SocketAddr::V6(_) => AddressFamily::INET6,
    };
    let flags = SocketFlags::NONBLOCK | SocketFlags::CLOEXEC;
    let socket = socket_with(family, SocketType::STREAM, flags, None)?;
    sockopt::set_socket_reuseaddr(&socket, true)?;
    if addr.is_ipv6() {
        sockopt::set_ipv6_v6only(&socket, true)?;
    }
    bind(&socket, &addr).map_err(|e| {
        io::Error::new(
            io::Error::from(e).kind(),
            format!("cannot listen on {addr}: {e}"),
        )
    })?;
    listen(&socket, LISTEN_BACKLOG)?;
    Ok(TcpListener::from_std(std::net::TcpListener::from(socket)))
}

/// A listening socket, and the TLS configuration of the connections it accepts.
#[derive(Debug)]
pub(super) struct Listener {
    /// `None` once closed by the shutdown.
    pub(super) socket: Option<TcpListener>,
    #[cfg(feature = "tls")]
    pub(super) tls: Option<std::sync::Arc<rustls::ServerConfig>>,
    /// A WebSocket listener's configuration, and the longest line (the messages' bound).
    #[cfg(feature = "ws")]
    pub(super) ws: Option<(std::sync::Arc<WsConfig>, usize)>,
}

impl Listener {
    /// A listener of plain connections.
    pub(super) fn plain(socket: TcpListener) -> Listener {
        Listener {
            socket: Some(socket),
            #[cfg(feature = "tls")]
            tls: None,
            #[cfg(feature = "ws")]
            ws: None,
        }
    }

    /// An accepted stream as this listener's connections speak: plain, or a TLS session.
    pub(super) fn stream(&self, stream: TcpStream) -> io::Result<Stream> {
        #[cfg(feature = "ws")]
        if let Some((ws, max_line)) = &self.ws {
            #[cfg(feature = "tls")]
            if let Some(config) = &self.tls {
                let session = TlsTransport::server(config.clone(), stream)?;
                let ws = WsTransport::server(ws.clone(), *max_line, session);
                return Ok(Stream::Wss(Box::new(ws)));
            }
            return Ok(Stream::Ws(Box::new(WsTransport::server(
                ws.clone(),
                *max_line,
                stream,
            ))));
        }
        #[cfg(feature = "tls")]
        if let Some(config) = &self.tls {
            let session = TlsTransport::server(config.clone(), stream)?;
            return Ok(Stream::Tls(Box::new(session)));
        }
        Ok(Stream::Plain(stream))
    }
}
