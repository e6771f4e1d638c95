//! RESP3 through `redis-protocol`, which does no IO: commands encoded into the output buffer,
//! frames decoded in place from the input buffer (ranges, no copies), and the few shapes of
//! reply the link reads. Redis is input too (contract section 9): before the crate decodes a
//! frame, [`Scanner`] (`scanner.rs`) has found it complete and within [`MAX_DEPTH`] and
//! [`MAX_REPLY`], so no reply can crash the node, hold more than a bounded amount of its
//! memory, or cost more than linear time.

mod scanner;

use std::fmt;
use std::ops::Range;

use redis_protocol::resp3::decode::complete::decode_range;
use redis_protocol::resp3::encode::complete::encode_borrowed;
use redis_protocol::resp3::types::{BorrowedFrame, RangeFrame};

pub(crate) use scanner::Scanner;

/// Levels of aggregates (arrays, maps, sets, pushes, attributes) one reply may nest.
pub(crate) const MAX_DEPTH: usize = 32;

/// The largest reply accepted, in bytes (each element counted at [`ELEMENT_COST`] at least).
/// Real replies are far smaller: a route batch's statuses, a push of one batch of records.
pub(crate) const MAX_REPLY: usize = 16 << 20;

/// What one element of a reply counts towards [`MAX_REPLY`]: the decoded frames' memory (a
/// `RangeFrame` in a vector grown by doubling, or in a map's table) is at most this much.
pub(crate) const ELEMENT_COST: usize = 4 * std::mem::size_of::<RangeFrame>();

/// Why a reply from Redis is refused: each is a broken link.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum ReplyError {
    /// Aggregates nested deeper than [`MAX_DEPTH`].
    TooDeep,
    /// Larger than [`MAX_REPLY`], or announced so.
    TooLarge,
    /// Not RESP3 as Redis sends it; why.
    Unparsable(String),
}

impl fmt::Display for ReplyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ReplyError::TooDeep => write!(
                f,
                "a reply from Redis nested deeper than {MAX_DEPTH} levels (the limit)"
            ),
            ReplyError::TooLarge => write!(
                f,
                "a reply from Redis larger than {} MiB (the limit)",
                MAX_REPLY >> 20
            ),
            ReplyError::Unparsable(why) => {
                write!(f, "a reply from Redis that does not parse: {why}")
            }
        }
    }
}

/// A [`ReplyError::Unparsable`] saying `why`.
fn unparsable(why: &str) -> ReplyError {
    ReplyError::Unparsable(why.to_string())
}

/// Appends the command `args` (an array of bulk strings) to `out`.
pub(crate) fn encode_command(out: &mut Vec<u8>, args: &[&[u8]]) {
    let parts: Vec<BorrowedFrame<'_>> = args
        .iter()
        .map(|arg| BorrowedFrame::BlobString {
            data: arg,
            attributes: None,
        })
        .collect();
    let frame = BorrowedFrame::Array {
        data: &parts,
        attributes: None,
    };
    let start = out.len();
    out.resize(start + frame.encode_len(false), 0);
    let written = encode_borrowed(&mut out[start..], &frame, false)
        .expect("the buffer was sized for the frame");
    out.truncate(start + written);
}

/// A frame from Redis, as the link sees it; ranges are into the decoded buffer.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Frame {
    /// A push (pub/sub): its string elements (others are empty ranges).
    Push(Vec<Range<usize>>),
    /// An error reply.
    Error(String),
    /// Any other reply.
    Reply(Reply),
}

/// The shapes of reply the link reads.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Reply {
    Integer(i64),
    Integers(Vec<i64>),
    Bytes(Range<usize>),
    /// An array whose first element is a string (a sentinel's address, a `ROLE`): its string
    /// elements (others are empty ranges, as in a push).
    Strings(Vec<Range<usize>>),
    /// Anything else (a map, a null, an array of something else).
    Other,
}

