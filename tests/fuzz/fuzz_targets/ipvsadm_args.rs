//! Fuzz target `ipvsadm_args`: the body is `checks::ipvsadm_args` (shared with tests/reliability/fuzz.rs).
#![no_main]

#[path = "../checks.rs"]
mod checks;

libfuzzer_sys::fuzz_target!(|data: &[u8]| checks::ipvsadm_args(data));
