//! The chat's lines encoded as WebSocket text frames without IO, written as far as a writer
//! takes them, and the frames the server sends on its own (pongs, closes, notices). Headers are
//! formatted by tungstenite's `FrameHeader`.

use std::io::{self, IoSlice};

use tungstenite::protocol::frame::FrameHeader;
use tungstenite::protocol::frame::coding::{CloseCode, Control, Data, OpCode};

/// The longest header of a frame the server sends (no mask).
const MAX_SERVER_HEADER: usize = 10;

/// Frames one write hands to the writer at most: with their slices, within `IOV_MAX` (1,024),
/// so that a receiver's queue after a busy turn goes out in one `writev`, as over plain TCP.
const MAX_FRAMES: usize = 340;

/// Frames one write plans for when the input has at most this many chunks: the plan and its
/// slices are arrays filled at every write, small for the common case of a line or a few.
const SMALL_FRAMES: usize = 16;

/// Slices per frame planned: a header and a payload, and a payload's split across chunks.
const SLICES_PER_FRAME: usize = 3;

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
        write: impl FnMut(&[IoSlice<'_>]) -> io::Result<usize>,
    ) -> io::Result<usize> {
        if bufs.len() <= SMALL_FRAMES {
            self.write_planned::<SMALL_FRAMES, { SMALL_FRAMES * SLICES_PER_FRAME }>(
                bufs,
                only_partial,
                write,
            )
        } else {
            self.write_planned::<MAX_FRAMES, { MAX_FRAMES * SLICES_PER_FRAME }>(
                bufs,
                only_partial,
                write,
            )
        }
    }

    /// [`Encoder::write_frames`] with a plan of at most `FRAMES` frames laid out in at most
    /// `SLICES` slices.
    fn write_planned<const FRAMES: usize, const SLICES: usize>(
        &mut self,
        bufs: &[IoSlice<'_>],
        only_partial: bool,
        mut write: impl FnMut(&[IoSlice<'_>]) -> io::Result<usize>,
    ) -> io::Result<usize> {
        loop {
            let mut plan = [Frame::default(); FRAMES];
            let mut frames = self.plan(bufs, &mut plan);
            if only_partial {
                frames = frames.min(usize::from(self.partial.is_some()));
            }
            if frames == 0 {
                return Ok(0);
            }
            let mut slices = [IoSlice::new(&[]); SLICES];
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
    fn plan(&self, bufs: &[IoSlice<'_>], plan: &mut [Frame]) -> usize {
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
        while frames < plan.len() {
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
