//! TLS with rustls and no IO of its own: [`TlsTransport`] wraps any plain [`Transport`] (a
//! `mio` TCP stream in the server, memory in tests and the fuzzer) and is a [`Transport`]
//! itself, so the core above it does not change. The server side serves the chat's TLS
//! listeners; the client side serves `a-chat client --tls` and `a-chat bench --tls`. Also the
//! configurations (`config.rs`: the one place the crypto provider is chosen) and the loading of
//! a certificate chain and key from PEM files. `errors.rs` tells TLS failures as sentences.

mod config;
mod errors;

pub use config::{
    client_config, client_config_from_pem, client_config_with_cert, crypto_provider,
    roots_from_pem, server_config, server_config_from_pem,
};
pub use errors::{Side, TlsError};

use std::io::{self, IoSlice, Read, Write};
use std::sync::Arc;

use log::debug;
use rustls::ServerConfig;
use rustls::unbuffered::{
    ConnectionState, EncodeError, EncryptError, InsufficientSizeError, UnbufferedStatus,
};

use crate::chat::{Transport, write_own_bytes};
use crate::io_errors::would_block;

/// The rustls this module uses, for hosts that build their configurations with it.
pub use rustls;

/// Bytes read from the stream at a time: a whole record of the largest size.
const READ_CHUNK: usize = 16 * 1024 + 512;

/// Plaintext encrypted per write at most: one record's worth, so that many small messages go
/// out as one record, not one each.
const PLAINTEXT_PER_WRITE: usize = 16 * 1024;

/// Where the write side is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum WriteSide {
    Open,
    /// Shut by the core: `close_notify` goes out once the handshake is over and what is
    /// buffered is written, then the stream's own write side is shut.
    Shutting,
    /// `close_notify` encrypted into `outgoing`.
    Notified,
    Shut,
}

/// The rustls session without buffers of its own (its "unbuffered" API): the transport owns
/// the bytes in flight and frees them when there are none, so that an idle connection holds
/// only the session's state.
enum Session {
    Server(rustls::server::UnbufferedServerConnection),
    Client(rustls::client::UnbufferedClientConnection),
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let side = match self {
            Session::Server(_) => "server",
            Session::Client(_) => "client",
        };
        f.debug_struct("Session")
            .field("side", &side)
            .field("handshaking", &self.is_handshaking())
            .finish()
    }
}

impl Session {
    fn side(&self) -> Side {
        match self {
            Session::Server(_) => Side::Server,
            Session::Client(_) => Side::Client,
        }
    }

    fn is_handshaking(&self) -> bool {
        match self {
            Session::Server(session) => session.is_handshaking(),
            Session::Client(session) => session.is_handshaking(),
        }
    }
}

/// What the transport asks of the session in one [`TlsTransport::step`].
enum Want<'a> {
    /// Decrypted bytes, into this buffer.
    Read(&'a mut [u8]),
    /// This plaintext encrypted.
    Encrypt(&'a [u8]),
    /// A `close_notify` encrypted.
    CloseNotify,
    /// Only what the session has to do by itself (encode handshake records).
    Nothing,
}

/// Where a step stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Step {
    /// This many decrypted bytes were put into the reader's buffer.
    Plaintext(usize),
    /// The handshake needs more bytes from the peer.
    Blocked,
    /// The session is established and has nothing to read; this much plaintext was encrypted
    /// (or a `close_notify` was, for 0).
    Ready(usize),
    /// Both sides sent `close_notify`.
    Closed,
}

