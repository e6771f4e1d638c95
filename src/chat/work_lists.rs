//! The per-turn work lists: the connections to flush, to read again, and to hand back at the
//! end of the turn.

use slab::Slab;

use super::peer::Peer;

/// What [`super::Chat::end_turn`] has to do, by connection. Each list is filled during a turn
/// and emptied at its end; a peer's `dirty` and `unread` flags keep a key from being listed
/// twice.
#[derive(Debug, Default)]
pub(super) struct WorkLists {
    /// Keys that may have bytes to write or a close to carry on.
    /// Invariant: holds every key whose peer has `dirty` set, once; it may also hold keys whose
    /// flag was cleared or whose peer is gone since (`pop_dirty` skips them).
    dirty: Vec<usize>,
    /// Keys whose last read stopped at the budget, not at `WouldBlock`.
    /// Invariant: holds every key whose peer has `unread` set, once.
    unread: Vec<usize>,
    /// Invariant: holds exactly the keys of the peers in `Phase::Closed`, once each.
    closed: Vec<usize>,
}

impl WorkLists {
    /// Puts `key` on the list of connections to flush, unless it is on it.
    #[inline]
    pub(super) fn mark_dirty<T>(&mut self, peers: &mut Slab<Peer<T>>, key: usize) {
        if !std::mem::replace(&mut peers[key].dirty, true) {
            self.dirty.push(key);
        }
    }

    /// The next connection that may have something to write or a close to carry on; its flag
    /// is cleared.
    #[inline]
    pub(super) fn pop_dirty<T>(&mut self, peers: &mut Slab<Peer<T>>) -> Option<usize> {
        while let Some(key) = self.dirty.pop() {
            if let Some(peer) = peers.get_mut(key)
                && std::mem::take(&mut peer.dirty)
            {
                return Some(key);
            }
        }
        None
    }

    /// Puts `key` on the list of connections to read again at the end of a turn, unless it is
    /// on it.
    pub(super) fn mark_unread<T>(&mut self, peers: &mut Slab<Peer<T>>, key: usize) {
        if !std::mem::replace(&mut peers[key].unread, true) {
            self.unread.push(key);
        }
    }

    /// The connections to read again, the list emptied (their flags are the caller's to
    /// clear).
    pub(super) fn take_unread(&mut self) -> Vec<usize> {
        std::mem::take(&mut self.unread)
    }

    /// Whether some connection is to be read again.
    pub(super) fn has_unread(&self) -> bool {
        !self.unread.is_empty()
    }

    /// `key` was just closed.
    pub(super) fn closed(&mut self, key: usize) {
        self.closed.push(key);
    }

    /// The closed connections, the list emptied.
    pub(super) fn take_closed(&mut self) -> Vec<usize> {
        std::mem::take(&mut self.closed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::chat::peer::Phase;

    #[test]
    fn a_key_is_listed_once_until_popped() {
        let mut peers: Slab<Peer<()>> = Slab::new();
        let a = peers.insert(Peer::new((), Phase::Chatting, 0));
        let b = peers.insert(Peer::new((), Phase::Chatting, 1));
        let mut work = WorkLists::default();
        work.mark_dirty(&mut peers, a);
        work.mark_dirty(&mut peers, b);
        work.mark_dirty(&mut peers, a);
        assert_eq!(work.pop_dirty(&mut peers), Some(b));
        assert_eq!(work.pop_dirty(&mut peers), Some(a));
        assert_eq!(work.pop_dirty(&mut peers), None);
        assert!(!peers[a].dirty && !peers[b].dirty);
        // A peer gone since it was listed is skipped.
        work.mark_dirty(&mut peers, a);
        peers.remove(a);
        assert_eq!(work.pop_dirty(&mut peers), None);
    }

    #[test]
    fn unread_and_closed_lists_are_taken_whole() {
        let mut peers: Slab<Peer<()>> = Slab::new();
        let a = peers.insert(Peer::new((), Phase::Chatting, 0));
        let mut work = WorkLists::default();
        assert!(!work.has_unread());
        work.mark_unread(&mut peers, a);
        work.mark_unread(&mut peers, a);
        assert!(work.has_unread());
        assert_eq!(work.take_unread(), [a]);
        assert!(!work.has_unread());
        work.closed(a);
        assert_eq!(work.take_closed(), [a]);
        assert!(work.take_closed().is_empty());
    }
}
