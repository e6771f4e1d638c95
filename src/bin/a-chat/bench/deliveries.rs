//! The books of a run: which messages were sent, which copies arrived, in what order, how late.
//!
//! A copy is one receiver's delivery of one message. Per message the books keep how many of
//! its K copies are still missing (the window of the closed loop needs it: a message is
//! delivered once all K arrived), and per (receiver, sender) pair the highest sequence number
//! seen, to check the protocol's per-sender order.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};

use hdrhistogram::Histogram;

use super::wire::Stamp;

/// Counts of what arrived.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Counts {
    /// Messages sent (appended to a sender's socket buffer).
    pub sent: u64,
    /// Copies that arrived, each message's K copies counted at most once.
    pub delivered: u64,
    /// Copies beyond the K of a message, or that a receiver got twice in a row.
    pub duplicates: u64,
    /// Copies older than one the receiver already had from the same sender.
    pub out_of_order: u64,
    /// Lines that are not the protocol, or claim a message that was never sent.
    pub malformed: u64,
    /// `error: ` lines.
    pub notices: u64,
    /// Of `delivered`, the copies whose sender and receiver were connected to different nodes.
    pub cross_node: u64,
}

/// The books. Indexes are connection indexes; message `seq` of sender `s` is message
/// `s * messages + seq`.
#[derive(Debug)]
pub struct Deliveries {
    /// How many nodes connections take turns over (connection i on node i mod nodes).
    nodes: usize,
    messages: u64,
    fanout: u32,
    /// Copies of each message still missing; 0 also before it is sent (see `sent_by`).
    missing: Vec<u32>,
    /// Messages sent by each sender (their sequence numbers are `0..sent_by[s]`).
    sent_by: Vec<u64>,
    /// Messages of each sender with copies still missing (the closed loop's window).
    undelivered: Vec<u64>,
    /// Senders with a message that was just completed, for the closed loop to wake them.
    completed: Vec<u32>,
    /// Per (receiver, sender): 1 + the highest sequence number received.
    next_expected: PairTable,
    /// End-to-end latency in microseconds (with a window: of the copies sent within it).
    pub latency_us: Histogram<u64>,
    pub counts: Counts,
    /// A sweep step's measurement window, in ns since the run's start: latencies are recorded
    /// for copies sent within it, and copies arriving within it are counted.
    window_ns: Option<(u64, u64)>,
    /// Copies that arrived within the window.
    pub window_arrivals: u64,
}

impl Deliveries {
    /// Books for `receivers` connections of which the first `senders` send `messages` messages,
    /// each to `fanout` receivers;
    /// latencies up to `max_latency_us` are recorded exactly (3 significant digits), longer
    /// ones as that maximum.
    pub fn new(
        receivers: usize,
        senders: usize,
        messages: u64,
        fanout: usize,
        max_latency_us: u64,
    ) -> Self {
        Deliveries {
            nodes: 1,
            messages,
            fanout: fanout as u32,
            missing: vec![0; senders * messages as usize],
            sent_by: vec![0; senders],
            undelivered: vec![0; senders],
            completed: Vec::new(),
            next_expected: PairTable::new(receivers, senders),
            latency_us: latency_histogram(max_latency_us),
            counts: Counts::default(),
            window_ns: None,
            window_arrivals: 0,
        }
    }

    /// Measures only within `[start_ns, end_ns)` (since the run's start): latency of the copies
    /// sent then, and the count of copies arriving then (the delivered rate of a sweep step).
    pub fn with_window(mut self, start_ns: u64, end_ns: u64) -> Self {
        self.window_ns = Some((start_ns, end_ns));
        self
    }

    /// Connections take turns over `nodes` nodes: deliveries between two of them are counted.
    pub fn with_nodes(mut self, nodes: usize) -> Self {
        self.nodes = nodes.max(1);
        self
    }

    /// Books message `seq` of `sender` as sent. Sequence numbers increase; one skipped (the open
    /// loop skips the turns of a sender that failed) stays unsent: a copy of it is a duplicate.
    pub fn on_sent(&mut self, sender: u32, seq: u64) {
        let s = sender as usize;
        debug_assert!(self.sent_by[s] <= seq);
        self.sent_by[s] = seq + 1;
        let index = self.index(sender, seq);
        self.missing[index] = self.fanout;
        self.undelivered[s] += 1;
        self.counts.sent += 1;
    }

    /// Messages of `sender` with copies still missing.
    pub fn undelivered(&self, sender: u32) -> u64 {
        self.undelivered[sender as usize]
    }

    /// Senders that had a message completed since the last call (for the closed loop).
    pub fn take_completed(&mut self, into: &mut Vec<u32>) {
        into.append(&mut self.completed);
    }

