//! The fuzzers' checks, shared by the cargo-fuzz targets (`fuzz/fuzz_targets/*.rs`), the
//! corpus replay test (`tests/fuzz_corpus.rs`) and the property tests: each takes raw bytes,
//! derives its inputs from them, runs the code under test and panics on a broken invariant.
#![allow(dead_code)]

use std::collections::HashMap;
use std::io::{Read, Write};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use a_chat::Config;
use a_chat::core::framer::{LineFramer, LineTooLong};
use a_chat::core::parse::{
    LineError, MAX_NAME_LEN, is_forbidden_in_name, parse_message, parse_name,
};
use a_chat::sim::{MemoryServer, MemoryTransport, XorShift};
use a_chat::tls::{TlsTransport, rustls};

/// Reads input bytes as a stream of small numbers; zeros once exhausted.
pub struct Bytes<'a> {
    data: &'a [u8],
}

impl<'a> Bytes<'a> {
    pub fn new(data: &'a [u8]) -> Self {
        Bytes { data }
    }

    pub fn is_empty(&self) -> bool {
        self.data.is_empty()
    }

    pub fn byte(&mut self) -> u8 {
        let Some((&first, rest)) = self.data.split_first() else {
            return 0;
        };
        self.data = rest;
        first
    }

    /// A number below `n` (n > 0).
    pub fn below(&mut self, n: usize) -> usize {
        usize::from(self.byte()) % n
    }

    pub fn take(&mut self, n: usize) -> &'a [u8] {
        let (head, rest) = self.data.split_at(n.min(self.data.len()));
        self.data = rest;
        head
    }

    pub fn rest(&mut self) -> &'a [u8] {
        std::mem::take(&mut self.data)
    }
}

// ---------------------------------------------------------------------------------------------
// framer

/// `data[0]` is the max line (0..=63), `data[1]` seeds the chunk sizes, the rest is the stream.
pub fn framer(data: &[u8]) {
    let mut bytes = Bytes::new(data);
    let max_line = bytes.below(64);
    // Chunk sizes 1..=17 derived from the input, not from a clock.
    let mut rng = XorShift::new(u64::from(bytes.byte()));
    let input = bytes.rest();
    let mut cuts = Vec::new();
    let mut at = 0;
    while at < input.len() {
        at += 1 + rng.index(17);
        cuts.push(at.min(input.len()));
    }
    framer_chunks(input, &cuts, max_line);
}

/// Feeds `input` cut at `cuts` (increasing offsets) and compares with [`reference_lines`].
pub fn framer_chunks(input: &[u8], cuts: &[usize], max_line: usize) {
    let mut framer = LineFramer::new();
    let mut lines: Vec<Vec<u8>> = Vec::new();
    let mut result = Ok(());
    let mut start = 0;
    for &end in cuts.iter().chain(std::iter::once(&input.len())) {
        let end = end.clamp(start, input.len());
        result = framer.feed(&input[start..end], max_line, |line| {
            assert!(line.len() <= max_line, "line over max_line");
            lines.push(line.to_vec());
        });
        assert!(
            framer.buffered() <= max_line + 1,
            "framer holds more than its bound"
        );
        start = end;
        if result.is_err() {
            assert_eq!(framer.buffered(), 0);
            break;
        }
    }
    let (expected, expected_result) = reference_lines(input, max_line);
    assert_eq!(lines, expected, "lines differ from the reference splitter");
    assert_eq!(
        result, expected_result,
        "verdict differs from the reference splitter"
    );
}

/// The simple splitter the framer must agree with: split the whole input at `\n`, drop one
/// `\r` before each `\n`; the first complete line over `max_line`, or an unfinished tail that
/// can no longer be a good line, is `LineTooLong`.
pub fn reference_lines(input: &[u8], max_line: usize) -> (Vec<Vec<u8>>, Result<(), LineTooLong>) {
    let mut lines = Vec::new();
    let mut segments = input.split(|&b| b == b'\n').peekable();
    while let Some(segment) = segments.next() {
        if segments.peek().is_none() {
            // The unfinished tail: it may still end well if it fits with a `\r`.
            let hopeless = segment.len() > max_line + 1
                || (segment.len() == max_line + 1 && segment.last() != Some(&b'\r'));
            return (lines, if hopeless { Err(LineTooLong) } else { Ok(()) });
        }
        let line = segment.strip_suffix(b"\r").unwrap_or(segment);
        if line.len() > max_line {
            return (lines, Err(LineTooLong));
        }
        lines.push(line.to_vec());
    }
    (lines, Ok(()))
}

