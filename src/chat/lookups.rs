//! Cluster mode's back-pressure on senders: each logged-in peer's budget of lookups in flight
//! (its destinations routed through Redis and not answered yet), the lines it sent while it
//! waited for answers, and its wake-up when they come. Back-pressure thus falls on the peers
//! whose lines fill the link, and the others are read on. Without a cluster no peer has
//! lookups, and none of this ever holds anyone.
//!
//! The state lives in a table beside the slab ([`InFlight`]), not in every connection: only
//! the peers with lookups in flight pay for it, and the many that have none (every peer of a
//! single node) stay as small as before.

use std::collections::HashMap;
use std::time::Instant;

use super::peer::{HeldLines, Phase, ReadMode};
use super::{Chat, Transport};
use crate::parse::LineError;

/// Destinations a peer may have in flight before it is no longer read: one route batch's worth
/// (`BATCH` in `src/cluster/link.rs`). A line is never split, so a peer goes past it by the
/// destinations of its last line at most.
pub(crate) const MAX_LOOKUPS_PER_PEER: usize = 512;

/// The peers with lookups in flight, waiting for answers, or holding lines, by slab key.
#[derive(Debug, Default)]
pub(super) struct InFlight {
    /// Invariant: an entry exists only while it is not empty ([`PeerLookups::is_empty`]), and
    /// for a connection still in the slab: the core forgets a key when it reaps it, before the
    /// key can be reused.
    peers: HashMap<usize, PeerLookups>,
}

/// One peer's lookups.
#[derive(Debug, Default)]
pub(super) struct PeerLookups {
    /// Its destinations routed through Redis and not answered yet.
    pub(super) count: usize,
    /// Its reading stopped until answers come back: the next answer that lets it go on puts it
    /// on the list of connections to read.
    pub(super) awaiting: bool,
    /// Lines read while it was waiting for answers (the rest of one read), routed before
    /// anything more is read from it.
    pub(super) held: Option<HeldLines>,
}

impl PeerLookups {
    fn is_empty(&self) -> bool {
        self.count == 0 && !self.awaiting && self.held.is_none()
    }
}

impl InFlight {
    /// `key`'s lookups in flight.
    pub(super) fn count(&self, key: usize) -> usize {
        if self.peers.is_empty() {
            return 0;
        }
        self.peers.get(&key).map_or(0, |p| p.count)
    }

    /// Whether `key` holds lines waiting for its answers.
    pub(super) fn holds_lines(&self, key: usize) -> bool {
        !self.peers.is_empty() && self.peers.get(&key).is_some_and(|p| p.held.is_some())
    }

    /// `key`'s entry, made if it has none; [`InFlight::tidy`] after changing it.
    pub(super) fn entry(&mut self, key: usize) -> &mut PeerLookups {
        self.peers.entry(key).or_default()
    }

    /// `key`'s entry, if it has one.
    pub(super) fn get_mut(&mut self, key: usize) -> Option<&mut PeerLookups> {
        self.peers.get_mut(&key)
    }

    /// Drops `key`'s entry if nothing is left in it.
    pub(super) fn tidy(&mut self, key: usize) {
        if self.peers.get(&key).is_some_and(PeerLookups::is_empty) {
            self.peers.remove(&key);
        }
    }

    /// `key` is gone from the slab: so is its entry.
    pub(super) fn forget(&mut self, key: usize) {
        if !self.peers.is_empty() {
            self.peers.remove(&key);
        }
    }
}

impl<T: Transport> Chat<T> {
    /// Whether the logged-in peer `key` must wait for answers from the cluster before more of
    /// its lines are routed: it has [`MAX_LOOKUPS_PER_PEER`] lookups in flight, or any while
    /// the link is congested (so many bytes wait for Redis that the global cap is near). In
    /// that second case the peers with nothing in flight are still read: local chat goes on,
    /// and each such peer adds one line's destinations at most before it waits in turn; past
    /// the link's hard cap, new lookups are refused as `cluster unavailable`.
    pub(super) fn awaits_lookups(&self, key: usize) -> bool {
        let lookups = self.lookups.count(key);
        lookups >= MAX_LOOKUPS_PER_PEER || (lookups > 0 && self.cluster_congested())
    }

    /// Keeps a line of `key` that arrived while it waits for answers, after those already kept.
    pub(super) fn hold_line(&mut self, key: usize, line: &[u8]) {
        let held = self
            .lookups
            .entry(key)
            .held
            .get_or_insert_with(Default::default);
        held.lines.extend_from_slice(line);
        held.lines.push(b'\n');
    }

