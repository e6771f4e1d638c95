//! The global bound on queued memory (`max_memory`): the eviction of the costliest queue, then
//! the next, while a new message would pass the bound. What the queues hold is counted, and
//! the costliest found, by the `QueueLedger` (`queue_ledger.rs`).

use std::rc::Rc;

use log::warn;

use super::alloc_cost::buffer_cost;
use super::peer::CloseReason;
use super::queue_ledger::QueueLedger;
use super::{Chat, Transport};

impl<T: Transport> Chat<T> {
    /// Queues a notice made of `text` for `key` (a buffer of its own, charged to the memory
    /// bound).
    pub(super) fn queue_text(&mut self, key: usize, text: &str) -> bool {
        self.queue(key, Rc::from(text.as_bytes()), false)
    }

    /// Queues `bytes` (never empty) for `key`; `counted` says whether the buffer is already
    /// counted in the memory of all queues together (queued for another receiver of the same
    /// line), so that only the entry it takes is added.
    ///
    /// A queue whose cost would exceed `max_queue` (its buffers in full, shared or not, and
    /// its entries; see `Outbox::cost`) is flushed, and if that is not enough, its peer is
    /// disconnected as a slow consumer. Then, while the queues together would pass
    /// `max_memory`, the costliest queue is flushed, and its peer disconnected if it takes
    /// nothing, then the next (`make_room`). Returns whether `bytes` was queued. Constant time
    /// unless the memory bound is reached.
    pub(super) fn queue(&mut self, key: usize, bytes: Rc<[u8]>, counted: bool) -> bool {
        debug_assert!(!bytes.is_empty());
        let max_queue = self.config.max_queue;
        let fits = |outbox: &super::outbox::Outbox| {
            let cost = outbox.push_cost(bytes.len());
            outbox.cost() + cost.buffer + cost.entries <= max_queue
        };
        if !fits(&self.peers[key].outbox) {
            // Queues are normally flushed once per turn; under pressure, flush this one now,
            // so that only a peer that really does not read is called slow.
            if let Err(reason) = self.write_queued(key) {
                self.close_now(key, reason);
                return false;
            }
        }
        let peer = &mut self.peers[key];
        if !fits(&peer.outbox) {
            match &peer.name {
                Some(name) => warn!("#{key} {name} is a slow consumer: disconnecting"),
                None => warn!("#{key} is a slow consumer: disconnecting"),
            }
            self.stats.slow_consumers_evicted += 1;
            self.close_now(key, CloseReason::SlowConsumer);
            return false;
        }
        let charge =
            |cost: super::outbox::PushCost| cost.entries + if counted { 0 } else { cost.buffer };
        let mut cost = peer.outbox.push_cost(bytes.len());
        while self.ledger.memory() + charge(cost) > self.config.max_memory {
            if !self.make_room(key, charge(cost)) {
                return false;
            }
            // Making room may have flushed this very queue (the costliest), and changed what
            // the push adds to it; once it does not change, room was made, or no queue is left.
            let now = self.peers[key].outbox.push_cost(bytes.len());
            if now == cost {
                break;
            }
            cost = now;
        }
        let len = bytes.len();
        let entries = self.peers[key].outbox.push(bytes);
        debug_assert_eq!(entries, cost.entries);
        self.ledger
            .queued(len, charge(cost) - cost.entries + entries);
        self.reindex(key);
        self.mark_dirty(key);
        true
    }

    /// Files `key` under its queue's size class after the queue changed (see
    /// `QueueLedger::reindex`).
    #[inline]
    pub(super) fn reindex(&mut self, key: usize) {
        self.ledger.reindex(&mut self.peers, key);
    }

    /// Takes what `key`'s queue freed (chunks it dropped as their last holder, its entries once
    /// empty) off the global count.
    pub(super) fn take_released(&mut self, key: usize) {
        let released = self.peers[key].outbox.take_released();
        self.ledger.released(released);
    }

    /// The connection whose queue costs the most, if any has something queued.
    pub(super) fn largest_queue(&self) -> Option<usize> {
        self.ledger.largest(&self.peers)
    }

    /// Ends the routing of a buffer that was counted in the queues' memory when first queued
    /// (`counted`): receivers evicted after it was queued for them may have left the router
    /// its last holder, and then it is freed here.
    pub(super) fn release_unqueued(&mut self, shared: Option<Rc<[u8]>>, counted: bool) {
        if let Some(bytes) = shared
            && counted
            && Rc::strong_count(&bytes) == 1
        {
            self.ledger.released(buffer_cost(bytes.len()));
        }
    }

