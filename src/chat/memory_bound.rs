//! The global bound on queued memory (`max_memory`): the bytes that all outbound queues hold
//! together, a buffer shared by several queues counted once; an index of the queues by size;
//! and the eviction of the largest queue, then the next, while a new message would pass the
//! bound.

use log::warn;

use super::peer::CloseReason;
use super::{Chat, Transport};

/// Size classes: a queue of `n > 0` bytes is in class `bit_length(n)`, 1 to 64.
const CLASSES: usize = usize::BITS as usize + 1;

/// The connections with something queued, by size class, so that the largest queue is found
/// without looking at every connection: the highest non-empty class holds it, and the queues
/// in one class are within a factor of two of each other.
#[derive(Debug)]
pub(super) struct QueueIndex {
    /// Invariant: `classes[c]` holds exactly the keys whose peer has `size_class == c`, c ≥ 1,
    /// each at the position its peer's `class_slot` says.
    classes: Vec<Vec<usize>>,
}

impl Default for QueueIndex {
    fn default() -> Self {
        QueueIndex {
            classes: vec![Vec::new(); CLASSES],
        }
    }
}

fn size_class(queued: usize) -> u8 {
    (usize::BITS - queued.leading_zeros()) as u8
}

impl<T: Transport> Chat<T> {
    /// Files `key` under its queue's size class after the queue changed. Costs a comparison
    /// unless the queue crossed a power of two.
    pub(super) fn reindex(&mut self, key: usize) {
        let peer = &mut self.peers[key];
        let class = size_class(peer.outbox.queued());
        let old = peer.size_class;
        if class == old {
            return;
        }
        let slot = peer.class_slot as usize;
        peer.size_class = class;
        if class != 0 {
            let members = &mut self.queue_index.classes[usize::from(class)];
            peer.class_slot = members.len() as u32;
            members.push(key);
        }
        if old != 0 {
            let members = &mut self.queue_index.classes[usize::from(old)];
            members.swap_remove(slot);
            if let Some(&moved) = members.get(slot) {
                self.peers[moved].class_slot = slot as u32;
            }
        }
    }

    /// Takes the bytes that `key`'s queue freed (chunks it dropped as their last holder) off
    /// the global count.
    pub(super) fn take_released(&mut self, key: usize) {
        let released = self.peers[key].outbox.take_released();
        self.stats.queue_memory -= released;
    }

    /// The connection with the most bytes queued, if any has some.
    pub(super) fn largest_queue(&self) -> Option<usize> {
        let members = self
            .queue_index
            .classes
            .iter()
            .rev()
            .find(|m| !m.is_empty())?;
        members
            .iter()
            .copied()
            .max_by_key(|&key| self.peers[key].outbox.queued())
    }

    /// Makes room for `charge` more bytes under `max_memory`: disconnects the peer with the
    /// largest queue as a slow consumer, then the next, until they fit or no queue is left.
    /// Returns `false` if `key`, the connection about to be queued for, was among them.
    pub(super) fn make_room(&mut self, key: usize, charge: usize) -> bool {
        let max_memory = self.config.max_memory;
        let mut kept = true;
        while self.stats.queue_memory + charge > max_memory {
            let Some(victim) = self.largest_queue() else {
                break;
            };
            let peer = &self.peers[victim];
            let name = peer
                .name
                .as_deref()
                .map(|n| format!(" {n}"))
                .unwrap_or_default();
            warn!(
                "#{victim}{name} is a slow consumer: disconnecting ({} bytes queued for it; \
                 the queues hold {} of --max-memory {max_memory})",
                peer.outbox.queued(),
                self.stats.queue_memory,
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
    /// Counts the queues' memory again from scratch, each buffer once: what
    /// [`crate::Stats::queue_memory`] must equal (a check for tests and fuzzers).
    pub(crate) fn recount_queue_memory(&self) -> usize {
        let mut seen = std::collections::HashSet::new();
        self.peers
            .iter()
            .flat_map(|(_, peer)| peer.outbox.chunks())
            .filter(|chunk| seen.insert(std::rc::Rc::as_ptr(chunk).cast::<u8>()))
            .map(|chunk| chunk.len())
            .sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Config;
    use crate::memory::MemoryServer;

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
        let stats = s.chat.stats();
        assert_eq!((stats.bytes_queued, stats.queue_memory), (3 * line, line));
        assert_eq!(s.recount_queue_memory(), line);
        // Two receivers read it: still held by the third. Then the third: freed.
        for &id in &ids[1..3] {
            s.transport(id).write_window = usize::MAX;
        }
        s.turn();
        assert_eq!(s.chat.stats().queue_memory, line);
        s.transport(ids[3]).write_window = usize::MAX;
        s.turn();
        let stats = s.chat.stats();
        assert_eq!((stats.bytes_queued, stats.queue_memory), (0, 0));
    }

    #[test]
    fn the_largest_queue_goes_first_and_a_reader_keeps_everything() {
        let (mut s, ids) = chat_with(&["src", "big", "small", "reader"], 2000);
        let (src, big, small, reader) = (ids[0], ids[1], ids[2], ids[3]);
        s.transport(big).write_window = 0;
        s.transport(small).write_window = 0;
        let text = "x".repeat(90); // 100 bytes delivered
        let mut script = String::new();
        for i in 0..14 {
            script.push_str(&format!("big, reader: {i}{text}\n"));
        }
        for i in 0..4 {
            script.push_str(&format!("small, reader: {i}{text}\n"));
        }
        s.send(src, script.as_bytes());
        s.turn();
        // 1,800 bytes held: under the bound.
        assert_eq!(s.chat.stats().memory_evictions, 0);
        assert!(s.is_open(big) && s.is_open(small));
        s.send(
            src,
            format!("small, reader: more{text}\n").repeat(3).as_bytes(),
        );
        s.turn();
        // Past 2,000: big (1,400 bytes queued) goes, small (about 700) stays.
        assert!(!s.is_open(big));
        assert!(s.is_open(small));
        let stats = s.chat.stats();
        assert_eq!(
            (stats.memory_evictions, stats.slow_consumers_evicted),
            (1, 1)
        );
        assert!(stats.queue_memory <= 2000);
        assert_eq!(s.recount_queue_memory(), stats.queue_memory);
        assert_eq!(s.take_output(reader).lines().count(), 21);
    }

    #[test]
    fn the_receiver_itself_may_be_the_one_to_go() {
        let (mut s, ids) = chat_with(&["src", "slow"], 300);
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
        let populated = s.chat.queue_index.classes.iter().filter(|c| !c.is_empty());
        assert!(populated.count() <= 12, "a few size classes for 199 queues");
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
}
