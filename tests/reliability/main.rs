//! The reliability suite: what keeps bigbro up when the world misbehaves. Kernel errors
//! and the `ip_vs` module going away (in the test bed's guest, one VM boot for the suite),
//! the daemon's resources over long runs, the API under hostile clients, the health prober
//! against misbehaving backends, and every fuzz target's seeds and regressions as plain
//! tests.
//!
//! `ipvs_module` unloads `ip_vs` for the whole guest and restores it when it ends (even by
//! panic); the guest runs kernel tests one at a time, so no other test sees it gone.

#[path = "../support/daemon_bed.rs"]
mod daemon_bed;
#[path = "../support/own_process.rs"]
mod own_process;
#[path = "../support/testbed/mod.rs"]
mod testbed;

mod api;
mod daemon_resources;
mod fuzz;
mod health;
mod ipvs_module;
mod kernel_errors;
mod resources;
