//! A chat connection's socket as the core's [`Transport`]: plain TCP, or TLS over it; and what
//! the driver registered for it.

use std::io::{self, Read, Write};

use mio::net::TcpStream;

use crate::chat::Transport;
#[cfg(feature = "tls")]
use crate::tls::TlsTransport;
#[cfg(feature = "ws")]
use crate::ws::WsTransport;

/// A `mio` TCP stream is a plain [`Transport`].
impl Transport for TcpStream {
    fn shutdown_write(&mut self) -> io::Result<()> {
        match self.shutdown(std::net::Shutdown::Write) {
            // The peer is already gone; the close that follows is all that is left to do.
            Err(e) if e.kind() == io::ErrorKind::NotConnected => Ok(()),
            other => other,
        }
    }

    fn is_closed_by_peer(&mut self) -> bool {
        // End of stream at the head of the receive queue, or a reset.
        match self.peek(&mut [0; 1]) {
            Ok(0) => true,
            Ok(_) => false,
            Err(e) => e.kind() == io::ErrorKind::ConnectionReset,
        }
    }
}

/// A connection's stream: plain, a TLS session over TCP, a WebSocket over either (boxed: they
/// are large, and a plain connection should not pay for them).
#[derive(Debug)]
pub(super) enum Stream {
    Plain(TcpStream),
    #[cfg(feature = "tls")]
    Tls(Box<TlsTransport<TcpStream>>),
    #[cfg(feature = "ws")]
    Ws(Box<WsTransport<TcpStream>>),
    #[cfg(all(feature = "ws", feature = "tls"))]
    Wss(Box<WsTransport<TlsTransport<TcpStream>>>),
}

/// A connection's stream and whether `WRITABLE` is in its registered interest (only while it
/// has bytes to write).
#[derive(Debug)]
pub(super) struct Connection {
    pub(super) stream: Stream,
    pub(super) writable: bool,
    /// Over TLS: reads may do handshake work now (see `handshakes.rs`). While it is shut, a
    /// handshaking session reads as `WouldBlock` without touching the socket.
    #[cfg(feature = "tls")]
    pub(super) handshake_gate_open: bool,
    /// Over TLS: the connection waits in the handshake queue.
    #[cfg(feature = "tls")]
    pub(super) handshake_queued: bool,
}

impl Connection {
    /// A connection over `stream`, its gate shut.
    pub(super) fn new(stream: Stream) -> Connection {
        Connection {
            stream,
            writable: false,
            #[cfg(feature = "tls")]
            handshake_gate_open: false,
            #[cfg(feature = "tls")]
            handshake_queued: false,
        }
    }

    /// Whether this is a TLS session whose handshake is not over.
    #[cfg(feature = "tls")]
    pub(super) fn is_handshaking(&self) -> bool {
        match &self.stream {
            Stream::Tls(tls) => tls.is_handshaking(),
            #[cfg(feature = "ws")]
            Stream::Wss(wss) => wss.get_ref().is_handshaking(),
            _ => false,
        }
    }

    /// The socket, to register.
    pub(super) fn socket(&mut self) -> &mut TcpStream {
        match &mut self.stream {
            Stream::Plain(tcp) => tcp,
            #[cfg(feature = "tls")]
            Stream::Tls(tls) => tls.get_mut(),
            #[cfg(feature = "ws")]
            Stream::Ws(ws) => ws.get_mut(),
            #[cfg(all(feature = "ws", feature = "tls"))]
            Stream::Wss(wss) => wss.get_mut().get_mut(),
        }
    }

    /// Over TLS, the error the session failed with, once.
    #[cfg(feature = "tls")]
    pub(super) fn take_tls_failure(&mut self) -> Option<crate::tls::TlsError> {
        match &mut self.stream {
            Stream::Tls(tls) => tls.take_failure(),
            #[cfg(feature = "ws")]
            Stream::Wss(wss) => wss.get_mut().take_failure(),
            _ => None,
        }
    }

    /// Over a WebSocket, why it ended early, once.
    #[cfg(feature = "ws")]
    pub(super) fn take_ws_failure(&mut self) -> Option<crate::ws::WsError> {
        match &mut self.stream {
            Stream::Ws(ws) => ws.take_failure(),
            #[cfg(feature = "tls")]
            Stream::Wss(wss) => wss.take_failure(),
            _ => None,
        }
    }

    fn transport(&mut self) -> &mut dyn Transport {
        match &mut self.stream {
            Stream::Plain(tcp) => tcp,
            #[cfg(feature = "tls")]
            Stream::Tls(tls) => tls.as_mut(),
            #[cfg(feature = "ws")]
            Stream::Ws(ws) => ws.as_mut(),
            #[cfg(all(feature = "ws", feature = "tls"))]
            Stream::Wss(wss) => wss.as_mut(),
        }
    }

    fn transport_ref(&self) -> &dyn Transport {
        match &self.stream {
            Stream::Plain(tcp) => tcp,
            #[cfg(feature = "tls")]
            Stream::Tls(tls) => tls.as_ref(),
            #[cfg(feature = "ws")]
            Stream::Ws(ws) => ws.as_ref(),
            #[cfg(all(feature = "ws", feature = "tls"))]
            Stream::Wss(wss) => wss.as_ref(),
        }
    }
}

impl Read for Connection {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        #[cfg(feature = "tls")]
        if !self.handshake_gate_open && self.is_handshaking() {
            // Its step comes from the handshake queue.
            return Err(io::ErrorKind::WouldBlock.into());
        }
        self.transport().read(buf)
    }
}

impl Write for Connection {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.transport().write(buf)
    }

    fn write_vectored(&mut self, bufs: &[io::IoSlice<'_>]) -> io::Result<usize> {
        self.transport().write_vectored(bufs)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.transport().flush()
    }
}

impl Transport for Connection {
    fn shutdown_write(&mut self) -> io::Result<()> {
        self.transport().shutdown_write()
    }

    fn wants_write(&self) -> bool {
        self.transport_ref().wants_write()
    }

    fn lingers(&self) -> bool {
        self.transport_ref().lingers()
    }

    fn is_closed_by_peer(&mut self) -> bool {
        self.transport().is_closed_by_peer()
    }
}
