//! One connection's outbound queue: shared message buffers, flushed with vectored writes.

use std::collections::VecDeque;
use std::io::{self, IoSlice, Write};
use std::rc::Rc;

use super::alloc_cost::{buffer_cost, entries_cost, grown_capacity};

/// How many queued chunks one `write_vectored` call hands to the kernel at most: `IOV_MAX` on
/// Linux, macOS and the BSDs (std caps a call there anyway). After a busy turn a receiver gets
/// what was queued for it in one `writev` where the socket takes it, not one per 64 messages
/// (K=1 flat out, 1,000 peers, 200,000 deliveries: 5,460-5,580 `writev` became 2,990-3,950,
/// 1,000 of them the logins' own messages; `benches/syscalls.sh`).
const MAX_SLICES: usize = 1024;

/// A queue this short lays its slices out in a small array (1 KiB to fill); a longer one in one
/// of `MAX_SLICES` (16 KiB), paid for by the many messages it writes.
const SMALL_SLICES: usize = 64;

/// The deque capacity an emptied outbox keeps (4 chunks: 64 bytes).
const KEPT_CAPACITY: usize = 4;

/// The bytes waiting to be written to one peer.
///
/// A message routed to many peers is one `Rc<[u8]>` that every receiver's outbox points to.
/// An empty outbox owns at most a few dozen bytes of heap memory.
///
/// Every chunk is held by outboxes only (and briefly by the router that made it), so an outbox
/// that drops a chunk whose reference count is one frees it: it adds its cost to `released`,
/// which the core takes to keep the global count of queued memory. So does an outbox that
/// empties, for its entries.
///
/// Its [`Outbox::cost`] is what it holds as the allocator gives it: each chunk's allocation
/// (in full, even if other outboxes share it) and its deque's slots while something is queued.
/// An emptied outbox keeps a deque of `KEPT_CAPACITY` slots (80 bytes) uncounted: part of a
/// connection's base, like its other fixed-size state.
#[derive(Debug, Default)]
pub struct Outbox {
    /// Invariant: no chunk is empty; when it holds nothing, its capacity is at most
    /// `KEPT_CAPACITY`.
    chunks: VecDeque<Rc<[u8]>>,
    /// How much of the front chunk is already written.
    /// Invariant: less than the front chunk's length, and 0 when there is no chunk.
    front_written: usize,
    /// Invariant: the sum of [`buffer_cost`] over the chunks.
    buffers_cost: usize,
    /// Cost of what this outbox stopped holding (chunks it dropped as their last holder, its
    /// entries when it emptied), not yet taken.
    released: usize,
}

/// What queueing one more chunk adds to an outbox's cost.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PushCost {
    /// The chunk's allocation ([`buffer_cost`]).
    pub buffer: usize,
    /// The entries' growth: the deque's allocation if the outbox is empty, its growth if full.
    pub entries: usize,
}

impl Outbox {
    /// An empty outbox.
    pub const fn new() -> Self {
        Outbox {
            chunks: VecDeque::new(),
            front_written: 0,
            buffers_cost: 0,
            released: 0,
        }
    }

    /// The unwritten bytes. Walks the queue (for logs and tests: the core keeps its own sum,
    /// and an outbox no more than it needs, as there is one per connection).
    pub fn queued(&self) -> usize {
        self.chunks.iter().map(|chunk| chunk.len()).sum::<usize>() - self.front_written
    }

    /// What this outbox holds, as allocated: what `max_queue` bounds.
    pub fn cost(&self) -> usize {
        self.buffers_cost + self.entries_cost()
    }

    /// Whether nothing waits.
    pub fn is_empty(&self) -> bool {
        self.chunks.is_empty()
    }

    /// What the deque's slots cost while a chunk is queued; 0 when none is (an emptied
    /// outbox's kept deque is part of the connection's base).
    fn entries_cost(&self) -> usize {
        if self.chunks.is_empty() {
            0
        } else {
            entries_cost(self.chunks.capacity())
        }
    }

