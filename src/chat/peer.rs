//! One connection's protocol state: its lifecycle phase, name, unfinished line and outbound queue.

use std::fmt;
use std::io;
use std::ops::Deref;
use std::time::Instant;

use super::outbox::Outbox;
use crate::framer::LineFramer;
use crate::parse::{LineError, MAX_NAME_LEN};

/// Where a connection is in its life.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Phase {
    /// Connected; its first line will be its name. Closed at `deadline` if none came.
    /// `contended` is set once it has waited for a name held by another connection.
    AwaitingName { deadline: Instant, contended: bool },
    /// Its name is held by a connection that may be going away (its close may still be on the
    /// way): its input waits, unread, until `retry_at`; then the name is asked for again.
    Contending(Box<Contender>),
    /// Cluster mode: its name is being claimed in Redis; its input waits, unread, for the
    /// answer (`retry_at` is the login deadline).
    Claiming(Box<Contender>),
    /// Logged in: its name is in the directory and its lines are routed.
    Chatting,
    /// Its input is no longer processed; its queue is being flushed, after which (and after
    /// the answers to its lookups in flight, in cluster mode) its write side is shut.
    /// `input_ended` says the peer already closed its side.
    Closing {
        reason: CloseReason,
        deadline: Option<Instant>,
        input_ended: bool,
    },
    /// Write side shut; whatever the peer still sends is read and thrown away until it closes.
    Lingering {
        reason: CloseReason,
        deadline: Option<Instant>,
    },
    /// Done. The driver is handed its transport at the end of the turn.
    Closed { reason: CloseReason },
}

/// A login waiting for its name (for a holder that may be closing, or for the cluster's
/// answer), with the input that followed the name line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Contender {
    /// When the name is asked for again.
    pub(crate) retry_at: Instant,
    /// The login timeout, which keeps running.
    pub(crate) login_deadline: Instant,
    /// The name line and everything read after it, as lines ended by `\n`, then the
    /// unfinished rest.
    pub(crate) input: Vec<u8>,
    /// A line after the name line was too long (found while the login waited).
    pub(crate) too_long: bool,
    /// It has waited for a contended name once already.
    pub(crate) contended: bool,
}

/// The lines of a logged-in peer that arrived in the read that spent its budget of lookups: they
/// wait, in order, for its answers.
#[derive(Debug, Default)]
pub(crate) struct HeldLines {
    /// Complete lines, each ended by `\n` (a framed line holds none).
    /// Invariant: at most the bytes of one read call, plus one unfinished line.
    pub(crate) lines: Vec<u8>,
    /// Where the first line not routed yet begins in `lines`.
    pub(crate) start: usize,
    /// A line after them was too long: once they are routed, the connection is closed.
    pub(crate) too_long: bool,
}

/// How incoming bytes are treated in a phase.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ReadMode {
    /// Framed and handled as protocol lines.
    Process,
    /// Read and thrown away (lingering close).
    Discard,
    /// Left in the socket.
    Stop,
}

impl Phase {
    /// Logging in or logged in: counts against `max_conns`, may hold a name.
    pub(crate) fn is_active(&self) -> bool {
        matches!(
            self,
            Phase::AwaitingName { .. }
                | Phase::Contending(_)
                | Phase::Claiming(_)
                | Phase::Chatting
        )
    }

    pub(crate) fn is_closed(&self) -> bool {
        matches!(self, Phase::Closed { .. })
    }

    pub(crate) fn deadline(&self) -> Option<Instant> {
        match self {
            Phase::AwaitingName { deadline, .. } => Some(*deadline),
            Phase::Contending(contender) | Phase::Claiming(contender) => Some(contender.retry_at),
            Phase::Closing { deadline, .. } | Phase::Lingering { deadline, .. } => *deadline,
            Phase::Chatting | Phase::Closed { .. } => None,
        }
    }

    /// Ends a wait for a name (a contention, or a claim): the connection waits for its name
    /// again, and what waited with it is handed back. `None` (and no change) in any other
    /// phase.
    pub(crate) fn end_wait(&mut self) -> Option<Box<Contender>> {
        match std::mem::replace(self, Phase::Chatting) {
            Phase::Contending(contender) | Phase::Claiming(contender) => {
                *self = Phase::AwaitingName {
                    deadline: contender.login_deadline,
                    contended: contender.contended,
                };
                Some(contender)
            }
            other => {
                *self = other;
                None
            }
        }
    }

    pub(crate) fn read_mode(&self) -> ReadMode {
        match self {
            Phase::AwaitingName { .. } | Phase::Chatting => ReadMode::Process,
            Phase::Lingering { .. } => ReadMode::Discard,
            Phase::Contending(_)
            | Phase::Claiming(_)
            | Phase::Closing { .. }
            | Phase::Closed { .. } => ReadMode::Stop,
        }
    }
}

