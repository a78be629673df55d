//! What the kernel benchmarks share: settings from the environment, timing a command, the
//! kernel's state as the model, and the `BENCH {json}` lines the scale harness reads.
//! Guest only (it changes IPVS state).

use std::fs::File;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use bigbro::ipvs::save::sort_like_ipvsadm;
use bigbro::ipvs::{Client, Op};

use crate::workload::State;

/// A count from the environment variable `var`, or `default`.
pub fn setting(var: &str, default: usize) -> usize {
    std::env::var(var)
        .ok()
        .and_then(|v| v.parse().ok())
        .filter(|n| *n > 0)
        .unwrap_or(default)
}

/// Prints one result for the scale harness: `BENCH {json}`.
pub fn emit(value: serde_json::Value) {
    println!("BENCH {value}");
}

/// Seconds as f64, for the JSON lines.
pub fn secs(d: Duration) -> f64 {
    d.as_secs_f64()
}

/// Runs `program args` with stdin from `input` (if any), stdout discarded; panics with
/// its stderr unless it exits 0. Returns the wall time from spawn to exit.
pub fn timed_command(program: &str, args: &[String], input: Option<&str>) -> Duration {
    let mut command = Command::new(program);
    command
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    if let Some(path) = input {
        command.stdin(File::open(path).unwrap_or_else(|e| panic!("opening {path}: {e}")));
    } else {
        command.stdin(Stdio::null());
    }
    let started = Instant::now();
    let output = command
        .output()
        .unwrap_or_else(|e| panic!("cannot run {program}: {e}"));
    let took = started.elapsed();
    assert!(
        output.status.success(),
        "{program} {} failed ({}): {}",
        args.join(" "),
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    took
}

/// Applies `ops` with bigbro's client; panics listing failures. Returns the time taken.
pub async fn apply_all(client: &Client, ops: &[Op]) -> Duration {
    let started = Instant::now();
    let results = client.apply(ops).await;
    let took = started.elapsed();
    let failed: Vec<String> = results
        .iter()
        .filter_map(|r| r.as_ref().err().map(|e| e.to_string()))
        .collect();
    assert!(
        failed.is_empty(),
        "{} of {} ops failed, first: {}",
        failed.len(),
        ops.len(),
        failed[0]
    );
    took
}

/// Empties the IPVS table (not timed).
pub async fn flush(client: &Client) {
    client.execute(Op::Flush).await.expect("flushing IPVS");
}

/// The kernel's IPVS state, in ipvsadm's order.
pub async fn kernel_state(client: &Client) -> State {
    let mut state: State = client
        .state()
        .await
        .expect("dumping IPVS")
        .into_iter()
        .map(|(s, d)| (s.service, d.into_iter().map(|d| d.dest).collect()))
        .collect();
    sort_like_ipvsadm(&mut state);
    state
}

/// Panics unless the kernel holds exactly `expected` (in any order).
pub async fn assert_state(client: &Client, expected: &State, what: &str) {
    let mut expected = expected.clone();
    sort_like_ipvsadm(&mut expected);
    let found = kernel_state(client).await;
    let dests = |s: &State| s.iter().map(|(_, d)| d.len()).sum::<usize>();
    assert!(
        found == expected,
        "{what}: the kernel holds {} services / {} destinations, expected {} / {}{}",
        found.len(),
        dests(&found),
        expected.len(),
        dests(&expected),
        if found.len() == expected.len() {
            " (same counts, different values)"
        } else {
            ""
        }
    );
}
