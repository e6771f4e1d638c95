//! The server's limits and timeouts, as one plain struct with the contract's defaults.

use std::time::Duration;

/// The options of `a-chat server`, as a value an embedding host can build directly.
/// `Config::default()` holds the contract's defaults, except `max_conns` (1024 here).
///
/// ```
/// use std::time::Duration;
/// let config = a_chat::Config {
///     max_line: 1024,
///     login_timeout: Duration::from_secs(5),
///     ..a_chat::Config::default()
/// };
/// assert_eq!(config.max_queue, 1 << 20);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// The longest accepted line in bytes, without its terminator (`--max-line`).
    pub max_line: usize,
    /// The most bytes one peer's outbound queue may hold before the peer is disconnected as a
    /// slow consumer (`--max-queue`), counted as allocated: each message in full (shared with
    /// other queues or not) and the queue's 16-byte slots.
    pub max_queue: usize,
    /// The most concurrent connections that are logging in or logged in (`--max-conns`).
    /// One more is answered `error: server full` and closed. 1024 by default; the binary
    /// computes its default from the open-file limit ([`Config::max_conns_for_nofile`]). A
    /// [`crate::Server`]'s token share must hold this many connections plus its listeners.
    pub max_conns: usize,
    /// The most bytes that all outbound queues together may hold, counted as allocated, a
    /// buffer shared by several queues counted once (`--max-memory`; see
    /// [`crate::Stats::queue_memory`]). A message that would pass it first writes the queue
    /// that holds the most, and disconnects its peer as a slow consumer if it takes nothing,
    /// then the next, until it fits.
    /// `Config::default()` takes a quarter of the machine's physical memory.
    pub max_memory: usize,
    /// How long a new connection has to send a valid name (`--login-timeout`).
    pub login_timeout: Duration,
    /// How long a graceful shutdown waits for slow peers (`--shutdown-timeout`). Also how long
    /// a peer that half-closed is given to read what is still queued for it.
    pub shutdown_timeout: Duration,
    /// How long a connection that the server closes on its own (after an `error:` notice, or
    /// once its queue is flushed) waits for the peer to close before it is closed anyway.
    pub linger: Duration,
}

impl Config {
    /// The `--max-conns` default for a process whose open-file limit is `nofile`: the limit less
    /// a reserve for the listeners, the poll, standard streams and connections being refused.
    pub fn max_conns_for_nofile(nofile: u64) -> usize {
        let reserve = (nofile / 4).min(64);
        usize::try_from(nofile - reserve).unwrap_or(usize::MAX)
    }
}

impl Config {
    /// The `--max-memory` default: a quarter of the machine's physical memory, or 1 GiB where
    /// it cannot be read.
    pub fn default_max_memory() -> usize {
        crate::process::physical_memory()
            .and_then(|bytes| usize::try_from(bytes / 4).ok())
            .unwrap_or(1 << 30)
    }
}

impl Default for Config {
    fn default() -> Self {
        Config {
            max_line: 8192,
            max_queue: 1 << 20,
            max_conns: 1024,
            max_memory: Config::default_max_memory(),
            login_timeout: Duration::from_secs(10),
            shutdown_timeout: Duration::from_secs(30),
            linger: Duration::from_secs(2),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn max_conns_keeps_a_reserve() {
        assert_eq!(Config::max_conns_for_nofile(20_000), 19_936);
        assert_eq!(Config::max_conns_for_nofile(128), 96);
        assert_eq!(Config::max_conns_for_nofile(0), 0);
    }
}
