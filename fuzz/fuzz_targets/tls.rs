//! Fuzz target `tls`: see `tests/fuzz_checks/mod.rs`, whose `tls` check it runs: arbitrary
//! bytes to the server side of the TLS transport.
#![no_main]

#[path = "../../tests/fuzz_checks/mod.rs"]
mod checks;

libfuzzer_sys::fuzz_target!(|data: &[u8]| checks::tls(data));
