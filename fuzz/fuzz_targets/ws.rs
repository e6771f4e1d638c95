//! Fuzz target `ws`: see `tests/fuzz_checks/mod.rs`, whose `ws` check it runs: arbitrary
//! bytes, split arbitrarily, to the server side of the WebSocket transport, while lines are
//! written through small windows.
#![no_main]

#[path = "../../tests/fuzz_checks/mod.rs"]
mod checks;

libfuzzer_sys::fuzz_target!(|data: &[u8]| checks::ws(data));
