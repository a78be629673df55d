//! The kernel suite: bigbro on a real IPVS and nf_tables kernel, booted ONCE under qemu by
//! the test bed (tests/support/testbed/) for every kernel test of this binary; each kernel
//! test runs in the guest in a process and a network namespace of its own. The netlink
//! clients (`ipvs`, `nft`, `route`), `bigbro ipvsadm`, the daemon end to end (data plane, reload,
//! reconcile scope, soak), `bigbro check` against what the daemon programs, the API on a
//! real kernel, and the test bed's own selftest (which boots one more VM of its own to
//! watch tests misbehave).
//!
//! A test here must leave the guest as it found it outside its own network namespace:
//! the next kernel test of the same boot runs in the same guest.

#[path = "../support/adm_common.rs"]
mod adm_common;
#[path = "../support/daemon_bed.rs"]
mod daemon_bed;
#[path = "../support/testbed/mod.rs"]
mod testbed;

mod adm;
mod api;
mod config;
mod daemon;
mod ipvs;
mod nft;
mod reconcile_scope;
mod route;
mod smoke;
mod soak;
mod testbed_selftest;
