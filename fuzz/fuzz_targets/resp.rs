//! Fuzz target `resp`: see `tests/fuzz_checks/mod.rs`, whose `resp` check it runs: hostile
//! replies from Redis, cut into reads, to a cluster node in memory.
#![no_main]

#[path = "../../tests/fuzz_checks/mod.rs"]
mod checks;

libfuzzer_sys::fuzz_target!(|data: &[u8]| checks::resp(data));
