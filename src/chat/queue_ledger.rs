//! The ledger of queued memory: what all outbound queues hold together (each buffer once,
//! however many queues share it, and every queue's entries; see `alloc_cost`), the bytes they
//! wait to write, and an index of the queues by cost that finds the costliest one.

use std::collections::HashSet;
use std::rc::Rc;

use slab::Slab;

use super::alloc_cost::buffer_cost;
use super::peer::Peer;

/// Size classes: a queue costing `n > 0` bytes ([`super::outbox::Outbox::cost`]) is in class
/// `bit_length(n)`, 1 to 64.
const CLASSES: usize = usize::BITS as usize + 1;

fn size_class(queued: usize) -> u8 {
    // At most `usize::BITS`, 64: it fits.
    (usize::BITS - queued.leading_zeros()) as u8
}

/// The queues' memory and bytes counted as they change, and the connections with something
/// queued by the size class of their queue's cost, so that the costliest queue is found
/// without looking at every connection: the highest non-empty class holds it, and the queues in
/// one class are within a factor of two of each other.
///
/// The core tells it of every change to a queue: `queued` for a push, `written` and
/// `released` after a write or a clear, then `reindex`.
#[derive(Debug)]
pub(super) struct QueueLedger {
    /// Bytes held by all queues together, as the allocator gives them ([`crate::Stats::queue_memory`]).
    /// Invariant: equals `recount(peers)` between the core's calls.
    memory: usize,
    /// Bytes waiting in all queues, each queue counted on its own ([`crate::Stats::bytes_queued`]).
    /// Invariant: the sum of every peer's `outbox.queued()`.
    bytes_queued: usize,
    /// Invariant: `classes[c]` holds exactly the keys whose peer has `size_class == c`, c ≥ 1,
    /// each at the position its peer's `class_slot` says; a peer's `size_class` is that of its
    /// queue's cost after every `reindex`.
    classes: Vec<Vec<usize>>,
}

impl Default for QueueLedger {
    fn default() -> Self {
        QueueLedger {
            memory: 0,
            bytes_queued: 0,
            classes: vec![Vec::new(); CLASSES],
        }
    }
}

impl QueueLedger {
    /// Bytes held by all queues together.
    #[inline]
    pub(super) fn memory(&self) -> usize {
        self.memory
    }

    /// Bytes waiting in all queues.
    #[inline]
    pub(super) fn bytes_queued(&self) -> usize {
        self.bytes_queued
    }

    /// A push of `len` bytes that adds `charge` bytes of memory (its entries, and its buffer
    /// unless another queue already holds it).
    #[inline]
    pub(super) fn queued(&mut self, len: usize, charge: usize) {
        self.bytes_queued += len;
        self.memory += charge;
    }

    /// `len` queued bytes were written, or dropped with their queue.
    #[inline]
    pub(super) fn written(&mut self, len: usize) {
        self.bytes_queued -= len;
    }

    /// A queue freed `bytes` of memory (chunks it dropped as their last holder, its entries once
    /// empty; or a buffer the router held last).
    #[inline]
    pub(super) fn released(&mut self, bytes: usize) {
        self.memory -= bytes;
    }

    /// Files `key` under its queue's size class after the queue changed. Costs a comparison
    /// unless the queue's cost crossed a power of two.
    #[inline]
    pub(super) fn reindex<T>(&mut self, peers: &mut Slab<Peer<T>>, key: usize) {
        let peer = &mut peers[key];
        let class = size_class(peer.outbox.cost());
        let old = peer.size_class;
        if class == old {
            return;
        }
        self.refile(peers, key, class, old);
    }

    fn refile<T>(&mut self, peers: &mut Slab<Peer<T>>, key: usize, class: u8, old: u8) {
        let peer = &mut peers[key];
        let slot = peer.class_slot as usize;
        peer.size_class = class;
        if class != 0 {
            let members = &mut self.classes[usize::from(class)];
            peer.class_slot = u32::try_from(members.len()).expect("fewer than 4 Gi connections");
            members.push(key);
        }
        if old != 0 {
            let members = &mut self.classes[usize::from(old)];
            members.swap_remove(slot);
            if let Some(&moved) = members.get(slot) {
                // `slot` was below the length before: it fits as the old one did.
                peers[moved].class_slot = slot as u32;
            }
        }
    }

