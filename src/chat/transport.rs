//! What the core needs from a connection's IO: a non-blocking byte pipe that can shut its
//! write side.

use std::io::{self, Read, Write};

/// A connection's byte pipe, as the core sees it.
///
/// The server implements it over a `mio` TCP stream; tests and fuzzers over memory. Reads and
/// writes are non-blocking: `WouldBlock` means "nothing now", `Ok(0)` from a read is the end of
/// the peer's stream.
pub trait Transport: Read + Write {
    /// Shuts the write side (the peer reads end of stream once it has read everything).
    fn shutdown_write(&mut self) -> io::Result<()>;

    /// Whether the peer has already closed or reset the connection with nothing unread before
    /// that. Asked before a name is refused as taken, so that a client that reconnects at once
    /// gets its name back even if the old connection's close was not yet seen. Without IO to
    /// look at, `false`.
    fn is_closed_by_peer(&mut self) -> bool {
        false
    }
}