    /// Copies expected from what was sent.
    pub fn expected(&self) -> u64 {
        self.counts.sent * u64::from(self.fanout)
    }

    /// Whether every copy of every sent message arrived.
    pub fn all_delivered(&self) -> bool {
        self.counts.delivered == self.expected()
    }

    /// Books a copy of `stamp` received by `receiver` at `now_ns` (since the run's start).
    pub fn on_message(&mut self, receiver: u32, stamp: Stamp, now_ns: u64) {
        let Stamp {
            sender,
            seq,
            sent_ns,
        } = stamp;
        if sender as usize >= self.sent_by.len() || seq >= self.sent_by[sender as usize] {
            self.counts.malformed += 1;
            return;
        }
        let next = self.next_expected.get_mut(receiver, sender);
        let seq_plus_1 = (seq + 1) as u32;
        if seq_plus_1 == *next {
            // The same message again, right after itself.
            self.counts.duplicates += 1;
            return;
        }
        if seq_plus_1 < *next {
            // An older one than already seen: late, or a duplicate of an earlier copy. Which
            // of the two cannot be told without a record per copy; the message's count of
            // missing copies decides below.
            self.counts.out_of_order += 1;
        } else {
            *next = seq_plus_1;
        }
        let index = self.index(sender, seq);
        if self.missing[index] == 0 {
            self.counts.duplicates += 1;
            return;
        }
        self.missing[index] -= 1;
        self.counts.delivered += 1;
        if self.nodes > 1 && sender as usize % self.nodes != receiver as usize % self.nodes {
            self.counts.cross_node += 1;
        }
        match self.window_ns {
            None => self
                .latency_us
                .saturating_record(now_ns.saturating_sub(sent_ns) / 1000),
            Some((start, end)) => {
                if sent_ns >= start && sent_ns < end {
                    self.latency_us
                        .saturating_record(now_ns.saturating_sub(sent_ns) / 1000);
                }
                if now_ns >= start && now_ns < end {
                    self.window_arrivals += 1;
                }
            }
        }
        if self.missing[index] == 0 {
            self.undelivered[sender as usize] -= 1;
            self.completed.push(sender);
        }
    }

    fn index(&self, sender: u32, seq: u64) -> usize {
        (u64::from(sender) * self.messages + seq) as usize
    }
}

/// A histogram of microseconds from 1 µs to `max_us` at 3 significant digits.
pub fn latency_histogram(max_us: u64) -> Histogram<u64> {
    Histogram::new_with_bounds(1, max_us.max(2), 3).expect("valid histogram bounds")
}

/// Pairs (receiver, sender) to a `u32`, 0 for a pair not seen yet. Dense when every pair fits
/// in a modest array (1,000 x 1,000 is 4 MB, and a lookup is one memory access); a map of the
/// pairs that occur otherwise (19,000 x 19,000 would take 1.4 GB).
#[derive(Debug)]
enum PairTable {
    Dense { senders: usize, values: Vec<u32> },
    Sparse(HashMap<u64, u32, BuildHasherDefault<PairHasher>>),
}

/// The most pairs held densely: 64 MiB of `u32`.
const DENSE_PAIRS: usize = 16 << 20;

impl PairTable {
    fn new(receivers: usize, senders: usize) -> Self {
        match receivers.checked_mul(senders) {
            Some(pairs) if pairs <= DENSE_PAIRS => PairTable::Dense {
                senders,
                values: vec![0; pairs],
            },
            _ => PairTable::Sparse(HashMap::default()),
        }
    }

    fn get_mut(&mut self, receiver: u32, sender: u32) -> &mut u32 {
        match self {
            PairTable::Dense { senders, values } => {
                &mut values[receiver as usize * *senders + sender as usize]
            }
            PairTable::Sparse(map) => map
                .entry((u64::from(receiver) << 32) | u64::from(sender))
                .or_insert(0),
        }
    }
}

/// A multiplicative hash for the (receiver, sender) keys: they are not chosen by an adversary,
/// and std's SipHash would cost more than the rest of the bookkeeping of a copy.
#[derive(Debug, Default)]
struct PairHasher(u64);

