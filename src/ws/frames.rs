//! WebSocket frames without IO: the client's frames decoded into the chat's bytes (text
//! payloads, a `\n` at each message's end) and control events, within a size bound; the chat's
//! lines encoded as text frames, written as far as a writer takes them. Headers are parsed and
//! formatted by tungstenite's `FrameHeader`; what is checked here are the rules that its
//! `WebSocketContext` checks and does not expose on their own (RFC 6455 5.1-5.5).

use std::fmt;
use std::io::{self, Cursor, IoSlice};

use tungstenite::protocol::frame::FrameHeader;
use tungstenite::protocol::frame::coding::{CloseCode, Control, Data, OpCode};

/// The longest frame header: 2 bytes, 8 of extended length, 4 of mask.
const MAX_HEADER: usize = 14;

/// The longest header of a frame the server sends (no mask).
const MAX_SERVER_HEADER: usize = 10;

/// The longest control frame payload (RFC 6455 5.5).
pub const MAX_CONTROL_PAYLOAD: usize = 125;

/// Frames one write hands to the writer at most (the core hands 64 chunks at a time).
const MAX_FRAMES: usize = 64;

/// Slices one write hands to the writer at most: a header and a payload per frame, and the
/// payloads' splits across chunks.
const MAX_SLICES: usize = 3 * MAX_FRAMES;

/// Why the client's frames end the connection: each is a sentence, and a close code.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Violation {
    /// A frame or message longer than the bound.
    TooLarge {
        /// Its size so far (a frame's as its header declares it), in bytes.
        size: u64,
        /// The bound.
        limit: usize,
    },
    /// A frame without a mask (a client must mask every frame).
    Unmasked,
    /// A reserved bit set, with no extension agreed.
    ReservedBits,
    /// A reserved opcode.
    ReservedOpcode,
    /// A control frame that is fragmented or longer than 125 bytes.
    BadControl,
    /// A continuation frame with no message under way.
    StrayContinuation,
    /// A new text or binary frame while a fragmented message is under way.
    InterleavedMessage,
    /// A close frame whose payload is one byte or whose code may not be sent.
    BadClose,
}

impl Violation {
    /// The close code the server answers with.
    pub fn close_code(&self) -> CloseCode {
        match self {
            Violation::TooLarge { .. } => CloseCode::Size,
            _ => CloseCode::Protocol,
        }
    }

    /// Whether the frames that follow can still be told apart (the stream is framed), so that
    /// the client's close can be waited for.
    pub fn keeps_framing(&self) -> bool {
        matches!(self, Violation::TooLarge { .. })
    }
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Violation::TooLarge { size, limit } => write!(
                f,
                "the client sent a message of {size} bytes or more, over the limit of {limit}"
            ),
            Violation::Unmasked => write!(f, "the client sent a frame without a mask"),
            Violation::ReservedBits => write!(f, "the client set a reserved bit of a frame"),
            Violation::ReservedOpcode => write!(f, "the client sent a frame of a reserved type"),
            Violation::BadControl => write!(
                f,
                "the client sent a control frame that is fragmented or over 125 bytes"
            ),
            Violation::StrayContinuation => write!(
                f,
                "the client sent a continuation frame with no message under way"
            ),
            Violation::InterleavedMessage => write!(
                f,
                "the client began a message before finishing the one under way"
            ),
            Violation::BadClose => write!(f, "the client sent a malformed close frame"),
        }
    }
}

/// The kind of the frame whose payload is being read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Text,
    Binary,
    Control(Control),
}

/// The frame whose payload is being read.
#[derive(Debug, Clone, Copy)]
struct Payload {
    kind: Kind,
    is_final: bool,
    /// Invariant: above 0 while the frame is under way.
    remaining: u64,
    mask: [u8; 4],
    /// Payload bytes already unmasked, modulo 4: where the mask stands.
    phase: usize,
}

/// The message under way.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Message {
    None,
    /// Its payload so far, and whether its last byte was `\n`.
    Text {
        size: u64,
        ends_in_newline: bool,
    },
    Binary {
        size: u64,
    },
}

