//! RESP3 through `redis-protocol`, which does no IO: commands encoded into the output buffer,
//! frames decoded in place from the input buffer (ranges, no copies), and the few shapes of
//! reply the link reads.
//!
//! Redis is input too (contract section 9): a reply must not crash the node, hold more than a
//! bounded amount of its memory, or cost more than linear time. `redis-protocol`'s decoder
//! recurses once per level of nesting (5,000 nested arrays overflow the stack), takes a length
//! as announced, and starts over from the first byte on every call (a large reply read in
//! pieces costs quadratic time). So it is never handed an incomplete frame: a [`Scanner`]
//! first finds where the first complete top-level frame ends. It reads the frame headers only
//! (a type byte and its line: a length, a count, or a simple value), skips the payloads of
//! bulk strings without looking at them, and keeps its place across reads (the state of the
//! header it is in, and a stack of the elements each open aggregate still owes), so each byte
//! is looked at once, however the input is cut. It refuses, as soon as it sees it:
//!
//! - a frame nested deeper than [`MAX_DEPTH`] levels of aggregates;
//! - a frame larger than [`MAX_REPLY`]: its bytes, each element it announces counted at
//!   [`ELEMENT_COST`] (what decoding it may take), so that a length or count announced beyond
//!   the bound (`$999999999999`) fails at once, before any of it is buffered;
//! - a type byte that RESP3 does not have, a length that is not a number, and the streamed
//!   forms (`$?`, `;`, `.`), which Redis does not send.
//!
//! The scanner only frames: the crate still parses, once, the complete frame (at most 32 levels
//! deep, so its recursion is bounded); a frame the two disagree about does not parse either.
//! Any of these errors is a broken link for the caller: it drops the connection and reconnects.

use std::fmt;
use std::ops::Range;

use redis_protocol::resp3::decode::complete::decode_range;
use redis_protocol::resp3::encode::complete::encode_borrowed;
use redis_protocol::resp3::types::{BorrowedFrame, RangeFrame};

/// Levels of aggregates (arrays, maps, sets, pushes, attributes) one reply may nest.
pub(crate) const MAX_DEPTH: usize = 32;

/// The largest reply accepted, in bytes (each element counted at [`ELEMENT_COST`] at least).
/// Real replies are far smaller: a route batch's statuses, a push of one batch of records.
pub(crate) const MAX_REPLY: usize = 16 << 20;

/// What one element of a reply counts towards [`MAX_REPLY`]: the decoded frames' memory (a
/// `RangeFrame` in a vector grown by doubling, or in a map's table) is at most this much.
pub(crate) const ELEMENT_COST: usize = 4 * std::mem::size_of::<RangeFrame>();

/// Digits of a length or count at most (more cannot be under [`MAX_REPLY`] anyway).
const MAX_DIGITS: u8 = 20;

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

/// Where the scanner is inside the current frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// At a type byte.
    Type,
    /// In the digits of the length or count after type byte `kind`.
    Length { kind: u8, value: usize, digits: u8 },
    /// After the `\r` that ends a length or count.
    LengthLf { kind: u8, value: usize },
    /// In a simple line (`+`, `-`, `:`, ...), just after a `\r` if `cr`.
    Line { cr: bool },
    /// In a bulk payload: bytes left before its `\r\n`.
    Payload { left: usize },
    /// At the `\r` after a bulk payload.
    PayloadCr,
    /// At the `\n` after a bulk payload.
    PayloadLf,
}

/// An aggregate whose elements are not all scanned yet.
#[derive(Debug, Clone, Copy)]
struct Open {
    /// Elements still to come. Invariant: above zero.
    owed: usize,
    /// An attribute map: once complete, the frame it is attached to follows (and is the
    /// element the parent counts).
    attribute: bool,
}

/// Finds where complete top-level frames end, resumably (see the module's docs). Call
/// [`Scanner::scan`] with the input from the current frame's first byte, again with more of it
/// appended after `Ok(None)`; after `Ok(Some(len))` the next frame starts `len` bytes later.
/// After an error it must not be used again (the connection is dropped).
#[derive(Debug)]
pub(crate) struct Scanner {
    /// The next byte to look at, from the current frame's start.
    at: usize,
    state: State,
    /// The open aggregates, innermost last. Invariant: at most [`MAX_DEPTH`] of them.
    open: Vec<Open>,
    /// Elements the current frame's aggregates announced so far.
    elements: usize,
    /// Bytes looked at since the scanner was made (skipped payloads not counted): each byte
    /// at most once, which the tests check.
    work: u64,
}

