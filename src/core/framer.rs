//! Line framing: bytes in, complete lines out, never holding more than one bounded unfinished line.

use std::fmt;

/// The unfinished line of one connection, between reads.
///
/// A line ends with `\n`; a `\r` right before the `\n` is dropped. A line is too long when it
/// holds more than `max_line` bytes without its terminator. The framer keeps at most
/// `max_line + 1` bytes (the line plus a `\r` whose `\n` has not arrived yet), and nothing at all
/// between lines: an idle connection's framer owns no heap memory.
#[derive(Debug, Default)]
pub struct LineFramer {
    /// The bytes of the line that has started but not ended.
    /// Invariant: holds no `\n` and at most `max_line + 1` bytes; has no capacity when empty.
    tail: Vec<u8>,
}

/// A line was longer than the limit; the connection is to be closed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LineTooLong;

impl fmt::Display for LineTooLong {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("line too long")
    }
}

impl std::error::Error for LineTooLong {}

impl LineFramer {
    /// An empty framer.
    pub const fn new() -> Self {
        LineFramer { tail: Vec::new() }
    }

    /// How many bytes of an unfinished line are held.
    pub fn buffered(&self) -> usize {
        self.tail.len()
    }

    /// Frames `input`, calling `on_line` with each complete line, without its terminator, in order.
    ///
    /// Returns `Err(LineTooLong)` as soon as a line is known to exceed `max_line` bytes: the lines
    /// before it have been delivered, the rest of `input` is not looked at, and the framer is
    /// left empty. The caller closes the connection and feeds nothing more.
    pub fn feed(
        &mut self,
        input: &[u8],
        max_line: usize,
        mut on_line: impl FnMut(&[u8]),
    ) -> Result<(), LineTooLong> {
        let mut rest = input;
        if !self.tail.is_empty() {
            let Some(end) = find_newline(rest) else {
                // Still unfinished: keep it, unless it can no longer fit.
                return self.keep_unfinished(rest, max_line);
            };
            if self.tail.len() + end > max_line + 1 {
                return Err(self.reset());
            }
            self.tail.extend_from_slice(&rest[..end]);
            let line = strip_cr(&self.tail);
            if line.len() > max_line {
                return Err(self.reset());
            }
            on_line(line);
            // Give the memory back: the next line most likely arrives whole.
            self.tail = Vec::new();
            rest = &rest[end + 1..];
        }
        // Whole lines inside `input` are handed out in place, without a copy.
        while let Some(end) = find_newline(rest) {
            let line = strip_cr(&rest[..end]);
            if line.len() > max_line {
                return Err(self.reset());
            }
            on_line(line);
            rest = &rest[end + 1..];
        }
        self.keep_unfinished(rest, max_line)
    }

    /// Appends the start of a line whose `\n` has not arrived, if it can still be short enough.
    fn keep_unfinished(&mut self, part: &[u8], max_line: usize) -> Result<(), LineTooLong> {
        let held = self.tail.len() + part.len();
        let last = part.last().or(self.tail.last());
        // `max_line` bytes and a `\r` may still end well; anything more, or `max_line + 1` bytes
        // that do not end in `\r`, cannot.
        let hopeless = held > max_line + 1 || (held == max_line + 1 && last != Some(&b'\r'));
        if hopeless {
            return Err(self.reset());
        }
        self.tail.extend_from_slice(part);
        Ok(())
    }

    /// Takes the unfinished line out, leaving the framer empty.
    pub fn take_unfinished(&mut self) -> Vec<u8> {
        std::mem::take(&mut self.tail)
    }

    fn reset(&mut self) -> LineTooLong {
        self.tail = Vec::new();
        LineTooLong
    }
}

fn find_newline(bytes: &[u8]) -> Option<usize> {
    bytes.iter().position(|&b| b == b'\n')
}