// ---------------------------------------------------------------------------------------------
// parse

/// One line through name validation and message parsing, checked against the contract.
pub fn parse(line: &[u8]) {
    let text = std::str::from_utf8(line);
    match parse_name(line) {
        Ok(name) => {
            assert!((1..=MAX_NAME_LEN).contains(&name.len()));
            assert_eq!(name, name.trim_ascii());
            assert!(!name.contains([',', ':']));
            assert!(!name.chars().any(char::is_control));
            assert!(!name.chars().any(is_forbidden_in_name));
            assert_eq!(Some(name), text.ok().map(str::trim_ascii));
        }
        Err(LineError::InvalidUtf8) => assert!(text.is_err()),
        Err(LineError::InvalidName) => {
            let name = text.expect("InvalidName only for UTF-8").trim_ascii();
            assert!(
                name.is_empty()
                    || name.len() > MAX_NAME_LEN
                    || name.contains([',', ':'])
                    || name.chars().any(is_forbidden_in_name),
                "valid name {name:?} refused"
            );
        }
        Err(other) => panic!("parse_name gave {other:?}"),
    }
    match parse_message(line) {
        Ok(None) => assert!(text.unwrap().trim_ascii().is_empty()),
        Ok(Some(message)) => {
            let text_str = text.unwrap();
            let colon = text_str.find(':').expect("a message has a colon");
            assert_eq!(message.text, text_str[colon + 1..].trim_ascii());
            for dest in message.destinations() {
                assert!(!dest.is_empty());
                assert_eq!(dest, dest.trim_ascii());
                assert!(!dest.contains([',', ':']));
                assert!(text_str[..colon].contains(dest));
            }
        }
        Err(LineError::InvalidUtf8) => assert!(text.is_err()),
        Err(LineError::ExpectedDestMessage) => {
            let text = text.unwrap();
            assert!(!text.trim_ascii().is_empty() && !text.contains(':'));
        }
        Err(other) => panic!("parse_message gave {other:?}"),
    }
}

// ---------------------------------------------------------------------------------------------
// session

/// Login lines a script may send: good names, a padded one, and invalid ones.
const NAMES: [&str; 8] = [
    "a",
    "b",
    "c",
    "d",
    "  a ",
    "x:y",
    "",
    "eeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeee",
];
/// Destinations a message may name: the good names and two nobody can hold.
const DESTS: [&str; 6] = ["a", "b", "c", "d", "ghost", " b "];
const WINDOWS: [usize; 4] = [0, 16, 1000, usize::MAX];

/// One step of a session script.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Op {
    Connect,
    Message,
    Garbage,
    Window,
    Read,
    Turn,
    Advance,
    HalfClose,
    Reset,
    Shutdown,
}

/// Decodes an op byte; the common steps are likely and the disruptive ones rare, so that a
/// random script chats for a while before something ends it.
fn op(byte: u8) -> Op {
    match byte {
        0..=24 => Op::Connect,
        25..=129 => Op::Message,
        130..=144 => Op::Garbage,
        145..=164 => Op::Window,
        165..=189 => Op::Read,
        190..=239 => Op::Turn,
        240..=245 => Op::Advance,
        246..=249 => Op::HalfClose,
        250..=252 => Op::Reset,
        253..=255 => Op::Shutdown,
    }
}

/// What the script did on one virtual connection.
struct Conn {
    id: u64,
    /// The login line it sent, trimmed.
    name: String,
    /// How many messages it sent (`#CONN.SEQ` carries the count).
    sent: u32,
    /// For each message sequence number, the destinations it named (trimmed, deduplicated).
    dests: Vec<Vec<String>>,
}

