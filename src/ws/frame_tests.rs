//! The decoder and encoder on their own: payloads streamed in any split, the bound decided at
//! the header, the rules, and lines out through windows of any size.

use std::io::IoSlice;

use tungstenite::protocol::frame::coding::CloseCode;

use super::decode::*;
use super::encode::*;

/// A masked client frame.
fn frame(first: u8, payload: &[u8]) -> Vec<u8> {
    let mask = [9, 8, 7, 6];
    let mut out = vec![first];
    if payload.len() < 126 {
        out.push(0x80 | payload.len() as u8);
    } else {
        out.push(0x80 | 126);
        out.extend_from_slice(&(payload.len() as u16).to_be_bytes());
    }
    out.extend_from_slice(&mask);
    out.extend(payload.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
    out
}

/// Feeds `input` in pieces of `chunk` bytes; returns the text.
fn decode(decoder: &mut Decoder, input: &[u8], chunk: usize) -> Vec<u8> {
    let mut text = Vec::new();
    for piece in input.chunks(chunk) {
        let mut buf = vec![0; piece.len() + 1];
        buf[1..].copy_from_slice(piece);
        let n = decoder.feed(&mut buf, piece.len() + 1);
        text.extend_from_slice(&buf[..n]);
    }
    text
}

#[test]
fn messages_become_lines_in_any_split() {
    let mut input = frame(0x81, b"alice");
    input.extend(frame(0x01, b"alice: one\nalice: t"));
    input.extend(frame(0x89, b"ping"));
    input.extend(frame(0x80, b"wo"));
    input.extend(frame(0x81, b"ends in newline\n"));
    for chunk in 1..=input.len() {
        let mut decoder = Decoder::new(100);
        let text = decode(&mut decoder, &input, chunk);
        assert_eq!(
            text, b"alice\nalice: one\nalice: two\nends in newline\n",
            "chunk {chunk}"
        );
        assert_eq!(
            decoder.take_ping().map(|(p, n)| p[..n].to_vec()),
            Some(b"ping".to_vec())
        );
        assert!(decoder.violation().is_none());
    }
}

#[test]
fn a_frame_over_the_bound_is_refused_at_its_header_and_skipped() {
    let mut decoder = Decoder::new(10);
    let mut input = frame(0x81, &[b'x'; 200]);
    input.extend(frame(0x88, &1000u16.to_be_bytes()));
    let text = decode(&mut decoder, &input, 7);
    assert!(text.is_empty());
    assert!(matches!(
        decoder.violation(),
        Some(Violation::TooLarge {
            size: 200,
            limit: 10
        })
    ));
    assert_eq!(
        decoder.close(),
        Some(Some(1000)),
        "the close is still found"
    );
}

#[test]
fn fragments_adding_up_past_the_bound_are_refused() {
    let mut decoder = Decoder::new(10);
    let mut input = frame(0x01, b"123456");
    input.extend(frame(0x80, b"789012"));
    let text = decode(&mut decoder, &input, 100);
    assert!(text.is_empty() || text == b"123456");
    assert_eq!(
        decoder.violation().map(Violation::close_code),
        Some(CloseCode::Size)
    );
}

#[test]
fn rule_breakers_are_told_apart() {
    let cases: [(Vec<u8>, Violation); 5] = [
        (vec![0x81, 0x01, b'x'], Violation::Unmasked),
        (frame(0xc1, b"x"), Violation::ReservedBits),
        (frame(0x83, b"x"), Violation::ReservedOpcode),
        (frame(0x09, b"x"), Violation::BadControl),
        (frame(0x80, b"x"), Violation::StrayContinuation),
    ];
    for (input, expected) in cases {
        let mut decoder = Decoder::new(100);
        decode(&mut decoder, &input, 100);
        assert_eq!(decoder.violation(), Some(&expected));
        assert_eq!(expected.close_code(), CloseCode::Protocol);
    }
    let mut decoder = Decoder::new(100);
    let mut input = frame(0x01, b"a");
    input.extend(frame(0x81, b"b"));
    decode(&mut decoder, &input, 100);
    assert_eq!(decoder.violation(), Some(&Violation::InterleavedMessage));
    let mut decoder = Decoder::new(100);
    decode(&mut decoder, &frame(0x88, &[3]), 100);
    assert_eq!(decoder.violation(), Some(&Violation::BadClose));
}

#[test]
fn binary_messages_are_counted_not_given_out() {
    let mut decoder = Decoder::new(100);
    let mut input = frame(0x82, b"\x00\x01");
    input.extend(frame(0x81, b"text"));
    assert_eq!(decode(&mut decoder, &input, 3), b"text\n");
    assert_eq!(decoder.take_binary(), 1);
}

/// Writes `input` through windows of `window` bytes as the core does; returns what went out.
fn encode(input: &[u8], window: usize) -> Vec<u8> {
    let mut encoder = Encoder::default();
    let mut out = Vec::new();
    let mut at = 0;
    while at < input.len() {
        let chunks: Vec<IoSlice<'_>> = input[at..].chunks(7).map(IoSlice::new).collect();
        let taken = encoder
            .write(&chunks, |slices| {
                let mut n = 0;
                for slice in slices {
                    let take = slice.len().min(window - n);
                    out.extend_from_slice(&slice[..take]);
                    n += take;
                }
                Ok(n)
            })
            .unwrap();
        assert!(taken > 0);
        at += taken;
    }
    assert!(!encoder.is_mid_frame());
    out
}

#[test]
fn lines_become_unmasked_text_frames_through_any_window() {
    let long = "y".repeat(300);
    let input = format!("from a: hi\n\nfrom b: {long}\n");
    let expected = encode(input.as_bytes(), usize::MAX);
    assert_eq!(&expected[..12], b"\x81\x0afrom a: hi");
    assert_eq!(&expected[12..14], b"\x81\x00");
    assert_eq!(&expected[14..18], &[0x81, 126, 1, 52]);
    for window in 1..40 {
        assert_eq!(
            encode(input.as_bytes(), window),
            expected,
            "window {window}"
        );
    }
}

#[test]
fn more_lines_than_one_write_plans_go_out_whole_and_in_order() {
    // 1,000 lines: more than the small plan and than the largest one, over both paths.
    let lines: Vec<String> = (0..1000).map(|i| format!("from a: {i}")).collect();
    let input: String = lines.iter().map(|line| format!("{line}\n")).collect();
    let mut expected = Vec::new();
    for line in &lines {
        expected.extend_from_slice(&[0x81, u8::try_from(line.len()).unwrap()]);
        expected.extend_from_slice(line.as_bytes());
    }
    for window in [usize::MAX, 1000, 3] {
        assert_eq!(
            encode(input.as_bytes(), window),
            expected,
            "window {window}"
        );
    }
}

#[test]
fn a_line_without_its_newline_goes_out_in_fragments() {
    let mut encoder = Encoder::default();
    let mut out = Vec::new();
    let mut write = |bufs: &[IoSlice<'_>], encoder: &mut Encoder| {
        encoder
            .write(bufs, |slices| {
                let n: usize = slices.iter().map(|s| s.len()).sum();
                slices.iter().for_each(|s| out.extend_from_slice(s));
                Ok(n)
            })
            .unwrap()
    };
    assert_eq!(write(&[IoSlice::new(b"abc")], &mut encoder), 3);
    assert!(encoder.is_mid_message());
    assert_eq!(write(&[IoSlice::new(b"de\n")], &mut encoder), 3);
    assert!(!encoder.is_mid_message());
    assert_eq!(out, b"\x01\x03abc\x80\x02de");
}
