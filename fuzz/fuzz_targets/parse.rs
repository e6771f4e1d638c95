//! Fuzz target `parse`: see `tests/fuzz_checks/mod.rs`, whose `parse` check it runs.
#![no_main]

#[path = "../../tests/fuzz_checks/mod.rs"]
mod checks;

libfuzzer_sys::fuzz_target!(|data: &[u8]| checks::parse(data));
