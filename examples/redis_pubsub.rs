//! The shape of `a-chat bench`'s flat-out run, over Redis pub/sub: so that `benches/syscalls.sh`
//! can count what Redis does for the same deliveries. CONNS connections each subscribe to a
//! channel of their own (RESP3, so a subscribed connection may still publish); then each of the
//! first SENDERS publishes MESSAGES messages of BYTES bytes, each to the channel of one random
//! other connection (K=1), as fast as its socket takes them. It ends when every message was
//! delivered and every `PUBLISH` answered, and prints one JSON object with the deliveries and
//! the seconds the sending took.
//!
//! ```text
//! cargo run --release --example redis_pubsub -- ADDR CONNS SENDERS MESSAGES BYTES
//! ```

use std::io::{self, Read, Write};
use std::net::SocketAddr;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use a_chat::io_errors::{interrupted, would_block};
use mio::net::TcpStream;
use mio::{Events, Interest, Poll, Token};
use redis_protocol::resp3::decode::complete::decode_range;
use redis_protocol::resp3::types::RangeFrame;

/// How long the whole run may take before it gives up.
const TIMEOUT: Duration = Duration::from_secs(120);
/// Connections opened at a time, as `a-chat bench --ramp` does.
const RAMP: usize = 64;

/// One connection: what it still has to send, what it received and not yet parsed.
struct Conn {
    stream: TcpStream,
    out: Vec<u8>,
    sent: usize,
    input: Vec<u8>,
    subscribed: bool,
}

/// What the frames received so far add up to.
#[derive(Default)]
struct Counts {
    subscribed: usize,
    delivered: u64,
    answered: u64,
}

fn command(out: &mut Vec<u8>, args: &[&[u8]]) {
    out.extend_from_slice(format!("*{}\r\n", args.len()).as_bytes());
    for arg in args {
        out.extend_from_slice(format!("${}\r\n", arg.len()).as_bytes());
        out.extend_from_slice(arg);
        out.extend_from_slice(b"\r\n");
    }
}

/// Parses the complete frames at the head of `conn.input` and counts them.
fn parse(conn: &mut Conn, counts: &mut Counts) -> io::Result<()> {
    let mut at = 0;
    loop {
        let found = decode_range(&conn.input[at..])
            .map_err(|e| io::Error::other(format!("a reply that does not parse: {e}")))?;
        let Some((frame, used)) = found else { break };
        let base = at;
        at += used;
        match frame {
            RangeFrame::Push { data, .. } => {
                let kind = match data.first() {
                    Some(RangeFrame::BlobString { data, .. }) => {
                        &conn.input[base + data.0..base + data.1]
                    }
                    _ => b"",
                };
                match kind {
                    b"message" => counts.delivered += 1,
                    b"subscribe" if !conn.subscribed => {
                        conn.subscribed = true;
                        counts.subscribed += 1;
                    }
                    _ => {}
                }
            }
            RangeFrame::Number { .. } => counts.answered += 1,
            RangeFrame::SimpleError { data, .. } | RangeFrame::BlobError { data, .. } => {
                let text = String::from_utf8_lossy(&conn.input[base + data.0..base + data.1]);
                return Err(io::Error::other(format!("Redis answered an error: {text}")));
            }
            _ => {}
        }
    }
    conn.input.drain(..at);
    Ok(())
}

/// Writes what `conn` still has to send, then reads everything that arrived.
fn pump(conn: &mut Conn, counts: &mut Counts, buf: &mut [u8]) -> io::Result<()> {
    while conn.sent < conn.out.len() {
        match conn.stream.write(&conn.out[conn.sent..]) {
            Ok(n) => conn.sent += n,
            Err(e) if would_block(&e) => break,
            Err(e) if interrupted(&e) => {}
            Err(e) => return Err(e),
        }
    }
    loop {
        match conn.stream.read(buf) {
            Ok(0) => return Err(io::Error::other("Redis closed a connection")),
            Ok(n) => conn.input.extend_from_slice(&buf[..n]),
            Err(e) if would_block(&e) => break,
            Err(e) if interrupted(&e) => {}
            Err(e) => return Err(e),
        }
    }
    parse(conn, counts)
}