/// Decodes `input`, one complete frame as [`Scanner::scan`] found it (ranges are into it).
pub(crate) fn decode_frame(input: &[u8]) -> Result<Frame, ReplyError> {
    let decoded = decode_range(input).map_err(|e| {
        // The crate's own words are a `Debug` string: for the debug log, not the warning.
        log::debug!("cluster: redis-protocol refused a reply: {e}");
        ReplyError::Unparsable(format!(
            "a frame of type {:?} with a value redis-protocol cannot decode",
            char::from(input.first().copied().unwrap_or(b' '))
        ))
    })?;
    let frame = match decoded {
        Some((frame, used)) if used == input.len() => frame,
        _ => return Err(unparsable("its frame does not end where its headers say")),
    };
    let text =
        |(start, end): (usize, usize)| String::from_utf8_lossy(&input[start..end]).into_owned();
    Ok(match frame {
        RangeFrame::Push { data, .. } => Frame::Push(data.iter().map(string_range).collect()),
        RangeFrame::SimpleError { data, .. } | RangeFrame::BlobError { data, .. } => {
            Frame::Error(text(data))
        }
        RangeFrame::Number { data, .. } => Frame::Reply(Reply::Integer(data)),
        RangeFrame::BlobString { data, .. } | RangeFrame::SimpleString { data, .. } => {
            Frame::Reply(Reply::Bytes(data.0..data.1))
        }
        RangeFrame::Array { data, .. }
            if matches!(
                data.first(),
                Some(RangeFrame::BlobString { .. } | RangeFrame::SimpleString { .. })
            ) =>
        {
            Frame::Reply(Reply::Strings(data.iter().map(string_range).collect()))
        }
        RangeFrame::Array { data, .. } => {
            let numbers: Option<Vec<i64>> = data
                .iter()
                .map(|part| match part {
                    RangeFrame::Number { data, .. } => Some(*data),
                    _ => None,
                })
                .collect();
            Frame::Reply(numbers.map_or(Reply::Other, Reply::Integers))
        }
        _ => Frame::Reply(Reply::Other),
    })
}

/// Where a string element's bytes are; an empty range for an element of another kind.
fn string_range(part: &RangeFrame) -> Range<usize> {
    match part {
        RangeFrame::BlobString { data, .. } | RangeFrame::SimpleString { data, .. } => {
            data.0..data.1
        }
        _ => 0..0,
    }
}

/// What came from one RESP connection and is not decoded yet, with the scanner that finds
/// where each frame ends as its bytes come: the link's and the sentinels' input alike.
#[derive(Debug, Default)]
pub(crate) struct RespInput {
    /// Invariant: at most [`MAX_REPLY`] plus one read's bytes (the scanner refuses a larger
    /// frame, and [`RespInput::consume`] drops what was decoded).
    bytes: Vec<u8>,
    /// Where the frame at the start of `bytes` ends, found as its bytes come.
    scanner: Scanner,
}

impl RespInput {
    /// Appends a read's `bytes`, growing the buffer (by doubling) no further than
    /// [`MAX_REPLY`] plus one read.
    pub(crate) fn append(&mut self, bytes: &[u8]) {
        let input = &mut self.bytes;
        let needed = input.len() + bytes.len();
        if needed > input.capacity() {
            let bound = (MAX_REPLY + bytes.len()).max(needed);
            let target = (input.capacity() * 2).clamp(needed, bound);
            input.reserve_exact(target - input.len());
        }
        input.extend_from_slice(bytes);
    }

    /// The frame that starts at offset `at`, decoded once it is complete, and its length; each
    /// byte is scanned once over the calls. Call with `at` moved past each frame returned, then
    /// [`RespInput::consume`] with where it stopped.
    pub(crate) fn next_frame(&mut self, at: usize) -> Result<Option<(Frame, usize)>, ReplyError> {
        match self.scanner.scan(&self.bytes[at..])? {
            Some(len) => Ok(Some((decode_frame(&self.bytes[at..at + len])?, len))),
            None => Ok(None),
        }
    }

    /// The bytes of `range` (a decoded frame's) in the frame that starts at `base`.
    pub(crate) fn at(&self, base: usize, range: &Range<usize>) -> &[u8] {
        &self.bytes[base + range.start..base + range.end]
    }

    /// Drops the first `at` bytes (the frames decoded), and gives back a buffer a large reply
    /// grew once nothing is left in it.
    pub(crate) fn consume(&mut self, at: usize) {
        self.bytes.drain(..at);
        if self.bytes.is_empty() && self.bytes.capacity() > 64 * 1024 {
            self.bytes = Vec::new();
        }
    }

    /// Forgets everything, for a new connection; the buffer (which a hostile reply may have
    /// grown to the bound) is given back.
    pub(crate) fn reset(&mut self) {
        self.bytes = Vec::new();
        self.scanner.reset();
    }

    /// Bytes held undecoded (the buffer's capacity).
    pub(crate) fn held(&self) -> usize {
        self.bytes.capacity()
    }
}

#[cfg(test)]
mod tests;

#[cfg(test)]
mod encode_tests {
    use super::*;

    #[test]
    fn commands_are_arrays_of_bulk_strings() {
        let mut out = Vec::new();
        encode_command(&mut out, &[b"SET", b"k", b"v v"]);
        assert_eq!(out, b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$3\r\nv v\r\n");
    }
}
