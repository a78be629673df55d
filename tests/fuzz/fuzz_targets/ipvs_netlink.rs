//! Fuzz target `ipvs_netlink`: the body is `checks::ipvs_netlink` (shared with tests/reliability/fuzz.rs).
#![no_main]

#[path = "../checks.rs"]
mod checks;

libfuzzer_sys::fuzz_target!(|data: &[u8]| checks::ipvs_netlink(data));
