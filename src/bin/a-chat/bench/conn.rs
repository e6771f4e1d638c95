//! One client connection of the generator: its socket, its phase, the bytes it still has to
//! write and the unfinished line it has read.

use std::io::{self, Read, Write};
use std::net::{IpAddr, SocketAddr};
use std::time::Instant;

use a_chat::core::framer::LineFramer;
use mio::net::TcpStream;
use mio::{Interest, Registry, Token};

use crate::stream::{ClientStream, TlsTarget};
use a_chat::io_errors::{interrupted, would_block};

/// The longest line accepted from the server. Far above any line of a run (`from NAME: TEXT`
/// with TEXT of `--bytes`): only a server that broke the framing reaches it.
pub const MAX_LINE: usize = 1 << 20;

/// Bytes already written that are dropped from the front of the outbound buffer once they are
/// also half of it (an open loop keeps appending behind a socket that is not keeping up).
const COMPACT_AT: usize = 64 * 1024;

/// Where a connection is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// Not connected yet (the ramp has not reached it).
    Waiting,
    /// The non-blocking connect is under way.
    Connecting,
    /// Connected; the name and `NAME: login` are sent, their echo has not come back.
    LoggingIn,
    /// Its `from NAME: login` came back.
    Ready,
    /// Failed to connect or log in, or closed by the server: out of the run.
    Failed,
}

/// A connection and its buffers.
#[derive(Debug)]
pub struct Conn {
    pub stream: Option<ClientStream>,
    pub phase: Phase,
    /// When the connect began.
    pub started: Option<Instant>,
    /// Bytes to write, from `written` on.
    out: Vec<u8>,
    written: usize,
    /// The unfinished line read so far (no heap memory between lines).
    framer: LineFramer,
    /// Whether `WRITABLE` is in the registered interest.
    write_interest: bool,
}

impl Conn {
    /// A connection that has not started.
    pub fn new() -> Self {
        Conn {
            stream: None,
            phase: Phase::Waiting,
            started: None,
            out: Vec::new(),
            written: 0,
            framer: LineFramer::new(),
            write_interest: false,
        }
    }

    /// Starts a non-blocking connect from `source` (any local address when `None`) and
    /// registers it (for writability: that is how a connect reports its end). With `tls`, the
    /// connection speaks TLS once connected.
    pub fn connect(
        &mut self,
        registry: &Registry,
        token: Token,
        (addr, source): (SocketAddr, Option<IpAddr>),
        tls: Option<&TlsTarget>,
        ws: bool,
        now: Instant,
    ) -> io::Result<()> {
        let socket = open_stream(addr, source)?;
        let mut stream = if ws {
            ClientStream::websocket(socket, tls, &addr.to_string())?
        } else {
            ClientStream::new(socket, tls)?
        };
        let interest = Interest::READABLE | Interest::WRITABLE;
        registry.register(stream.socket(), token, interest)?;
        self.stream = Some(stream);
        self.write_interest = true;
        self.phase = Phase::Connecting;
        self.started = Some(now);
        Ok(())
    }