    /// Before `key` is read: routes the lines it sent while it waited for answers, as far as
    /// its budget goes (then a line too long after them closes it). Returns whether it may be
    /// read on; if not, it is marked as awaiting answers, which read it again.
    pub(super) fn route_held_lines(&mut self, key: usize, now: Instant) -> bool {
        let Some(mut held) = self.lookups.get_mut(key).and_then(|p| p.held.take()) else {
            return self.go_on_or_await(key);
        };
        self.lookups.tidy(key);
        let HeldLines {
            lines,
            start,
            too_long,
        } = &mut held;
        while *start < lines.len() {
            if self.read_mode(key) != ReadMode::Process || self.awaits_lookups(key) {
                break;
            }
            let end = lines[*start..]
                .iter()
                .position(|&b| b == b'\n')
                .map_or(lines.len(), |at| *start + at);
            self.on_message_line(key, &lines[*start..end], now);
            *start = end + 1;
        }
        if self.read_mode(key) != ReadMode::Process {
            // Closed meanwhile: what is left goes with it.
            return true;
        }
        if *start < lines.len() {
            self.lookups.entry(key).held = Some(held);
            return self.go_on_or_await(key);
        }
        if *too_long {
            self.reject(key, LineError::LineTooLong, now);
            return true;
        }
        self.go_on_or_await(key)
    }

    /// Whether `key` may be read now; if not, it is marked as awaiting answers.
    fn go_on_or_await(&mut self, key: usize) -> bool {
        let waits = self.awaits_lookups(key);
        if waits {
            self.lookups.entry(key).awaiting = true;
        } else if let Some(entry) = self.lookups.get_mut(key) {
            entry.awaiting = false;
            self.lookups.tidy(key);
        }
        !waits
    }

    /// Answers came for `count` lookups of `key` (the connection of that generation): if it
    /// was waiting for them and may go on, it is read again at the end of the turn; if it is
    /// closing and has none left in flight, its close goes on.
    #[cfg_attr(not(feature = "cluster"), allow(dead_code))]
    pub(super) fn on_answered(&mut self, key: usize, generation: u64, count: usize) {
        let Some(peer) = self.peers.get_mut(key) else {
            return;
        };
        if peer.generation != generation {
            return;
        }
        let closing = matches!(peer.phase, Phase::Closing { .. });
        let Some(entry) = self.lookups.get_mut(key) else {
            return;
        };
        entry.count = entry.count.saturating_sub(count);
        let (left, awaiting) = (entry.count, entry.awaiting);
        self.lookups.tidy(key);
        if closing && left == 0 {
            self.mark_dirty(key);
        } else if awaiting && !self.awaits_lookups(key) {
            if let Some(entry) = self.lookups.get_mut(key) {
                entry.awaiting = false;
            }
            self.lookups.tidy(key);
            self.mark_unread(key);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Config;
    use crate::sim::{MemoryServer, MemoryTransport};

    /// Gives connection `id` `lookups` in flight, as routes to other nodes would.
    fn in_flight(s: &mut MemoryServer, id: u64, lookups: usize) -> (usize, u64) {
        let key = s.key(id).expect("open");
        s.chat.lookups.entry(key).count = lookups;
        (key, s.chat.peers[key].generation)
    }

    #[test]
    fn lines_past_the_budget_wait_in_order_and_a_line_too_long_after_them_closes_last() {
        let mut s = MemoryServer::new(Config {
            max_line: 20,
            ..Config::default()
        });
        let ids = s.connect_as(&["alice", "bob"]);
        let (key, generation) = in_flight(&mut s, ids[0], MAX_LOOKUPS_PER_PEER);
        s.send(
            ids[0],
            b"bob: one\nbob: two\nbob: far too long for the limit\n",
        );
        s.turn();
        // Nothing is routed, and bob's own lines go on.
        assert_eq!(s.take_output(ids[1]), "");
        assert!(s.chat.lookups.get_mut(key).is_some_and(|p| p.awaiting));
        s.send(ids[1], b"bob: mine\n");
        s.turn();
        assert_eq!(s.take_output(ids[1]), "from bob: mine\n");
        // An answer below the budget: the lines are routed, then the long one closes alice.
        s.chat.on_answered(key, generation, 1);
        s.turn();
        assert_eq!(s.take_output(ids[1]), "from alice: one\nfrom alice: two\n");
        assert_eq!(s.take_output(ids[0]), "error: line too long\n");
        // Its write side is shut once the answers it is owed are in.
        assert!(!s.transport(ids[0]).write_shut);
        s.chat.on_answered(key, generation, MAX_LOOKUPS_PER_PEER);
        s.turn();
        assert!(s.transport(ids[0]).write_shut);
    }

    #[test]
    fn a_stale_answer_does_not_touch_a_new_connection_on_the_same_key() {
        let mut s = MemoryServer::new(Config::default());
        let ids = s.connect_as(&["alice"]);
        let (key, generation) = in_flight(&mut s, ids[0], 3);
        s.transport(ids[0]).reset = true;
        s.turn();
        let again = s.connect_with(MemoryTransport::default());
        s.send(again, b"carol\n");
        s.turn();
        assert_eq!(s.key(again), Some(key));
        in_flight(&mut s, again, 2);
        s.chat.on_answered(key, generation, 3);
        assert_eq!(s.chat.lookups.count(key), 2);
    }
}
