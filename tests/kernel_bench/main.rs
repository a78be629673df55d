//! Kernel benchmarks (docs/PERFORMANCE.md), run in the test bed's real 6.1 kernel: bulk apply and
//! weight churn three ways (bigbro's batch, `ipvsadm -R`, one `ipvsadm` exec per operation
//! as big_brother does), the no-op reconcile of 1,000 services × 10 destinations, and the
//! reaction time from a backend's health change to the kernel weight, through bigbro's
//! parts wired by hand (scaled to 1,000 services) and through the real daemon (alone, and
//! with 999 more adopted clusters: 1,000 services).
//!
//! They are measurements, not tests: they boot a VM and take minutes, so `cargo test` only
//! prints that they were skipped unless `BIGBRO_BENCH=1` is set. The scale harness sets it
//! (`cargo run --release --example scale -- kernel`), runs this binary and reads the
//! `BENCH {json}` lines the guest prints. They assert only that every method did its whole
//! job (the kernel holds exactly the expected state), never how fast it was.
//!
//! Each benchmark runs in its own guest process and fresh network namespace.

// The benchmarks drive the test bed without `kernel_test!` (see `run`).
#[allow(unused_macros, unused_imports)]
#[path = "../support/testbed/mod.rs"]
mod testbed;

#[path = "../../benches/common/workload.rs"]
mod workload;

#[path = "../support/daemon_bed.rs"]
mod daemon_bed;

mod bulk;
mod daemon;
mod measure;
mod noop;
mod reaction;

/// Every benchmark of this binary, so that the first one to run on the host tells the
/// test bed about all of them (they do not use `kernel_test!`, which cannot be skipped).
const BENCHES: [&str; 5] = [
    "bench_bulk_apply_and_weight_churn",
    "bench_noop_reconcile",
    "bench_reaction_time",
    "bench_reaction_time_daemon",
    "bench_reaction_time_daemon_1000",
];

/// Runs benchmark `name` in the guest when `BIGBRO_BENCH` is set (the guest inherits the
/// host's environment); otherwise says it was skipped.
fn run(name: &str, body: fn()) {
    let in_guest = std::env::var_os("BIGBRO_TESTBED_GUEST").is_some();
    if !in_guest && std::env::var_os("BIGBRO_BENCH").is_none() {
        eprintln!(
            "kernel_bench: {name} skipped: set BIGBRO_BENCH=1 to run it \
             (or `cargo run --release --example scale -- kernel`)"
        );
        return;
    }
    if !in_guest {
        for bench in BENCHES {
            testbed::register(module_path!(), bench);
        }
    }
    testbed::run_kernel_test(module_path!(), name, body);
}

#[test]
fn bench_bulk_apply_and_weight_churn() {
    run("bench_bulk_apply_and_weight_churn", bulk::run);
}

#[test]
fn bench_noop_reconcile() {
    run("bench_noop_reconcile", noop::run);
}

#[test]
fn bench_reaction_time() {
    run("bench_reaction_time", reaction::run);
}

#[test]
fn bench_reaction_time_daemon() {
    run("bench_reaction_time_daemon", daemon::run);
}

#[test]
fn bench_reaction_time_daemon_1000() {
    run("bench_reaction_time_daemon_1000", daemon::run_thousand);
}
