//! The line client: standard input to the server, the server's lines to standard output, over
//! plain TCP or TLS, on one `mio` loop (standard input is read by a thread that hands lines
//! over through a channel and a `Waker`).

use std::io::{self, BufRead, Read, Write};
use std::net::ToSocketAddrs;
use std::process::ExitCode;
use std::sync::{Arc, mpsc};
use std::thread;

use mio::net::TcpStream;
use mio::{Events, Interest, Poll, Token, Waker};

use crate::cli::ClientArgs;
use crate::stream::{ClientStream, TlsTarget};
use crate::tls_client::{client_config, server_name};
use a_chat::io_errors::{interrupted, would_block};

const SOCKET: Token = Token(0);
const STDIN: Token = Token(1);

/// The notices after which the server closes the connection: the session failed.
const CLOSING_NOTICES: [&str; 5] = [
    "error: invalid name",
    "error: name taken",
    "error: line too long",
    "error: server full",
    "error: cluster unavailable",
];

/// Connects to the server, sends each line of standard input, and prints every line the server
/// sends. At the end of its input it half-closes (after `close_notify` over TLS) and keeps
/// printing until the server closes the connection. Returns success then, or failure (1, with
/// a sentence on standard error) when the server closed the session on a closing notice
/// (`error: name taken`, ...), or without ever saying a word to a client that sent lines and
/// had not finished, or spoke TLS to a plain client (a TLS port answers a plain client's
/// first line with an alert), or closed in the middle of the TLS handshake.
pub fn run(args: &ClientArgs) -> io::Result<ExitCode> {
    let tls = match args.tls.speaks_tls(false)? {
        true => Some(TlsTarget {
            config: client_config(args.tls.ca.as_deref())?,
            name: server_name(&args.addr)?,
        }),
        false => None,
    };
    let addr = args
        .addr
        .to_socket_addrs()?
        .next()
        .ok_or_else(|| io::Error::other(format!("{} resolves to no address", args.addr)))?;
    let connected = std::net::TcpStream::connect(addr)?;
    connected.set_nonblocking(true)?;
    connected.set_nodelay(true)?;
    let mut stream = ClientStream::new(TcpStream::from_std(connected), tls.as_ref())?;
    let mut poll = Poll::new()?;
    let interest = Interest::READABLE | Interest::WRITABLE;
    poll.registry()
        .register(stream.socket(), SOCKET, interest)?;
    // Kept here as long as the loop runs: a waker dropped with the thread that used it would
    // take its pending wake-ups with it.
    let waker = Arc::new(Waker::new(poll.registry(), STDIN)?);
    let lines = read_stdin_in_a_thread(waker.clone());
    let mut client = Client {
        stream,
        out: Vec::new(),
        input_done: false,
        write_shut: false,
        writable: true,
        received: 0,
        sent: 0,
        last_line: Vec::new(),
        line_complete: false,
    };
    let mut stdout = io::stdout().lock();
    let mut events = Events::with_capacity(16);
    loop {
        match poll.poll(&mut events, None) {
            Err(e) if interrupted(&e) => continue,
            other => other?,
        }
        for event in events.iter() {
            if event.token() == STDIN {
                for line in lines.try_iter() {
                    match line {
                        Some(line) => client.out.extend_from_slice(&line),
                        None => client.input_done = true,
                    }
                }
            } else if let Some(end) = client.print_what_arrived(&mut stdout)? {
                return Ok(end.report());
            }
        }
        client.flush()?;
        client.sync_interest(poll.registry())?;
    }
}

/// Lines of standard input, each with its `\n`, then `None` at its end.
fn read_stdin_in_a_thread(waker: Arc<Waker>) -> mpsc::Receiver<Option<Vec<u8>>> {
    let (tx, rx) = mpsc::channel();
    // Not joined: a server that closes first ends the client even while standard input stays
    // open.
    thread::spawn(move || {
        for line in io::stdin().lock().split(b'\n') {
            let Ok(mut line) = line else { break };
            line.push(b'\n');
            if tx.send(Some(line)).is_err() || waker.wake().is_err() {
                return;
            }
        }
        let _ = tx.send(None);
        let _ = waker.wake();
    });
    rx
}

/// The connection and what waits to be written to it.
struct Client {
    stream: ClientStream,
    /// Bytes of standard input not written yet.
    out: Vec<u8>,
    /// Standard input ended: the write side is shut once everything is out.
    input_done: bool,
    write_shut: bool,
    /// Whether `WRITABLE` is registered.
    writable: bool,
    /// Bytes received from the server, and sent to it.
    received: u64,
    sent: u64,
    /// The last complete line the server sent (without `\n`), then the beginning of the next.
    last_line: Vec<u8>,
    /// Whether `last_line` is complete.
    line_complete: bool,
}

/// How the server ended the session.
#[derive(Debug, Clone, PartialEq, Eq)]
enum End {
    /// It closed after the client's input ended, or after lines of the chat: the normal end.
    Normal,
    /// It closed right after a notice that closes the connection.
    Refused(String),
    /// It closed without ever sending anything while the client's input was still open,
    /// though the client sent it lines.
    Silent,
    /// It answered a plain client with TLS records.
    SpeaksTls,
    /// It closed in the middle of the TLS handshake.
    ClosedInHandshake,
}