/// An arbitrary script of operations over a handful of virtual connections, driven straight
/// into the core ([`MemoryServer`]). Messages carry `#CONN.SEQ`; checks, at the end:
/// - every line sent is `error: ...` or `from ...`, UTF-8, ending in `\n`;
/// - a message `#c.s` arrives only `from` the name connection `c` logged in with, and never
///   from a connection whose login was refused;
/// - per sender and receiver, sequence numbers strictly increase (order, no duplicates);
/// - between the first and last message a receiver got from a sender, it got every message
///   that sender addressed to it (no loss while both were connected);
/// - after every step, the queues together hold no more than `max_memory`, and that count is
///   the true one, recomputed from scratch as the allocator gives it (each buffer once, every
///   queue's slots by its deque's capacity); no open connection's queue costs more than
///   `max_queue` (its buffers in full, shared or not, and its slots).
pub fn session(data: &[u8]) -> a_chat::Stats {
    let mut bytes = Bytes::new(data);
    let config = Config {
        max_line: 64,
        // A queue costs what it holds as allocated: a message of this check (about 16 bytes)
        // takes a 48-byte chunk and a 16-byte slot, so a queue holds a dozen or so.
        max_queue: 1024,
        max_conns: 6,
        // Below what the queues may hold one by one: the global bound evicts too.
        max_memory: 1600,
        ..Config::default()
    };
    let mut server = MemoryServer::new(config.clone());
    let mut conns: Vec<Conn> = Vec::new();
    for _ in 0..400 {
        check_queue_memory(&server, &config);
        if bytes.is_empty() {
            break;
        }
        match op(bytes.byte()) {
            Op::Connect if conns.len() < 8 => {
                let name = NAMES[bytes.below(NAMES.len())];
                let transport = MemoryTransport {
                    read_chunk: [1, 3, 64, usize::MAX][bytes.below(4)],
                    write_window: WINDOWS[bytes.below(WINDOWS.len())],
                    ..MemoryTransport::default()
                };
                let id = server.connect_with(transport);
                server.send(id, format!("{name}\n").as_bytes());
                conns.push(Conn {
                    id,
                    name: name.trim_ascii().to_string(),
                    sent: 0,
                    dests: Vec::new(),
                });
            }
            Op::Message if !conns.is_empty() => {
                let c = bytes.below(conns.len());
                let count = 1 + bytes.below(3);
                let named: Vec<&str> = (0..count)
                    .map(|_| DESTS[bytes.below(DESTS.len())])
                    .collect();
                let conn = &mut conns[c];
                let line = format!("{}: #{c}.{}\n", named.join(","), conn.sent);
                let mut distinct: Vec<String> = Vec::new();
                for dest in &named {
                    let dest = dest.trim_ascii().to_string();
                    if !distinct.contains(&dest) {
                        distinct.push(dest);
                    }
                }
                conn.dests.push(distinct);
                conn.sent += 1;
                let id = conn.id;
                server.send(id, line.as_bytes());
            }
            Op::Garbage if !conns.is_empty() => {
                // Garbage: any bytes but the message marker, ended by a newline.
                let c = bytes.below(conns.len());
                let len = bytes.below(80);
                let mut garbage: Vec<u8> = bytes
                    .take(len)
                    .iter()
                    .copied()
                    .filter(|&b| b != b'#')
                    .collect();
                garbage.push(b'\n');
                let id = conns[c].id;
                server.send(id, &garbage);
            }
            Op::Window if !conns.is_empty() => {
                let c = bytes.below(conns.len());
                let window = WINDOWS[bytes.below(WINDOWS.len())];
                server.transport(conns[c].id).write_window = window;
            }
            Op::Turn => server.turn(),
            Op::Advance => server.advance(Duration::from_millis(250 * bytes.below(48) as u64)),
            Op::HalfClose if !conns.is_empty() => {
                let c = bytes.below(conns.len());
                server.transport(conns[c].id).input_closed = true;
            }
            Op::Reset if !conns.is_empty() => {
                let c = bytes.below(conns.len());
                server.transport(conns[c].id).reset = true;
            }
            Op::Shutdown => server.begin_shutdown(),
            Op::Read if !conns.is_empty() => {
                // The peer reads: a window for what is queued.
                let c = bytes.below(conns.len());
                let transport = server.transport(conns[c].id);
                transport.write_window = transport.write_window.saturating_add(64);
            }
            _ => server.turn(),
        }
    }
    // Everyone reads everything that is left.
    for conn in &conns {
        server.transport(conn.id).write_window = usize::MAX;
    }
    server.settle(10_000);
    check_queue_memory(&server, &config);
    check_outputs(&mut server, &conns);
    server.chat.stats()
}

