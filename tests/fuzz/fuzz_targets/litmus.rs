//! Fuzz target `litmus`: the body is `checks::litmus` (shared with tests/reliability/fuzz.rs).
#![no_main]

#[path = "../checks.rs"]
mod checks;

libfuzzer_sys::fuzz_target!(|data: &[u8]| checks::litmus(data));
