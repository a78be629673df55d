//! Fuzz target `nft_netlink`: the body is `checks::nft_netlink` (shared with tests/reliability/fuzz.rs).
#![no_main]

#[path = "../checks.rs"]
mod checks;

libfuzzer_sys::fuzz_target!(|data: &[u8]| checks::nft_netlink(data));