/// Why a connection was closed; logged with its disconnect line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CloseReason {
    /// The peer closed its side.
    PeerClosed,
    /// Reading or writing failed (a reset, most often).
    Io(io::ErrorKind),
    /// A line broke a rule that closes the connection.
    Rejected(LineError),
    /// No valid name within the login timeout.
    LoginTimeout,
    /// More connections than `max_conns`.
    ServerFull,
    /// Its queue would have exceeded `max_queue`.
    SlowConsumer,
    /// The server is shutting down.
    Shutdown,
    /// The peer neither read nor closed within the time it was given.
    TimedOut,
    /// The host forced the shutdown (a deadline or a second signal).
    Forced,
    /// Cluster mode: Redis could not be asked, or the node's hold on its names lapsed.
    ClusterUnavailable,
}

impl fmt::Display for CloseReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CloseReason::PeerClosed => f.write_str("peer closed"),
            CloseReason::Io(kind) => write!(f, "i/o error: {kind}"),
            CloseReason::Rejected(error) => write!(f, "{error}"),
            CloseReason::LoginTimeout => f.write_str("login timeout"),
            CloseReason::ServerFull => f.write_str("server full"),
            CloseReason::SlowConsumer => f.write_str("slow consumer"),
            CloseReason::Shutdown => f.write_str("server shutdown"),
            CloseReason::TimedOut => f.write_str("timed out while closing"),
            CloseReason::Forced => f.write_str("forced shutdown"),
            CloseReason::ClusterUnavailable => f.write_str("cluster unavailable"),
        }
    }
}

/// A name as a connection holds it: its bytes inline, not behind a pointer, so that a lookup in
/// the directory (which keeps keys only, and compares the name here) and the sender's
/// `from NAME:` read no other cache line than the connection's own.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) struct Name {
    /// Invariant: at most `MAX_NAME_LEN`.
    len: u8,
    /// Invariant: `bytes[..len]` is UTF-8 (copied from a `str`); the rest is zero.
    bytes: [u8; MAX_NAME_LEN],
}

impl Name {
    /// `name` held inline; `None` past [`MAX_NAME_LEN`] bytes (a valid name never is).
    pub(crate) fn new(name: &str) -> Option<Name> {
        let len = u8::try_from(name.len())
            .ok()
            .filter(|&len| usize::from(len) <= MAX_NAME_LEN)?;
        let mut bytes = [0; MAX_NAME_LEN];
        bytes[..name.len()].copy_from_slice(name.as_bytes());
        Some(Name { len, bytes })
    }

    /// The name's bytes.
    #[inline]
    pub(crate) fn as_bytes(&self) -> &[u8] {
        &self.bytes[..usize::from(self.len)]
    }
}

impl Deref for Name {
    type Target = str;

    fn deref(&self) -> &str {
        std::str::from_utf8(self.as_bytes()).expect("a name is copied from a str")
    }
}

impl fmt::Display for Name {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self)
    }
}

impl fmt::Debug for Name {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&**self, f)
    }
}

/// A connection as the core sees it: the transport it was given and its protocol state.
#[derive(Debug)]
pub(crate) struct Peer<T> {
    /// The driver's handle (a socket in the server, a script in tests). The core only reads,
    /// writes and shuts it through [`crate::core::Transport`].
    pub(crate) io: T,
    pub(crate) phase: Phase,
    /// Set at login and kept until the connection is gone, for its disconnect log line. The
    /// directory compares names here, in the connection's own cache lines.
    pub(crate) name: Option<Name>,
    pub(crate) framer: LineFramer,
    pub(crate) outbox: Outbox,
    /// Tells this connection from an earlier one that had the same slab key (stale timers).
    pub(crate) generation: u64,
    /// The number of the last routed line that reached this peer: a peer named twice in one
    /// line is sent the message once.
    pub(crate) last_route: u64,
    /// Whether the key is on the core's list of connections to flush.
    pub(crate) dirty: bool,
    /// Whether the key is on the core's list of connections whose read budget ran out.
    pub(crate) unread: bool,
    /// The size class of its queue in the core's queue index (0: empty, not indexed).
    pub(crate) size_class: u8,
    /// Its position in that class.
    pub(crate) class_slot: u32,
}

impl<T> Peer<T> {
    pub(crate) fn new(io: T, phase: Phase, generation: u64) -> Self {
        Peer {
            io,
            phase,
            name: None,
            framer: LineFramer::new(),
            outbox: Outbox::new(),
            generation,
            last_route: 0,
            dirty: false,
            unread: false,
            size_class: 0,
            class_slot: 0,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_name_is_held_inline_up_to_the_longest_valid_one() {
        let longest = "é".repeat(MAX_NAME_LEN / 2);
        let name = Name::new(&longest).unwrap();
        assert_eq!((&*name, name.as_bytes()), (&*longest, longest.as_bytes()));
        assert_eq!(Name::new("bob").unwrap().to_string(), "bob");
        assert_eq!(Name::new(&"x".repeat(MAX_NAME_LEN + 1)), None);
    }

    #[test]
    fn a_connection_takes_three_cache_lines() {
        // With a transport of 24 bytes, as the server's `Connection` and the peers bench's
        // are: what a delivery reads of a sender and of a receiver (docs/performance.md).
        assert_eq!(std::mem::size_of::<Peer<[u64; 3]>>(), 192);
        assert_eq!(std::mem::size_of::<Option<Name>>(), MAX_NAME_LEN + 2);
    }
}
