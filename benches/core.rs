//! Micro-benchmarks of the IO-free core: the framer, the parser, and routing with fan-out.
//!
//! `cargo bench --bench core` (add `-- --quick` for a rough run). No sockets: these are the
//! costs the server pays per byte, per line and per delivered copy before any system call.

use std::hint::black_box;

use a_chat::Config;
use a_chat::core::framer::LineFramer;
use a_chat::core::parse::{parse_message, parse_name};
use a_chat::sim::{MemoryServer, XorShift};
use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};

/// About 1 MiB of what clients send: names, messages to one or several peers with texts of
/// 10 to 200 bytes, some lines ending in `\r\n` (as `nc -C` sends them).
fn protocol_input() -> (Vec<u8>, usize) {
    let mut rng = XorShift::new(0x2545_F491_4F6C_DD1D);
    let mut next = move |n: u64| rng.below(n);
    let mut input = Vec::with_capacity(1 << 20);
    let mut lines = 0;
    while input.len() < 1 << 20 {
        match next(10) {
            0 => input.extend_from_slice(format!("user{}", next(10_000)).as_bytes()),
            k => {
                let dests: Vec<String> = (0..k.min(4))
                    .map(|_| format!("user{}", next(10_000)))
                    .collect();
                input.extend_from_slice(dests.join(", ").as_bytes());
                input.extend_from_slice(b": ");
                let text_len = 10 + next(190) as usize;
                input.extend((0..text_len).map(|i| b"hello world, how are you? "[i % 26]));
            }
        }
        input.extend_from_slice(if next(4) == 0 { b"\r\n" } else { b"\n" });
        lines += 1;
    }
    (input, lines)
}

fn framer(c: &mut Criterion) {
    let (input, lines) = protocol_input();
    let mut group = c.benchmark_group("framer");
    group.throughput(Throughput::Bytes(input.len() as u64));
    group.bench_function("feed_whole_1MiB", |b| {
        b.iter(|| {
            let mut framer = LineFramer::new();
            let mut count = 0;
            framer
                .feed(black_box(&input), 8192, |line| count += line.len())
                .unwrap();
            black_box(count)
        })
    });
    group.bench_function("feed_1_byte_chunks_1MiB", |b| {
        b.iter(|| {
            let mut framer = LineFramer::new();
            let mut count = 0;
            for byte in black_box(&input).chunks(1) {
                framer.feed(byte, 8192, |_| count += 1).unwrap();
            }
            assert_eq!(count, lines);
            black_box(count)
        })
    });
    group.finish();
}

fn parser(c: &mut Criterion) {
    let (input, _) = protocol_input();
    let lines: Vec<&[u8]> = input
        .split(|&b| b == b'\n')
        .filter(|line| !line.is_empty())
        .collect();
    let mut group = c.benchmark_group("parse");
    group.throughput(Throughput::Elements(lines.len() as u64));
    group.bench_function("parse_message", |b| {
        b.iter(|| {
            let mut dests = 0;
            for line in &lines {
                if let Ok(Some(message)) = parse_message(black_box(line)) {
                    dests += message.destinations().count();
                }
            }
            black_box(dests)
        })
    });
    group.bench_function("parse_name", |b| {
        b.iter(|| {
            let valid = lines
                .iter()
                .filter(|line| parse_name(black_box(line)).is_ok())
                .count();
            black_box(valid)
        })
    });
    group.finish();
}

/// Lines one sender sends per turn: the server handles what one read brings in one turn, so a
/// batch is closer to it than one line per turn (whose per-turn cost would dominate at K = 1).
const LINES_PER_TURN: u64 = 64;

fn routing(c: &mut Criterion) {
    let mut group = c.benchmark_group("route");
    for fanout in [1usize, 8, 64] {
        // A sender and `fanout` receivers, logged in.
        let mut server = MemoryServer::new(Config::default());
        let ids: Vec<u64> = (0..=fanout).map(|_| server.connect()).collect();
        for (i, &id) in ids.iter().enumerate() {
            server.send(id, format!("peer{i}\n").as_bytes());
        }
        server.turn();
        let dests: Vec<String> = (1..=fanout).map(|i| format!("peer{i}")).collect();
        let line = format!(
            "{}: the text of a message, about forty bytes\n",
            dests.join(",")
        );
        let batch = line.repeat(LINES_PER_TURN as usize);

        // Once by hand: every receiver gets the batch.
        server.send(ids[0], batch.as_bytes());
        server.turn();
        for &id in &ids[1..] {
            let received = server.take_output(id);
            assert_eq!(
                received.lines().count() as u64,
                LINES_PER_TURN,
                "{received}"
            );
        }

        group.throughput(Throughput::Elements(LINES_PER_TURN * fanout as u64));
        group.bench_with_input(BenchmarkId::new("fanout", fanout), &fanout, |b, _| {
            b.iter(|| {
                server.send(ids[0], batch.as_bytes());
                server.turn();
                for &id in &ids[1..] {
                    // Keep the capacity: the bench measures routing, not the test transport.
                    server.transport(id).output.clear();
                }
            })
        });
        assert_eq!(
            server.chat.stats().connections_open,
            fanout + 1,
            "nobody was disconnected"
        );
    }
    group.finish();
}

criterion_group!(benches, framer, parser, routing);
criterion_main!(benches);
