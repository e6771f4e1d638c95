//! WebSocket (RFC 6455) for browsers, with no IO of its own: [`WsTransport`] wraps any plain
//! [`Transport`] (a `mio` TCP stream, or TLS over one, in the server; memory in tests and the
//! fuzzer) and is a [`Transport`] itself, so the core above it does not change. It answers the
//! HTTP request that opens the connection (`upgrade.rs`: the chat page at `/`, the upgrade at
//! `/chat`, short errors), then turns the client's text messages into the chat's bytes and the
//! chat's lines into text frames (`decode.rs`, `encode.rs`), and does the control frames itself.

mod decode;
mod encode;
mod upgrade;

pub use crate::http_head::HeadError;
pub use decode::Violation;
pub use upgrade::{PAGE, Refusal};

use std::fmt;
use std::io::{self, IoSlice, Read, Write};
use std::sync::Arc;

use tungstenite::protocol::frame::coding::{CloseCode, Control, Data, OpCode};

use crate::chat::{Transport, write_own_bytes};
use crate::http_head::RequestReader;
use crate::io_errors::{interrupted, would_block};
use decode::Decoder;
use encode::{Encoder, close_frame, own_frame};
use upgrade::Answer;

/// The bytes a message may carry beyond `--max-line`: a line's `\r\n`, and a few lines' `\n`
/// in a message that holds several.
pub const MESSAGE_SLACK: usize = 64;

/// The notice a binary message gets.
const EXPECTED_TEXT: &[u8] = b"error: expected text";

/// What a WebSocket listener serves with: the same for all its connections.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WsConfig {
    /// The `Origin` values an upgrade may come from (`--ws-origin`); any, when empty. Compared
    /// whole and without regard to case (`http://chat.example:8081`).
    pub allowed_origins: Vec<String>,
}

/// Why a WebSocket connection ended before its time, as a sentence for the log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WsError {
    /// The HTTP request got an error instead of the page or an upgrade.
    Refused(Refusal),
    /// The client broke RFC 6455 (or the size bound): closed with the violation's code.
    Violation(Violation),
}

impl fmt::Display for WsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            WsError::Refused(refusal) => write!(f, "refused: {refusal}"),
            WsError::Violation(violation) => write!(
                f,
                "closed with code {}: {violation}",
                u16::from(violation.close_code())
            ),
        }
    }
}

/// Where the connection is.
#[derive(Debug)]
enum Stage {
    /// Reading the HTTP request head.
    Upgrading(RequestReader),
    /// The request got a response without an upgrade (the page, or an error): the input ends
    /// for the core once it is read, and the connection closes once the response is out.
    Answered,
    /// Frames both ways.
    Open,
}

/// Where the write side is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum WriteSide {
    Open,
    /// Shut by the core: the close frame goes out after what is queued, then the stream's
    /// write side is shut.
    Shutting,
    Shut,
}

