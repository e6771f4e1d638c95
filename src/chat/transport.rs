//! What the core needs from a connection's IO: a non-blocking byte pipe that can shut its
//! write side.

use std::io::{self, Read, Write};

/// A connection's byte pipe, as the core sees it.
///
/// The server implements it over a `mio` TCP stream, plain or TLS; tests and fuzzers over
/// memory. Reads and writes are non-blocking: `WouldBlock` means "nothing now", `Ok(0)` from a
/// read is the end of the peer's stream. `flush` writes bytes the transport holds of its own
/// (TLS records); the core calls it once its queue is empty.
pub trait Transport: Read + Write {
    /// Shuts the write side (the peer reads end of stream once it has read everything). A
    /// transport that must write something first (TLS's `close_notify`) may finish it later,
    /// in `flush`, saying so through [`Transport::wants_write`].
    fn shutdown_write(&mut self) -> io::Result<()>;

    /// Whether the transport holds bytes of its own to write (TLS records): the driver then
    /// asks for writability even with the core's queue empty.
    fn wants_write(&self) -> bool {
        false
    }

    /// Asked right after a read that returned fewer bytes than the buffer held: whether the
    /// core may stop reading there, without reading on to `WouldBlock`, and lose nothing. True
    /// only when nothing more can be read now *and* the driver will be told when something
    /// arrives (new bytes, an end of stream, an error). Without that knowledge, `false`: the
    /// core reads on to `WouldBlock` or the end of stream.
    fn short_read_drained(&self) -> bool {
        false
    }

    /// Whether the peer has already closed or reset the connection with nothing unread before
    /// that. Asked before a name is refused as taken, so that a client that reconnects at once
    /// gets its name back even if the old connection's close was not yet seen. Without IO to
    /// look at, `false`.
    fn is_closed_by_peer(&mut self) -> bool {
        false
    }

    /// Whether, its write side shut after the peer's input ended, the connection must still
    /// linger before it closes: bytes of the transport's own still to write, or the peer's
    /// half of a close handshake to wait for (a WebSocket's close frame). The core then lingers
    /// as after a notice (input read and dropped until the peer closes or the grace period
    /// ends) instead of closing at once. Without such a handshake, `false`.
    fn lingers(&self) -> bool {
        false
    }
}

/// Writes `buf[*sent..]` to `io` until it is all out, then gives the buffer back: for a
/// transport's own bytes (TLS records, WebSocket control frames). `WouldBlock` and other
/// errors are returned with `*sent` where the writes stopped.
#[cfg(any(feature = "tls", feature = "ws"))]
pub(crate) fn write_own_bytes(
    io: &mut impl Write,
    buf: &mut Vec<u8>,
    sent: &mut usize,
) -> io::Result<()> {
    while *sent < buf.len() {
        match io.write(&buf[*sent..]) {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(n) => *sent += n,
            Err(e) if crate::io_errors::interrupted(&e) => {}
            Err(e) => return Err(e),
        }
    }
    if buf.capacity() > 0 {
        *buf = Vec::new();
        *sent = 0;
    }
    Ok(())
}
