//! The generator's side of the wire protocol: names, the login, the message TEXT it sends
//! (sender, sequence number, send time, padding) and the lines it receives.
//!
//! Only the protocol of PROTOCOL.md is assumed: `from NAME: TEXT` for a routed message and
//! `error: ` for any notice, whatever its wording, so the generator can load any a-chat server.

use std::io::Write;

/// The TEXT a connection sends to itself to learn that it is logged in.
pub const LOGIN_TEXT: &str = "login";

/// Digits of the send time field at most (`u64::MAX` in nanoseconds).
const MAX_TIME_DIGITS: usize = 20;

/// The byte that pads a TEXT to its size. Not whitespace: the server trims TEXT.
const PAD: u8 = b'x';

/// The name of connection `index`.
pub fn name(prefix: &str, index: usize) -> String {
    format!("{prefix}{index}")
}

/// The longest header `sender seq time` of a run with `senders` senders of `messages` each.
pub fn max_header_len(senders: usize, messages: u64) -> usize {
    digits(senders.saturating_sub(1) as u64)
        + 1
        + digits(messages.saturating_sub(1))
        + 1
        + MAX_TIME_DIGITS
}

fn digits(n: u64) -> usize {
    n.checked_ilog10().map_or(1, |d| d as usize + 1)
}

/// Appends the login of connection `index`: its name, then a message to itself.
pub fn write_login(out: &mut Vec<u8>, prefix: &str, index: usize) {
    let _ = write!(out, "{prefix}{index}\n{prefix}{index}: {LOGIN_TEXT}\n");
}

/// One message to send.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stamp {
    /// The sender's connection index.
    pub sender: u32,
    /// The sender's sequence number, from 0.
    pub seq: u64,
    /// When it was (or was scheduled to be) sent, in nanoseconds since the run's start.
    pub sent_ns: u64,
}

/// Appends the line `DEST1,DEST2: TEXT` whose TEXT is `sender seq sent_ns` padded to `bytes`
/// (callers make sure `bytes` is at least [`max_header_len`]).
pub fn write_message(
    out: &mut Vec<u8>,
    prefix: &str,
    receivers: &[u32],
    stamp: Stamp,
    bytes: usize,
) {
    for (i, receiver) in receivers.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        let _ = write!(out, "{prefix}{receiver}");
    }
    out.extend_from_slice(b": ");
    let start = out.len();
    let _ = write!(out, "{} {} {}", stamp.sender, stamp.seq, stamp.sent_ns);
    let header = out.len() - start;
    out.resize(out.len() + bytes.saturating_sub(header), PAD);
    out.push(b'\n');
}

/// What a received line is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Received {
    /// A message of this run.
    Message(Stamp),
    /// `from NAME: login` from connection `sender` of this run.
    Login(u32),
    /// A notice of the server (`error: ...`).
    Notice,
    /// Anything else: a corrupted message, a sender not of this run, not the protocol.
    Malformed,
}

/// Classifies one line received (without its `\n`), for a run whose TEXTs are `bytes` long.
pub fn parse_line(line: &[u8], prefix: &str, bytes: usize) -> Received {
    if line.starts_with(b"error: ") {
        return Received::Notice;
    }
    parse_from(line, prefix, bytes).unwrap_or(Received::Malformed)
}

fn parse_from(line: &[u8], prefix: &str, bytes: usize) -> Option<Received> {
    let rest = line.strip_prefix(b"from ")?;
    let colon = rest.iter().position(|&b| b == b':')?;
    let (name, text) = (&rest[..colon], rest[colon + 1..].strip_prefix(b" ")?);
    let sender = number(name.strip_prefix(prefix.as_bytes())?)?;
    let sender = u32::try_from(sender).ok()?;
    if text == LOGIN_TEXT.as_bytes() {
        return Some(Received::Login(sender));
    }
    if text.len() != bytes {
        return None;
    }
    let mut fields = text.splitn(3, |&b| b == b' ');
    let claimed = number(fields.next()?)?;
    let seq = number(fields.next()?)?;
    let time_and_pad = fields.next()?;
    let time_len = time_and_pad
        .iter()
        .take_while(|b| b.is_ascii_digit())
        .count();
    let sent_ns = number(&time_and_pad[..time_len])?;
    let padded = time_and_pad[time_len..].iter().all(|&b| b == PAD);
    (padded && claimed == u64::from(sender)).then_some(Received::Message(Stamp {
        sender,
        seq,
        sent_ns,
    }))
}

