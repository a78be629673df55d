//! Fuzz target `config`: the body is `checks::config` (shared with tests/reliability/fuzz.rs).
#![no_main]

#[path = "../checks.rs"]
mod checks;

libfuzzer_sys::fuzz_target!(|data: &[u8]| checks::config(data));
