//! The framing and decoding of replies together, as the link uses them: fed whole, cut into
//! pieces, hostile.

use redis_protocol::resp3::types::RangeFrame;

use super::scanner::Scanner;
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
