//! What to send and when: each sender's next sequence number, how many it may send now (flat
//! out, or within its window), and the fixed timetable of the open loop.

use super::args::Shape;

/// The sending side of a run.
#[derive(Debug)]
pub struct Schedule {
    shape: Shape,
    messages: u64,
    /// Next sequence number of each sender.
    next_seq: Vec<u64>,
    /// Open loop: the next message of the timetable, counted across senders.
    next_index: u64,
    total: u64,
}

impl Schedule {
    /// `senders` senders of `messages` messages each, paced by `shape`.
    pub fn new(shape: Shape, senders: usize, messages: u64) -> Self {
        Schedule {
            shape,
            messages,
            next_seq: vec![0; senders],
            next_index: 0,
            total: senders as u64 * messages,
        }
    }

    /// Closed loop and flat out: how many messages `sender` may send now, given how many of its
    /// messages are still undelivered. The open loop sends by the timetable instead: 0.
    pub fn allowance(&self, sender: u32, undelivered: u64) -> u64 {
        let left = self.left(sender);
        match self.shape {
            Shape::Flat => left,
            Shape::Window(window) => left.min(window.saturating_sub(undelivered)),
            Shape::Rate(_) | Shape::Idle => 0,
        }
    }

    /// Messages `sender` has not been given yet.
    pub fn left(&self, sender: u32) -> u64 {
        self.messages - self.next_seq[sender as usize]
    }

    /// Takes the next sequence number of `sender`.
    pub fn take_seq(&mut self, sender: u32) -> u64 {
        let seq = &mut self.next_seq[sender as usize];
        *seq += 1;
        *seq - 1
    }

    /// Open loop: calls `send(sender, seq, due_ns)` for every message due by `elapsed_ns` (since
    /// the load began), in timetable order. Message `i` is due at `i / rate` seconds and comes
    /// from sender `i mod S`, so the senders take turns.
    pub fn take_due(&mut self, elapsed_ns: u64, mut send: impl FnMut(u32, u64, u64)) {
        while let Some(due_ns) = self.next_due_ns().filter(|&due| due <= elapsed_ns) {
            let senders = self.next_seq.len() as u64;
            let sender = (self.next_index % senders) as u32;
            let seq = self.take_seq(sender);
            self.next_index += 1;
            send(sender, seq, due_ns);
        }
    }

    /// Open loop: when the next message is due (ns since the load began); `None` when all are
    /// sent, or in the other shapes.
    pub fn next_due_ns(&self) -> Option<u64> {
        let Shape::Rate(rate) = self.shape else {
            return None;
        };
        (self.next_index < self.total).then(|| (self.next_index as f64 * 1e9 / rate) as u64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flat_out_allows_the_rest() {
        let mut schedule = Schedule::new(Shape::Flat, 2, 3);
        assert_eq!(schedule.allowance(0, 100), 3);
        assert_eq!(schedule.take_seq(0), 0);
        assert_eq!(schedule.take_seq(0), 1);
        assert_eq!(schedule.allowance(0, 0), 1);
        assert_eq!(schedule.take_seq(0), 2);
        assert_eq!(schedule.left(0), 0);
        assert_eq!(schedule.left(1), 3);
        assert_eq!(schedule.allowance(0, 0), 0);
    }

    #[test]
    fn window_caps_the_undelivered() {
        let schedule = Schedule::new(Shape::Window(2), 1, 10);
        assert_eq!(schedule.allowance(0, 0), 2);
        assert_eq!(schedule.allowance(0, 1), 1);
        assert_eq!(schedule.allowance(0, 2), 0);
        assert_eq!(schedule.allowance(0, 5), 0);
    }

    #[test]
    fn timetable_takes_turns_at_the_rate() {
        // 1000 messages per second: one every millisecond, senders 0, 1, 2, 0, ...
        let mut schedule = Schedule::new(Shape::Rate(1000.0), 3, 2);
        let mut sent = Vec::new();
        schedule.take_due(2_500_000, |s, seq, due| sent.push((s, seq, due)));
        assert_eq!(sent, [(0, 0, 0), (1, 0, 1_000_000), (2, 0, 2_000_000)]);
        assert_eq!(schedule.next_due_ns(), Some(3_000_000));
        sent.clear();
        schedule.take_due(u64::MAX, |s, seq, due| sent.push((s, seq, due)));
        assert_eq!(sent.len(), 3);
        assert_eq!(sent[2], (2, 1, 5_000_000));
        assert_eq!(schedule.next_due_ns(), None);
        assert_eq!(schedule.allowance(0, 0), 0);
    }
}