    /// Makes room for `charge` more bytes under `max_memory`: flushes the costliest queue
    /// (queues are normally written once per turn, and a peer that reads, a sender's notices
    /// say, is not slow), and if it takes nothing, disconnects its peer as a slow consumer;
    /// then the next, until they fit or no queue is left. Returns `false` if `key`, the
    /// connection about to be queued for, was disconnected.
    pub(super) fn make_room(&mut self, key: usize, charge: usize) -> bool {
        let max_memory = self.config.max_memory;
        let mut kept = true;
        while self.ledger.memory() + charge > max_memory {
            let Some(victim) = self.largest_queue() else {
                break;
            };
            match self.write_queued(victim) {
                Err(reason) => {
                    self.close_now(victim, reason);
                    kept &= victim != key;
                    continue;
                }
                // It took some: look again (once it takes nothing, it goes).
                Ok(written) if written > 0 => continue,
                Ok(_) => {}
            }
            let peer = &self.peers[victim];
            let name = peer
                .name
                .as_deref()
                .map(|n| format!(" {n}"))
                .unwrap_or_default();
            warn!(
                "#{victim}{name} is a slow consumer: disconnecting ({} bytes queued for it, \
                 holding {}; the queues hold {} of --max-memory {max_memory})",
                peer.outbox.queued(),
                peer.outbox.cost(),
                self.ledger.memory(),
            );
            self.stats.slow_consumers_evicted += 1;
            self.stats.memory_evictions += 1;
            self.close_now(victim, CloseReason::SlowConsumer);
            kept &= victim != key;
        }
        kept
    }
}

impl<T> Chat<T> {
    /// Counts the queues' memory again from scratch: what [`crate::Stats::queue_memory`] must
    /// equal (a check for tests and fuzzers; see `QueueLedger::recount`).
    pub(crate) fn recount_queue_memory(&self) -> usize {
        QueueLedger::recount(&self.peers)
    }