fn run(
    addr: SocketAddr,
    conns: usize,
    senders: usize,
    messages: u64,
    bytes: usize,
) -> io::Result<()> {
    let start = Instant::now();
    let mut poll = Poll::new()?;
    let mut events = Events::with_capacity(1024);
    let mut buf = vec![0; 64 * 1024];
    let mut counts = Counts::default();
    let mut all: Vec<Conn> = Vec::with_capacity(conns);
    let wait = |poll: &mut Poll, events: &mut Events| -> io::Result<()> {
        if start.elapsed() > TIMEOUT {
            return Err(io::Error::new(
                io::ErrorKind::TimedOut,
                "the run took too long",
            ));
        }
        match poll.poll(events, Some(Duration::from_millis(100))) {
            Err(e) if !interrupted(&e) => Err(e),
            _ => Ok(()),
        }
    };
    while counts.subscribed < conns {
        while all.len() < conns && all.len() - counts.subscribed < RAMP {
            let i = all.len();
            let mut stream = TcpStream::connect(addr)?;
            poll.registry().register(
                &mut stream,
                Token(i),
                Interest::READABLE | Interest::WRITABLE,
            )?;
            let mut out = Vec::new();
            command(&mut out, &[b"HELLO", b"3"]);
            command(&mut out, &[b"SUBSCRIBE", format!("c{i}").as_bytes()]);
            all.push(Conn {
                stream,
                out,
                sent: 0,
                input: Vec::new(),
                subscribed: false,
            });
        }
        wait(&mut poll, &mut events)?;
        for event in &events {
            pump(&mut all[event.token().0], &mut counts, &mut buf)?;
        }
    }
    let payload = vec![b'x'; bytes];
    let mut seed: u64 = 0x9e37_79b9_7f4a_7c15;
    for (i, conn) in all.iter_mut().enumerate().take(senders) {
        conn.out.clear();
        conn.sent = 0;
        for _ in 0..messages {
            // xorshift: a receiver other than the sender.
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            let pick = usize::try_from(seed % (conns as u64 - 1)).unwrap_or(0);
            let to = if pick >= i { pick + 1 } else { pick };
            command(
                &mut conn.out,
                &[b"PUBLISH", format!("c{to}").as_bytes(), &payload],
            );
        }
    }
    let sending = Instant::now();
    let expected = messages * senders as u64;
    for conn in all.iter_mut().take(senders) {
        pump(conn, &mut counts, &mut buf)?;
    }
    while counts.delivered < expected || counts.answered < expected {
        wait(&mut poll, &mut events)?;
        for event in &events {
            pump(&mut all[event.token().0], &mut counts, &mut buf)?;
        }
    }
    println!(
        "{{\"delivered\":{},\"secs\":{:.6}}}",
        counts.delivered,
        sending.elapsed().as_secs_f64()
    );
    Ok(())
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let parsed = (|| -> Option<(SocketAddr, usize, usize, u64, usize)> {
        let [addr, conns, senders, messages, bytes] = args.as_slice() else {
            return None;
        };
        Some((
            addr.parse().ok()?,
            conns.parse().ok().filter(|&c| c >= 2)?,
            senders.parse().ok()?,
            messages.parse().ok()?,
            bytes.parse().ok()?,
        ))
    })();
    let Some((addr, conns, senders, messages, bytes)) = parsed else {
        eprintln!("usage: redis_pubsub ADDR CONNS(>=2) SENDERS MESSAGES BYTES");
        return ExitCode::from(2);
    };
    match run(addr, conns, senders.min(conns), messages, bytes) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("redis_pubsub: {e}");
            ExitCode::FAILURE
        }
    }
}