/// A decimal number of 1 to 20 digits that fits in a u64.
fn number(digits: &[u8]) -> Option<u64> {
    if digits.is_empty() || digits.len() > MAX_TIME_DIGITS {
        return None;
    }
    digits.iter().try_fold(0u64, |n, &b| {
        b.is_ascii_digit()
            .then(|| n.checked_mul(10)?.checked_add(u64::from(b - b'0')))
            .flatten()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The line as the server delivers it: `from SENDER: TEXT`, from the sent `DESTS: TEXT`.
    fn delivered(sent: &[u8], prefix: &str, sender: u32) -> Vec<u8> {
        let text = &sent[sent.iter().position(|&b| b == b':').unwrap() + 2..sent.len() - 1];
        let mut line = format!("from {prefix}{sender}: ").into_bytes();
        line.extend_from_slice(text);
        line
    }

    #[test]
    fn message_round_trips_at_exact_size() {
        let stamp = Stamp {
            sender: 7,
            seq: 42,
            sent_ns: 123_456_789,
        };
        let mut out = Vec::new();
        write_message(&mut out, "b", &[3, 12], stamp, 40);
        let text_start = out.iter().position(|&b| b == b':').unwrap() + 2;
        assert!(out.starts_with(b"b3,b12: 7 42 123456789xxx"));
        assert_eq!(out.len() - text_start - 1, 40);
        assert_eq!(out.last(), Some(&b'\n'));
        let line = delivered(&out, "b", 7);
        assert_eq!(parse_line(&line, "b", 40), Received::Message(stamp));
    }

    #[test]
    fn header_fits_the_smallest_size() {
        let bytes = max_header_len(1000, 100);
        assert_eq!(bytes, 3 + 1 + 2 + 1 + 20);
        let stamp = Stamp {
            sender: 999,
            seq: 99,
            sent_ns: u64::MAX,
        };
        let mut out = Vec::new();
        write_message(&mut out, "b", &[0], stamp, bytes);
        assert_eq!(
            parse_line(&delivered(&out, "b", 999), "b", bytes),
            Received::Message(stamp)
        );
    }

    #[test]
    fn login_echo_and_notices() {
        let mut out = Vec::new();
        write_login(&mut out, "b", 5);
        assert_eq!(out, b"b5\nb5: login\n");
        assert_eq!(parse_line(b"from b5: login", "b", 64), Received::Login(5));
        assert_eq!(
            parse_line(b"error: whatever the server says", "b", 64),
            Received::Notice
        );
    }

    #[test]
    fn anything_off_is_malformed() {
        let stamp = Stamp {
            sender: 1,
            seq: 2,
            sent_ns: 3,
        };
        let mut out = Vec::new();
        write_message(&mut out, "b", &[0], stamp, 32);
        let good = delivered(&out, "b", 1);
        assert_eq!(parse_line(&good, "b", 32), Received::Message(stamp));
        // Truncated, claimed by another sender, from a stranger, padding damaged.
        assert_eq!(
            parse_line(&good[..good.len() - 1], "b", 32),
            Received::Malformed
        );
        assert_eq!(
            parse_line(&delivered(&out, "b", 2), "b", 32),
            Received::Malformed
        );
        assert_eq!(
            parse_line(&delivered(&out, "alice", 1), "b", 32),
            Received::Malformed
        );
        let mut damaged = good.clone();
        *damaged.last_mut().unwrap() = b'y';
        assert_eq!(parse_line(&damaged, "b", 32), Received::Malformed);
        assert_eq!(parse_line(b"hello", "b", 32), Received::Malformed);
        assert_eq!(parse_line(b"from b1:login", "b", 32), Received::Malformed);
        assert_eq!(
            parse_line(b"from b99999999999: login", "b", 32),
            Received::Malformed
        );
    }

    #[test]
    fn numbers() {
        assert_eq!(number(b"0"), Some(0));
        assert_eq!(number(b"18446744073709551615"), Some(u64::MAX));
        assert_eq!(number(b"18446744073709551616"), None);
        assert_eq!(number(b""), None);
        assert_eq!(number(b"1a"), None);
        assert_eq!(digits(0), 1);
        assert_eq!(digits(9), 1);
        assert_eq!(digits(10), 2);
    }
}
