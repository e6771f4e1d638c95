//! RESP3 through `redis-protocol`, which does no IO: commands encoded into the output buffer,
//! frames decoded from the input buffer, and the few shapes of reply the link reads.

use redis_protocol::resp3::decode::complete::decode;
use redis_protocol::resp3::encode::complete::encode_borrowed;
use redis_protocol::resp3::types::{BorrowedFrame, OwnedFrame};

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

/// A frame from Redis, as the link sees it.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Frame {
    /// A push (pub/sub): its elements as bytes (numbers in decimal).
    Push(Vec<Vec<u8>>),
    /// An error reply.
    Error(String),
    /// Any other reply.
    Reply(OwnedFrame),
}

/// Decodes the first frame of `input`: `Ok(None)` while it is incomplete, else the frame and
/// the bytes it took. An error means Redis (or whatever answers) broke the protocol.
pub(crate) fn decode_frame(input: &[u8]) -> Result<Option<(Frame, usize)>, String> {
    let Some((frame, used)) = decode(input).map_err(|e| e.to_string())? else {
        return Ok(None);
    };
    let frame = match frame {
        OwnedFrame::Push { data, .. } => Frame::Push(data.into_iter().map(bytes_of).collect()),
        OwnedFrame::SimpleError { data, .. } => Frame::Error(data),
        OwnedFrame::BlobError { data, .. } => Frame::Error(String::from_utf8_lossy(&data).into()),
        other => Frame::Reply(other),
    };
    Ok(Some((frame, used)))
}

/// A frame's content as bytes: strings as they are, numbers in decimal, anything else empty.
fn bytes_of(frame: OwnedFrame) -> Vec<u8> {
    match frame {
        OwnedFrame::BlobString { data, .. } | OwnedFrame::SimpleString { data, .. } => data,
        OwnedFrame::Number { data, .. } => data.to_string().into_bytes(),
        _ => Vec::new(),
    }
}

/// A reply's integer, if it is one.
pub(crate) fn integer(frame: &OwnedFrame) -> Option<i64> {
    match frame {
        OwnedFrame::Number { data, .. } => Some(*data),
        _ => None,
    }
}

/// A reply's array of integers, if it is one of `len` of them.
pub(crate) fn integers(frame: &OwnedFrame, len: usize) -> Option<Vec<i64>> {
    let OwnedFrame::Array { data, .. } = frame else {
        return None;
    };
    if data.len() != len {
        return None;
    }
    data.iter().map(integer).collect()
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
        let reply =
            b":1\r\n*2\r\n:0\r\n:2\r\n>3\r\n$7\r\nmessage\r\n$1\r\nc\r\n$2\r\nhi\r\n-ERR no\r\n";
        let mut at = 0;
        let mut frames = Vec::new();
        while let Some((frame, used)) = decode_frame(&reply[at..]).unwrap() {
            frames.push(frame);
            at += used;
        }
        assert_eq!(at, reply.len());
        assert_eq!(
            frames[0],
            Frame::Reply(OwnedFrame::Number {
                data: 1,
                attributes: None
            })
        );
        let Frame::Reply(array) = &frames[1] else {
            panic!("{:?}", frames[1]);
        };
        assert_eq!(integers(array, 2), Some(vec![0, 2]));
        assert_eq!(integers(array, 3), None);
        assert_eq!(
            frames[2],
            Frame::Push(vec![b"message".to_vec(), b"c".to_vec(), b"hi".to_vec()])
        );
        assert_eq!(frames[3], Frame::Error("ERR no".into()));
        assert_eq!(decode_frame(b"*2\r\n:1\r\n").unwrap(), None);
        assert!(decode_frame(b"?what\r\n").is_err());
    }
}
