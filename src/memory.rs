//! The IO-free core driven in memory: a scripted [`Transport`] and a driver loop over it, for
//! unit tests, fuzzers and simulations.

use std::collections::{HashMap, VecDeque};
use std::io::{self, IoSlice, Read, Write};
use std::time::{Duration, Instant};

use crate::chat::{Chat, Transport};
use crate::config::Config;

/// Bytes read from one connection per turn, as in the mio driver (a multiple of nothing in
/// particular, small enough that budgets run out in tests).
const READ_BUDGET: usize = 4096;

/// A connection whose far end is a script: bytes to be read, how much a write may take, and
/// whether the peer has closed or reset.
///
/// Reads hand out at most `read_chunk` bytes of `input`, then `WouldBlock`, or end of stream
/// once `input_closed` is set and `input` is empty. Writes take at most `write_window` bytes
/// (then `WouldBlock`) and append them to `output`; the window shrinks by what was taken.
#[derive(Debug, Clone)]
pub struct MemoryTransport {
    /// Which connection of a [`MemoryServer`] this is (never reused, unlike slab keys).
    pub id: u64,
    /// Bytes the peer has sent that the server has not read yet.
    pub input: VecDeque<u8>,
    /// The peer closed its write side: after `input`, reads return end of stream.
    pub input_closed: bool,
    /// The peer reset the connection: every read and write fails with `ConnectionReset`.
    pub reset: bool,
    /// The most bytes one read returns (1 models one-byte segments).
    pub read_chunk: usize,
    /// How many more bytes writes may take before `WouldBlock` (the peer's receive window).
    pub write_window: usize,
    /// Everything the server wrote, in order.
    pub output: Vec<u8>,
    /// The server shut its write side.
    pub write_shut: bool,
}

impl Default for MemoryTransport {
    fn default() -> Self {
        MemoryTransport {
            id: 0,
            input: VecDeque::new(),
            input_closed: false,
            reset: false,
            read_chunk: usize::MAX,
            write_window: usize::MAX,
            output: Vec::new(),
            write_shut: false,
        }
    }
}

impl MemoryTransport {
    /// The peer sends `bytes`.
    pub fn send(&mut self, bytes: &[u8]) {
        self.input.extend(bytes);
    }

    /// Takes what the server wrote so far.
    pub fn take_output(&mut self) -> Vec<u8> {
        std::mem::take(&mut self.output)
    }
}

fn reset_error() -> io::Error {
    io::ErrorKind::ConnectionReset.into()
}

impl Read for MemoryTransport {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.reset {
            return Err(reset_error());
        }
        if self.input.is_empty() {
            return if self.input_closed {
                Ok(0)
            } else {
                Err(io::ErrorKind::WouldBlock.into())
            };
        }
        let n = buf.len().min(self.read_chunk).min(self.input.len());
        for (slot, byte) in buf.iter_mut().zip(self.input.drain(..n)) {
            *slot = byte;
        }
        Ok(n)
    }
}

