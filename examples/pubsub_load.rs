//! One load, two protocols: the shape of `a-chat bench`'s flat-out run, driven the same way
//! against a-chat and against Redis pub/sub, so that `benches/syscalls.sh` counts what each
//! server does for the same deliveries under the same generator. CONNS connections log in (a-chat:
//! a name, then a message to itself, awaited; Redis: `HELLO 3` and `SUBSCRIBE` to a channel of
//! their own, awaited); then each of the first SENDERS sends MESSAGES messages of BYTES bytes,
//! each to one random other connection (K=1), every message of every sender built before the
//! first is written and written as fast as its socket takes it. It ends when every message was
//! delivered (and, for Redis, every `PUBLISH` answered), and prints one JSON object with the
//! deliveries of the load phase and the seconds it took.
//!
//! ```text
//! cargo run --release --example pubsub_load -- chat|redis ADDR CONNS SENDERS MESSAGES BYTES
//! ```
//!
//! The generator does as little as it can per message (no time stamps, no order checks: that is
//! `a-chat bench`'s work), so that the server, not the generator, sets the pace.

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

/// Which server the load speaks to.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Protocol {
    /// a-chat's line protocol.
    Chat,
    /// Redis pub/sub over RESP3.
    Redis,
}

/// One connection: what it still has to send, what it received and not yet parsed.
struct Conn {
    stream: TcpStream,
    out: Vec<u8>,
    sent: usize,
    input: Vec<u8>,
    logged_in: bool,
}

/// What the replies received so far add up to.
#[derive(Default)]
struct Counts {
    logged_in: usize,
    delivered: u64,
    answered: u64,
}

/// The bytes that log connection `i` in: its login is over when its answer comes back.
fn login(protocol: Protocol, i: usize, out: &mut Vec<u8>) {
    match protocol {
        Protocol::Chat => out.extend_from_slice(format!("c{i}\nc{i}: in\n").as_bytes()),
        Protocol::Redis => {
            command(out, &[b"HELLO", b"3"]);
            command(out, &[b"SUBSCRIBE", format!("c{i}").as_bytes()]);
        }
    }
}

/// Appends one message to connection `to`.
fn message(protocol: Protocol, to: usize, payload: &[u8], out: &mut Vec<u8>) {
    match protocol {
        Protocol::Chat => {
            out.extend_from_slice(format!("c{to}: ").as_bytes());
            out.extend_from_slice(payload);
            out.push(b'\n');
        }
        Protocol::Redis => command(out, &[b"PUBLISH", format!("c{to}").as_bytes(), payload]),
    }
}

fn command(out: &mut Vec<u8>, args: &[&[u8]]) {
    out.extend_from_slice(format!("*{}\r\n", args.len()).as_bytes());
    for arg in args {
        out.extend_from_slice(format!("${}\r\n", arg.len()).as_bytes());
        out.extend_from_slice(arg);
        out.extend_from_slice(b"\r\n");
    }
}

/// Counts the complete replies at the head of `conn.input` and drops them.
fn parse(protocol: Protocol, conn: &mut Conn, counts: &mut Counts) -> io::Result<()> {
    match protocol {
        Protocol::Chat => parse_lines(conn, counts),
        Protocol::Redis => parse_frames(conn, counts),
    }
}

/// a-chat: the first line a connection gets is its own login message, every later one a
/// delivery; an `error:` notice ends the run.
fn parse_lines(conn: &mut Conn, counts: &mut Counts) -> io::Result<()> {
    let mut at = 0;
    while let Some(end) = conn.input[at..].iter().position(|&b| b == b'\n') {
        let line = &conn.input[at..at + end];
        at += end + 1;
        if line.starts_with(b"error:") {
            let text = String::from_utf8_lossy(line);
            return Err(io::Error::other(format!("the server answered {text}")));
        }
        if conn.logged_in {
            counts.delivered += 1;
        } else {
            conn.logged_in = true;
            counts.logged_in += 1;
        }
    }
    conn.input.drain(..at);
    Ok(())
}

/// Redis: pushes of kind `subscribe` end a login, of kind `message` are deliveries; numbers
/// answer `PUBLISH`; an error ends the run.
fn parse_frames(conn: &mut Conn, counts: &mut Counts) -> io::Result<()> {
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
                    b"subscribe" if !conn.logged_in => {
                        conn.logged_in = true;
                        counts.logged_in += 1;
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
fn pump(
    protocol: Protocol,
    conn: &mut Conn,
    counts: &mut Counts,
    buf: &mut [u8],
) -> io::Result<()> {
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
            Ok(0) => return Err(io::Error::other("the server closed a connection")),
            Ok(n) => conn.input.extend_from_slice(&buf[..n]),
            Err(e) if would_block(&e) => break,
            Err(e) if interrupted(&e) => {}
            Err(e) => return Err(e),
        }
    }
    parse(protocol, conn, counts)
}

struct Run {
    protocol: Protocol,
    addr: SocketAddr,
    conns: usize,
    senders: usize,
    messages: u64,
    bytes: usize,
}

fn run(run: &Run) -> io::Result<()> {
    let Run {
        protocol,
        addr,
        conns,
        senders,
        messages,
        bytes,
    } = *run;
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
    while counts.logged_in < conns {
        while all.len() < conns && all.len() - counts.logged_in < RAMP {
            let i = all.len();
            let mut stream = TcpStream::connect(addr)?;
            poll.registry().register(
                &mut stream,
                Token(i),
                Interest::READABLE | Interest::WRITABLE,
            )?;
            let mut out = Vec::new();
            login(protocol, i, &mut out);
            all.push(Conn {
                stream,
                out,
                sent: 0,
                input: Vec::new(),
                logged_in: false,
            });
        }
        wait(&mut poll, &mut events)?;
        for event in &events {
            pump(protocol, &mut all[event.token().0], &mut counts, &mut buf)?;
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
            message(protocol, to, &payload, &mut conn.out);
        }
    }
    let sending = Instant::now();
    let expected = messages * senders as u64;
    let answers = if protocol == Protocol::Redis {
        expected
    } else {
        0
    };
    for conn in all.iter_mut().take(senders) {
        pump(protocol, conn, &mut counts, &mut buf)?;
    }
    while counts.delivered < expected || counts.answered < answers {
        wait(&mut poll, &mut events)?;
        for event in &events {
            pump(protocol, &mut all[event.token().0], &mut counts, &mut buf)?;
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
    let parsed = (|| -> Option<Run> {
        let [protocol, addr, conns, senders, messages, bytes] = args.as_slice() else {
            return None;
        };
        let conns = conns.parse().ok().filter(|&c: &usize| c >= 2)?;
        Some(Run {
            protocol: match protocol.as_str() {
                "chat" => Protocol::Chat,
                "redis" => Protocol::Redis,
                _ => return None,
            },
            addr: addr.parse().ok()?,
            conns,
            senders: senders.parse::<usize>().ok()?.min(conns),
            messages: messages.parse().ok()?,
            bytes: bytes.parse().ok()?,
        })
    })();
    let Some(load) = parsed else {
        eprintln!("usage: pubsub_load chat|redis ADDR CONNS(>=2) SENDERS MESSAGES BYTES");
        return ExitCode::from(2);
    };
    match run(&load) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("pubsub_load: {e}");
            ExitCode::FAILURE
        }
    }
}