impl End {
    /// The exit status, with the reason on standard error when it is a failure.
    fn report(&self) -> ExitCode {
        let reason = match self {
            End::Normal => return ExitCode::SUCCESS,
            End::Refused(notice) => format!("the server closed the connection after `{notice}`"),
            End::Silent => "the server closed the connection without a word; is it a TLS \
                            port? try --tls"
                .into(),
            End::SpeaksTls => "the server answered in TLS; try --tls".into(),
            End::ClosedInHandshake => "the server closed the connection during the TLS \
                                       handshake; is it a TLS port? try without --tls"
                .into(),
        };
        let _ = writeln!(io::stderr().lock(), "a-chat: error: {reason}");
        ExitCode::from(1)
    }
}

impl Client {
    fn wants_write(&self) -> bool {
        !self.out.is_empty() || self.stream.wants_write()
    }

    /// Writes what the socket takes; once the input ended and all is out, shuts the write side.
    fn flush(&mut self) -> io::Result<()> {
        while !self.out.is_empty() {
            match self.stream.write(&self.out) {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(n) => {
                    self.out.drain(..n);
                    self.sent += u64::try_from(n).unwrap_or(u64::MAX);
                }
                Err(e) if would_block(&e) => return Ok(()),
                Err(e) if interrupted(&e) => {}
                Err(e) => return Err(e),
            }
        }
        match self.stream.flush() {
            Err(e) if would_block(&e) => return Ok(()),
            other => other?,
        }
        if self.input_done && !self.write_shut {
            self.write_shut = true;
            self.stream.shutdown_write()?;
        }
        Ok(())
    }

    /// Prints what arrived, flushing after every read so that each line shows at once;
    /// returns how the session ended once the server closed the connection.
    fn print_what_arrived(&mut self, out: &mut impl Write) -> io::Result<Option<End>> {
        let mut buf = [0; 8192];
        loop {
            match self.stream.read(&mut buf) {
                Ok(0) => {
                    out.flush()?;
                    return Ok(Some(self.end()));
                }
                Ok(n) => {
                    let bytes = &buf[..n];
                    if self.received == 0 && !self.stream.is_tls() && looks_like_tls(bytes) {
                        return Ok(Some(End::SpeaksTls));
                    }
                    self.received += u64::try_from(n).unwrap_or(u64::MAX);
                    self.note_lines(bytes);
                    out.write_all(bytes)?;
                    out.flush()?;
                }
                Err(e) if would_block(&e) => return Ok(None),
                Err(e) if interrupted(&e) => {}
                Err(e) => return Err(e),
            }
        }
    }

    /// Keeps the last line the server sent.
    fn note_lines(&mut self, bytes: &[u8]) {
        for piece in bytes.split_inclusive(|&b| b == b'\n') {
            if self.line_complete {
                self.last_line.clear();
            }
            let (text, complete) = match piece.strip_suffix(b"\n") {
                Some(text) => (text, true),
                None => (piece, false),
            };
            // A notice is short: only the beginning of a long line is kept.
            let room = 64usize.saturating_sub(self.last_line.len());
            self.last_line
                .extend_from_slice(&text[..text.len().min(room)]);
            self.line_complete = complete;
        }
    }

    /// How the session ended, the server having closed the connection.
    fn end(&self) -> End {
        if self.stream.is_handshaking() {
            return End::ClosedInHandshake;
        }
        if self.line_complete
            && let Some(notice) = CLOSING_NOTICES
                .iter()
                .find(|notice| self.last_line == notice.as_bytes())
        {
            return End::Refused((*notice).to_string());
        }
        if self.received == 0 && self.sent > 0 && !self.write_shut {
            return End::Silent;
        }
        End::Normal
    }

    /// Writability is asked for exactly while bytes wait.
    fn sync_interest(&mut self, registry: &mio::Registry) -> io::Result<()> {
        let wanted = self.wants_write();
        if wanted != self.writable {
            let interest = if wanted {
                Interest::READABLE | Interest::WRITABLE
            } else {
                Interest::READABLE
            };
            registry.reregister(self.stream.socket(), SOCKET, interest)?;
            self.writable = wanted;
        }
        Ok(())
    }
}

/// Whether the first bytes from a server look like a TLS record (an alert or a handshake
/// message of TLS 1.x), which no line of the chat begins with.
fn looks_like_tls(bytes: &[u8]) -> bool {
    matches!(bytes, [0x15 | 0x16, 0x03, ..])
}

#[cfg(test)]
mod tests {
    use super::looks_like_tls;

    #[test]
    fn tls_records_are_told_from_lines() {
        assert!(looks_like_tls(&[0x15, 0x03, 0x03, 0x00, 0x02, 0x02, 0x32]));
        assert!(looks_like_tls(&[0x16, 0x03, 0x01]));
        assert!(!looks_like_tls(b"error: name taken\n"));
        assert!(!looks_like_tls(b"from alice: hi\n"));
        assert!(!looks_like_tls(&[0x15]));
    }
}
