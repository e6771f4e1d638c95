//! RESP3 through `redis-protocol`, which does no IO: commands encoded into the output buffer,
//! frames decoded in place from the input buffer (ranges, no copies), and the few shapes of
//! reply the link reads.

use std::ops::Range;

use redis_protocol::resp3::decode::complete::decode_range;
use redis_protocol::resp3::encode::complete::encode_borrowed;
use redis_protocol::resp3::types::{BorrowedFrame, RangeFrame};

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

/// Decodes the first frame of `input`: `Ok(None)` while it is incomplete, else the frame and
/// the bytes it took. An error means Redis (or whatever answers) broke the protocol.
pub(crate) fn decode_frame(input: &[u8]) -> Result<Option<(Frame, usize)>, String> {
    let Some((frame, used)) = decode_range(input).map_err(|e| e.to_string())? else {
        return Ok(None);
    };
    let text =
        |(start, end): (usize, usize)| String::from_utf8_lossy(&input[start..end]).into_owned();
    let frame = match frame {
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
    };
    Ok(Some((frame, used)))
}

#[cfg(test)]
mod tests {
    use super::*;

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
        let mut at = 0;
        let mut frames = Vec::new();
        while let Some((frame, used)) = decode_frame(&input[at..]).unwrap() {
            frames.push((frame, at));
            at += used;
        }
        assert_eq!(at, input.len());
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
        assert_eq!(decode_frame(b"*2\r\n:1\r\n").unwrap(), None);
        assert!(decode_frame(b"?what\r\n").is_err());
    }
}