    /// What [`Outbox::push`] of a chunk of `len` bytes will add to [`Outbox::cost`]. Constant
    /// time.
    pub fn push_cost(&self, len: usize) -> PushCost {
        PushCost {
            buffer: buffer_cost(len),
            entries: entries_cost(self.capacity_after_push()) - self.entries_cost(),
        }
    }

    /// Queues `chunk` behind what is already queued; returns the entries' growth, as
    /// [`Outbox::push_cost`] said.
    pub fn push(&mut self, chunk: Rc<[u8]>) -> usize {
        if chunk.is_empty() {
            return 0;
        }
        let before = self.entries_cost();
        let capacity = self.capacity_after_push();
        if capacity > self.chunks.capacity() {
            self.chunks.reserve_exact(capacity - self.chunks.len());
        }
        self.buffers_cost += buffer_cost(chunk.len());
        self.chunks.push_back(chunk);
        self.entries_cost() - before
    }

    /// The deque's capacity once one more chunk is pushed.
    fn capacity_after_push(&self) -> usize {
        let capacity = self.chunks.capacity();
        if self.chunks.len() < capacity {
            capacity
        } else {
            grown_capacity(capacity)
        }
    }

    /// Writes as much as one `write_vectored` call takes; returns the bytes written.
    ///
    /// Errors, `WouldBlock` included, are the writer's and leave the outbox as it was.
    pub fn write_to(&mut self, writer: &mut impl Write) -> io::Result<usize> {
        let count = self.chunks.len().min(MAX_SLICES);
        let written = if count == 0 {
            return Ok(0);
        } else if count <= SMALL_SLICES {
            self.write_slices::<SMALL_SLICES>(count, writer)?
        } else {
            // On the stack too: nothing is allocated on the write path.
            self.write_slices::<MAX_SLICES>(count, writer)?
        };
        self.consume(written);
        Ok(written)
    }

    /// One `write_vectored` of the first `count` chunks (at least one, at most `N`), the front
    /// one from its first unwritten byte, laid out in an array of `N` slices.
    fn write_slices<const N: usize>(
        &self,
        count: usize,
        writer: &mut impl Write,
    ) -> io::Result<usize> {
        let mut slices = [IoSlice::new(&[]); N];
        for (slot, chunk) in slices[..count].iter_mut().zip(&self.chunks) {
            *slot = IoSlice::new(chunk);
        }
        slices[0] = IoSlice::new(&self.chunks[0][self.front_written..]);
        writer.write_vectored(&slices[..count])
    }

    /// Drops everything queued; returns how many bytes were dropped.
    pub fn clear(&mut self) -> usize {
        let dropped = self.queued();
        let released = self.released
            + self.entries_cost()
            + self.chunks.iter().map(released_if_last).sum::<usize>();
        *self = Outbox::new();
        self.released = released;
        dropped
    }

    /// The chunks queued, front first.
    pub(crate) fn chunks(&self) -> impl Iterator<Item = &Rc<[u8]>> {
        self.chunks.iter()
    }

    /// The cost of this outbox's entries, from its deque (for the checks of tests).
    pub(crate) fn recount_entries_cost(&self) -> usize {
        self.entries_cost()
    }

    /// Takes the cost of what this outbox freed since the last call: the chunks it dropped
    /// while no other outbox held them, and its entries if it emptied.
    pub fn take_released(&mut self) -> usize {
        std::mem::take(&mut self.released)
    }

    fn consume(&mut self, mut written: usize) {
        let entries = self.entries_cost();
        while written > 0 {
            let front_left = self.chunks[0].len() - self.front_written;
            if written < front_left {
                self.front_written += written;
                return;
            }
            written -= front_left;
            self.front_written = 0;
            if let Some(chunk) = self.chunks.pop_front() {
                self.buffers_cost -= buffer_cost(chunk.len());
                self.released += released_if_last(&chunk);
            }
        }
        if self.chunks.is_empty() {
            self.released += entries;
        }
        if self.chunks.is_empty() && self.chunks.capacity() > KEPT_CAPACITY {
            // Give a large deque's memory back: most peers are idle most of the time. A small
            // one is kept, so that a busy peer does not allocate at every turn.
            self.chunks = VecDeque::new();
        }
    }
}

