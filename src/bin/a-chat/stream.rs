//! A client connection's stream, plain or TLS, for `a-chat client` and `a-chat bench`: the
//! library's [`TlsTransport`] (client side) over a `mio` TCP stream, or the stream itself.

use std::io::{self, Read, Write};
use std::sync::Arc;

use a_chat::core::Transport;
use a_chat::tls::TlsTransport;
use mio::net::TcpStream;
use rustls::ClientConfig;
use rustls::pki_types::ServerName;

use crate::ws_client::WsClient;

/// Where a client speaks TLS to: its configuration and the name the certificate must show.
#[derive(Debug, Clone)]
pub struct TlsTarget {
    pub config: Arc<ClientConfig>,
    pub name: ServerName<'static>,
}

/// A connected stream, plain or TLS, or a WebSocket over either (the bench's `--ws`, `--wss`).
#[derive(Debug)]
pub enum ClientStream {
    Plain(TcpStream),
    Tls(Box<TlsTransport<TcpStream>>),
    Ws(Box<WsClient<TcpStream>>),
    Wss(Box<WsClient<TlsTransport<TcpStream>>>),
}

impl ClientStream {
    /// `stream`, speaking TLS to `tls` when given.
    pub fn new(stream: TcpStream, tls: Option<&TlsTarget>) -> io::Result<ClientStream> {
        Ok(match tls {
            None => ClientStream::Plain(stream),
            Some(target) => ClientStream::Tls(Box::new(TlsTransport::client(
                target.config.clone(),
                target.name.clone(),
                stream,
            )?)),
        })
    }

    /// `stream` as a WebSocket client of `host`, over TLS to `tls` when given.
    pub fn websocket(
        stream: TcpStream,
        tls: Option<&TlsTarget>,
        host: &str,
    ) -> io::Result<ClientStream> {
        Ok(match ClientStream::new(stream, tls)? {
            ClientStream::Plain(tcp) => ClientStream::Ws(Box::new(WsClient::new(tcp, host))),
            ClientStream::Tls(tls) => ClientStream::Wss(Box::new(WsClient::new(*tls, host))),
            other => other,
        })
    }

    /// The socket, to register and ask about.
    pub fn socket(&mut self) -> &mut TcpStream {
        match self {
            ClientStream::Plain(stream) => stream,
            ClientStream::Tls(tls) => tls.get_mut(),
            ClientStream::Ws(ws) => ws.get_mut(),
            ClientStream::Wss(ws) => ws.get_mut().get_mut(),
        }
    }

    fn transport(&mut self) -> &mut dyn Transport {
        match self {
            ClientStream::Plain(stream) => stream,
            ClientStream::Tls(tls) => tls.as_mut(),
            ClientStream::Ws(ws) => ws.as_mut(),
            ClientStream::Wss(ws) => ws.as_mut(),
        }
    }

    /// Whether it speaks TLS.
    pub fn is_tls(&self) -> bool {
        matches!(self, ClientStream::Tls(_) | ClientStream::Wss(_))
    }

    /// Whether it is a TLS session whose handshake is not over.
    pub fn is_handshaking(&self) -> bool {
        match self {
            ClientStream::Tls(tls) => tls.is_handshaking(),
            ClientStream::Wss(ws) => ws.get_ref().is_handshaking(),
            _ => false,
        }
    }

    /// Whether the stream holds bytes of its own to write (TLS records).
    pub fn wants_write(&self) -> bool {
        match self {
            ClientStream::Plain(_) => false,
            ClientStream::Tls(tls) => tls.wants_write(),
            ClientStream::Ws(ws) => ws.wants_write(),
            ClientStream::Wss(ws) => ws.wants_write(),
        }
    }

    /// Shuts the write side (after `close_notify` over TLS, which may wait for the handshake
    /// and for writability: [`ClientStream::wants_write`]).
    pub fn shutdown_write(&mut self) -> io::Result<()> {
        self.transport().shutdown_write()
    }
}

impl Read for ClientStream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.transport().read(buf)
    }
}

impl Write for ClientStream {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.transport().write(buf)
    }

    /// Writes the TLS records the session holds, as far as the socket takes them.
    fn flush(&mut self) -> io::Result<()> {
        self.transport().flush()
    }
}
