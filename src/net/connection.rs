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

impl Stream {
    /// The socket, to register.
    pub(super) fn socket(&mut self) -> &mut TcpStream {
        match self {
            Stream::Plain(tcp) => tcp,
            #[cfg(feature = "tls")]
            Stream::Tls(tls) => tls.get_mut(),
            #[cfg(feature = "ws")]
            Stream::Ws(ws) => ws.get_mut(),
            #[cfg(all(feature = "ws", feature = "tls"))]
            Stream::Wss(wss) => wss.get_mut().get_mut(),
        }
    }

    /// The stream as a [`Transport`]: plain, TLS, WebSocket or WebSocket over TLS.
    pub(super) fn transport(&mut self) -> &mut dyn Transport {
        match self {
            Stream::Plain(tcp) => tcp,
            #[cfg(feature = "tls")]
            Stream::Tls(tls) => tls.as_mut(),
            #[cfg(feature = "ws")]
            Stream::Ws(ws) => ws.as_mut(),
            #[cfg(all(feature = "ws", feature = "tls"))]
            Stream::Wss(wss) => wss.as_mut(),
        }
    }

    /// The stream as a [`Transport`], to ask it.
    fn transport_ref(&self) -> &dyn Transport {
        match self {
            Stream::Plain(tcp) => tcp,
            #[cfg(feature = "tls")]
            Stream::Tls(tls) => tls.as_ref(),
            #[cfg(feature = "ws")]
            Stream::Ws(ws) => ws.as_ref(),
            #[cfg(all(feature = "ws", feature = "tls"))]
            Stream::Wss(wss) => wss.as_ref(),
        }
    }

    /// Whether the transport holds bytes of its own to write (TLS records, a frame's header).
    pub(super) fn wants_write(&self) -> bool {
        self.transport_ref().wants_write()
    }

    /// Whether the transport waits for the peer's own close before the socket is closed.
    pub(super) fn lingers(&self) -> bool {
        self.transport_ref().lingers()
    }

    /// Over TLS, the error the session failed with, once.
    #[cfg(feature = "tls")]
    pub(super) fn take_tls_failure(&mut self) -> Option<crate::tls::TlsError> {
        match self {
            Stream::Tls(tls) => tls.take_failure(),
            #[cfg(feature = "ws")]
            Stream::Wss(wss) => wss.get_mut().take_failure(),
            _ => None,
        }
    }

    /// Over a WebSocket, why it ended early, once.
    #[cfg(feature = "ws")]
    pub(super) fn take_ws_failure(&mut self) -> Option<crate::ws::WsError> {
        match self {
            Stream::Ws(ws) => ws.take_failure(),
            #[cfg(feature = "tls")]
            Stream::Wss(wss) => wss.take_failure(),
            _ => None,
        }
    }
}

/// A connection's stream and whether `WRITABLE` is in its registered interest (only while it
/// has bytes to write).
#[derive(Debug)]
pub(super) struct Connection {
    pub(super) stream: Stream,
    pub(super) writable: bool,
    /// A readiness event said the peer closed its side or the socket failed: reads go on to
    /// the end of stream or the error, never stop at a short read, and the write side is left
    /// for the close to end (`shutdown_write`). Never unset.
    pub(super) peer_closing: bool,
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
            peer_closing: false,
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
        self.stream.socket()
    }

    /// Over TLS, the error the session failed with, once.
    #[cfg(feature = "tls")]
    pub(super) fn take_tls_failure(&mut self) -> Option<crate::tls::TlsError> {
        self.stream.take_tls_failure()
    }

    /// Over a WebSocket, why it ended early, once.
    #[cfg(feature = "ws")]
    pub(super) fn take_ws_failure(&mut self) -> Option<crate::ws::WsError> {
        self.stream.take_ws_failure()
    }

    fn transport(&mut self) -> &mut dyn Transport {
        self.stream.transport()
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
    /// Plain TCP whose peer closed its side (a readiness event said so): nothing, since the
    /// core closes such a connection once it has read its end of stream, and `close` of a
    /// socket with nothing unread sends the same FIN; the `shutdown` would be one more system
    /// call per connection for nothing.
    fn shutdown_write(&mut self) -> io::Result<()> {
        if self.peer_closing && matches!(self.stream, Stream::Plain(_)) {
            return Ok(());
        }
        self.transport().shutdown_write()
    }

    fn wants_write(&self) -> bool {
        self.stream.wants_write()
    }

    fn lingers(&self) -> bool {
        self.stream.lingers()
    }

    fn is_closed_by_peer(&mut self) -> bool {
        self.transport().is_closed_by_peer()
    }

    /// Plain TCP only, and only until a readiness event said the peer closed or failed.
    ///
    /// A read from a stream socket that returns less than asked has emptied the receive
    /// queue: "if you call read(2) by asking to read a certain amount of data and read(2)
    /// returns a lower number of bytes, you can be sure of having exhausted the read I/O space
    /// for the file descriptor" (epoll(7), Q&A 9). Stopping there is safe with mio's
    /// edge-triggered registration because every arrival after that read (bytes, a FIN, a
    /// reset) wakes the epoll instance again and queues a new event for the socket, whether or
    /// not the previous one was read to `EAGAIN`. What no new event will announce is what had
    /// already arrived when the event being handled was harvested: a FIN or an error queued
    /// behind the bytes. mio reports those on that very event (`is_read_closed`, `is_error`,
    /// from `EPOLLRDHUP`/`EPOLLHUP`/`EPOLLERR`), and the driver sets `peer_closing` from it
    /// before the read, so such a connection is read on to the end of stream. (The read at
    /// accept comes before any event but after the registration, which queues an event for
    /// whatever is already there.)
    ///
    /// Over TLS or a WebSocket, `false`: a short read of plaintext or of a frame's payload says
    /// nothing of the socket (rustls may hold a partial record, the decoder a partial frame, and
    /// need another read of the socket), so they read on to `WouldBlock`.
    fn short_read_drained(&self) -> bool {
        match &self.stream {
            Stream::Plain(_) => !self.peer_closing,
            // A short read of plaintext or of a frame's payload says nothing of the socket.
            #[cfg(any(feature = "tls", feature = "ws"))]
            _ => false,
        }
    }
}