    /// The connection whose queue costs the most, if any has something queued.
    pub(super) fn largest<T>(&self, peers: &Slab<Peer<T>>) -> Option<usize> {
        let members = self.classes.iter().rev().find(|m| !m.is_empty())?;
        members
            .iter()
            .copied()
            .max_by_key(|&key| peers[key].outbox.cost())
    }

    /// How many size classes hold a queue (for tests).
    #[cfg(test)]
    pub(super) fn populated_classes(&self) -> usize {
        self.classes.iter().filter(|c| !c.is_empty()).count()
    }

    /// Counts the queues' memory again from scratch, each buffer once, every queue's entries
    /// from its deque's capacity: what `memory` must equal (a check for tests and fuzzers).
    /// Panics if a queue's own cost, kept as it changes, is not what its chunks and deque add
    /// up to.
    pub(super) fn recount<T>(peers: &Slab<Peer<T>>) -> usize {
        let mut seen = HashSet::new();
        let mut total = 0;
        for (key, peer) in peers {
            let entries = peer.outbox.recount_entries_cost();
            let buffers: usize = peer.outbox.chunks().map(|c| buffer_cost(c.len())).sum();
            assert_eq!(peer.outbox.cost(), buffers + entries, "#{key}'s queue cost");
            total += entries;
            total += peer
                .outbox
                .chunks()
                .filter(|chunk| seen.insert(Rc::as_ptr(chunk).cast::<u8>()))
                .map(|chunk| buffer_cost(chunk.len()))
                .sum::<usize>();
        }
        total
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::chat::peer::Phase;

    fn peers(n: usize) -> Slab<Peer<()>> {
        let mut peers = Slab::new();
        for generation in 0..n {
            peers.insert(Peer::new((), Phase::Chatting, generation as u64));
        }
        peers
    }

    #[test]
    fn size_classes_are_bit_lengths() {
        assert_eq!(size_class(0), 0);
        assert_eq!(size_class(1), 1);
        assert_eq!(size_class(2), 2);
        assert_eq!(size_class(3), 2);
        assert_eq!(size_class(4096), 13);
        assert_eq!(size_class(usize::MAX), 64);
    }

    #[test]
    fn counts_follow_pushes_writes_and_releases() {
        let mut ledger = QueueLedger::default();
        ledger.queued(14, 48 + 80);
        ledger.queued(14, 80);
        assert_eq!((ledger.bytes_queued(), ledger.memory()), (28, 208));
        ledger.written(14);
        ledger.released(80);
        assert_eq!((ledger.bytes_queued(), ledger.memory()), (14, 128));
    }

    #[test]
    fn the_index_follows_each_queue_and_finds_the_costliest() {
        let mut peers = peers(3);
        let mut ledger = QueueLedger::default();
        assert_eq!(ledger.largest(&peers), None);
        for (key, messages) in [(0, 1), (1, 40), (2, 3)] {
            for _ in 0..messages {
                peers[key].outbox.push(Rc::from(&b"from a: hi\n"[..]));
            }
            ledger.reindex(&mut peers, key);
        }
        assert_eq!(ledger.largest(&peers), Some(1));
        // Each key sits where its peer's slot says, in its peer's class.
        for (class, members) in ledger.classes.iter().enumerate() {
            for (slot, &key) in members.iter().enumerate() {
                assert_eq!(usize::from(peers[key].size_class), class);
                assert_eq!(peers[key].class_slot as usize, slot);
            }
        }
        // Emptied, it leaves the index; the next costliest is found.
        peers[1].outbox.clear();
        ledger.reindex(&mut peers, 1);
        assert_eq!(ledger.largest(&peers), Some(2));
        assert_eq!(peers[1].size_class, 0);
        assert!(ledger.populated_classes() <= 2);
    }
}