/// The server side of a WebSocket over the stream `S`, as a [`Transport`]: reads give the
/// bytes of the client's text messages (each message ends with a `\n`; one that holds `\n`s is
/// several lines), writes take the chat's lines and send each as a text frame without its
/// `\n`, and `shutdown_write` sends a close frame (code 1001, or the client's own code when it
/// closed first) and then shuts the stream's write side.
///
/// Before that, the connection's first bytes are an HTTP request: `GET /` is answered with the
/// chat page and `GET /chat` with the upgrade (after the `Origin` check of [`WsConfig`]);
/// anything else gets a short error. Either answer that is not an upgrade ends the input (a
/// read returns 0) and the connection closes once it is written. While the request is being
/// read, writes wait (`WouldBlock`, then [`Transport::wants_write`] once it is answered).
///
/// Control frames are answered here: a ping with a pong (the latest only, if several wait), a
/// binary message with an `error: expected text` notice (its payload dropped), the client's
/// close with the end of input (the reply goes out at `shutdown_write`, after what is queued).
/// A violation of RFC 6455 (an unmasked frame, reserved bits or opcodes, a bad control frame)
/// or a message or frame over `max_line` + [`MESSAGE_SLACK`] bytes ends the input too: the
/// close frame says why (1002, 1009), no more data frames go out, and the connection lingers
/// until the client's close or end of stream. [`WsTransport::take_failure`] says why, once.
///
/// Memory: a few hundred bytes of state. The bytes of a message are handed on as they arrive,
/// never gathered whole; the lines to send stay in the core's queue until the stream takes
/// them (no copy: a frame's header is all the transport holds of them). Its own bytes (the HTTP
/// response, a pong, a close, a notice) are held until written and freed then.
#[derive(Debug)]
pub struct WsTransport<S> {
    io: S,
    config: Arc<WsConfig>,
    stage: Stage,
    decoder: Decoder,
    encoder: Encoder,
    /// Bytes of the transport's own for the stream, from `own_sent` on: the HTTP response, or
    /// one control frame or notice at a time.
    /// Invariant: no capacity once all are sent.
    own: Vec<u8>,
    own_sent: usize,
    /// Bytes that came after the request head in the same reads, to decode before reading
    /// more. Invariant: no capacity once empty.
    early: Vec<u8>,
    /// The latest ping's payload, waiting to be answered.
    pong: Option<([u8; decode::MAX_CONTROL_PAYLOAD], usize)>,
    /// Notices owed for binary messages.
    notices: u32,
    /// The close frame to send, with its code, when nothing else is under way.
    close_due: Option<CloseCode>,
    close_sent: bool,
    /// The stream under the WebSocket ended.
    stream_ended: bool,
    /// The end of the input was reported to the core.
    end_reported: bool,
    write_side: WriteSide,
    /// A write found the request not yet answered: once it is, `wants_write` says so.
    write_waits_for_upgrade: bool,
    /// Why the connection ended early, until [`WsTransport::take_failure`] takes it.
    failure: Option<WsError>,
}

impl<S: Transport> WsTransport<S> {
    /// The server side over `io`, before the client's request: messages and frames may carry
    /// `max_line` + [`MESSAGE_SLACK`] bytes.
    pub fn server(config: Arc<WsConfig>, max_line: usize, io: S) -> Self {
        WsTransport {
            io,
            config,
            stage: Stage::Upgrading(RequestReader::default()),
            decoder: Decoder::new(max_line.saturating_add(MESSAGE_SLACK)),
            encoder: Encoder::default(),
            own: Vec::new(),
            own_sent: 0,
            early: Vec::new(),
            pong: None,
            notices: 0,
            close_due: None,
            close_sent: false,
            stream_ended: false,
            end_reported: false,
            write_side: WriteSide::Open,
            write_waits_for_upgrade: false,
            failure: None,
        }
    }

    /// The stream under the WebSocket.
    pub fn get_ref(&self) -> &S {
        &self.io
    }

    /// The stream under the WebSocket.
    pub fn get_mut(&mut self) -> &mut S {
        &mut self.io
    }

    /// Whether the client's request is still being read.
    pub fn is_upgrading(&self) -> bool {
        matches!(self.stage, Stage::Upgrading(_))
    }

    /// Why the connection ended early, once (for the log line that names the connection).
    pub fn take_failure(&mut self) -> Option<WsError> {
        self.failure.take()
    }

    /// Reads the request head from the stream, with `buf` as room, until it is complete
    /// (then its answer is queued) or the stream would block or ends.
    fn read_request(&mut self, buf: &mut [u8]) -> io::Result<()> {
        while let Stage::Upgrading(reader) = &mut self.stage {
            let n = match self.io.read(buf) {
                Ok(0) => {
                    self.stream_ended = true;
                    return Ok(());
                }
                Ok(n) => n,
                Err(e) if interrupted(&e) => continue,
                Err(e) => return Err(e),
            };
            let origins = &self.config.allowed_origins;
            let answer = match reader.feed(&buf[..n], |request| upgrade::answer(request, origins)) {
                None => continue,
                Some(Ok((answer, len))) => {
                    if matches!(answer, Answer::Upgrade(_)) {
                        self.early = reader.after(len).to_vec();
                    }
                    answer
                }
                Some(Err(error)) => Answer::Refused(Refusal::Head(error)),
            };
            self.own.extend_from_slice(&answer.response());
            self.stage = match answer {
                Answer::Upgrade(_) => Stage::Open,
                Answer::Page => Stage::Answered,
                Answer::Refused(refusal) => {
                    self.failure = Some(WsError::Refused(refusal));
                    Stage::Answered
                }
            };
        }
        Ok(())
    }

