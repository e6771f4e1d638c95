//! A TCP connection as the core's [`Transport`], with what the driver registered for it.

use std::io::{self, Read, Write};

use mio::net::TcpStream;

use crate::chat::Transport;

/// A connection's socket and whether `WRITABLE` is in its registered interest (only while its
/// queue is not empty).
#[derive(Debug)]
pub(super) struct Connection {
    pub(super) stream: TcpStream,
    pub(super) writable: bool,
}

impl Read for Connection {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.stream.read(buf)
    }
}

impl Write for Connection {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.stream.write(buf)
    }

    fn write_vectored(&mut self, bufs: &[io::IoSlice<'_>]) -> io::Result<usize> {
        self.stream.write_vectored(bufs)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Transport for Connection {
    fn shutdown_write(&mut self) -> io::Result<()> {
        match self.stream.shutdown(std::net::Shutdown::Write) {
            // The peer is already gone; the close that follows is all that is left to do.
            Err(e) if e.kind() == io::ErrorKind::NotConnected => Ok(()),
            other => other,
        }
    }

    fn is_closed_by_peer(&mut self) -> bool {
        // End of stream at the head of the receive queue, or a reset.
        match self.stream.peek(&mut [0; 1]) {
            Ok(0) => true,
            Ok(_) => false,
            Err(e) => e.kind() == io::ErrorKind::ConnectionReset,
        }
    }
}