/// A TLS session (server or client side) over the plain transport `S`, as a [`Transport`]:
/// reads give the decrypted stream, writes are encrypted, `shutdown_write` sends `close_notify`
/// and then shuts the stream's write side.
///
/// A read drives the handshake too: it reads what the stream has, processes it, and writes the
/// records that answers (what the stream does not take now waits, and [`Transport::wants_write`]
/// says so; the driver then flushes on writability). A write during the handshake waits for it
/// (`WouldBlock`; the read that completes it makes `wants_write` true). A TLS error fails the
/// read with `InvalidData`; the peer's end of stream, with or without `close_notify`, reads as
/// end of stream.
///
/// Memory: the session's state, plus buffers only while bytes are in flight. Between reads the
/// incoming buffer holds at most the beginning of a record, and it and the outgoing buffer are
/// freed whenever they empty.
#[derive(Debug)]
pub struct TlsTransport<S> {
    session: Session,
    io: S,
    /// TLS bytes read from the stream and not processed yet.
    /// Invariant: no capacity when empty, once a read found the stream drained.
    incoming: Vec<u8>,
    /// Records for the stream, from `sent` on. Invariant: no capacity once all are sent.
    outgoing: Vec<u8>,
    sent: usize,
    /// Decrypted bytes that did not fit the reader's buffer, from `stash_read` on.
    stash: Vec<u8>,
    stash_read: usize,
    /// The peer sent `close_notify`, or its stream ended.
    peer_closed: bool,
    write_side: WriteSide,
    /// A write found the handshake under way: once it is over, `wants_write` says so.
    write_waits_for_handshake: bool,
    /// The error the session failed with, until [`TlsTransport::take_failure`] takes it.
    failure: Option<TlsError>,
}

impl<S: Transport> TlsTransport<S> {
    /// The server side of a session of `config` over `io`, before its handshake.
    pub fn server(config: Arc<ServerConfig>, io: S) -> io::Result<Self> {
        let session =
            rustls::server::UnbufferedServerConnection::new(config).map_err(io::Error::other)?;
        Ok(Self::over(Session::Server(session), io))
    }

    /// The client side of a session of `config` with the server called `name`, over `io`;
    /// its `ClientHello` waits in the transport for the first flush.
    pub fn client(
        config: Arc<rustls::ClientConfig>,
        name: rustls::pki_types::ServerName<'static>,
        io: S,
    ) -> io::Result<Self> {
        let session = rustls::client::UnbufferedClientConnection::new(config, name)
            .map_err(io::Error::other)?;
        let mut transport = Self::over(Session::Client(session), io);
        transport.step(Want::Nothing)?;
        Ok(transport)
    }

    fn over(session: Session, io: S) -> Self {
        TlsTransport {
            session,
            io,
            incoming: Vec::new(),
            outgoing: Vec::new(),
            sent: 0,
            stash: Vec::new(),
            stash_read: 0,
            peer_closed: false,
            write_side: WriteSide::Open,
            write_waits_for_handshake: false,
            failure: None,
        }
    }

    /// The stream under the session.
    pub fn get_ref(&self) -> &S {
        &self.io
    }

    /// The stream under the session.
    pub fn get_mut(&mut self) -> &mut S {
        &mut self.io
    }

    /// Whether the handshake is still under way.
    pub fn is_handshaking(&self) -> bool {
        self.session.is_handshaking()
    }

    /// The error the session failed with, once (for the log line that names the connection).
    pub fn take_failure(&mut self) -> Option<TlsError> {
        self.failure.take()
    }

    /// Runs the session on what `incoming` holds until it needs the stream (more bytes, or
    /// nothing more to do) or has served `want`.
    fn step(&mut self, mut want: Want<'_>) -> io::Result<Step> {
        loop {
            let handled = match &mut self.session {
                Session::Server(session) => handle(
                    session.process_tls_records(&mut self.incoming),
                    &mut self.outgoing,
                    &mut self.stash,
                    &mut self.peer_closed,
                    &mut want,
                ),
                Session::Client(session) => handle(
                    session.process_tls_records(&mut self.incoming),
                    &mut self.outgoing,
                    &mut self.stash,
                    &mut self.peer_closed,
                    &mut want,
                ),
            };
            let (discard, step) = match handled {
                Ok(handled) => handled,
                Err(error) => return Err(self.fail(error)),
            };
            self.incoming.drain(..discard);
            if let Some(step) = step {
                return Ok(step);
            }
        }
    }

    /// The session failed with `error`: it is kept (for the log line that names the
    /// connection) and returned as `InvalidData`. (The fatal alert rustls may have queued is
    /// not asked for: asking the failed session again can trip rustls's own assertions.) A
    /// server whose client's first bytes were not TLS at all answers with a plaintext fatal
    /// `decode_error` alert, as far as the stream takes it now, so that a plain client on a TLS
    /// port sees a TLS record rather than silence.
    fn fail(&mut self, error: rustls::Error) -> io::Error {
        debug!("TLS error: {error}");
        let side = self.session.side();
        if side == Side::Server
            && self.session.is_handshaking()
            && matches!(error, rustls::Error::InvalidMessage(_))
        {
            // Alert (21), TLS 1.2 record version, length 2, fatal (2), decode_error (50).
            let _ = self.io.write(&[21, 3, 3, 0, 2, 2, 50]);
        }
        let failure = TlsError { error, side };
        self.failure = Some(failure.clone());
        io::Error::new(io::ErrorKind::InvalidData, failure)
    }