    /// Fills `buf[1..]` with frame bytes: those that came with the request first, then the
    /// stream's. `Ok(0)` at the stream's end.
    fn fill(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if !self.early.is_empty() {
            let n = self.early.len().min(buf.len() - 1);
            buf[1..=n].copy_from_slice(&self.early[..n]);
            self.early.drain(..n);
            if self.early.is_empty() {
                self.early = Vec::new();
            }
            return Ok(n);
        }
        loop {
            match self.io.read(&mut buf[1..]) {
                Ok(0) => {
                    self.stream_ended = true;
                    return Ok(0);
                }
                Err(e) if interrupted(&e) => {}
                other => return other,
            }
        }
    }

    /// Takes what the decoder found besides text: a ping to answer, binary messages to give
    /// notices for, a violation to close for.
    fn after_decode(&mut self) {
        if let Some(ping) = self.decoder.take_ping()
            && !self.close_sent
        {
            self.pong = Some(ping);
        }
        self.notices = self.notices.saturating_add(self.decoder.take_binary());
        if let Some(violation) = self.decoder.violation()
            && self.failure.is_none()
            && self.close_due.is_none()
            && !self.close_sent
        {
            self.close_due = Some(violation.close_code());
            self.failure = Some(WsError::Violation(violation.clone()));
        }
    }

    /// Whether the client's input is over: its close, a violation, or the stream's end.
    fn input_over(&self) -> bool {
        self.stream_ended || self.decoder.close().is_some() || self.decoder.violation().is_some()
    }

    /// Puts the next frame of the transport's own into `own`, when nothing is under way:
    /// a pong, then the close, then a notice. Returns whether it did.
    fn refill(&mut self) -> bool {
        if self.own_sent < self.own.len() || self.encoder.is_mid_frame() || self.close_sent {
            return false;
        }
        if let Some((payload, len)) = self.pong.take() {
            own_frame(
                OpCode::Control(Control::Pong),
                &payload[..len],
                &mut self.own,
            );
            return true;
        }
        if let Some(code) = self.close_due {
            close_frame(code, &mut self.own);
            self.close_sent = true;
            return true;
        }
        if self.notices > 0 && !self.encoder.is_mid_message() {
            self.notices -= 1;
            own_frame(OpCode::Data(Data::Text), EXPECTED_TEXT, &mut self.own);
            return true;
        }
        false
    }

    /// Writes the transport's own bytes until they are all out (`WouldBlock` otherwise), then
    /// carries a requested shutdown on: the close frame, then the stream's write side.
    fn push(&mut self) -> io::Result<()> {
        loop {
            write_own_bytes(&mut self.io, &mut self.own, &mut self.own_sent)?;
            if self.write_side == WriteSide::Shutting
                && matches!(self.stage, Stage::Open)
                && self.close_due.is_none()
                && !self.close_sent
            {
                let code = match self.decoder.close() {
                    Some(Some(code)) => CloseCode::from(code),
                    Some(None) => CloseCode::Normal,
                    None => CloseCode::Away,
                };
                self.close_due = Some(code);
            }
            if self.refill() {
                continue;
            }
            if self.write_side == WriteSide::Shutting && !self.encoder.is_mid_frame() {
                self.io.shutdown_write()?;
                self.write_side = WriteSide::Shut;
            }
            return Ok(());
        }
    }

    /// [`WsTransport::push`], with `WouldBlock` meaning "the rest later".
    fn push_what_fits(&mut self) -> io::Result<()> {
        match self.push() {
            Err(e) if would_block(&e) => Ok(()),
            other => other,
        }
    }

    /// Reads and drops what the stream has; `Ok(0)` at its end.
    fn drop_input(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        loop {
            match self.io.read(buf) {
                Ok(0) => {
                    self.stream_ended = true;
                    return Ok(0);
                }
                Ok(_) => {}
                Err(e) if interrupted(&e) => {}
                Err(e) => return Err(e),
            }
        }
    }
}