/// The global bound holds, and its count is right: every buffer that some queue holds,
/// counted once, and every queue's slots. Each queue's cost is under `max_queue`.
fn check_queue_memory(server: &MemoryServer, config: &Config) {
    let stats = server.chat.stats();
    assert!(
        stats.queue_memory <= config.max_memory,
        "{} bytes held over the bound",
        stats.queue_memory
    );
    assert_eq!(stats.queue_memory, server.recount_queue_memory());
    let largest = server.largest_queue_cost();
    assert!(largest <= config.max_queue, "a queue costs {largest} bytes");
    assert!(stats.memory_evictions <= stats.slow_consumers_evicted);
}

fn check_outputs(server: &mut MemoryServer, conns: &[Conn]) {
    let outputs: Vec<String> = conns
        .iter()
        .map(|conn| {
            let output = std::mem::take(&mut server.transport(conn.id).output);
            String::from_utf8(output).expect("server output is UTF-8")
        })
        .collect();
    let refused: Vec<bool> = outputs
        .iter()
        .map(|out| {
            out.lines().next().is_some_and(|first| {
                [
                    "error: invalid name",
                    "error: name taken",
                    "error: server full",
                ]
                .contains(&first)
            })
        })
        .collect();
    for (r, output) in outputs.iter().enumerate() {
        // Seqs received from each sender, in arrival order.
        let mut received: HashMap<usize, Vec<u32>> = HashMap::new();
        for line in output.split_inclusive('\n') {
            let Some(line) = line.strip_suffix('\n') else {
                continue; // cut off by a close mid-line
            };
            assert!(
                line.starts_with("error: ") || line.starts_with("from "),
                "unexpected line {line:?}"
            );
            let Some(rest) = line.strip_prefix("from ") else {
                continue;
            };
            let (name, text) = rest.split_once(": ").expect("from NAME: TEXT");
            let Some(marker) = text.strip_prefix('#') else {
                // A garbage line with a `:` is a message too; it has no marker (garbage never
                // holds `#`), but it must still come from a name a connection logged in with.
                let holder = conns
                    .iter()
                    .zip(&refused)
                    .any(|(conn, &refused)| conn.name == name && !refused);
                assert!(holder, "routed from a name nobody held: {line:?}");
                continue;
            };
            let (c, seq) = marker.split_once('.').expect("#CONN.SEQ");
            let (c, seq): (usize, u32) = (c.parse().unwrap(), seq.parse().unwrap());
            assert_eq!(
                name, conns[c].name,
                "message of conn {c} sent from another name"
            );
            assert!(
                !refused[c],
                "conn {c} was refused but its message was routed"
            );
            let seen = received.entry(c).or_default();
            assert!(
                seen.last().is_none_or(|&last| last < seq),
                "order or duplicate: {line:?} after {seen:?}"
            );
            seen.push(seq);
        }
        // No loss between the first and last message from one sender.
        let receiver_name = &conns[r].name;
        for (c, seqs) in received {
            let (first, last) = (seqs[0], *seqs.last().unwrap());
            let expected: Vec<u32> = (first..=last)
                .filter(|&seq| conns[c].dests[seq as usize].contains(receiver_name))
                .collect();
            assert_eq!(seqs, expected, "conn {r} lost messages from conn {c}");
        }
    }
}

// ---------------------------------------------------------------------------------------------
// tls

/// A TLS server configuration with a certificate made once per process, and a client
/// configuration that trusts it.
fn tls_configs() -> &'static (Arc<rustls::ServerConfig>, Arc<rustls::ClientConfig>) {
    static CONFIGS: OnceLock<(Arc<rustls::ServerConfig>, Arc<rustls::ClientConfig>)> =
        OnceLock::new();
    CONFIGS.get_or_init(|| {
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = rcgen::CertificateParams::new(vec!["localhost".to_string()])
            .unwrap()
            .self_signed(&key)
            .unwrap();
        let der = rustls::pki_types::PrivateKeyDer::try_from(key.serialize_der()).unwrap();
        let server = a_chat::tls::server_config(vec![cert.der().clone()], der).unwrap();
        let mut roots = rustls::RootCertStore::empty();
        roots.add(cert.der().clone()).unwrap();
        (server, a_chat::tls::client_config(roots).unwrap())
    })
}