    /// Reads more TLS bytes from the stream; `Ok(0)` at its end. When the stream has nothing
    /// now and nothing is left unprocessed, the buffer's memory is given back.
    fn fill(&mut self) -> io::Result<usize> {
        let used = self.incoming.len();
        self.incoming.resize(used + READ_CHUNK, 0);
        let read = self.io.read(&mut self.incoming[used..]);
        self.incoming.truncate(used + *read.as_ref().unwrap_or(&0));
        if self.incoming.is_empty() {
            self.incoming = Vec::new();
        }
        read
    }

    /// Writes the records waiting for the stream until they are all out or the stream would
    /// block; then carries a requested shutdown on.
    fn push(&mut self) -> io::Result<()> {
        loop {
            write_own_bytes(&mut self.io, &mut self.outgoing, &mut self.sent)?;
            if self.write_side == WriteSide::Shutting
                && !self.session.is_handshaking()
                && self.step(Want::CloseNotify)? == Step::Ready(0)
            {
                // The close_notify is in `outgoing`: out with it, then the stream's FIN.
                self.write_side = WriteSide::Notified;
                continue;
            }
            if self.write_side == WriteSide::Notified {
                self.io.shutdown_write()?;
                self.write_side = WriteSide::Shut;
            }
            return Ok(());
        }
    }

    /// [`TlsTransport::push`], with `WouldBlock` meaning "the rest later".
    fn push_what_fits(&mut self) -> io::Result<()> {
        match self.push() {
            Err(e) if would_block(&e) => Ok(()),
            other => other,
        }
    }
}

/// Handles the state one `process_tls_records` reached: returns how many incoming bytes to
/// discard, and the step when the transport's loop should stop (`None`: process again).
fn handle<Data>(
    status: UnbufferedStatus<'_, '_, Data>,
    outgoing: &mut Vec<u8>,
    stash: &mut Vec<u8>,
    peer_closed: &mut bool,
    want: &mut Want<'_>,
) -> Result<(usize, Option<Step>), rustls::Error> {
    let UnbufferedStatus { discard, state } = status;
    let step = match state? {
        ConnectionState::ReadTraffic(mut traffic) => {
            let mut copied = 0;
            while let Some(record) = traffic.next_record() {
                let payload = record?.payload;
                let taken = match want {
                    Want::Read(buf) => {
                        let n = payload.len().min(buf.len() - copied);
                        buf[copied..copied + n].copy_from_slice(&payload[..n]);
                        copied += n;
                        n
                    }
                    _ => 0,
                };
                stash.extend_from_slice(&payload[taken..]);
            }
            (copied > 0).then_some(Step::Plaintext(copied))
        }
        ConnectionState::EncodeTlsData(mut encode) => {
            grow_into(outgoing, |buf| match encode.encode(buf) {
                Ok(n) => Ok(n),
                Err(EncodeError::InsufficientSize(InsufficientSizeError { required_size })) => {
                    Err(Some(required_size))
                }
                Err(_) => Err(None),
            });
            None
        }
        // The records encoded so far are in `outgoing`, which `push` writes.
        ConnectionState::TransmitTlsData(transmit) => {
            transmit.done();
            None
        }
        ConnectionState::BlockedHandshake => Some(Step::Blocked),
        ConnectionState::PeerClosed => {
            *peer_closed = true;
            None
        }
        ConnectionState::Closed => Some(Step::Closed),
        ConnectionState::WriteTraffic(mut traffic) => Some(match want {
            Want::Encrypt(plaintext) => {
                let plaintext: &[u8] = plaintext;
                grow_into(outgoing, |buf| match traffic.encrypt(plaintext, buf) {
                    Ok(n) => Ok(n),
                    Err(EncryptError::InsufficientSize(InsufficientSizeError {
                        required_size,
                    })) => Err(Some(required_size)),
                    Err(_) => Err(None),
                });
                Step::Ready(plaintext.len())
            }
            Want::CloseNotify => {
                grow_into(outgoing, |buf| match traffic.queue_close_notify(buf) {
                    Ok(n) => Ok(n),
                    Err(EncryptError::InsufficientSize(InsufficientSizeError {
                        required_size,
                    })) => Err(Some(required_size)),
                    Err(_) => Err(None),
                });
                Step::Ready(0)
            }
            Want::Read(_) | Want::Nothing => Step::Ready(0),
        }),
        // Early data is off (the server configuration's default); anything newer is not
        // expected either.
        _ => return Err(rustls::Error::General("unexpected TLS state".into())),
    };
    Ok((discard, step))
}

