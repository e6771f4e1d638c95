//! Replays every file of every fuzz corpus (`fuzz/corpus/<target>/`: the checked-in seeds and
//! any crash inputs kept as regressions) through the fuzzers' checks, on stable; then runs a
//! few thousand generated session scripts through the same session check.

mod fuzz_checks;

use std::path::Path;

use a_chat::sim::XorShift;

fn replay<T>(target: &str, check: fn(&[u8]) -> T) {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fuzz/corpus")
        .join(target);
    let mut count = 0;
    for entry in std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
        let path = entry.unwrap().path();
        let data = std::fs::read(&path).unwrap();
        let outcome = std::panic::catch_unwind(|| check(&data));
        assert!(outcome.is_ok(), "{} fails its check", path.display());
        count += 1;
    }
    assert!(count > 0, "no corpus for {target}");
}

#[test]
fn framer_corpus() {
    replay("framer", fuzz_checks::framer);
}

#[test]
fn parse_corpus() {
    replay("parse", fuzz_checks::parse);
}

#[test]
fn session_corpus() {
    replay("session", fuzz_checks::session);
}

#[test]
fn tls_corpus() {
    replay("tls", fuzz_checks::tls);
}

#[test]
fn ws_corpus() {
    replay("ws", fuzz_checks::ws);
}

#[test]
fn resp_corpus() {
    replay("resp", fuzz_checks::resp);
}

/// Replies from a fixed pseudo-random stream of RESP3 pieces (headers of every kind, bulk
/// strings, stray bytes) to a cluster node, through the `resp` check.
#[test]
fn generated_resp_inputs() {
    const PIECES: [&[u8]; 14] = [
        b"*1\r\n",
        b"*2\r\n",
        b"%1\r\n",
        b"~1\r\n",
        b">3\r\n",
        b"|1\r\n",
        b"$3\r\nabc\r\n",
        b"$999999999999\r\n",
        b":1\r\n",
        b"+OK\r\n",
        b"-ERR no\r\n",
        b"_\r\n",
        b"\r\n",
        b"*0\r\n",
    ];
    for seed in 1..=300u64 {
        let mut rng = XorShift::new(seed);
        let mut input = vec![rng.next_u64() as u8, rng.next_u64() as u8];
        for _ in 0..rng.index(200) {
            if rng.below(10) == 0 {
                input.push(rng.next_u64() as u8);
            } else {
                input.extend_from_slice(PIECES[rng.index(PIECES.len())]);
            }
        }
        let outcome = std::panic::catch_unwind(|| fuzz_checks::resp(&input));
        assert!(outcome.is_ok(), "RESP input of seed {seed} fails");
    }
}

/// Random bytes to the TLS server side, from each of the check's three starting points.
#[test]
fn generated_tls_inputs() {
    for seed in 1..=300u64 {
        let mut rng = XorShift::new(seed);
        let len = rng.index(2000);
        let mut input: Vec<u8> = (0..len).map(|_| rng.next_u64() as u8).collect();
        if let Some(first) = input.first_mut() {
            *first = (seed % 3) as u8;
        }
        let outcome = std::panic::catch_unwind(|| fuzz_checks::tls(&input));
        assert!(outcome.is_ok(), "TLS input of seed {seed} fails");
    }
}

/// Scripts from a fixed pseudo-random stream: the same every run, so a failure names its seed.
#[test]
fn generated_session_scripts() {
    let mut totals = a_chat::Stats::default();
    for seed in 1..=2000u64 {
        let mut rng = XorShift::new(seed);
        let script: Vec<u8> = (0..600).map(|_| rng.next_u64() as u8).collect();
        let outcome = std::panic::catch_unwind(|| fuzz_checks::session(&script));
        let stats = outcome.unwrap_or_else(|_| panic!("session script of seed {seed} fails"));
        totals.messages_routed += stats.messages_routed;
        totals.slow_consumers_evicted += stats.slow_consumers_evicted;
        totals.memory_evictions += stats.memory_evictions;
        totals.unknown_destinations += stats.unknown_destinations;
        totals.bytes_unsent_at_shutdown += stats.bytes_unsent_at_shutdown;
        for (total, count) in totals.lines_rejected.iter_mut().zip(stats.lines_rejected) {
            *total += count;
        }
    }
    // The scripts reach the interesting paths, so the checks are not vacuous.
    println!("{totals:?}");
    assert!(totals.messages_routed > 5_000);
    assert!(totals.slow_consumers_evicted > 100);
    assert!(
        totals.memory_evictions > 20,
        "{} memory evictions",
        totals.memory_evictions
    );
    assert!(totals.unknown_destinations > 1000);
    assert!(
        totals.lines_rejected.iter().all(|&count| count > 0),
        "{totals:?}"
    );
}

/// Frames from a fixed pseudo-random stream (text, continuation, binary, ping, close, with and
/// without mask, reserved bits, lengths over the bound, stray bytes) to a WebSocket, through
/// the `ws` check, with every chunk size and write window.
#[test]
fn generated_ws_inputs() {
    fn frame(rng: &mut XorShift, out: &mut Vec<u8>) {
        const FIRST: [u8; 9] = [0x81, 0x01, 0x80, 0x00, 0x82, 0x89, 0x8a, 0x88, 0xc1];
        let first = FIRST[rng.index(FIRST.len())];
        let length = match rng.below(8) {
            0 => 200,
            1 => 0,
            _ => rng.index(40),
        };
        let masked = rng.below(12) != 0;
        out.push(first);
        let mask_bit = if masked { 0x80 } else { 0 };
        if length < 126 {
            out.push(mask_bit | length as u8);
        } else {
            out.push(mask_bit | 126);
            out.extend_from_slice(&(length as u16).to_be_bytes());
        }
        let mask = [rng.next_u64() as u8, 7, 0, 200];
        if masked {
            out.extend_from_slice(&mask);
        }
        for i in 0..length {
            let byte = if rng.below(5) == 0 {
                b'\n'
            } else {
                b'a' + (i % 26) as u8
            };
            out.push(if masked { byte ^ mask[i % 4] } else { byte });
        }
    }
    for seed in 1..=2000u64 {
        let mut rng = XorShift::new(seed);
        let mut input = vec![1, rng.next_u64() as u8, rng.next_u64() as u8];
        for _ in 0..rng.index(20) {
            if rng.below(30) == 0 {
                input.push(rng.next_u64() as u8);
            } else {
                frame(&mut rng, &mut input);
            }
        }
        fuzz_checks::ws(&input);
    }
}