/// The client's frames, decoded in place: see [`Decoder::feed`].
#[derive(Debug, Clone)]
pub struct Decoder {
    /// The most payload bytes one frame or message may carry.
    limit: usize,
    /// A header's first bytes, when a read ended inside it.
    /// Invariant: `header_len < MAX_HEADER`, and those bytes are not a complete header.
    header: [u8; MAX_HEADER],
    header_len: usize,
    frame: Option<Payload>,
    message: Message,
    /// The payload of the control frame under way.
    /// Invariant: `control_len <= MAX_CONTROL_PAYLOAD`.
    control: [u8; MAX_CONTROL_PAYLOAD],
    control_len: usize,
    /// Payloads are skipped, not given out (after a message over the bound).
    discarding: bool,
    /// The payload of the latest ping not yet answered.
    ping: Option<([u8; MAX_CONTROL_PAYLOAD], usize)>,
    /// Binary messages received and not yet answered with a notice.
    binary_messages: u32,
    /// The client's close frame arrived, with its code if it gave one. Nothing after it is
    /// decoded.
    close: Option<Option<u16>>,
    /// The first violation (or the first that lost framing).
    violation: Option<Violation>,
}

impl Decoder {
    /// A decoder that allows `limit` payload bytes per frame and per message.
    pub fn new(limit: usize) -> Decoder {
        Decoder {
            limit,
            header: [0; MAX_HEADER],
            header_len: 0,
            frame: None,
            message: Message::None,
            control: [0; MAX_CONTROL_PAYLOAD],
            control_len: 0,
            discarding: false,
            ping: None,
            binary_messages: 0,
            close: None,
            violation: None,
        }
    }

    /// Decodes the frame bytes `buf[1..end]` in place: the text payloads, unmasked, with a
    /// `\n` after each message that does not end in one, are moved to the front of `buf`;
    /// returns how many. (The byte before the input is room for the first message's `\n`;
    /// every later one takes the room its frame's header leaves.) Pings, binary messages and
    /// the client's close are kept for [`Decoder::take_ping`], [`Decoder::take_binary`] and
    /// [`Decoder::close`]; a partial header waits for the next call. Decoding stops at the
    /// client's close, and at a violation ([`Decoder::violation`]): after one that keeps
    /// framing, later calls skip every payload and look only for the close; after any other,
    /// they decode nothing.
    pub fn feed(&mut self, buf: &mut [u8], end: usize) -> usize {
        let mut read = 1.min(end);
        let mut out = 0;
        if self.violation.as_ref().is_some_and(|v| !v.keeps_framing()) {
            return 0;
        }
        while read < end && self.close.is_none() {
            match self.frame {
                None => match self.header_from(&buf[read..end]) {
                    Ok(n) => read += n,
                    Err(violation) => {
                        self.violated(violation);
                        break;
                    }
                },
                Some(mut frame) => {
                    let left = end - read;
                    let n = usize::try_from(frame.remaining).map_or(left, |r| r.min(left));
                    let bytes = &mut buf[read..read + n];
                    unmask(bytes, frame.mask, frame.phase);
                    frame.phase = (frame.phase + n) % 4;
                    match frame.kind {
                        Kind::Text if !self.discarding => {
                            if let (
                                Some(&last),
                                Message::Text {
                                    ends_in_newline, ..
                                },
                            ) = (bytes.last(), &mut self.message)
                            {
                                *ends_in_newline = last == b'\n';
                            }
                            buf.copy_within(read..read + n, out);
                            out += n;
                        }
                        Kind::Control(_) => {
                            self.control[self.control_len..self.control_len + n]
                                .copy_from_slice(bytes);
                            self.control_len += n;
                        }
                        Kind::Text | Kind::Binary => {}
                    }
                    read += n;
                    // `n` is at most `remaining`: no wrap.
                    frame.remaining -= n as u64;
                    self.frame = Some(frame);
                }
            }
            if let Some(frame) = self.frame
                && frame.remaining == 0
            {
                self.frame = None;
                match self.end_frame(frame) {
                    Ok(Some(newline)) => {
                        debug_assert!(out < read, "no room for a message's newline");
                        buf[out] = newline;
                        out += 1;
                    }
                    Ok(None) => {}
                    Err(violation) => {
                        self.violated(violation);
                        break;
                    }
                }
            }
        }
        out
    }

    /// Keeps the first violation; from now on payloads are skipped.
    fn violated(&mut self, violation: Violation) {
        self.discarding = true;
        if self.violation.is_none() {
            self.violation = Some(violation);
        } else if !violation.keeps_framing() {
            // Framing is lost after all: nothing more is decoded.
            self.violation = Some(violation);
        }
    }

    /// The violation that ended the connection, if one did.
    pub fn violation(&self) -> Option<&Violation> {
        self.violation.as_ref()
    }

