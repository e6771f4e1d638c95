//! Connection deadlines in time order. An entry names the connection by slab key and
//! generation, so that a deadline of a connection that has moved on, or whose key was given to
//! a new connection, is recognised and skipped when it comes up.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::time::Instant;

/// One deadline: when, which slab key, which generation of that key.
pub(crate) type Deadline = (Instant, usize, u64);

/// A min-heap of deadlines.
#[derive(Debug, Default)]
pub(crate) struct Timers {
    heap: BinaryHeap<Reverse<Deadline>>,
}

impl Timers {
    pub(crate) fn push(&mut self, at: Instant, key: usize, generation: u64) {
        self.heap.push(Reverse((at, key, generation)));
    }

    /// The earliest deadline, stale or not.
    pub(crate) fn next(&self) -> Option<Instant> {
        self.heap.peek().map(|Reverse((at, _, _))| *at)
    }

    /// Takes the earliest deadline if it is due by `now`.
    pub(crate) fn pop_due(&mut self, now: Instant) -> Option<Deadline> {
        if self.next()? > now {
            return None;
        }
        self.heap.pop().map(|Reverse(deadline)| deadline)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn due_deadlines_come_out_in_time_order() {
        let start = Instant::now();
        let mut timers = Timers::default();
        timers.push(start + Duration::from_secs(2), 1, 0);
        timers.push(start + Duration::from_secs(1), 2, 0);
        timers.push(start + Duration::from_secs(3), 3, 0);
        assert_eq!(timers.next(), Some(start + Duration::from_secs(1)));
        let now = start + Duration::from_secs(2);
        assert_eq!(timers.pop_due(now).map(|d| d.1), Some(2));
        assert_eq!(timers.pop_due(now).map(|d| d.1), Some(1));
        assert_eq!(timers.pop_due(now), None);
        assert_eq!(timers.next(), Some(start + Duration::from_secs(3)));
    }
}
