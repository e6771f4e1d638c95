//! The line client: standard input to the server, the server's lines to standard output, over
//! plain TCP or TLS, on one `mio` loop (standard input is read by a thread that hands lines
//! over through a channel and a `Waker`).

use std::io::{self, BufRead, Read, Write};
use std::net::ToSocketAddrs;
use std::sync::{Arc, mpsc};
use std::thread;

use mio::net::TcpStream;
use mio::{Events, Interest, Poll, Token, Waker};

use crate::cli::ClientArgs;
use crate::stream::{ClientStream, TlsTarget};
use crate::tls_client::{client_config, server_name};

const SOCKET: Token = Token(0);
const STDIN: Token = Token(1);

/// Connects to the server, sends each line of standard input, and prints every line the server
/// sends. At the end of its input it half-closes (after `close_notify` over TLS) and keeps
/// printing; it returns `Ok` once the server closes the connection.
pub fn run(args: &ClientArgs) -> io::Result<()> {
    let tls = match args.tls.tls {
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
    };
    let mut stdout = io::stdout().lock();
    let mut events = Events::with_capacity(16);
    loop {
        match poll.poll(&mut events, None) {
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
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
            } else if client.print_what_arrived(&mut stdout)? {
                return Ok(());
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
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(()),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        match self.stream.flush() {
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(()),
            other => other?,
        }
        if self.input_done && !self.write_shut {
            self.write_shut = true;
            self.stream.shutdown_write()?;
        }
        Ok(())
    }

    /// Prints what arrived, flushing after every read so that each line shows at once;
    /// returns whether the server closed the connection.
    fn print_what_arrived(&mut self, out: &mut impl Write) -> io::Result<bool> {
        let mut buf = [0; 8192];
        loop {
            match self.stream.read(&mut buf) {
                Ok(0) => {
                    out.flush()?;
                    return Ok(true);
                }
                Ok(n) => {
                    out.write_all(&buf[..n])?;
                    out.flush()?;
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(false),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
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