type TlsEnd = TlsTransport<MemoryTransport>;

/// Reads what the server side can read now; `false` once it failed or ended. Only
/// `InvalidData` (a TLS error) and `WouldBlock` may come out of it.
fn tls_read(server: &mut TlsEnd) -> bool {
    let mut buf = [0; 512];
    loop {
        match server.read(&mut buf) {
            Ok(0) => return false,
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return true,
            Err(e) => {
                assert_eq!(e.kind(), std::io::ErrorKind::InvalidData, "{e}");
                return false;
            }
        }
    }
}

/// Bytes as what a client sent the server side of a TLS session, cut into chunks: it never
/// panics, fails only with `InvalidData`, and what it writes back parses as TLS records.
/// `data[0]` picks where the bytes begin: at the first byte of the connection (0), after a
/// real `ClientHello` (1), or after a whole handshake (2); `data[1]` the chunk size.
pub fn tls(data: &[u8]) {
    let (server_config, client_config) = tls_configs();
    let mut bytes = Bytes::new(data);
    let start = bytes.below(3);
    let chunk = 1 + bytes.below(200);
    let mut server =
        TlsTransport::server(server_config.clone(), MemoryTransport::default()).expect("a session");
    if start > 0 {
        let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
        let mut client =
            TlsTransport::client(client_config.clone(), name, MemoryTransport::default())
                .expect("a session");
        let rounds = if start == 1 { 1 } else { 4 };
        for _ in 0..rounds {
            let _ = client.flush();
            let hello = client.get_mut().take_output();
            server.get_mut().send(&hello);
            assert!(tls_read(&mut server), "a real handshake is accepted");
            let _ = server.flush();
            let answer = server.get_mut().take_output();
            client.get_mut().send(&answer);
            let _ = client.read(&mut [0; 64]);
        }
        if start == 2 {
            assert!(!server.is_handshaking(), "the handshake completed");
        }
    }
    let mut alive = true;
    for piece in bytes.rest().chunks(chunk) {
        server.get_mut().send(piece);
        alive = tls_read(&mut server);
        if !alive {
            break;
        }
        // The server writes now and then, as the chat would.
        let line = b"from fuzz: hello\n";
        match server.write(line) {
            Ok(n) => assert_eq!(n, line.len(), "a short line goes in whole"),
            Err(e) => assert_eq!(e.kind(), std::io::ErrorKind::WouldBlock, "{e}"),
        }
    }
    if alive {
        server.get_mut().input_closed = true;
        assert!(!tls_read(&mut server), "end of stream ends the session");
    }
    check_tls_records(&server.get_mut().take_output());
}

/// What a TLS server writes is whole records: type, version, length, body.
fn check_tls_records(mut out: &[u8]) {
    while !out.is_empty() {
        assert!(out.len() >= 5, "a record header");
        assert!((20..=24).contains(&out[0]), "record type {}", out[0]);
        let length = usize::from(u16::from_be_bytes([out[3], out[4]]));
        assert!(out.len() >= 5 + length, "a whole record");
        out = &out[5 + length..];
    }
}

// ---------------------------------------------------------------------------------------------
// resp

/// The largest reply a node accepts (contract section 9), and so, with one read's bytes, the
/// most it holds undecoded.
const MAX_REPLY: usize = 16 << 20;

/// Prefixes the `resp` check may put before its input, so that short inputs reach the limits.
const RESP_PREFIXES: [&[u8]; 4] = [
    b"",
    b"*1\r\n*1\r\n*1\r\n*1\r\n",
    b"$16777000\r\n",
    b">3\r\n",
];