    /// The cost of the costliest queue of an open connection, counted again from scratch:
    /// `max_queue` bounds it (a check for tests and fuzzers).
    pub(crate) fn recount_largest_queue_cost(&self) -> usize {
        self.peers
            .iter()
            .filter(|(_, peer)| !peer.phase.is_closed())
            .map(|(_, peer)| {
                let buffers: usize = peer.outbox.chunks().map(|c| buffer_cost(c.len())).sum();
                buffers + peer.outbox.recount_entries_cost()
            })
            .max()
            .unwrap_or(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Config;
    use crate::chat::alloc_cost::entries_cost;
    use crate::sim::MemoryServer;

    /// `names` logged in on a server whose queues may hold `max_memory` bytes together, each
    /// queue as much as it likes.
    fn chat_with(names: &[&str], max_memory: usize) -> (MemoryServer, Vec<u64>) {
        let mut s = MemoryServer::new(Config {
            max_queue: 1 << 30,
            max_memory,
            ..Config::default()
        });
        let ids = s.connect_as(names);
        (s, ids)
    }

    #[test]
    fn a_buffer_shared_by_several_queues_counts_once() {
        let (mut s, ids) = chat_with(&["a", "b", "c", "d"], 1 << 20);
        for &id in &ids[1..] {
            s.transport(id).write_window = 0;
        }
        s.send(ids[0], b"b, c, d: hello\n");
        s.turn();
        let line = "from a: hello\n".len();
        // One buffer (14 bytes and the Rc's counts: a 48-byte chunk), and a deque of four
        // 16-byte slots (an 80-byte chunk) in each of the three queues.
        let held = |queues| buffer_cost(line) + queues * entries_cost(4);
        assert_eq!((buffer_cost(line), held(3)), (48, 288));
        let stats = s.chat.stats();
        assert_eq!(
            (stats.bytes_queued, stats.queue_memory),
            (3 * line, held(3))
        );
        assert_eq!(s.recount_queue_memory(), held(3));
        // Two receivers read it: still held by the third. Then the third: freed.
        for &id in &ids[1..3] {
            s.transport(id).write_window = usize::MAX;
        }
        s.turn();
        assert_eq!(s.chat.stats().queue_memory, held(1));
        assert_eq!(s.recount_queue_memory(), held(1));
        s.transport(ids[3]).write_window = usize::MAX;
        s.turn();
        let stats = s.chat.stats();
        assert_eq!((stats.bytes_queued, stats.queue_memory), (0, 0));
    }

    #[test]
    fn the_largest_queue_goes_first_and_a_reader_keeps_everything() {
        let (mut s, ids) = chat_with(&["src", "big", "small", "reader"], 3400);
        let (src, big, small, reader) = (ids[0], ids[1], ids[2], ids[3]);
        s.transport(big).write_window = 0;
        s.transport(small).write_window = 0;
        let text = "x".repeat(90); // 102 or 103 bytes delivered, 128 allocated
        assert_eq!((buffer_cost(102), buffer_cost(103)), (128, 128));
        let mut script = String::new();
        for i in 0..14 {
            script.push_str(&format!("big, reader: {i}{text}\n"));
        }
        for i in 0..4 {
            script.push_str(&format!("small, reader: {i}{text}\n"));
        }
        s.send(src, script.as_bytes());
        s.turn();
        // 18 buffers, big's 16 slots and small's 4 held: under the bound (the reader's 32
        // slots were too, during the turn).
        let held = 18 * 128 + entries_cost(16) + entries_cost(4);
        assert_eq!(s.chat.stats().queue_memory, held);
        assert_eq!(s.chat.stats().memory_evictions, 0);
        assert!(s.is_open(big) && s.is_open(small));
        s.send(
            src,
            format!("small, reader: more{text}\n").repeat(6).as_bytes(),
        );
        s.turn();
        // Past 3,400 at the fifth: big (14 buffers and 16 slots, 2,064 bytes) goes, small
        // (1,648 at the end) stays.
        assert!(!s.is_open(big));
        assert!(s.is_open(small));
        let stats = s.chat.stats();
        assert_eq!(
            (stats.memory_evictions, stats.slow_consumers_evicted),
            (1, 1)
        );
        // Small's ten: four of 102 bytes, six of 105 (144 allocated), and 16 slots.
        let small_cost = 4 * buffer_cost(102) + 6 * buffer_cost(105) + entries_cost(16);
        assert_eq!(stats.queue_memory, small_cost);
        assert_eq!(s.recount_queue_memory(), stats.queue_memory);
        assert_eq!(s.take_output(reader).lines().count(), 24);
    }

    #[test]
    fn a_notice_costs_its_allocation_and_its_slot() {
        let (mut s, _) = chat_with(&[], 1 << 20);
        let id = s.connect();
        s.transport(id).write_window = 0;
        // Before a login, each line that is not UTF-8 earns a notice of 21 bytes: a 48-byte
        // chunk of its own, and a slot in a deque of 8 after the fifth.
        s.send(id, &b"\xff\n".repeat(5));
        s.turn();
        let stats = s.chat.stats();
        assert_eq!(stats.bytes_queued, 5 * 21);
        assert_eq!(stats.queue_memory, 5 * 48 + entries_cost(8));
        assert_eq!(s.recount_queue_memory(), stats.queue_memory);
        assert_eq!(s.largest_queue_cost(), stats.queue_memory);
    }

    #[test]
    fn a_fan_out_of_empty_messages_is_bounded_by_its_entries() {
        // Fifty receivers that never read, named in every line with an empty text: each line
        // is one 48-byte buffer and fifty slots. A count of the buffers alone (a hundred lines
        // of 13 bytes, 1.3 KB) would not come near the bound.
        let names: Vec<String> = (0..50).map(|i| format!("p{i}")).collect();
        let mut all = vec!["src"];
        all.extend(names.iter().map(String::as_str));
        let bound = 64 << 10;
        let (mut s, ids) = chat_with(&all, bound);
        for &id in &ids[1..] {
            s.transport(id).write_window = 0;
        }
        let line = format!("{}: \n", names.join(","));
        s.send(ids[0], line.repeat(100).as_bytes());
        s.turn();
        let stats = s.chat.stats();
        assert!(stats.queue_memory <= bound, "{} held", stats.queue_memory);
        assert!(
            stats.queue_memory > bound / 2,
            "{} held",
            stats.queue_memory
        );
        assert_eq!(s.recount_queue_memory(), stats.queue_memory);
        assert!(stats.memory_evictions > 0);
        assert!(s.largest_queue_cost() > 4 << 10, "slots, not bytes");
    }

    #[test]
    fn max_queue_counts_buffers_in_full_and_slots() {
        // "from src: \n": 11 bytes, a 48-byte chunk. Fifteen and a deque of 16 slots (272
        // bytes) cost 992; a sixteenth would make 1,040.
        assert_eq!(15 * buffer_cost(11) + entries_cost(16), 992);
        for (messages, evicted) in [(15, false), (16, true)] {
            let mut s = MemoryServer::new(Config {
                max_queue: 1024,
                ..Config::default()
            });
            let ids = s.connect_as(&["src", "slow", "reader"]);
            s.transport(ids[1]).write_window = 0;
            s.send(ids[0], &b"slow, reader: \n".repeat(messages));
            s.turn();
            assert_eq!(s.is_open(ids[1]), !evicted, "{messages}");
            let stats = s.chat.stats();
            assert_eq!(stats.slow_consumers_evicted, u64::from(evicted));
            assert_eq!(stats.memory_evictions, 0);
            assert_eq!(s.take_output(ids[2]).lines().count(), messages);
            assert!(s.largest_queue_cost() <= 1024);
            assert_eq!(s.recount_queue_memory(), stats.queue_memory);
        }
    }

    #[test]
    fn a_costly_queue_that_is_read_is_flushed_not_evicted() {
        // The sender names a hundred unknown peers: its notices (a 48-byte buffer and a slot
        // each, 6.8 KB) pass the bound within the line, before the turn's flush. It reads, so
        // making room writes its queue instead of disconnecting it; the peer that does not
        // read goes.
        let (mut s, ids) = chat_with(&["src", "slow"], 4096);
        s.transport(ids[1]).write_window = 0;
        s.send(ids[0], b"slow: 1\nslow: 2\n");
        s.turn();
        let unknown: Vec<String> = (0..100).map(|i| format!("u{i}")).collect();
        s.send(ids[0], format!("{}: x\n", unknown.join(",")).as_bytes());
        s.turn();
        assert!(s.is_open(ids[0]));
        assert_eq!(s.take_output(ids[0]).lines().count(), 100);
        let stats = s.chat.stats();
        assert_eq!(stats.memory_evictions, 0);
        assert_eq!(stats.queue_memory, s.recount_queue_memory());
        assert!(s.is_open(ids[1]));
    }

    #[test]
    fn the_receiver_itself_may_be_the_one_to_go() {
        // Two messages of 111 bytes (a 144-byte chunk each) and four slots fit, not three.
        let (mut s, ids) = chat_with(&["src", "slow"], 450);
        s.transport(ids[1]).write_window = 0;
        let line = format!("slow: {}\n", "y".repeat(100));
        s.send(ids[0], line.repeat(3).as_bytes());
        s.turn();
        assert!(!s.is_open(ids[1]));
        let stats = s.chat.stats();
        assert_eq!((stats.memory_evictions, stats.messages_routed), (1, 2));
        assert_eq!((stats.queue_memory, s.recount_queue_memory()), (0, 0));
        // Its name is free at once.
        s.send(ids[0], b"slow: gone?\n");
        s.turn();
        assert_eq!(s.take_output(ids[0]), "error: no such peer: slow\n");
    }

    #[test]
    fn the_largest_queue_is_found_among_many_without_looking_at_every_peer() {
        let names: Vec<String> = (0..200).map(|i| format!("p{i}")).collect();
        let refs: Vec<&str> = names.iter().map(String::as_str).collect();
        let (mut s, ids) = chat_with(&refs, 1 << 30);
        for &id in &ids {
            s.transport(id).write_window = 0;
        }
        // Peer i is sent i messages: the largest queue is the last peer's.
        let mut script = String::new();
        for (i, name) in names.iter().enumerate() {
            for _ in 0..i {
                script.push_str(&format!("{name}: m\n"));
            }
        }
        s.send(ids[0], script.as_bytes());
        s.turn();
        while s.chat.has_unread_input() {
            s.turn();
        }
        let largest = s.chat.largest_queue().unwrap();
        assert_eq!(Some(largest), s.key(ids[199]));
        let populated = s.chat.ledger.populated_classes();
        assert!(populated <= 12, "a few size classes for 199 queues");
    }
}