    /// Parses a header from `input` (after the bytes kept from earlier); returns how many
    /// bytes of `input` it took.
    fn header_from(&mut self, input: &[u8]) -> Result<usize, Violation> {
        let kept = self.header_len;
        let take = input.len().min(MAX_HEADER - kept);
        self.header[kept..kept + take].copy_from_slice(&input[..take]);
        let mut cursor = Cursor::new(&self.header[..kept + take]);
        let parsed = FrameHeader::parse(&mut cursor).map_err(|_| Violation::ReservedOpcode)?;
        let Some((header, length)) = parsed else {
            self.header_len = kept + take;
            return Ok(take);
        };
        // The header's end is within what was kept plus taken, and past what was kept (which
        // was not a complete header).
        let used = usize::try_from(cursor.position()).unwrap_or(MAX_HEADER) - kept;
        self.header_len = 0;
        self.begin_frame(header, length)?;
        Ok(used)
    }

    /// A frame's header is in: checks it against the rules and the bound.
    fn begin_frame(&mut self, header: FrameHeader, length: u64) -> Result<(), Violation> {
        let Some(mask) = header.mask else {
            return Err(Violation::Unmasked);
        };
        if header.rsv1 || header.rsv2 || header.rsv3 {
            return Err(Violation::ReservedBits);
        }
        let kind = match header.opcode {
            OpCode::Control(Control::Reserved(_)) | OpCode::Data(Data::Reserved(_)) => {
                return Err(Violation::ReservedOpcode);
            }
            OpCode::Control(control) => {
                if !header.is_final || length > MAX_CONTROL_PAYLOAD as u64 {
                    return Err(Violation::BadControl);
                }
                self.control_len = 0;
                Kind::Control(control)
            }
            OpCode::Data(Data::Continue) => match self.message {
                Message::None => return Err(Violation::StrayContinuation),
                Message::Text { .. } => Kind::Text,
                Message::Binary { .. } => Kind::Binary,
            },
            OpCode::Data(data) => {
                if self.message != Message::None {
                    return Err(Violation::InterleavedMessage);
                }
                if data == Data::Text {
                    self.message = Message::Text {
                        size: 0,
                        ends_in_newline: false,
                    };
                    Kind::Text
                } else {
                    self.message = Message::Binary { size: 0 };
                    Kind::Binary
                }
            }
        };
        if let Message::Text { size, .. } | Message::Binary { size } = &mut self.message
            && !matches!(kind, Kind::Control(_))
        {
            *size = size.saturating_add(length);
            if *size > self.limit as u64 {
                let size = *size;
                // What follows is still framed: the rest of this frame is skipped.
                self.frame = Some(Payload {
                    kind,
                    is_final: header.is_final,
                    remaining: length,
                    mask,
                    phase: 0,
                });
                return Err(Violation::TooLarge {
                    size,
                    limit: self.limit,
                });
            }
        }
        self.frame = Some(Payload {
            kind,
            is_final: header.is_final,
            remaining: length,
            mask,
            phase: 0,
        });
        Ok(())
    }

    /// A frame's payload is all in: returns the `\n` to add when it ends a text message.
    fn end_frame(&mut self, frame: Payload) -> Result<Option<u8>, Violation> {
        match frame.kind {
            Kind::Control(Control::Ping) => {
                self.ping = Some((self.control, self.control_len));
                Ok(None)
            }
            Kind::Control(Control::Close) => {
                let payload = &self.control[..self.control_len];
                let code = match payload {
                    [] => None,
                    [_] => return Err(Violation::BadClose),
                    [high, low, ..] => {
                        let code = u16::from_be_bytes([*high, *low]);
                        if !CloseCode::from(code).is_allowed() {
                            return Err(Violation::BadClose);
                        }
                        Some(code)
                    }
                };
                self.close = Some(code);
                Ok(None)
            }
            Kind::Control(_) => Ok(None),
            Kind::Text | Kind::Binary if !frame.is_final => Ok(None),
            Kind::Text => {
                let message = std::mem::replace(&mut self.message, Message::None);
                let add = match message {
                    Message::Text {
                        ends_in_newline, ..
                    } => !ends_in_newline,
                    _ => false,
                };
                Ok((add && !self.discarding).then_some(b'\n'))
            }
            Kind::Binary => {
                self.message = Message::None;
                if !self.discarding {
                    self.binary_messages = self.binary_messages.saturating_add(1);
                }
                Ok(None)
            }
        }
    }

    /// The latest ping's payload, to answer with a pong, once.
    pub fn take_ping(&mut self) -> Option<([u8; MAX_CONTROL_PAYLOAD], usize)> {
        self.ping.take()
    }

    /// How many binary messages arrived since the last call.
    pub fn take_binary(&mut self) -> u32 {
        std::mem::take(&mut self.binary_messages)
    }