impl Default for Scanner {
    fn default() -> Self {
        Scanner {
            at: 0,
            state: State::Type,
            open: Vec::with_capacity(MAX_DEPTH),
            elements: 0,
            work: 0,
        }
    }
}

impl Scanner {
    /// Starts over at a new frame (a new connection's first byte).
    pub(crate) fn reset(&mut self) {
        let work = self.work;
        *self = Scanner {
            work,
            ..Scanner::default()
        };
    }

    /// Bytes looked at so far.
    #[cfg(test)]
    fn work(&self) -> u64 {
        self.work
    }

    /// Scans on in `input` (the current frame from its first byte; what was scanned before is
    /// not looked at again): `Ok(Some(len))` when the frame is complete at `len` bytes,
    /// `Ok(None)` while it is not.
    pub(crate) fn scan(&mut self, input: &[u8]) -> Result<Option<usize>, ReplyError> {
        while self.at < input.len() {
            if let State::Payload { left } = self.state {
                let skip = left.min(input.len() - self.at);
                self.at += skip;
                self.state = if skip == left {
                    State::PayloadCr
                } else {
                    State::Payload { left: left - skip }
                };
                continue;
            }
            let byte = input[self.at];
            self.at += 1;
            self.work += 1;
            let complete = match self.state {
                State::Type => self.on_type(byte)?,
                State::Length {
                    kind,
                    value,
                    digits,
                } => {
                    if byte == b'\r' && digits > 0 {
                        self.state = State::LengthLf { kind, value };
                    } else if byte.is_ascii_digit() && digits < MAX_DIGITS {
                        let value = value
                            .checked_mul(10)
                            .and_then(|v| v.checked_add(usize::from(byte - b'0')))
                            .ok_or(ReplyError::TooLarge)?;
                        if value > MAX_REPLY {
                            return Err(ReplyError::TooLarge);
                        }
                        self.state = State::Length {
                            kind,
                            value,
                            digits: digits + 1,
                        };
                    } else if byte == b'?' && digits == 0 {
                        return Err(unparsable("a streamed reply, which Redis does not send"));
                    } else {
                        return Err(unparsable(&format!(
                            "the length after {:?} is not a number",
                            char::from(kind)
                        )));
                    }
                    false
                }
                State::LengthLf { kind, value } => {
                    if byte != b'\n' {
                        return Err(unparsable("a length not ended by CRLF"));
                    }
                    self.on_length(kind, value)?
                }
                State::Line { cr } => {
                    if cr && byte == b'\n' {
                        self.element_done()
                    } else {
                        self.state = State::Line { cr: byte == b'\r' };
                        false
                    }
                }
                State::PayloadCr | State::PayloadLf => {
                    let expected = if self.state == State::PayloadCr {
                        b'\r'
                    } else {
                        b'\n'
                    };
                    if byte != expected {
                        return Err(unparsable("a bulk string not ended by CRLF"));
                    }
                    if self.state == State::PayloadCr {
                        self.state = State::PayloadLf;
                        false
                    } else {
                        self.element_done()
                    }
                }
                State::Payload { .. } => unreachable!("skipped above"),
            };
            if self.size() > MAX_REPLY {
                return Err(ReplyError::TooLarge);
            }
            if complete {
                let len = self.at;
                self.reset();
                return Ok(Some(len));
            }
        }
        if self.size() > MAX_REPLY {
            return Err(ReplyError::TooLarge);
        }
        Ok(None)
    }

    /// The current frame's size as [`MAX_REPLY`] counts it, saturated.
    fn size(&self) -> usize {
        let payload = match self.state {
            // A payload counts in full from its announcement on.
            State::Payload { left } => left + 2,
            State::PayloadCr => 2,
            State::PayloadLf => 1,
            _ => 0,
        };
        self.elements
            .saturating_mul(ELEMENT_COST)
            .saturating_add(self.at)
            .saturating_add(payload)
    }

    /// A type byte: `Ok(true)` if that completes the frame (never: a frame is at least a line).
    fn on_type(&mut self, byte: u8) -> Result<bool, ReplyError> {
        match byte {
            b'+' | b'-' | b':' | b',' | b'#' | b'(' | b'_' => {
                self.state = State::Line { cr: false }
            }
            b'$' | b'!' | b'=' | b'*' | b'%' | b'~' | b'>' | b'|' => {
                if is_aggregate(byte) && self.open.len() >= MAX_DEPTH {
                    return Err(ReplyError::TooDeep);
                }
                self.state = State::Length {
                    kind: byte,
                    value: 0,
                    digits: 0,
                };
            }
            b';' | b'.' => return Err(unparsable("a streamed reply, which Redis does not send")),
            other => {
                return Err(unparsable(&format!(
                    "no RESP3 type starts with {:?}",
                    char::from(other)
                )));
            }
        }
        Ok(false)
    }

