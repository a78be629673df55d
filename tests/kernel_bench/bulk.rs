//! Bulk apply and weight churn, three ways in the same guest and netns, rounds
//! interleaved so that drift in the guest's speed hits every method alike:
//!
//! * `bigbro`: `ipvs::Client::apply` of every op in one call (many ops per sendmsg);
//! * `ipvsadm_restore`: one `ipvsadm -R` process fed the same commands;
//! * `exec_per_op`: one `ipvsadm` process per op with big_brother's exact arguments
//!   (exec'd directly, without big_brother's shell and EventMachine around it, so this
//!   favours big_brother). It is measured on a sample (the first
//!   `BIGBRO_BENCH_EXEC_SERVICES` services, default 50: 550 adds, 500 edits) and the
//!   harness extrapolates it per op; every line says which ops it measured.
//!
//! Bulk apply starts from an empty table each round; churn starts from the full table
//! and sets every destination's weight to a value it does not have. After every run the
//! kernel's state is compared with what that run should have built.

use std::time::Duration;

use bigbro::ipvs::Client;
use serde_json::json;

use crate::measure::{apply_all, assert_state, emit, flush, secs, setting, timed_command};
use crate::testbed;
use crate::workload::{self, State, DESTS, SERVICES};

const RULES: &str = "/tmp/bigbro-bench.rules";

pub fn run() {
    let rounds = setting("BIGBRO_BENCH_RUNS", 3);
    let sample_services = setting("BIGBRO_BENCH_EXEC_SERVICES", 50).min(SERVICES as usize);
    let full = workload::state(SERVICES, DESTS, 100);
    let sample: State = full[..sample_services].to_vec();
    let adds = workload::add_ops(&full);
    let sample_adds = workload::add_ops(&sample);

    testbed::block_on(async {
        let client = Client::connect().await.expect("connecting to IPVS");

        // --- bulk apply from an empty table
        let mut bulk = Times::default();
        std::fs::write(RULES, workload::restore_text(&adds)).expect("writing the rules");
        for round in 0..rounds {
            flush(&client).await;
            bulk.bigbro.push(apply_all(&client, &adds).await);
            assert_state(&client, &full, "bulk apply, bigbro").await;

            flush(&client).await;
            let restore = ["-R".to_string()];
            bulk.restore
                .push(timed_command("ipvsadm", &restore, Some(RULES)));
            assert_state(&client, &full, "bulk apply, ipvsadm -R").await;

            flush(&client).await;
            bulk.exec.push(exec_each(&sample_adds));
            assert_state(&client, &sample, "bulk apply, ipvsadm per op").await;
            eprintln!("bulk apply round {} of {rounds} done", round + 1);
        }
        bulk.emit("bulk_apply", adds.len(), sample_adds.len());

        // --- weight churn: every destination's weight changes once
        flush(&client).await;
        apply_all(&client, &adds).await;
        let mut churn = Times::default();
        let mut current = full.clone();
        for round in 0..rounds as u32 {
            let target = workload::reweighted(&full, 200 + 3 * round);
            let edits = workload::edit_ops(&target);
            churn.bigbro.push(apply_all(&client, &edits).await);
            assert_state(&client, &target, "weight churn, bigbro").await;

            let target = workload::reweighted(&full, 201 + 3 * round);
            std::fs::write(RULES, workload::restore_text(&workload::edit_ops(&target)))
                .expect("writing the rules");
            let restore = ["-R".to_string()];
            churn
                .restore
                .push(timed_command("ipvsadm", &restore, Some(RULES)));
            assert_state(&client, &target, "weight churn, ipvsadm -R").await;
            current.clone_from(&target);

            let sample_target = workload::reweighted(&sample, 202 + 3 * round);
            churn
                .exec
                .push(exec_each(&workload::edit_ops(&sample_target)));
            current[..sample_services].clone_from_slice(&sample_target);
            assert_state(&client, &current, "weight churn, ipvsadm per op").await;
            eprintln!("weight churn round {} of {rounds} done", round + 1);
        }
        let edits = (SERVICES * DESTS) as usize;
        churn.emit("weight_churn", edits, sample_services * DESTS as usize);
    });
}

/// One `ipvsadm` process per op, big_brother's arguments, one after another. Returns
/// the total wall time.
fn exec_each(ops: &[bigbro::ipvs::Op]) -> Duration {
    ops.iter()
        .map(|op| {
            let args = workload::big_brother_args(op).expect("big_brother issues this op");
            timed_command("ipvsadm", &args, None)
        })
        .sum()
}

/// Each method's time per round.
#[derive(Default)]
struct Times {
    bigbro: Vec<Duration>,
    restore: Vec<Duration>,
    exec: Vec<Duration>,
}

impl Times {
    fn emit(&self, bench: &str, ops: usize, sampled: usize) {
        let list = |v: &[Duration]| v.iter().map(|d| secs(*d)).collect::<Vec<f64>>();
        for (method, runs, measured) in [
            ("bigbro", &self.bigbro, ops),
            ("ipvsadm_restore", &self.restore, ops),
            ("exec_per_op", &self.exec, sampled),
        ] {
            emit(json!({
                "bench": bench,
                "method": method,
                "ops": ops,
                "measured_ops": measured,
                "seconds": list(runs),
            }));
        }
    }
}
