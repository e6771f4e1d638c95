//! The client side of a WebSocket for `a-chat bench --ws`/`--wss`: the upgrade request, each
//! line written as one masked text frame, each text message read as a line; over any
//! [`Transport`] (a `mio` TCP stream, or TLS over one). Frame headers are tungstenite's.

use std::io::{self, Cursor, Read, Write};

use a_chat::core::Transport;
use a_chat::io_errors::{interrupted, would_block};
use tungstenite::protocol::frame::FrameHeader;
use tungstenite::protocol::frame::coding::{CloseCode, Control, Data, OpCode};

/// The end of an HTTP response head.
const HEAD_END: &[u8] = b"\r\n\r\n";

/// The longest response head taken.
const MAX_HEAD: usize = 4096;

/// A WebSocket client over `S`: writes are buffered into frames and pushed as far as the stream
/// takes them ([`Transport::wants_write`] says when some wait).
#[derive(Debug)]
pub struct WsClient<S> {
    io: S,
    /// The response head so far; `None` once the upgrade is done.
    head: Option<Vec<u8>>,
    /// Frame bytes read and not yet decoded.
    incoming: Vec<u8>,
    /// Text decoded and not yet read.
    text: Vec<u8>,
    /// Bytes for the stream, from `sent` on.
    out: Vec<u8>,
    sent: usize,
    /// Bytes written after the last `\n`, waiting for the rest of their line.
    partial: Vec<u8>,
    /// The masks' counter (any value does; they need not be secret here).
    mask: u32,
    closed: bool,
    shutting: bool,
}

impl<S: Transport> WsClient<S> {
    /// A client of `ws://HOST/chat` over `io`: the request waits for the first flush.
    pub fn new(io: S, host: &str) -> WsClient<S> {
        let request = format!(
            "GET /chat HTTP/1.1\r\nHost: {host}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
             Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n"
        );
        WsClient {
            io,
            head: Some(Vec::new()),
            incoming: Vec::new(),
            text: Vec::new(),
            out: request.into_bytes(),
            sent: 0,
            partial: Vec::new(),
            mask: 0x9e37_79b9,
            closed: false,
            shutting: false,
        }
    }

    pub fn get_ref(&self) -> &S {
        &self.io
    }

    pub fn get_mut(&mut self) -> &mut S {
        &mut self.io
    }

    /// Appends one masked frame.
    fn frame(&mut self, opcode: OpCode, payload: &[u8]) {
        self.mask = self
            .mask
            .wrapping_mul(1_664_525)
            .wrapping_add(1_013_904_223);
        let mask = self.mask.to_be_bytes();
        let header = FrameHeader {
            is_final: true,
            opcode,
            mask: Some(mask),
            ..FrameHeader::default()
        };
        let _ = header.format(payload.len() as u64, &mut self.out);
        self.out.extend(
            payload
                .iter()
                .enumerate()
                .map(|(i, byte)| byte ^ mask[i % 4]),
        );
    }

    /// Writes what waits, until done or the stream would block.
    fn push(&mut self) -> io::Result<()> {
        while self.sent < self.out.len() {
            match self.io.write(&self.out[self.sent..]) {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(n) => self.sent += n,
                Err(e) if interrupted(&e) => {}
                Err(e) => return Err(e),
            }
        }
        self.out.clear();
        self.sent = 0;
        if self.shutting {
            self.shutting = false;
            self.io.shutdown_write()?;
        }
        Ok(())
    }

    /// Decodes the whole frames of `incoming` into `text`.
    fn decode(&mut self) -> io::Result<()> {
        loop {
            let mut cursor = Cursor::new(&self.incoming[..]);
            let Some((header, length)) = FrameHeader::parse(&mut cursor)
                .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e.to_string()))?
            else {
                return Ok(());
            };
            let start = usize::try_from(cursor.position()).unwrap_or(usize::MAX);
            let end = usize::try_from(length)
                .ok()
                .and_then(|length| start.checked_add(length))
                .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, "frame too large"))?;
            if self.incoming.len() < end {
                return Ok(());
            }
            match header.opcode {
                OpCode::Data(Data::Text | Data::Continue) => {
                    self.text.extend_from_slice(&self.incoming[start..end]);
                    if header.is_final {
                        self.text.push(b'\n');
                    }
                }
                OpCode::Control(Control::Close) => self.closed = true,
                _ => {}
            }
            self.incoming.drain(..end);
        }
    }
}

impl<S: Transport> Read for WsClient<S> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        loop {
            if !self.text.is_empty() {
                let n = buf.len().min(self.text.len());
                buf[..n].copy_from_slice(&self.text[..n]);
                self.text.drain(..n);
                return Ok(n);
            }
            if self.closed {
                return Ok(0);
            }
            let mut chunk = [0; 16 * 1024];
            let n = match self.io.read(&mut chunk) {
                Ok(0) => return Ok(0),
                Ok(n) => n,
                Err(e) if interrupted(&e) => continue,
                Err(e) => return Err(e),
            };
            match &mut self.head {
                Some(head) => {
                    head.extend_from_slice(&chunk[..n]);
                    if let Some(at) = head.windows(4).position(|w| w == HEAD_END) {
                        if !head.starts_with(b"HTTP/1.1 101 ") {
                            let status = String::from_utf8_lossy(&head[..at]).into_owned();
                            return Err(io::Error::other(format!(
                                "the server refused the WebSocket upgrade: {status}"
                            )));
                        }
                        self.incoming = head.split_off(at + HEAD_END.len());
                        self.head = None;
                    } else if head.len() > MAX_HEAD {
                        return Err(io::Error::other("no WebSocket upgrade in the answer"));
                    }
                }
                None => self.incoming.extend_from_slice(&chunk[..n]),
            }
            if self.head.is_none() {
                self.decode()?;
            }
        }
    }
}

impl<S: Transport> Write for WsClient<S> {
    /// Takes all of `buf`: each complete line becomes a frame.
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.partial.extend_from_slice(buf);
        let mut lines = std::mem::take(&mut self.partial);
        let mut start = 0;
        while let Some(at) = lines[start..].iter().position(|&b| b == b'\n') {
            let line = lines[start..start + at].to_vec();
            self.frame(OpCode::Data(Data::Text), &line);
            start += at + 1;
        }
        lines.drain(..start);
        self.partial = lines;
        match self.push() {
            Err(e) if would_block(&e) => {}
            other => other?,
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        self.push()?;
        self.io.flush()
    }
}

impl<S: Transport> Transport for WsClient<S> {
    fn shutdown_write(&mut self) -> io::Result<()> {
        self.frame(
            OpCode::Control(Control::Close),
            &u16::from(CloseCode::Normal).to_be_bytes(),
        );
        self.shutting = true;
        match self.push() {
            Err(e) if would_block(&e) => Ok(()),
            other => other,
        }
    }

    fn wants_write(&self) -> bool {
        self.sent < self.out.len() || self.io.wants_write()
    }
}