    /// The length or count `value` after type byte `kind` was read: whether the frame is
    /// complete.
    fn on_length(&mut self, kind: u8, value: usize) -> Result<bool, ReplyError> {
        if !is_aggregate(kind) {
            self.state = State::Payload { left: value };
            return Ok(false);
        }
        self.state = State::Type;
        let owed = if matches!(kind, b'%' | b'|') {
            value.checked_mul(2).ok_or(ReplyError::TooLarge)?
        } else {
            value
        };
        self.elements = self
            .elements
            .checked_add(owed)
            .ok_or(ReplyError::TooLarge)?;
        if self.size() > MAX_REPLY {
            return Err(ReplyError::TooLarge);
        }
        let attribute = kind == b'|';
        if owed > 0 {
            self.open.push(Open { owed, attribute });
            Ok(false)
        } else if attribute {
            // An empty attribute map: the frame it is attached to comes next.
            Ok(false)
        } else {
            Ok(self.element_done())
        }
    }

    /// An element (a line, a bulk string, an empty or completed aggregate) ended: whether that
    /// completes the top-level frame.
    fn element_done(&mut self) -> bool {
        self.state = State::Type;
        loop {
            let Some(top) = self.open.last_mut() else {
                return true;
            };
            top.owed -= 1;
            if top.owed > 0 {
                return false;
            }
            let closed = self.open.pop().expect("the last one");
            if closed.attribute {
                // The attributed frame follows: it is the element, not the map.
                return false;
            }
        }
    }
}