impl Write for MemoryTransport {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.write_vectored(&[IoSlice::new(buf)])
    }

    fn write_vectored(&mut self, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
        if self.reset {
            return Err(reset_error());
        }
        if self.write_shut {
            return Err(io::ErrorKind::BrokenPipe.into());
        }
        if self.write_window == 0 {
            return Err(io::ErrorKind::WouldBlock.into());
        }
        let mut taken = 0;
        for buf in bufs {
            let n = buf.len().min(self.write_window - taken);
            self.output.extend_from_slice(&buf[..n]);
            taken += n;
        }
        self.write_window -= taken;
        Ok(taken)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Transport for MemoryTransport {
    fn shutdown_write(&mut self) -> io::Result<()> {
        if self.reset {
            return Err(reset_error());
        }
        self.write_shut = true;
        Ok(())
    }

    fn is_closed_by_peer(&mut self) -> bool {
        self.reset || (self.input_closed && self.input.is_empty())
    }
}

/// The chat core with in-memory connections, driven the way the mio driver drives it: each
/// [`MemoryServer::turn`] reads every connection (within a budget), runs the timers, flushes
/// what was queued and removes what was closed. Time only moves with [`MemoryServer::advance`].
#[derive(Debug)]
pub struct MemoryServer {
    /// The core under test.
    pub chat: Chat<MemoryTransport>,
    /// The core's clock.
    pub now: Instant,
    next_id: u64,
    /// Open connections: id to slab key.
    live: HashMap<u64, usize>,
    /// Connections the core closed and removed, by id, as they were at the end.
    pub finished: HashMap<u64, MemoryTransport>,
}

impl MemoryServer {
    /// A server with `config`, at an arbitrary start time.
    pub fn new(config: Config) -> Self {
        MemoryServer {
            chat: Chat::new(config),
            now: Instant::now(),
            next_id: 0,
            live: HashMap::new(),
            finished: HashMap::new(),
        }
    }

    /// A new connection, accepted now; returns its id.
    pub fn connect(&mut self) -> u64 {
        self.connect_with(MemoryTransport::default())
    }

    /// Accepts `transport` (its `id` is overwritten); returns its id.
    pub fn connect_with(&mut self, mut transport: MemoryTransport) -> u64 {
        let id = self.next_id;
        self.next_id += 1;
        transport.id = id;
        let key = self.chat.accept(transport, self.now);
        self.live.insert(id, key);
        id
    }

    /// The core's slab key of connection `id`, while it is open.
    pub fn key(&self, id: u64) -> Option<usize> {
        self.live.get(&id).copied()
    }

    /// Whether the connection `id` is still open.
    pub fn is_open(&self, id: u64) -> bool {
        self.live.contains_key(&id)
    }

    /// The transport of connection `id`, open or finished.
    pub fn transport(&mut self, id: u64) -> &mut MemoryTransport {
        match self.live.get(&id) {
            Some(&key) => self.chat.transport_mut(key).expect("live connection"),
            None => self.finished.get_mut(&id).expect("known connection"),
        }
    }

    /// The peer of `id` sends `bytes` (read at the next turn).
    pub fn send(&mut self, id: u64, bytes: &[u8]) {
        self.transport(id).send(bytes);
    }

    /// Takes what the server wrote to `id` so far, as text.
    pub fn take_output(&mut self, id: u64) -> String {
        String::from_utf8(self.transport(id).take_output()).expect("server output is UTF-8")
    }

    /// One loop turn at the current time.
    pub fn turn(&mut self) {
        let now = self.now;
        let mut keys: Vec<usize> = self.live.values().copied().collect();
        keys.sort_unstable();
        for &key in &keys {
            self.chat.on_readable(key, READ_BUDGET, now);
        }
        self.chat.handle_timeouts(now);
        // Writability: a connection with a window left is writable.
        for &key in &keys {
            if self.chat.wants_write(key) {
                self.chat.on_writable(key, now);
            }
        }
        while let Some(key) = self.chat.pop_dirty() {
            self.chat.on_writable(key, now);
        }
        let (live, finished) = (&mut self.live, &mut self.finished);
        self.chat.reap(|_, transport| {
            live.remove(&transport.id);
            finished.insert(transport.id, transport);
        });
    }

    /// Turns until nothing changes any more (no input left that can be read, nothing that can
    /// be written), at most `max_turns` times.
    pub fn settle(&mut self, max_turns: usize) {
        for _ in 0..max_turns {
            let before = self.fingerprint();
            self.turn();
            if self.fingerprint() == before {
                return;
            }
        }
    }

    /// Moves the clock on by `by`, then turns.
    pub fn advance(&mut self, by: Duration) {
        self.now += by;
        self.turn();
    }

    /// Starts the graceful shutdown now.
    pub fn begin_shutdown(&mut self) {
        self.chat.begin_shutdown(self.now);
        self.turn();
    }

    fn fingerprint(&self) -> (usize, usize, u64, usize) {
        let stats = self.chat.stats();
        let pending: usize = self
            .live
            .values()
            .filter_map(|&key| self.chat.peers.get(key))
            .map(|peer| peer.io.input.len() + peer.io.output.len())
            .sum();
        (
            stats.connections_open,
            stats.bytes_queued,
            stats.messages_routed,
            pending,
        )
    }
}