impl Hasher for PairHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.write_u64(u64::from(b));
        }
    }

    fn write_u64(&mut self, n: u64) {
        self.0 = (self.0.rotate_left(5) ^ n).wrapping_mul(0x517C_C1B7_2722_0A95);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stamp(sender: u32, seq: u64) -> Stamp {
        Stamp {
            sender,
            seq,
            sent_ns: 1_000 * seq,
        }
    }

    #[test]
    fn in_order_copies_complete_messages() {
        let mut books = Deliveries::new(8, 2, 3, 2, 1_000_000);
        books.on_sent(0, 0);
        books.on_sent(0, 1);
        assert_eq!(books.expected(), 4);
        assert_eq!(books.undelivered(0), 2);
        books.on_message(1, stamp(0, 0), 5_000);
        books.on_message(2, stamp(0, 0), 6_000);
        let mut woken = Vec::new();
        books.take_completed(&mut woken);
        assert_eq!(woken, [0]);
        assert_eq!(books.undelivered(0), 1);
        books.on_message(1, stamp(0, 1), 7_000);
        books.on_message(2, stamp(0, 1), 8_000);
        assert!(books.all_delivered());
        assert_eq!(books.counts.delivered, 4);
        assert_eq!(books.latency_us.len(), 4);
        assert_eq!(books.latency_us.max(), 7);
        assert_eq!(
            (
                books.counts.duplicates,
                books.counts.out_of_order,
                books.counts.malformed
            ),
            (0, 0, 0)
        );
    }

    #[test]
    fn duplicates_and_reordering_are_counted_not_delivered() {
        let mut books = Deliveries::new(8, 1, 3, 1, 1_000_000);
        for seq in 0..3 {
            books.on_sent(0, seq);
        }
        books.on_message(1, stamp(0, 0), 0);
        books.on_message(1, stamp(0, 0), 0); // again at once
        books.on_message(1, stamp(0, 2), 0);
        books.on_message(1, stamp(0, 1), 0); // late
        books.on_message(1, stamp(0, 0), 0); // late and a duplicate
        books.on_message(2, stamp(0, 1), 0); // a copy beyond K
        assert_eq!(books.counts.delivered, 3);
        assert_eq!(books.counts.duplicates, 3);
        assert_eq!(books.counts.out_of_order, 2);
        assert!(books.all_delivered());
    }

    #[test]
    fn never_sent_is_malformed_and_missing_copies_are_lost() {
        let mut books = Deliveries::new(8, 2, 2, 3, 1_000_000);
        books.on_sent(1, 0);
        books.on_message(0, stamp(1, 1), 0); // not sent yet
        books.on_message(0, stamp(5, 0), 0); // no such sender
        books.on_message(0, stamp(1, 0), 0);
        assert_eq!(books.counts.malformed, 2);
        assert_eq!(books.expected() - books.counts.delivered, 2);
        assert!(!books.all_delivered());
        assert_eq!(books.undelivered(1), 1);
    }

    #[test]
    fn sparse_pairs_book_like_dense_ones() {
        let run = |receivers: usize| {
            let mut books = Deliveries::new(receivers, 2, 3, 1, 1_000_000);
            for seq in 0..3 {
                books.on_sent(0, seq);
                books.on_sent(1, seq);
            }
            for (receiver, sender, seq) in [(5, 0, 0), (5, 0, 0), (5, 0, 2), (5, 0, 1), (7, 1, 1)] {
                books.on_message(receiver, stamp(sender, seq), 0);
            }
            books.counts
        };
        assert!(matches!(PairTable::new(8, 2), PairTable::Dense { .. }));
        assert!(matches!(
            PairTable::new(DENSE_PAIRS, 2),
            PairTable::Sparse(_)
        ));
        assert_eq!(run(8), run(DENSE_PAIRS));
        assert_eq!(run(8).delivered, 4);
        assert_eq!(run(8).out_of_order, 1);
    }

    #[test]
    fn a_window_times_what_was_sent_in_it_and_counts_what_arrived_in_it() {
        let mut books = Deliveries::new(8, 1, 4, 1, 1_000_000).with_window(10_000, 20_000);
        for seq in 0..4 {
            books.on_sent(0, seq);
        }
        // Sent before the window (warm-up), arriving in it: counted, not timed.
        books.on_message(1, stamp(0, 0), 15_000);
        // Sent in it (seq 1 at 11 µs after the run's start), arriving in it and after it.
        let at = |seq| Stamp {
            sender: 0,
            seq,
            sent_ns: 11_000,
        };
        books.on_message(1, at(1), 19_000);
        books.on_message(1, at(2), 40_000);
        // Sent after it.
        books.on_message(
            1,
            Stamp {
                sent_ns: 25_000,
                ..stamp(0, 3)
            },
            26_000,
        );
        assert_eq!(books.counts.delivered, 4);
        assert_eq!(books.window_arrivals, 2);
        assert_eq!(books.latency_us.len(), 2);
        assert_eq!(books.latency_us.max(), 29);
    }

    #[test]
    fn latency_past_the_bound_saturates() {
        let mut books = Deliveries::new(8, 1, 1, 1, 1_000);
        books.on_sent(0, 0);
        books.on_message(1, stamp(0, 0), 10_000_000_000);
        assert_eq!(books.counts.delivered, 1);
        assert!(books.latency_us.max() <= 1_001);
    }
}
