//! One peer's input as lines: framed, then each handled as its phase says (a name, a message,
//! input held while a login waits, or nothing once closing).

use std::time::Instant;

use super::peer::{CloseReason, Phase, ReadMode};
use super::{Chat, Transport};
use crate::parse::{LineError, parse_message};

impl<T: Transport> Chat<T> {
    /// Frames `bytes` from `key` and handles each complete line.
    pub(super) fn on_bytes(&mut self, key: usize, bytes: &[u8], now: Instant) {
        let max_line = self.config.max_line;
        let mut framer = std::mem::take(&mut self.peers[key].framer);
        let result = framer.feed(bytes, max_line, |line| self.on_line(key, line, now));
        let Some(peer) = self.peers.get_mut(key) else {
            return;
        };
        peer.framer = framer;
        if let Phase::Contending(contender) | Phase::Claiming(contender) = &mut peer.phase {
            // The rest of this read waits with the name line, in order.
            contender.input.extend(peer.framer.take_unfinished());
            contender.too_long |= result.is_err();
        } else if result.is_err() && peer.phase.read_mode() == ReadMode::Process {
            match self.lookups.get_mut(key).and_then(|p| p.held.as_mut()) {
                // The lines before it are routed first.
                Some(held) => held.too_long = true,
                None => self.reject(key, LineError::LineTooLong, now),
            }
        }
    }

    pub(super) fn on_line(&mut self, key: usize, line: &[u8], now: Instant) {
        match &mut self.peers[key].phase {
            &mut Phase::AwaitingName {
                deadline,
                contended,
            } => self.on_name_line(key, line, deadline, contended, now),
            Phase::Contending(contender) | Phase::Claiming(contender) => {
                contender.input.extend_from_slice(line);
                contender.input.push(b'\n');
            }
            Phase::Chatting => {
                if self.lookups.holds_lines(key) || self.awaits_lookups(key) {
                    self.hold_line(key, line);
                } else {
                    self.on_message_line(key, line, now);
                }
            }
            // Lines after a closing one are not looked at.
            Phase::Closing { .. } | Phase::Lingering { .. } | Phase::Closed { .. } => {}
        }
    }

    /// A line of the logged-in peer `key`: routed, or answered with a notice.
    pub(super) fn on_message_line(&mut self, key: usize, line: &[u8], now: Instant) {
        match parse_message(line) {
            Ok(None) => {}
            Ok(Some(message)) => self.route(key, message),
            Err(error) => self.reject(key, error, now),
        }
    }

    /// Sends the notice for `error` to `key`, and closes the connection if the rule says so.
    pub(super) fn reject(&mut self, key: usize, error: LineError, now: Instant) {
        self.stats.lines_rejected[error.index()] += 1;
        if !self.queue_text(key, error.notice()) {
            return;
        }
        if error.closes_connection() {
            self.begin_close(key, CloseReason::Rejected(error), now);
        }
    }
}