/// Bytes as replies from Redis to a cluster node in memory, cut into reads: `data[0]` seeds the
/// reads' sizes (1 byte to 64 KiB), `data[1]` picks a prefix of [`RESP_PREFIXES`] (nested
/// arrays, a bulk string announced just under the bound, a push around what follows); the
/// rest follows. The node never panics, never holds more of Redis's bytes than the bound plus
/// one read, and after a reply it refuses (a broken link, said in a sentence) it wants a new
/// connection once its back-off has passed, and takes a real handshake's first answer on it.
pub fn resp(data: &[u8]) {
    let mut bytes = Bytes::new(data);
    let mut rng = XorShift::new(u64::from(bytes.byte()));
    let prefix = RESP_PREFIXES[bytes.below(RESP_PREFIXES.len())];
    let input = [prefix, bytes.rest()].concat();
    let mut server = MemoryServer::new(Config::default());
    server.join_cluster("fuzz", Duration::from_secs(3));
    assert!(server.redis_wants_connection());
    server.redis_connect(true);
    server.turn();
    assert!(!server.take_redis_output().is_empty(), "HELLO and the rest");
    let mut broken = None;
    let mut at = 0;
    while at < input.len() {
        let size = if rng.below(4) == 0 {
            1 + rng.index(64 * 1024)
        } else {
            1 + rng.index(64)
        };
        let piece = &input[at..(at + size).min(input.len())];
        at += piece.len();
        match server.redis_input(piece) {
            Ok(()) => assert!(
                server.redis_input_held() <= MAX_REPLY + piece.len(),
                "{} bytes held",
                server.redis_input_held()
            ),
            Err(e) => {
                broken = Some(e);
                break;
            }
        }
        server.turn();
    }
    if let Some(error) = broken {
        assert!(!error.is_empty() && !error.contains("Scanner"), "{error}");
        assert_eq!(
            server.redis_input_held(),
            0,
            "given back with the connection"
        );
        server.advance(Duration::from_secs(6));
        assert!(server.redis_wants_connection(), "back-off, then again");
        server.redis_connect(true);
        server.turn();
        server.take_redis_output();
        server
            .redis_input(b"%1\r\n$5\r\nproto\r\n:3\r\n")
            .expect("HELLO's answer on the new connection");
    }
}

// ---------------------------------------------------------------------------------------------
// ws

/// A request that upgrades, as a browser sends it.
pub const WS_UPGRADE: &[u8] = b"GET /chat HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n\
Connection: Upgrade\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n";

type WsEnd = a_chat::ws::WsTransport<MemoryTransport>;

/// Reads what the server side can read now into `text`; `false` once its input ended. Nothing
/// but `WouldBlock` may fail it, and it never gives more text than bytes came in.
fn ws_read(server: &mut WsEnd, text: &mut Vec<u8>) -> bool {
    let mut buf = [0; 512];
    loop {
        match server.read(&mut buf) {
            Ok(0) => return false,
            Ok(n) => text.extend_from_slice(&buf[..n]),
            Err(e) => {
                assert_eq!(e.kind(), std::io::ErrorKind::WouldBlock, "{e}");
                return true;
            }
        }
    }
}

