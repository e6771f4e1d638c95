//! What the allocator really takes for the memory that queues hold: the units in which
//! `max_queue` and `max_memory` count (a queued buffer, a queue's entries).

use std::mem::{align_of, size_of};
use std::rc::Rc;

/// glibc malloc's header in front of each chunk (one `size_t`).
const CHUNK_HEADER: usize = size_of::<usize>();
/// glibc malloc's chunk alignment on 64-bit targets (`2 * size_t`).
const CHUNK_ALIGN: usize = 2 * size_of::<usize>();
/// glibc malloc's smallest chunk: a header and the two free-list pointers, aligned.
const MIN_CHUNK: usize = 4 * size_of::<usize>();
/// The counts in front of the bytes of an `Rc<[u8]>` (strong and weak).
const RC_HEADER: usize = 2 * size_of::<usize>();
/// One queue entry: an `Rc<[u8]>` (a pointer and a length).
const ENTRY: usize = size_of::<Rc<[u8]>>();

/// The deque capacity a queue grows to from `capacity` when it is full: doubling, 4 at least
/// (what `VecDeque` itself does; the queue reserves it explicitly, so its cost is known before
/// the push).
pub(super) const fn grown_capacity(capacity: usize) -> usize {
    if capacity < 2 { 4 } else { capacity * 2 }
}

/// The bytes glibc's `malloc` takes from the heap for a request of `size` bytes: the request
/// plus the 8-byte chunk header, rounded up to 16 bytes, 32 at least; 0 for no allocation.
///
/// Requests from 128 KiB up (`M_MMAP_THRESHOLD`, which glibc may raise) may be mapped on their
/// own and rounded up to a page instead: at most 4 KiB more, 3% of such a request. That
/// difference, and other allocators' rounding (musl, jemalloc), are in the slack the README
/// states, not in the count.
pub const fn malloc_size(size: usize) -> usize {
    if size == 0 {
        return 0;
    }
    let chunk = (size + CHUNK_HEADER).next_multiple_of(CHUNK_ALIGN);
    if chunk < MIN_CHUNK { MIN_CHUNK } else { chunk }
}

/// What a buffer of `len` bytes queued as an `Rc<[u8]>` costs: its counts and bytes (padded to
/// the alignment of the counts) as `malloc` rounds them. A buffer shared by several queues
/// costs this once in the global count, and this for each holder against its own
/// `max_queue`.
pub const fn buffer_cost(len: usize) -> usize {
    malloc_size((RC_HEADER + len).next_multiple_of(align_of::<usize>()))
}

/// What a queue's deque of `capacity` entries costs.
pub const fn entries_cost(capacity: usize) -> usize {
    malloc_size(capacity * ENTRY)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn malloc_rounds_up_to_16_after_its_header_with_a_minimum_of_32() {
        assert_eq!(malloc_size(0), 0);
        for size in 1..=24 {
            assert_eq!(malloc_size(size), 32, "{size}");
        }
        assert_eq!(malloc_size(25), 48);
        assert_eq!(malloc_size(40), 48);
        assert_eq!(malloc_size(41), 64);
        assert_eq!(malloc_size(64), 80);
        assert_eq!(malloc_size(4096), 4112);
        for size in 1..2000 {
            let chunk = malloc_size(size);
            assert_eq!(chunk % 16, 0);
            assert!(chunk >= size + 8 && chunk < size + 8 + 16 || chunk == 32);
        }
    }

    #[test]
    fn a_buffer_costs_its_counts_and_bytes_rounded() {
        // "from a: \n": 9 bytes, 25 with the counts, padded to 32: a 48-byte chunk.
        assert_eq!(buffer_cost(9), 48);
        // "error: invalid utf-8\n": 21 bytes, 37, padded to 40: 48.
        assert_eq!(buffer_cost(21), 48);
        assert_eq!(buffer_cost(1), 32);
        assert_eq!(buffer_cost(8192), 8224);
    }

    #[test]
    fn entries_cost_16_bytes_a_slot_rounded() {
        assert_eq!(ENTRY, 16);
        assert_eq!(entries_cost(0), 0);
        assert_eq!(entries_cost(4), 80);
        assert_eq!(entries_cost(8), 144);
        assert_eq!(entries_cost(1024), 16400);
        assert_eq!(
            [0, 1, 3, 4, 8, 1000].map(grown_capacity),
            [4, 4, 6, 8, 16, 2000]
        );
    }
}
