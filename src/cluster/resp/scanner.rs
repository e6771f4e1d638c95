//! Framing of Redis replies before they are decoded: where the first complete frame ends,
//! checked against the limits as its headers arrive.
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

use super::{ELEMENT_COST, MAX_DEPTH, MAX_REPLY, ReplyError, unparsable};

/// Digits of a length or count at most (more cannot be under [`MAX_REPLY`] anyway).
const MAX_DIGITS: u8 = 20;

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
    pub(super) fn work(&self) -> u64 {
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
