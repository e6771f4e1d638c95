//! Fuzz target `framer`: see `tests/fuzz_checks/mod.rs`, whose `framer` check it runs.
#![no_main]

#[path = "../../tests/fuzz_checks/mod.rs"]
mod checks;

libfuzzer_sys::fuzz_target!(|data: &[u8]| checks::framer(data));