/// Appends what `write` puts into a buffer to `out`, growing the room it is given to the size
/// it asks for (`Err(Some(size))`); `Err(None)` appends nothing.
fn grow_into(out: &mut Vec<u8>, mut write: impl FnMut(&mut [u8]) -> Result<usize, Option<usize>>) {
    let start = out.len();
    let mut room = 256;
    loop {
        out.resize(start + room, 0);
        match write(&mut out[start..]) {
            Ok(n) => {
                out.truncate(start + n);
                return;
            }
            Err(Some(required)) if required > room => room = required,
            Err(_) => {
                out.truncate(start);
                return;
            }
        }
    }
}

impl<S: Transport> Read for TlsTransport<S> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        loop {
            if self.stash_read < self.stash.len() {
                let n = buf.len().min(self.stash.len() - self.stash_read);
                buf[..n].copy_from_slice(&self.stash[self.stash_read..self.stash_read + n]);
                self.stash_read += n;
                if self.stash_read == self.stash.len() {
                    self.stash = Vec::new();
                    self.stash_read = 0;
                }
                return Ok(n);
            }
            match self.step(Want::Read(buf))? {
                Step::Plaintext(n) => return Ok(n),
                Step::Closed => return Ok(0),
                Step::Blocked | Step::Ready(_) if self.peer_closed => return Ok(0),
                Step::Blocked | Step::Ready(_) => {
                    // Handshake records answering what was read go out first.
                    self.push_what_fits()?;
                    if self.fill()? == 0 {
                        // The stream ended, with or without close_notify.
                        self.peer_closed = true;
                    }
                }
            }
        }
    }
}

impl<S: Transport> Write for TlsTransport<S> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.write_vectored(&[IoSlice::new(buf)])
    }

    fn write_vectored(&mut self, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
        // Records still waiting for the stream come first: that is the back-pressure.
        self.push()?;
        // Small messages gathered into one record.
        let mut plaintext = [0; PLAINTEXT_PER_WRITE];
        let mut taken = 0;
        for buf in bufs {
            let n = buf.len().min(plaintext.len() - taken);
            plaintext[taken..taken + n].copy_from_slice(&buf[..n]);
            taken += n;
        }
        if taken == 0 {
            return Ok(0);
        }
        match self.step(Want::Encrypt(&plaintext[..taken]))? {
            Step::Ready(n) => {
                self.push_what_fits()?;
                Ok(n)
            }
            Step::Blocked => {
                self.write_waits_for_handshake = true;
                Err(io::ErrorKind::WouldBlock.into())
            }
            Step::Closed | Step::Plaintext(_) => Err(io::ErrorKind::BrokenPipe.into()),
        }
    }

    /// Writes the records the session holds, as far as the stream takes them.
    fn flush(&mut self) -> io::Result<()> {
        if !self.session.is_handshaking() {
            self.write_waits_for_handshake = false;
        }
        self.push()
    }
}

impl<S: Transport> Transport for TlsTransport<S> {
    fn shutdown_write(&mut self) -> io::Result<()> {
        if self.write_side == WriteSide::Open {
            self.write_side = WriteSide::Shutting;
        }
        self.push_what_fits()
    }

    fn wants_write(&self) -> bool {
        self.sent < self.outgoing.len()
            || self.write_side == WriteSide::Notified
            || (self.write_waits_for_handshake && !self.session.is_handshaking())
    }

    fn is_closed_by_peer(&mut self) -> bool {
        self.io.is_closed_by_peer()
    }
}

#[cfg(test)]
mod tests;
