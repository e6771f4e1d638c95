//! Counters an embedding host, the metrics and the shutdown summary read: cheap to copy,
//! updated in place. The core keeps its monotonic counters (since start) in a `Stats` of its
//! own; the gauges (connections open, names logged in, bytes queued, queue memory) are kept by
//! the parts that own them and filled in when `Chat::stats` takes the snapshot.

use crate::parse::LineError;

/// A snapshot of the server's counters.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Stats {
    /// Connections open now, in any state (logging in, logged in, closing).
    pub connections_open: usize,
    /// Peers logged in now.
    pub peers_logged_in: usize,
    /// Connections accepted since start, the refused ones included.
    pub connections_accepted: u64,
    /// Successful logins since start.
    pub logins: u64,
    /// Connections answered `error: server full` (past `max_conns`, or during a shutdown).
    pub server_full: u64,
    /// Connections closed because no valid name came within the login timeout.
    pub login_timeouts: u64,
    /// Messages delivered into receivers' queues since start (one per receiver).
    pub messages_routed: u64,
    /// Bytes waiting in all outbound queues now, each queue counted on its own (a message to
    /// eight peers counts eight times).
    pub bytes_queued: usize,
    /// Bytes held by all outbound queues together now, as the allocator gives them: each
    /// buffer once however many queues share it (its `Rc` counts and bytes, rounded up as
    /// glibc's `malloc` rounds), and every non-empty queue's deque of 16-byte slots by its
    /// capacity. What `max_memory` bounds.
    pub queue_memory: usize,
    /// The bound on `queue_memory` (`Config::max_memory`).
    pub max_memory: usize,
    /// Peers disconnected as slow consumers: their queue would have exceeded `max_queue` (its
    /// buffers in full, shared or not, and its slots, as allocated), or theirs held the most
    /// and took nothing when the queues together would have passed `max_memory`.
    pub slow_consumers_evicted: u64,
    /// Of `slow_consumers_evicted`, those disconnected to keep all queues under `max_memory`.
    pub memory_evictions: u64,
    /// Lines refused, per reason, indexed by [`LineError::index`].
    pub lines_rejected: [u64; LineError::ALL.len()],
    /// `error: no such peer` notices sent.
    pub unknown_destinations: u64,
    /// Bytes that were queued when a graceful shutdown began or routed during it, and were
    /// dropped instead of written (the peer went away, or the shutdown was forced).
    pub bytes_unsent_at_shutdown: u64,
    /// Times accepting paused because descriptors or memory ran out (the driver's).
    pub accept_pauses: u64,
    /// Turns of the host's loop that reached the server: one per `Server::handle_events`.
    pub loop_turns: u64,
    /// Readiness events of the server's own tokens handled.
    pub events_handled: u64,
    /// HTTP requests answered by the server's metrics endpoint.
    pub metrics_requests: u64,
    /// Metrics connections closed to make room for a newcomer while every slot was taken
    /// (the one that had waited longest without a complete request).
    pub metrics_connections_evicted: u64,
    /// TLS handshake steps put off to a later turn because the turn's budget of handshake
    /// steps was spent (the driver's).
    pub tls_handshakes_deferred: u64,
    /// The most TLS handshake steps done in one turn since start (the driver's; at most its
    /// per-turn budget).
    pub tls_handshake_steps_max_per_turn: u64,
    /// The cluster's counters (all zero on a single node).
    pub cluster: ClusterStats,
}

/// Counters of cluster mode.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ClusterStats {
    /// The server is a node of a cluster.
    pub enabled: bool,
    /// Its connection to Redis is up and subscribed now.
    pub connected: bool,
    /// Connections to Redis made after the first one.
    pub reconnects: u64,
    /// Messages published for receivers on other nodes.
    pub messages_sent: u64,
    /// Messages from other nodes queued for receivers here.
    pub messages_received: u64,
    /// `error: cluster unavailable: DEST` notices sent.
    pub destinations_unavailable: u64,
    /// Logins refused with `error: cluster unavailable`.
    pub logins_unavailable: u64,
    /// Recovery windows (Redis lost its data) this node saw open.
    pub recovery_windows: u64,
    /// A recovery window is open now: new logins are refused.
    pub recovering: bool,
    /// Failovers followed: a master named by the sentinels (`redis-sentinel://`) other than
    /// the one the node was connected to before.
    pub failovers: u64,
}

impl Stats {
    /// How many lines were refused for `reason`.
    pub fn rejected(&self, reason: LineError) -> u64 {
        self.lines_rejected[reason.index()]
    }
}
