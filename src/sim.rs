//! For tests, fuzzers and simulations: the IO-free core driven in memory. A scripted
//! [`Transport`] ([`MemoryTransport`]), a driver loop over it ([`MemoryServer`]) that follows
//! [`Chat`]'s call order to the letter, and the deterministic random stream ([`XorShift`], kept
//! in `src/rand.rs`) that unit tests, fuzzers, simulations and the load generator draw from, so
//! that a seed replays a run.

use std::collections::{HashMap, VecDeque};
use std::io::{self, IoSlice, Read, Write};
use std::time::{Duration, Instant};

use crate::chat::{Chat, CloseReason, Transport};
use crate::config::Config;

pub use crate::rand::XorShift;

/// Bytes read from one connection per call: far below the mio driver's, so that budgets run
/// out in tests and the read-again-later path is taken often.
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
    /// How many reads the server made (each one a system call over TCP).
    pub reads: u64,
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
            reads: 0,
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
        self.reads += 1;
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

    /// As TCP does: a short read drained it when it took all the input (not just
    /// `read_chunk` of it) and no end of stream or reset waits behind it (over TCP, the
    /// readiness event says so).
    fn short_read_drained(&self) -> bool {
        self.input.is_empty() && !self.input_closed && !self.reset
    }
}

/// The chat core with in-memory connections, driven by the call order documented on [`Chat`]:
/// each [`MemoryServer::turn`] is one poll's worth of events (every connection readable, and
/// writable while its peer has window left) followed by [`Chat::end_turn`]. Time only moves
/// with [`MemoryServer::advance`].
#[derive(Debug)]
pub struct MemoryServer {
    /// The core under test.
    pub chat: Chat<MemoryTransport>,
    /// The core's clock.
    pub now: Instant,
    next_id: u64,
    /// Open connections: id to slab key.
    live: HashMap<u64, usize>,
    /// Connections the core closed and removed, by id, as they were at the end, with the
    /// reason they were closed.
    pub finished: HashMap<u64, (MemoryTransport, CloseReason)>,
}