fn strip_cr(line: &[u8]) -> &[u8] {
    line.strip_suffix(b"\r").unwrap_or(line)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Feeds `chunks` in order and returns the lines, or the lines before the error.
    fn frame(chunks: &[&[u8]], max_line: usize) -> (Vec<Vec<u8>>, Result<(), LineTooLong>) {
        let mut framer = LineFramer::new();
        let mut lines = Vec::new();
        for chunk in chunks {
            let result = framer.feed(chunk, max_line, |line| lines.push(line.to_vec()));
            assert!(framer.buffered() <= max_line + 1);
            if result.is_err() {
                assert_eq!(framer.buffered(), 0);
                return (lines, result);
            }
        }
        (lines, Ok(()))
    }

    fn ok(chunks: &[&[u8]], max_line: usize) -> Vec<Vec<u8>> {
        let (lines, result) = frame(chunks, max_line);
        assert_eq!(result, Ok(()));
        lines
    }

    #[test]
    fn whole_lines_in_one_chunk() {
        assert_eq!(
            ok(&[b"a\nbc\n\n"], 10),
            vec![b"a".to_vec(), b"bc".to_vec(), vec![]]
        );
    }

    #[test]
    fn crlf_drops_only_the_cr_before_lf() {
        assert_eq!(
            ok(&[b"a\r\nb\rc\r\n\r\n"], 10),
            vec![b"a".to_vec(), b"b\rc".to_vec(), vec![]]
        );
    }

    #[test]
    fn cr_and_lf_split_across_chunks() {
        assert_eq!(ok(&[b"ab\r", b"\ncd"], 10), vec![b"ab".to_vec()]);
    }

    #[test]
    fn one_byte_at_a_time() {
        let input = b"alice\r\nbob: hi\n";
        let chunks: Vec<&[u8]> = input.chunks(1).collect();
        assert_eq!(
            ok(&chunks, 10),
            vec![b"alice".to_vec(), b"bob: hi".to_vec()]
        );
    }

    #[test]
    fn unfinished_line_is_held_not_delivered() {
        let mut framer = LineFramer::new();
        let mut count = 0;
        framer.feed(b"abc", 10, |_| count += 1).unwrap();
        assert_eq!((count, framer.buffered()), (0, 3));
    }

    #[test]
    fn idle_framer_owns_no_memory_after_a_split_line() {
        let mut framer = LineFramer::new();
        framer.feed(b"ab", 10, |_| {}).unwrap();
        framer.feed(b"c\n", 10, |_| {}).unwrap();
        assert_eq!(framer.tail.capacity(), 0);
    }

    #[test]
    fn line_of_exactly_max_line_is_accepted() {
        assert_eq!(ok(&[b"abcd\n"], 4), vec![b"abcd".to_vec()]);
        assert_eq!(ok(&[b"abcd\r\n"], 4), vec![b"abcd".to_vec()]);
        assert_eq!(ok(&[b"ab", b"cd\r", b"\n"], 4), vec![b"abcd".to_vec()]);
    }

    #[test]
    fn line_of_max_line_plus_one_is_too_long() {
        assert_eq!(frame(&[b"abcde\n"], 4), (vec![], Err(LineTooLong)));
        assert_eq!(frame(&[b"ab", b"cde\n"], 4), (vec![], Err(LineTooLong)));
        assert_eq!(frame(&[b"abcd\r\r\n"], 4), (vec![], Err(LineTooLong)));
    }

    #[test]
    fn too_long_is_reported_before_the_newline_arrives() {
        assert_eq!(frame(&[b"abcde"], 4), (vec![], Err(LineTooLong)));
        assert_eq!(frame(&[b"abc", b"de"], 4), (vec![], Err(LineTooLong)));
        // `max_line` bytes and a `\r` may still be a good line.
        assert_eq!(frame(&[b"abcd\r"], 4), (vec![], Ok(())));
    }

    #[test]
    fn empty_feed_keeps_a_line_that_may_still_end_well() {
        // Found by the framer fuzz check: the `\r` verdict must look at the held line, not
        // at the (empty) new part.
        assert_eq!(frame(&[b"abcd\r", b""], 4), (vec![], Ok(())));
        assert_eq!(
            frame(&[b"abcd\r", b"", b"\n"], 4),
            (vec![b"abcd".to_vec()], Ok(()))
        );
    }

    #[test]
    fn lines_before_a_long_one_are_delivered() {
        assert_eq!(
            frame(&[b"ok\ntoolong\nnever\n"], 4),
            (vec![b"ok".to_vec()], Err(LineTooLong))
        );
    }

    #[test]
    fn endless_line_never_holds_more_than_the_bound() {
        let mut framer = LineFramer::new();
        let chunk = [b'x'; 7];
        let mut result = Ok(());
        for _ in 0..100 {
            result = framer.feed(&chunk, 100, |_| panic!("no line expected"));
            assert!(framer.buffered() <= 101);
            if result.is_err() {
                break;
            }
        }
        assert_eq!(result, Err(LineTooLong));
    }

    #[test]
    fn zero_max_line_accepts_only_empty_lines() {
        assert_eq!(ok(&[b"\n\r\n"], 0), vec![vec![], vec![]]);
        assert_eq!(frame(&[b"a\n"], 0), (vec![], Err(LineTooLong)));
    }
}