    /// The client's close, if it arrived: `Some(code)`, `Some(None)` for a close without one.
    pub fn close(&self) -> Option<Option<u16>> {
        self.close
    }
}

/// Unmasks `bytes`, the payload from `phase` (its offset modulo 4) on. (tungstenite keeps its
/// own unmasking private to its buffered reader; a payload streamed in pieces needs it from
/// any offset.)
fn unmask(bytes: &mut [u8], mask: [u8; 4], phase: usize) {
    for (i, byte) in bytes.iter_mut().enumerate() {
        *byte ^= mask[(phase + i) % 4];
    }
}

/// A frame the server sends on its own (a pong, a close, a notice), whole.
pub fn own_frame(opcode: OpCode, payload: &[u8], out: &mut Vec<u8>) {
    let header = FrameHeader {
        is_final: true,
        opcode,
        ..FrameHeader::default()
    };
    // Writing into a `Vec` does not fail.
    let _ = header.format(payload.len() as u64, out);
    out.extend_from_slice(payload);
}

/// A close frame with `code` (and no reason).
pub fn close_frame(code: CloseCode, out: &mut Vec<u8>) {
    own_frame(
        OpCode::Control(Control::Close),
        &u16::from(code).to_be_bytes(),
        out,
    );
}

/// The server's data frame being written.
#[derive(Debug, Clone, Copy, Default)]
struct Frame {
    header: [u8; MAX_SERVER_HEADER],
    header_len: usize,
    /// Invariant: at most `header_len`.
    header_sent: usize,
    payload_left: usize,
    /// The frame ends at a `\n` of the input (taken once the payload is out), and so is the
    /// final frame of its message.
    ends_line: bool,
}

/// The chat's lines as text frames: each line (its `\n` dropped) one frame, written with one
/// vectored write per call; a frame the writer takes only in part is finished first at the
/// next call, from the same input. The input is the core's queue, which keeps the bytes until
/// they are taken: the encoder copies no payload and holds at most one frame header.
#[derive(Debug, Default)]
pub struct Encoder {
    partial: Option<Frame>,
    /// A line arrived without its `\n` in the input and went out as a frame that is not
    /// final: the rest follows as continuation frames.
    continuing: bool,
}

impl Encoder {
    /// Whether a frame is partly written: nothing else may go out before its end.
    pub fn is_mid_frame(&self) -> bool {
        self.partial.is_some()
    }

    /// Whether a message is under way over several frames: only control frames may go out
    /// before its end.
    pub fn is_mid_message(&self) -> bool {
        self.partial.is_some() || self.continuing
    }