fn is_aggregate(kind: u8) -> bool {
    matches!(kind, b'*' | b'%' | b'~' | b'>' | b'|')
}

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
        RangeFrame::Push { data, .. } => Frame::Push(
            data.iter()
                .map(|part| match part {
                    RangeFrame::BlobString { data, .. } | RangeFrame::SimpleString { data, .. } => {
                        data.0..data.1
                    }
                    _ => 0..0,
                })
                .collect(),
        ),
        RangeFrame::SimpleError { data, .. } | RangeFrame::BlobError { data, .. } => {
            Frame::Error(text(data))
        }
        RangeFrame::Number { data, .. } => Frame::Reply(Reply::Integer(data)),
        RangeFrame::BlobString { data, .. } | RangeFrame::SimpleString { data, .. } => {
            Frame::Reply(Reply::Bytes(data.0..data.1))
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

#[cfg(test)]
mod tests {
    use super::*;

    /// The frames of `input` fed whole: each decoded, with its offset.
    fn frames(input: &[u8]) -> Result<Vec<(Frame, usize)>, ReplyError> {
        let mut scanner = Scanner::default();
        let mut at = 0;
        let mut frames = Vec::new();
        while let Some(len) = scanner.scan(&input[at..])? {
            frames.push((decode_frame(&input[at..at + len])?, at));
            at += len;
        }
        Ok(frames)
    }

    /// `input` fed `piece` bytes at a time, as reads bring it: the frames' lengths, or the
    /// first error, and the scanner's work.
    fn scan_in_pieces(input: &[u8], piece: usize) -> (Result<Vec<usize>, ReplyError>, u64) {
        let mut scanner = Scanner::default();
        let (mut start, mut end) = (0, 0);
        let mut lens = Vec::new();
        while end < input.len() {
            end = (end + piece).min(input.len());
            loop {
                match scanner.scan(&input[start..end]) {
                    Ok(Some(len)) => {
                        decode_frame(&input[start..start + len]).expect("decodes");
                        lens.push(len);
                        start += len;
                    }
                    Ok(None) => break,
                    Err(e) => return (Err(e), scanner.work()),
                }
            }
        }
        (Ok(lens), scanner.work())
    }

    fn nested(levels: usize) -> Vec<u8> {
        let mut input = b"*1\r\n".repeat(levels);
        input.extend_from_slice(b":1\r\n");
        input
    }

    #[test]
    fn commands_are_arrays_of_bulk_strings() {
        let mut out = Vec::new();
        encode_command(&mut out, &[b"SET", b"k", b"v v"]);
        assert_eq!(out, b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$3\r\nv v\r\n");
    }

    #[test]
    fn frames_are_decoded_whole_or_not_at_all() {
        let input =
            b":1\r\n*2\r\n:0\r\n:2\r\n>3\r\n$7\r\nmessage\r\n$1\r\nc\r\n$2\r\nhi\r\n-ERR no\r\n$3\r\nabc\r\n";
        let frames = frames(input).unwrap();
        assert_eq!(frames.len(), 5);
        assert_eq!(frames[0].0, Frame::Reply(Reply::Integer(1)));
        assert_eq!(frames[1].0, Frame::Reply(Reply::Integers(vec![0, 2])));
        let (Frame::Push(parts), base) = &frames[2] else {
            panic!("{:?}", frames[2]);
        };
        let part = |i: usize| &input[base + parts[i].start..base + parts[i].end];
        assert_eq!(
            (part(0), part(1), part(2)),
            (&b"message"[..], &b"c"[..], &b"hi"[..])
        );
        assert_eq!(frames[3].0, Frame::Error("ERR no".into()));
        let (Frame::Reply(Reply::Bytes(range)), base) = &frames[4] else {
            panic!("{:?}", frames[4]);
        };
        assert_eq!(&input[base + range.start..base + range.end], b"abc");
        assert_eq!(Scanner::default().scan(b"*2\r\n:1\r\n"), Ok(None));
        assert!(matches!(
            Scanner::default().scan(b"?what\r\n"),
            Err(ReplyError::Unparsable(_))
        ));
    }

    /// Every kind of frame Redis sends in RESP3, as Redis 7 answers HELLO 3 among them.
    #[test]
    fn every_resp3_type_is_framed_as_the_crate_decodes_it() {
        let input = b"%7\r\n$6\r\nserver\r\n$5\r\nredis\r\n$7\r\nversion\r\n$6\r\n7.0.15\r\n\
            $5\r\nproto\r\n:3\r\n$2\r\nid\r\n:4\r\n$4\r\nmode\r\n$10\r\nstandalone\r\n\
            $4\r\nrole\r\n$6\r\nmaster\r\n$7\r\nmodules\r\n*0\r\n\
            _\r\n#t\r\n,1.5\r\n(12345678901234567890\r\n!3\r\nERR\r\n=8\r\ntxt:some\r\n\
            ~2\r\n+a\r\n+b\r\n|1\r\n+key\r\n:1\r\n*2\r\n$0\r\n\r\n|0\r\n:7\r\n>0\r\n+OK\r\n";
        let frames = frames(input).expect("every frame");
        assert_eq!(frames.len(), 11);
        // Cut anywhere: the same frames.
        let whole: Vec<usize> = frames
            .windows(2)
            .map(|pair| pair[1].1 - pair[0].1)
            .chain([input.len() - frames[10].1])
            .collect();
        for piece in [1, 2, 3, 7, 64] {
            assert_eq!(scan_in_pieces(input, piece).0, Ok(whole.clone()), "{piece}");
        }
    }

    #[test]
    fn nesting_is_accepted_to_32_levels_and_refused_at_33() {
        let frames = frames(&nested(MAX_DEPTH)).expect("32 levels");
        assert_eq!(frames[0].0, Frame::Reply(Reply::Other));
        let mut scanner = Scanner::default();
        assert_eq!(
            scanner.scan(&nested(MAX_DEPTH + 1)),
            Err(ReplyError::TooDeep)
        );
        // As soon as the 33rd level starts, not at the end of the frame.
        assert_eq!(scanner.work(), 4 * 32 + 1);
        // 5,000 levels (20 KB): refused, no stack overflow.
        assert_eq!(
            Scanner::default().scan(&nested(5000)),
            Err(ReplyError::TooDeep)
        );
        // Maps and attributes count as levels too.
        let mut mixed = b"%1\r\n+k\r\n".repeat(16);
        mixed.extend(b"|1\r\n+k\r\n+v\r\n~1\r\n".repeat(17));
        assert_eq!(Scanner::default().scan(&mixed), Err(ReplyError::TooDeep));
    }

    #[test]
    fn a_huge_announced_length_is_refused_at_once() {
        let mut scanner = Scanner::default();
        assert_eq!(
            scanner.scan(b"$999999999999\r\n"),
            Err(ReplyError::TooLarge)
        );
        // At the digit that took it past the bound, nothing buffered.
        assert_eq!(scanner.work(), 1 + 8);
        for announced in [
            &b"*999999999\r\n"[..],
            b"%5000000\r\n",
            b"*1\r\n$16777216\r\n",
            b"$99999999999999999999999999\r\n",
        ] {
            assert_eq!(
                Scanner::default().scan(announced),
                Err(ReplyError::TooLarge),
                "{}",
                String::from_utf8_lossy(announced)
            );
        }
        // Up to the bound is fine.
        let len = MAX_REPLY - 20;
        let mut big = format!("${len}\r\n").into_bytes();
        big.resize(big.len() + len, b'x');
        big.extend_from_slice(b"\r\n");
        assert_eq!(Scanner::default().scan(&big), Ok(Some(big.len())));
        // A line that never ends is refused once it passes the bound.
        let endless = vec![b'a'; MAX_REPLY + 10];
        let (result, _) = scan_in_pieces(&[b"+", &endless[..]].concat(), 64 * 1024);
        assert_eq!(result, Err(ReplyError::TooLarge));
    }

    #[test]
    fn elements_count_at_what_decoding_them_takes() {
        // A decoded element is a `RangeFrame`: the size counted for it covers it.
        assert!(ELEMENT_COST >= 2 * std::mem::size_of::<RangeFrame>());
        let most = MAX_REPLY / ELEMENT_COST;
        let fits = format!("*{}\r\n", most - 10);
        assert_eq!(Scanner::default().scan(fits.as_bytes()), Ok(None));
        let over = format!("*{}\r\n", most + 1);
        assert_eq!(
            Scanner::default().scan(over.as_bytes()),
            Err(ReplyError::TooLarge)
        );
    }

    #[test]
    fn a_frame_cut_into_single_bytes_decodes() {
        let push = b">3\r\n$7\r\nmessage\r\n$12\r\na-chat:to:n1\r\n$12\r\nhello\r\nthere\r\n";
        let reply = b"*2\r\n:1\r\n:2\r\n";
        let input = [&push[..], reply].concat();
        let (lens, work) = scan_in_pieces(&input, 1);
        assert_eq!(lens, Ok(vec![push.len(), reply.len()]));
        assert!(work <= input.len() as u64);
    }

    #[test]
    fn a_big_array_is_scanned_in_linear_time() {
        // 20,000 elements read 10 bytes at a time: every byte is looked at once (the crate
        // alone would decode from the start on each of its 8,000 reads).
        let count = 20_000;
        let mut input = format!("*{count}\r\n").into_bytes();
        for i in 0..count {
            input.extend_from_slice(format!(":{}\r\n", i % 10).as_bytes());
        }
        let (lens, work) = scan_in_pieces(&input, 10);
        assert_eq!(lens, Ok(vec![input.len()]));
        assert_eq!(work, input.len() as u64);
        // Bulk payloads are skipped, not looked at.
        let mut bulks = b"*1000\r\n".to_vec();
        for _ in 0..1000 {
            bulks.extend_from_slice(b"$100\r\n");
            bulks.extend_from_slice(&[b'x'; 100]);
            bulks.extend_from_slice(b"\r\n");
        }
        let (lens, work) = scan_in_pieces(&bulks, 7);
        assert_eq!(lens, Ok(vec![bulks.len()]));
        assert_eq!(work, (bulks.len() - 100 * 1000) as u64);
    }

    #[test]
    fn a_complete_frame_then_garbage() {
        let input = b":1\r\n?garbage\r\n";
        let mut scanner = Scanner::default();
        assert_eq!(scanner.scan(input), Ok(Some(4)));
        assert_eq!(
            decode_frame(&input[..4]),
            Ok(Frame::Reply(Reply::Integer(1)))
        );
        let error = scanner.scan(&input[4..]).unwrap_err();
        assert!(matches!(error, ReplyError::Unparsable(_)));
        assert_eq!(
            error.to_string(),
            "a reply from Redis that does not parse: no RESP3 type starts with '?'"
        );
        for bad in [
            &b"$3x\r\nabc\r\n"[..],
            b"$3\r\nabcd\r\n",
            b"*1\n",
            b"$?\r\n",
            b";3\r\nabc\r\n",
            b"HELLO 3\r\n",
        ] {
            assert!(
                matches!(Scanner::default().scan(bad), Err(ReplyError::Unparsable(_))),
                "{}",
                String::from_utf8_lossy(bad)
            );
        }
        // Framed, but the crate refuses it: it does not parse either, said in a sentence.
        let bad_number = b":x1\r\n";
        assert_eq!(Scanner::default().scan(bad_number), Ok(Some(5)));
        assert_eq!(
            decode_frame(bad_number).unwrap_err().to_string(),
            "a reply from Redis that does not parse: a frame of type ':' with a value \
             redis-protocol cannot decode"
        );
    }
}
