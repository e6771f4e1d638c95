//! Property tests of the framer and the parser, with the fuzzers' invariants
//! (`tests/fuzz_checks/mod.rs`).

mod fuzz_checks;

use proptest::prelude::*;

/// Bytes rich in the framer's special bytes.
fn stream() -> impl Strategy<Value = Vec<u8>> {
    prop::collection::vec(
        prop_oneof![Just(b'\n'), Just(b'\r'), Just(b'x'), any::<u8>()],
        0..300,
    )
}

/// Lines made of the parser's special characters.
fn line() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        "[ a-c,:\t\r\u{7f}\u{85}é]{0,40}".prop_map(String::into_bytes),
        prop::collection::vec(any::<u8>(), 0..40),
    ]
}

proptest! {
    #[test]
    fn framer_matches_the_reference(
        input in stream(),
        mut cuts in prop::collection::vec(0usize..300, 0..40),
        max_line in 0usize..40,
    ) {
        cuts.sort_unstable();
        fuzz_checks::framer_chunks(&input, &cuts, max_line);
    }

    #[test]
    fn framer_one_byte_at_a_time(input in stream(), max_line in 0usize..40) {
        let cuts: Vec<usize> = (1..input.len()).collect();
        fuzz_checks::framer_chunks(&input, &cuts, max_line);
    }

    #[test]
    fn parser_keeps_the_rules(line in line()) {
        fuzz_checks::parse(&line);
    }

    #[test]
    fn sessions_keep_the_contract(script in prop::collection::vec(any::<u8>(), 0..800)) {
        fuzz_checks::session(&script);
    }
}
