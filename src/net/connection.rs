//! A chat connection's socket as the core's [`Transport`]: plain TCP, or TLS over it; and what
//! the driver registered for it.

use std::io::{self, Read, Write};

use mio::net::TcpStream;

use crate::chat::Transport;
#[cfg(feature = "tls")]
use crate::tls::TlsTransport;

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

/// A connection's stream: plain, or a TLS session over TCP (boxed: it is large, and a plain
/// connection should not pay for it).
#[derive(Debug)]
pub(super) enum Stream {
    Plain(TcpStream),
    #[cfg(feature = "tls")]
    Tls(Box<TlsTransport<TcpStream>>),
}

impl Stream {
    /// The socket, to register.
    pub(super) fn socket(&mut self) -> &mut TcpStream {
        match self {
            Stream::Plain(tcp) => tcp,
            #[cfg(feature = "tls")]
            Stream::Tls(tls) => tls.get_mut(),
        }
    }

    /// The stream as a [`Transport`]: plain or TLS.
    pub(super) fn transport(&mut self) -> &mut dyn Transport {
        match self {
            Stream::Plain(tcp) => tcp,
            #[cfg(feature = "tls")]
            Stream::Tls(tls) => tls.as_mut(),
        }
    }

    /// Whether the transport holds bytes of its own to write (TLS records).
    pub(super) fn wants_write(&self) -> bool {
        match self {
            Stream::Plain(_) => false,
            #[cfg(feature = "tls")]
            Stream::Tls(tls) => tls.wants_write(),
        }
    }

    /// Over TLS, the error the session failed with, once.
    #[cfg(feature = "tls")]
    pub(super) fn take_tls_failure(&mut self) -> Option<crate::tls::TlsError> {
        match self {
            Stream::Plain(_) => None,
            Stream::Tls(tls) => tls.take_failure(),
        }
    }
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
            Stream::Plain(_) => false,
            Stream::Tls(tls) => tls.is_handshaking(),
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
    fn shutdown_write(&mut self) -> io::Result<()> {
        self.transport().shutdown_write()
    }

    fn wants_write(&self) -> bool {
        self.stream.wants_write()
    }

    fn is_closed_by_peer(&mut self) -> bool {
        self.transport().is_closed_by_peer()
    }
}
