//! Cluster mode's back-pressure on senders: each logged-in peer's budget of lookups in flight
//! (its destinations routed through Redis and not answered yet), the lines it sent while it
//! waited for answers, and its wake-up when they come. Back-pressure thus falls on the peers
//! whose lines fill the link, and the others are read on. Without a cluster no peer has
//! lookups, and none of this ever holds anyone.

use std::time::Instant;

use super::peer::{HeldLines, Phase, ReadMode};
use super::{Chat, Transport};
use crate::parse::LineError;

/// Destinations a peer may have in flight before it is no longer read: one route batch's worth
/// (`BATCH` in `src/cluster/link.rs`). A line is never split, so a peer goes past it by the
/// destinations of its last line at most.
pub(crate) const MAX_LOOKUPS_PER_PEER: usize = 512;

impl<T: Transport> Chat<T> {
    /// Whether the logged-in peer `key` must wait for answers from the cluster before more of
    /// its lines are routed: it has [`MAX_LOOKUPS_PER_PEER`] lookups in flight, or any while
    /// the link is congested (so many bytes wait for Redis that the global cap is near). In
    /// that second case the peers with nothing in flight are still read: local chat goes on,
    /// and each such peer adds one line's destinations at most before it waits in turn; past
    /// the link's hard cap, new lookups are refused as `cluster unavailable`.
    pub(super) fn awaits_lookups(&self, key: usize) -> bool {
        let lookups = self.peers[key].lookups;
        lookups >= MAX_LOOKUPS_PER_PEER || (lookups > 0 && self.cluster_congested())
    }

    /// Keeps a line of `key` that arrived while it waits for answers, after those already kept.
    pub(super) fn hold_line(&mut self, key: usize, line: &[u8]) {
        let held = self.peers[key].held.get_or_insert_with(Box::default);
        held.lines.extend_from_slice(line);
        held.lines.push(b'\n');
    }

    /// Before `key` is read: routes the lines it sent while it waited for answers, as far as
    /// its budget goes (then a line too long after them closes it). Returns whether it may be
    /// read on; if not, it is marked as awaiting answers, which read it again.
    pub(super) fn route_held_lines(&mut self, key: usize, now: Instant) -> bool {
        let Some(mut held) = self.peers[key].held.take() else {
            return self.go_on_or_await(key);
        };
        let HeldLines {
            lines,
            start,
            too_long,
        } = &mut *held;
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
            self.peers[key].held = Some(held);
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
        self.peers[key].awaiting = waits;
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
        peer.lookups = peer.lookups.saturating_sub(count);
        let (closing, awaiting) = (matches!(peer.phase, Phase::Closing { .. }), peer.awaiting);
        if closing && peer.lookups == 0 {
            self.mark_dirty(key);
        } else if awaiting && !self.awaits_lookups(key) {
            self.peers[key].awaiting = false;
            self.mark_unread(key);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Config;
    use crate::memory::{MemoryServer, MemoryTransport};

    /// Gives connection `id` `lookups` in flight, as routes to other nodes would.
    fn in_flight(s: &mut MemoryServer, id: u64, lookups: usize) -> (usize, u64) {
        let key = s.key(id).expect("open");
        let peer = &mut s.chat.peers[key];
        peer.lookups = lookups;
        (key, peer.generation)
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
        assert!(s.chat.peers[key].awaiting);
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
        assert_eq!(s.chat.peers[key].lookups, 2);
    }
}