impl MemoryServer {
    /// A server with `config`, at an arbitrary start time.
    pub fn new(config: Config) -> Self {
        MemoryServer {
            chat: Chat::new(config).with_read_budget(READ_BUDGET),
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
        let expected = self.chat.vacant_key();
        let key = self.chat.accept(transport, self.now);
        debug_assert_eq!(key, expected);
        self.live.insert(id, key);
        id
    }

    /// One connection per name, each sending its name line, then a turn: the ids, in order.
    pub fn connect_as(&mut self, names: &[&str]) -> Vec<u64> {
        let ids = names
            .iter()
            .map(|name| {
                let id = self.connect();
                self.send(id, format!("{name}\n").as_bytes());
                id
            })
            .collect();
        self.turn();
        ids
    }

    /// The core's slab key of connection `id`, while it is open.
    pub fn key(&self, id: u64) -> Option<usize> {
        self.live.get(&id).copied()
    }

    /// Whether the connection `id` is logged in now.
    pub fn is_logged_in(&self, id: u64) -> bool {
        self.key(id).is_some_and(|key| self.chat.is_logged_in(key))
    }

    /// The name connection `id` is logged in as now, if it is.
    pub fn logged_in_name(&self, id: u64) -> Option<&str> {
        self.key(id).and_then(|key| self.chat.logged_in_name(key))
    }

    /// The number of the open connection `id` on this node: the CONN that names it across a
    /// cluster (never reused, unlike the slab key).
    pub fn connection_number(&self, id: u64) -> Option<u64> {
        self.key(id)
            .and_then(|key| self.chat.connection_number(key))
    }

    /// Why the connection `id` was closed, once it was.
    pub fn close_reason(&self, id: u64) -> Option<&CloseReason> {
        self.finished.get(&id).map(|(_, reason)| reason)
    }

    /// Whether the connection `id` is still open.
    pub fn is_open(&self, id: u64) -> bool {
        self.live.contains_key(&id)
    }

    /// The transport of connection `id`, open or finished.
    pub fn transport(&mut self, id: u64) -> &mut MemoryTransport {
        match self.live.get(&id) {
            Some(&key) => self.chat.transport_mut(key).expect("live connection"),
            None => &mut self.finished.get_mut(&id).expect("known connection").0,
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

    /// One loop turn at the current time: the events, then [`Chat::end_turn`].
    pub fn turn(&mut self) {
        let now = self.now;
        let mut keys: Vec<usize> = self.live.values().copied().collect();
        keys.sort_unstable();
        for &key in &keys {
            self.chat.on_readable(key, now);
        }
        // Writability: a connection whose peer has window left takes bytes.
        for &key in &keys {
            if self.chat.transport(key).is_some_and(|t| t.write_window > 0) {
                self.chat.on_writable(key);
            }
        }
        let (live, finished) = (&mut self.live, &mut self.finished);
        self.chat.end_turn(
            now,
            |_, _, _| Ok(()),
            |_, transport, reason| {
                live.remove(&transport.id);
                finished.insert(transport.id, (transport, reason));
            },
        );
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

    /// The queues' memory counted again from scratch as the allocator gives it (each buffer
    /// once, every queue's entries): what `chat.stats().queue_memory` must equal. Panics if a
    /// queue's own cost is not what its buffers and entries add up to.
    pub fn recount_queue_memory(&self) -> usize {
        self.chat.recount_queue_memory()
    }

    /// The cost of the costliest queue of an open connection (its buffers in full, shared or
    /// not, and its entries), counted again from scratch: what `max_queue` bounds.
    pub fn largest_queue_cost(&self) -> usize {
        self.chat.recount_largest_queue_cost()
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
            .filter_map(|&key| self.chat.transport(key))
            .map(|io| io.input.len() + io.output.len())
            .sum();
        (
            stats.connections_open,
            stats.bytes_queued,
            stats.messages_routed,
            pending,
        )
    }
}

/// Cluster mode in memory: the caller plays Redis. Between turns it connects the node's link
/// when [`MemoryServer::redis_wants_connection`] (or refuses), hands it Redis's bytes with
/// [`MemoryServer::redis_input`] (handled as an event of the next [`MemoryServer::turn`]), and
/// takes what the node sends with [`MemoryServer::take_redis_output`] after each turn: one turn,
/// one write, as the `mio` driver does.
#[cfg(feature = "cluster")]
impl MemoryServer {
    /// Makes this server node `node` of a cluster, with `ttl` as its `--cluster-ttl`. Call
    /// before the first connection. `node` is not empty and holds no `/`, `,`, `:` or
    /// control character (it is a field of the records nodes send each other).
    pub fn join_cluster(&mut self, node: &str, ttl: Duration) {
        let link = crate::cluster::ClusterLink::new(node.to_string(), ttl, self.now);
        self.chat.join_cluster(link);
    }

    /// Whether the link wants a connection to Redis now.
    pub fn redis_wants_connection(&self) -> bool {
        self.chat
            .cluster()
            .is_some_and(|link| link.wants_connection(self.now))
    }

    /// The link's connection attempt: made (`true`) or refused.
    pub fn redis_connect(&mut self, made: bool) {
        let Some(link) = self.chat.cluster_mut() else {
            return;
        };
        link.on_connecting(self.now);
        if made {
            self.chat.on_cluster_connected(self.now);
        } else {
            self.chat.on_cluster_disconnected(self.now);
        }
    }

    /// Bytes from Redis. An `Err` (Redis broke the protocol) has already dropped the
    /// connection, as the driver does.
    pub fn redis_input(&mut self, bytes: &[u8]) -> Result<(), String> {
        let result = self.chat.on_cluster_input(bytes, self.now);
        if result.is_err() {
            self.chat.on_cluster_disconnected(self.now);
        }
        result.map_err(|e| e.to_string())
    }

    /// Bytes from Redis the node holds undecoded (its buffer's capacity): at most the largest
    /// reply it accepts (16 MiB) plus one read's bytes.
    pub fn redis_input_held(&self) -> usize {
        self.chat.cluster().map_or(0, |link| link.input_held())
    }

    /// The connection to Redis broke.
    pub fn redis_disconnected(&mut self) {
        self.chat.on_cluster_disconnected(self.now);
    }

    /// What the node wrote to Redis since the last call.
    pub fn take_redis_output(&mut self) -> Vec<u8> {
        let Some(link) = self.chat.cluster_mut() else {
            return Vec::new();
        };
        let out = link.output().to_vec();
        link.consumed(out.len());
        out
    }

    /// Whether the node's link to Redis is congested: so many bytes wait for Redis that the
    /// peers with lookups in flight are not read.
    pub fn redis_congested(&self) -> bool {
        self.chat
            .cluster()
            .is_some_and(crate::cluster::ClusterLink::is_congested)
    }

    /// Whether the node has left its cluster (after a graceful shutdown).
    pub fn has_left_cluster(&self) -> bool {
        self.chat.cluster().is_some_and(|link| link.has_left())
    }
}