    /// Writes the lines of `bufs` as frames through `write` (one vectored write, again while
    /// it takes only header bytes); returns how many bytes of `bufs` were taken (a line's `\n`
    /// with the end of its frame). The bytes of a frame under way must come first in `bufs`.
    /// `WouldBlock` and other errors are the writer's; `Ok(0)` when the writer took nothing.
    pub fn write(
        &mut self,
        bufs: &[IoSlice<'_>],
        write: impl FnMut(&[IoSlice<'_>]) -> io::Result<usize>,
    ) -> io::Result<usize> {
        self.write_frames(bufs, false, write)
    }

    /// [`Encoder::write`] of the frame under way alone (before a close, after which no other
    /// may follow).
    pub fn finish_frame(
        &mut self,
        bufs: &[IoSlice<'_>],
        write: impl FnMut(&[IoSlice<'_>]) -> io::Result<usize>,
    ) -> io::Result<usize> {
        self.write_frames(bufs, true, write)
    }

    fn write_frames(
        &mut self,
        bufs: &[IoSlice<'_>],
        only_partial: bool,
        mut write: impl FnMut(&[IoSlice<'_>]) -> io::Result<usize>,
    ) -> io::Result<usize> {
        loop {
            let mut plan = [Frame::default(); MAX_FRAMES];
            let mut frames = self.plan(bufs, &mut plan);
            if only_partial {
                frames = frames.min(usize::from(self.partial.is_some()));
            }
            if frames == 0 {
                return Ok(0);
            }
            let mut slices = [IoSlice::new(&[]); MAX_SLICES];
            let count = lay_out(bufs, &plan[..frames], &mut slices);
            let written = write(&slices[..count])?;
            if written == 0 {
                return Ok(0);
            }
            let taken = self.account(&plan[..frames], written);
            if taken > 0 {
                return Ok(taken);
            }
        }
    }

    /// Lays out into `plan` the frames for `bufs`: the one under way, then one per line;
    /// returns how many.
    fn plan(&self, bufs: &[IoSlice<'_>], plan: &mut [Frame; MAX_FRAMES]) -> usize {
        let mut frames = 0;
        let mut at = Position::default();
        let mut continuing = self.continuing;
        if let Some(partial) = self.partial {
            plan[0] = partial;
            frames = 1;
            if !at.advance(bufs, partial.payload_left) {
                return frames;
            }
            if partial.ends_line {
                at.advance(bufs, 1);
            }
            continuing = !partial.ends_line;
        }
        while frames < MAX_FRAMES {
            let Some((length, ends_line)) = at.next_line(bufs) else {
                break;
            };
            let header = FrameHeader {
                is_final: ends_line,
                opcode: OpCode::Data(if continuing {
                    Data::Continue
                } else {
                    Data::Text
                }),
                ..FrameHeader::default()
            };
            let mut bytes = [0; MAX_SERVER_HEADER];
            let wide = length as u64;
            // The header fits its array: at most 10 bytes without a mask.
            let _ = header.format(wide, &mut &mut bytes[..]);
            plan[frames] = Frame {
                header: bytes,
                header_len: header.len(wide),
                header_sent: 0,
                payload_left: length,
                ends_line,
            };
            frames += 1;
            continuing = !ends_line;
            at.advance(bufs, length + usize::from(ends_line));
        }
        frames
    }

    /// Updates the state after `written` bytes of the plan went out; returns how many bytes of
    /// the input they took.
    fn account(&mut self, plan: &[Frame], mut written: usize) -> usize {
        let mut taken = 0;
        for &planned in plan {
            if written == 0 {
                return taken;
            }
            let mut frame = planned;
            let header_left = frame.header_len - frame.header_sent;
            if written < header_left {
                frame.header_sent += written;
                self.partial = Some(frame);
                return taken;
            }
            written -= header_left;
            frame.header_sent = frame.header_len;
            if written < frame.payload_left {
                taken += written;
                frame.payload_left -= written;
                self.partial = Some(frame);
                return taken;
            }
            written -= frame.payload_left;
            taken += frame.payload_left + usize::from(frame.ends_line);
            self.partial = None;
            self.continuing = !frame.ends_line;
        }
        taken
    }
}

/// The slices of a plan: each frame's unsent header bytes and its payload from `bufs` (the
/// `\n` that ends a line left out). Returns how many; a plan longer than the slices is cut.
fn lay_out<'a>(bufs: &'a [IoSlice<'_>], plan: &'a [Frame], slices: &mut [IoSlice<'a>]) -> usize {
    let mut count = 0;
    let mut at = Position::default();
    for frame in plan {
        if count == slices.len() {
            break;
        }
        slices[count] = IoSlice::new(&frame.header[frame.header_sent..frame.header_len]);
        count += 1;
        let mut left = frame.payload_left;
        while left > 0 && count < slices.len() {
            let Some(buf) = bufs.get(at.index) else {
                return count;
            };
            let rest: &[u8] = &buf[at.offset.min(buf.len())..];
            let n = rest.len().min(left);
            if n > 0 {
                slices[count] = IoSlice::new(&rest[..n]);
                count += 1;
            }
            left -= n;
            at.advance(bufs, n);
            if n == 0 {
                at.index += 1;
                at.offset = 0;
            }
        }
        if left > 0 {
            break;
        }
        if frame.ends_line {
            at.advance(bufs, 1);
        }
    }
    count
}

/// A position in the input slices.
#[derive(Debug, Clone, Copy, Default)]
struct Position {
    index: usize,
    offset: usize,
}

impl Position {
    /// Moves `n` bytes on; returns whether the input held them all.
    fn advance(&mut self, bufs: &[IoSlice<'_>], mut n: usize) -> bool {
        while let Some(buf) = bufs.get(self.index) {
            let left = buf.len().saturating_sub(self.offset);
            if n < left {
                self.offset += n;
                return true;
            }
            n -= left;
            self.index += 1;
            self.offset = 0;
            if n == 0 {
                return true;
            }
        }
        n == 0
    }

    /// The length of the line from here, and whether a `\n` ends it within the input (else
    /// it is everything left); `None` when nothing is left.
    fn next_line(&self, bufs: &[IoSlice<'_>]) -> Option<(usize, bool)> {
        let mut length = 0;
        let mut offset = self.offset;
        for buf in bufs.get(self.index..).unwrap_or(&[]) {
            let rest = &buf[offset.min(buf.len())..];
            if let Some(at) = rest.iter().position(|&b| b == b'\n') {
                return Some((length + at, true));
            }
            length += rest.len();
            offset = 0;
        }
        (length > 0).then_some((length, false))
    }
}

#[cfg(test)]
mod tests;
