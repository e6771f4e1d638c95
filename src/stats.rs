//! Counters an embedding host or the shutdown summary reads: cheap to copy, updated in place.

use crate::parse::LineError;

/// A snapshot of the server's counters.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Stats {
    /// Connections open now, in any state (logging in, logged in, closing).
    pub connections_open: usize,
    /// Peers logged in now.
    pub peers_logged_in: usize,
    /// Messages delivered into receivers' queues since start (one per receiver).
    pub messages_routed: u64,
    /// Bytes waiting in all outbound queues now.
    pub bytes_queued: usize,
    /// Peers disconnected because their queue would have exceeded `max_queue`.
    pub slow_consumers_evicted: u64,
    /// Lines refused, per reason, indexed by [`LineError::index`].
    pub lines_rejected: [u64; LineError::ALL.len()],
    /// `error: no such peer` notices sent.
    pub unknown_destinations: u64,
    /// Bytes that were queued when a graceful shutdown began or routed during it, and were
    /// dropped instead of written (the peer went away, or the shutdown was forced).
    pub bytes_unsent_at_shutdown: u64,
}

impl Stats {
    /// How many lines were refused for `reason`.
    pub fn rejected(&self, reason: LineError) -> u64 {
        self.lines_rejected[reason.index()]
    }
}