/// The chunk's cost if the reference about to be dropped is its last one.
fn released_if_last(chunk: &Rc<[u8]>) -> usize {
    if Rc::strong_count(chunk) == 1 {
        buffer_cost(chunk.len())
    } else {
        0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A writer that takes at most `limit` bytes a call, then `WouldBlock` when `limit` is 0.
    struct Trickle {
        out: Vec<u8>,
        limit: usize,
        calls: usize,
    }

    impl Write for Trickle {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            self.write_vectored(&[IoSlice::new(buf)])
        }

        fn write_vectored(&mut self, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
            self.calls += 1;
            if self.limit == 0 {
                return Err(io::ErrorKind::WouldBlock.into());
            }
            let mut taken = 0;
            for buf in bufs {
                let n = buf.len().min(self.limit - taken);
                self.out.extend_from_slice(&buf[..n]);
                taken += n;
            }
            Ok(taken)
        }

        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    fn chunk(bytes: &[u8]) -> Rc<[u8]> {
        Rc::from(bytes)
    }

    #[test]
    fn many_chunks_go_out_in_one_call() {
        let mut outbox = Outbox::new();
        for _ in 0..10 {
            outbox.push(chunk(b"abc"));
        }
        let mut w = Trickle {
            out: vec![],
            limit: usize::MAX,
            calls: 0,
        };
        assert_eq!(outbox.write_to(&mut w).unwrap(), 30);
        assert_eq!((w.calls, outbox.queued(), outbox.is_empty()), (1, 0, true));
        // Ten chunks grew the deque past what an idle outbox keeps.
        assert_eq!(outbox.chunks.capacity(), 0);
    }

    #[test]
    fn partial_writes_resume_in_the_middle_of_a_chunk() {
        let mut outbox = Outbox::new();
        outbox.push(chunk(b"hello\n"));
        outbox.push(chunk(b""));
        outbox.push(chunk(b"world\n"));
        let mut w = Trickle {
            out: vec![],
            limit: 4,
            calls: 0,
        };
        while !outbox.is_empty() {
            let before = outbox.queued();
            let n = outbox.write_to(&mut w).unwrap();
            assert_eq!(outbox.queued(), before - n);
        }
        assert_eq!(w.out, b"hello\nworld\n");
    }

    #[test]
    fn would_block_keeps_everything() {
        let mut outbox = Outbox::new();
        outbox.push(chunk(b"abc"));
        let mut w = Trickle {
            out: vec![],
            limit: 0,
            calls: 0,
        };
        let err = outbox.write_to(&mut w).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::WouldBlock);
        assert_eq!(outbox.queued(), 3);
    }

    /// `n` bytes counting up, modulo 256.
    fn counting(n: usize) -> Vec<u8> {
        (0..n).map(|i| u8::try_from(i % 256).unwrap()).collect()
    }

    /// Queues each of `bytes` as a chunk of its own.
    fn push_each(outbox: &mut Outbox, bytes: &[u8]) {
        for byte in bytes {
            outbox.push(chunk(&[*byte]));
        }
    }

    #[test]
    fn more_chunks_than_one_call_takes() {
        let mut outbox = Outbox::new();
        let bytes = counting(MAX_SLICES + 10);
        push_each(&mut outbox, &bytes);
        let mut w = Trickle {
            out: vec![],
            limit: usize::MAX,
            calls: 0,
        };
        assert_eq!(outbox.write_to(&mut w).unwrap(), MAX_SLICES);
        assert_eq!(outbox.write_to(&mut w).unwrap(), 10);
        assert_eq!(w.out, bytes);
    }

    #[test]
    fn a_queue_on_either_side_of_the_small_slices_goes_in_one_call_from_its_unwritten_byte() {
        for n in [
            1,
            SMALL_SLICES,
            SMALL_SLICES + 1,
            MAX_SLICES,
            MAX_SLICES + 1,
        ] {
            // n chunks: "abc", then n - 1 of one byte.
            let mut outbox = Outbox::new();
            outbox.push(chunk(b"abc"));
            let rest = counting(n - 1);
            push_each(&mut outbox, &rest);
            let bytes = [b"bc".as_slice(), &rest].concat();
            // A writer that took one byte: the front chunk is half written.
            let mut one = Trickle {
                out: vec![],
                limit: 1,
                calls: 0,
            };
            assert_eq!(outbox.write_to(&mut one).unwrap(), 1);
            let mut w = Trickle {
                out: vec![],
                limit: usize::MAX,
                calls: 0,
            };
            while !outbox.is_empty() {
                outbox.write_to(&mut w).unwrap();
            }
            assert_eq!(w.out, bytes, "{n} chunks");
            assert_eq!(w.calls, n.div_ceil(MAX_SLICES), "{n} chunks");
        }
    }

    #[test]
    fn shared_chunk_is_not_copied_and_is_released_by_its_last_holder() {
        let shared = chunk(b"from a: hi\n");
        let (mut one, mut two) = (Outbox::new(), Outbox::new());
        // Each holder costs the buffer in full, and its four-slot deque.
        let cost = buffer_cost(11) + entries_cost(4);
        assert_eq!(one.push_cost(11).buffer + one.push_cost(11).entries, cost);
        assert_eq!(one.push(shared.clone()), entries_cost(4));
        assert_eq!(two.push(shared.clone()), entries_cost(4));
        assert_eq!((one.cost(), two.cost()), (cost, cost));
        assert_eq!(Rc::strong_count(&shared), 3);
        drop(shared);
        assert_eq!(one.clear(), 11);
        assert_eq!(
            one.take_released(),
            entries_cost(4),
            "two still holds the buffer"
        );
        assert_eq!(one.cost(), 0);
        assert_eq!(two.queued(), 11);
        let mut w = Trickle {
            out: vec![],
            limit: 4,
            calls: 0,
        };
        two.write_to(&mut w).unwrap();
        assert_eq!(two.take_released(), 0, "partly written: still held");
        assert_eq!(two.cost(), cost);
        while !two.is_empty() {
            two.write_to(&mut w).unwrap();
        }
        assert_eq!(two.take_released(), cost);
        assert_eq!((two.take_released(), two.cost()), (0, 0));
    }

    #[test]
    fn the_deque_s_growth_is_counted_before_it_happens() {
        let mut outbox = Outbox::new();
        let mut expected_capacity = [4, 4, 4, 4, 8, 8, 8, 8, 16].into_iter();
        for i in 1..=9 {
            let before = outbox.cost();
            let cost = outbox.push_cost(3);
            assert_eq!(outbox.push(chunk(b"abc")), cost.entries);
            assert_eq!(outbox.cost(), before + cost.buffer + cost.entries);
            let capacity = expected_capacity.next().unwrap();
            assert_eq!(outbox.chunks.capacity(), capacity);
            assert_eq!(outbox.cost(), i * buffer_cost(3) + entries_cost(capacity));
            assert_eq!(outbox.recount_entries_cost(), entries_cost(capacity));
        }
        // Emptied: the deque (16 slots) is dropped, its cost and the buffers' released.
        let mut w = Trickle {
            out: vec![],
            limit: usize::MAX,
            calls: 0,
        };
        outbox.write_to(&mut w).unwrap();
        assert_eq!(
            outbox.take_released(),
            9 * buffer_cost(3) + entries_cost(16)
        );
        assert_eq!(outbox.cost(), 0);
        // A kept deque is not counted while empty, and counted again once used.
        outbox.push(chunk(b"abc"));
        outbox.write_to(&mut w).unwrap();
        outbox.take_released();
        assert_eq!((outbox.chunks.capacity(), outbox.cost()), (4, 0));
        assert_eq!(outbox.push_cost(3).entries, entries_cost(4));
    }
}