/// Bytes as what a browser sent a WebSocket listener, cut into chunks, with the chat writing
/// lines through windows of a few bytes meanwhile: it never panics, the text it reads is never
/// more than what came in, and what it writes is an HTTP response and then whole unmasked
/// frames whose text messages, notices aside, are exactly the lines it took, in order.
/// `data[0]` picks whether the bytes begin the connection (even) or follow a real upgrade
/// request (odd); `data[1]` the chunk size, `data[2]` the write window.
pub fn ws(data: &[u8]) {
    let mut bytes = Bytes::new(data);
    let upgraded = bytes.below(2) == 1;
    let chunk = 1 + bytes.below(200);
    let window = 1 + bytes.below(40);
    let io = MemoryTransport {
        read_chunk: chunk,
        ..MemoryTransport::default()
    };
    let config = Arc::new(a_chat::ws::WsConfig::default());
    let mut server = a_chat::ws::WsTransport::server(config, 64, io);
    let mut text = Vec::new();
    let mut alive = true;
    if upgraded {
        server.get_mut().send(WS_UPGRADE);
        alive = ws_read(&mut server, &mut text);
        assert!(
            alive && !server.is_upgrading(),
            "a real upgrade is accepted"
        );
    }
    let rest = bytes.rest();
    let line = b"from fuzz: hello\n";
    let mut pending: Vec<u8> = Vec::new();
    let mut lines_taken = 0;
    let mut taken_of_line = 0;
    for piece in rest.chunks(chunk) {
        server.get_mut().send(piece);
        if alive {
            alive = ws_read(&mut server, &mut text);
        }
        // The chat writes as the core does: what was not taken is offered again first.
        if pending.is_empty() {
            pending.extend_from_slice(line);
        }
        server.get_mut().write_window = window;
        match server.write(&pending) {
            Ok(n) => {
                assert!(n <= pending.len());
                pending.drain(..n);
                taken_of_line += n;
                if pending.is_empty() {
                    lines_taken += 1;
                    taken_of_line = 0;
                }
            }
            Err(e) => assert_eq!(e.kind(), std::io::ErrorKind::WouldBlock, "{e}"),
        }
        let _ = server.flush();
    }
    assert!(
        text.len() <= rest.len() + WS_UPGRADE.len(),
        "more text out than bytes in"
    );
    // The rest of a line under way goes out, then the close.
    server.get_mut().write_window = usize::MAX;
    while !pending.is_empty() && !server.is_upgrading() {
        match server.write(&pending) {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                pending.drain(..n);
                taken_of_line += n;
                if pending.is_empty() {
                    lines_taken += 1;
                    taken_of_line = 0;
                }
            }
        }
    }
    server.get_mut().input_closed = true;
    while alive {
        alive = ws_read(&mut server, &mut text);
    }
    let _ = a_chat::core::Transport::shutdown_write(&mut server);
    let _ = server.flush();
    check_ws_output(
        &server.get_mut().take_output(),
        lines_taken,
        taken_of_line > 0,
    );
}

/// What a WebSocket listener wrote: an HTTP response; after a `101`, whole unmasked frames.
fn check_ws_output(out: &[u8], lines: usize, partial: bool) {
    use tungstenite::protocol::frame::FrameHeader;
    use tungstenite::protocol::frame::coding::{Control, Data, OpCode};
    if out.is_empty() {
        return;
    }
    let end = out
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("an HTTP response head first")
        + 4;
    assert!(
        out.starts_with(b"HTTP/1.1 "),
        "{:?}",
        String::from_utf8_lossy(out)
    );
    if !out.starts_with(b"HTTP/1.1 101 ") {
        return;
    }
    let mut cursor = std::io::Cursor::new(&out[end..]);
    let mut messages: Vec<Vec<u8>> = Vec::new();
    let mut message: Option<Vec<u8>> = None;
    let mut closed = false;
    while (cursor.position() as usize) < out.len() - end {
        let (header, length) = FrameHeader::parse(&mut cursor)
            .expect("a valid frame header")
            .expect("a whole frame header");
        assert!(header.mask.is_none(), "the server masks nothing");
        assert!(!closed, "nothing after the close frame");
        let start = cursor.position() as usize;
        let stop = start + usize::try_from(length).unwrap();
        let payload = &out[end..][start..stop];
        cursor.set_position(stop as u64);
        match header.opcode {
            OpCode::Data(Data::Text) => {
                assert!(message.is_none(), "a message interleaved with another");
                message = Some(payload.to_vec());
            }
            OpCode::Data(Data::Continue) => {
                message
                    .as_mut()
                    .expect("a continuation of a message")
                    .extend_from_slice(payload);
            }
            OpCode::Control(Control::Close) => closed = true,
            OpCode::Control(Control::Pong) => assert!(payload.len() <= 125),
            other => panic!("the server sent a {other:?} frame"),
        }
        if header.is_final && matches!(header.opcode, OpCode::Data(_)) {
            messages.push(message.take().unwrap());
        }
    }
    let chat: Vec<&Vec<u8>> = messages
        .iter()
        .filter(|m| m.as_slice() != b"error: expected text")
        .collect();
    let _ = partial;
    if closed {
        // Lines taken after a close was due are dropped: no data frame follows a close.
        assert!(chat.len() <= lines, "more messages than lines");
    } else {
        assert_eq!(
            chat.len(),
            lines,
            "every line taken went out as one message"
        );
    }
    assert!(chat.iter().all(|m| m.as_slice() == b"from fuzz: hello"));
}