    /// After a writable or error event while connecting: `Ok(true)` once connected,
    /// `Ok(false)` while still under way, the error when it failed.
    pub fn finish_connect(&mut self) -> io::Result<bool> {
        let Some(stream) = &mut self.stream else {
            return Err(io::ErrorKind::NotConnected.into());
        };
        let stream = stream.socket();
        if let Some(error) = stream.take_error()? {
            return Err(error);
        }
        match stream.peer_addr() {
            Ok(_) => {
                // Lines are batched in `out` already; Nagle would only add delay.
                stream.set_nodelay(true)?;
                Ok(true)
            }
            Err(e) if e.kind() == io::ErrorKind::NotConnected => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// The outbound buffer, to append lines to.
    pub fn out(&mut self) -> &mut Vec<u8> {
        if self.written >= COMPACT_AT && self.written * 2 >= self.out.len() {
            self.out.drain(..self.written);
            self.written = 0;
        }
        &mut self.out
    }

    /// Whether bytes wait to be written (TLS records included).
    pub fn has_unsent(&self) -> bool {
        self.written < self.out.len() || self.stream.as_ref().is_some_and(|s| s.wants_write())
    }

    /// Writes until the buffer is empty or the socket would block; returns the bytes written.
    pub fn flush(&mut self) -> io::Result<usize> {
        let Some(stream) = &mut self.stream else {
            return Ok(0);
        };
        let mut total = 0;
        while self.written < self.out.len() {
            match stream.write(&self.out[self.written..]) {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(n) => {
                    self.written += n;
                    total += n;
                }
                Err(e) if would_block(&e) => break,
                Err(e) if interrupted(&e) => {}
                Err(e) => return Err(e),
            }
        }
        if self.written == self.out.len() {
            self.out.clear();
            self.written = 0;
            // TLS records the session still holds.
            match stream.flush() {
                Err(e) if would_block(&e) => {}
                other => other?,
            }
        }
        Ok(total)
    }

    /// Registers writable interest exactly while bytes wait (or the connect is under way).
    pub fn sync_interest(&mut self, registry: &Registry, token: Token) -> io::Result<()> {
        let wanted = self.has_unsent() || self.phase == Phase::Connecting;
        let Some(stream) = &mut self.stream else {
            return Ok(());
        };
        if wanted != self.write_interest {
            let interest = if wanted {
                Interest::READABLE | Interest::WRITABLE
            } else {
                Interest::READABLE
            };
            registry.reregister(stream.socket(), token, interest)?;
            self.write_interest = wanted;
        }
        Ok(())
    }

    /// Reads until the socket would block, calling `on_line` with each complete line.
    /// Returns whether the server closed its side (end of stream).
    pub fn read_lines(
        &mut self,
        scratch: &mut [u8],
        mut on_line: impl FnMut(&[u8]),
    ) -> io::Result<bool> {
        let Some(stream) = &mut self.stream else {
            return Ok(false);
        };
        loop {
            match stream.read(scratch) {
                Ok(0) => return Ok(true),
                Ok(n) => self
                    .framer
                    .feed(&scratch[..n], MAX_LINE, &mut on_line)
                    .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?,
                Err(e) if would_block(&e) => return Ok(false),
                Err(e) if interrupted(&e) => {}
                Err(e) => return Err(e),
            }
        }
    }

    /// Takes the connection out of the run: deregisters and closes the socket, frees buffers.
    pub fn fail(&mut self, registry: &Registry) {
        if let Some(mut stream) = self.stream.take() {
            let _ = registry.deregister(stream.socket());
        }
        self.phase = Phase::Failed;
        self.out = Vec::new();
        self.written = 0;
        self.framer = LineFramer::new();
    }
}

/// A non-blocking socket connecting to `addr`, bound to `source` first when given.
///
/// Binding to a source address is how the generator spreads its connections over several
/// loopback addresses: `connect` on an unbound socket picks a port of the one source address,
/// and Linux searches the even ports of the ephemeral range first, so past about 14,000
/// connections every connect scans them all (over ten seconds of kernel time for 19,000 here,
/// against one second when spread). A port bound by `bind` only has to be free on its own
/// address.
fn open_stream(addr: SocketAddr, source: Option<IpAddr>) -> io::Result<TcpStream> {
    use rustix::net::{AddressFamily, SocketFlags, SocketType, sockopt};
    let Some(source) = source else {
        return TcpStream::connect(addr);
    };
    let family = if addr.is_ipv4() {
        AddressFamily::INET
    } else {
        AddressFamily::INET6
    };
    let flags = SocketFlags::NONBLOCK | SocketFlags::CLOEXEC;
    let fd = rustix::net::socket_with(family, SocketType::STREAM, flags, None)?;
    // Ports in TIME_WAIT from an earlier run on this address may be taken again.
    sockopt::set_socket_reuseaddr(&fd, true)?;
    rustix::net::bind(&fd, &SocketAddr::new(source, 0))?;
    match rustix::net::connect(&fd, &addr) {
        Ok(()) | Err(rustix::io::Errno::INPROGRESS) => {}
        Err(e) => return Err(e.into()),
    }
    Ok(TcpStream::from_std(std::net::TcpStream::from(fd)))
}