impl<S: Transport> Read for WsTransport<S> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        if buf.len() < 2 {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "a WebSocket read needs a buffer of two bytes or more",
            ));
        }
        loop {
            match self.stage {
                Stage::Upgrading(_) => {
                    self.read_request(buf)?;
                    if self.is_upgrading() {
                        // The stream ended before a whole request.
                        return Ok(0);
                    }
                }
                Stage::Answered => {
                    if !std::mem::replace(&mut self.end_reported, true) {
                        return Ok(0);
                    }
                    // The core lingers: what the client still sends is dropped.
                    return self.drop_input(buf);
                }
                Stage::Open => {
                    if self.input_over() && !std::mem::replace(&mut self.end_reported, true) {
                        return Ok(0);
                    }
                    if self.stream_ended || self.decoder.close().is_some() {
                        return Ok(0);
                    }
                    if self
                        .decoder
                        .violation()
                        .is_some_and(|violation| !violation.keeps_framing())
                    {
                        // No frame can be told apart any more: dropped until the stream ends.
                        return self.drop_input(buf);
                    }
                    let filled = self.fill(buf)?;
                    if filled == 0 {
                        continue;
                    }
                    let text = self.decoder.feed(buf, 1 + filled);
                    self.after_decode();
                    if text > 0 {
                        return Ok(text);
                    }
                }
            }
        }
    }
}

impl<S: Transport> Write for WsTransport<S> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.write_vectored(&[IoSlice::new(buf)])
    }

    fn write_vectored(&mut self, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
        let total = bufs.iter().map(|buf| buf.len()).sum();
        if self.is_upgrading() {
            // The request may be in: a refusal (server full) is written as soon as it is.
            let mut room = [0; crate::http_head::MAX_REQUEST];
            self.read_request(&mut room)?;
            if self.is_upgrading() {
                self.write_waits_for_upgrade = true;
                return Err(io::ErrorKind::WouldBlock.into());
            }
        }
        if matches!(self.stage, Stage::Answered) || self.close_sent || self.close_due.is_some() {
            if self.encoder.is_mid_frame() {
                // The frame under way is finished first, so that the close can follow it.
                let io = &mut self.io;
                return self
                    .encoder
                    .finish_frame(bufs, |slices| io.write_vectored(slices));
            }
            // No data frame may follow a close; an HTTP answer takes none. Dropped.
            return Ok(total);
        }
        // The transport's own bytes first, between frames: that is the back-pressure.
        if !self.encoder.is_mid_frame() {
            self.push()?;
        }
        let io = &mut self.io;
        self.encoder.write(bufs, |slices| io.write_vectored(slices))
    }

    /// Writes the bytes the transport holds of its own, as far as the stream takes them.
    fn flush(&mut self) -> io::Result<()> {
        if !self.is_upgrading() {
            self.write_waits_for_upgrade = false;
        }
        self.push()?;
        self.io.flush()
    }
}

impl<S: Transport> Transport for WsTransport<S> {
    fn shutdown_write(&mut self) -> io::Result<()> {
        if self.write_side != WriteSide::Open {
            return Ok(());
        }
        if self.is_upgrading() {
            // No answer was made: the stream's write side goes at once.
            self.write_side = WriteSide::Shut;
            return self.io.shutdown_write();
        }
        self.write_side = WriteSide::Shutting;
        self.push_what_fits()
    }

    fn wants_write(&self) -> bool {
        let open = matches!(self.stage, Stage::Open) && !self.close_sent;
        self.own_sent < self.own.len()
            || (open && (self.pong.is_some() || self.notices > 0 || self.close_due.is_some()))
            || (self.write_waits_for_upgrade && !self.is_upgrading())
            || self.write_side == WriteSide::Shutting
            || self.io.wants_write()
    }

    fn is_closed_by_peer(&mut self) -> bool {
        self.io.is_closed_by_peer()
    }

    fn lingers(&self) -> bool {
        let awaits_close = matches!(self.stage, Stage::Open)
            && self.close_sent
            && self.decoder.close().is_none()
            && !self.stream_ended;
        self.own_sent < self.own.len() || awaits_close || self.io.lingers()
    }
}

#[cfg(test)]
mod frame_tests;
#[cfg(test)]
mod tests;
