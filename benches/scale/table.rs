//! The results table: every measurement as a ratio against the real alternative measured
//! in the same run, with its target and whether it was met.

use std::fmt::Write as _;

use serde_json::Value;

/// Where and when the run happened.
pub struct Machine {
    pub date: String,
    pub host: String,
    pub guest: String,
    pub load: String,
}

fn median(values: &[f64]) -> f64 {
    let mut v = values.to_vec();
    if v.is_empty() {
        return f64::NAN;
    }
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

fn max(values: &[f64]) -> f64 {
    values.iter().copied().fold(f64::NAN, f64::max)
}

fn floats(v: &Value) -> Vec<f64> {
    v.as_array()
        .map(|a| a.iter().filter_map(Value::as_f64).collect())
        .unwrap_or_default()
}

fn num(v: &Value, key: &str) -> f64 {
    v[key].as_f64().unwrap_or(f64::NAN)
}

/// A duration in seconds, readably.
fn dur(s: f64) -> String {
    if s.is_nan() {
        "n/a".into()
    } else if s < 1e-3 {
        format!("{:.1} µs", s * 1e6)
    } else if s < 1.0 {
        format!("{:.1} ms", s * 1e3)
    } else {
        format!("{s:.2} s")
    }
}

fn met(ok: bool) -> &'static str {
    if ok {
        "yes"
    } else {
        "**no**"
    }
}

/// The time a method would take for all `ops`: the median over rounds of the time per
/// measured op, times `ops` (exact when every op was measured).
fn per_method(kernel: &[Value], bench: &str, method: &str) -> Option<(f64, f64, f64)> {
    let line = kernel
        .iter()
        .find(|l| l["bench"] == bench && l["method"] == method)?;
    let ops = num(line, "ops");
    let measured = num(line, "measured_ops");
    let runs = floats(&line["seconds"]);
    let per_op = median(&runs) / measured;
    Some((per_op * ops, measured, ops))
}

pub fn render(machine: &Machine, kernel: &[Value], probing: &[Value]) -> String {
    let mut t = String::new();
    let _ = writeln!(t, "### Results of {}\n", machine.date);
    let _ = writeln!(t, "- host: {}", machine.host);
    if !machine.guest.is_empty() {
        let _ = writeln!(t, "- test bed guest (qemu TCG, 1 vCPU): {}", machine.guest);
    }
    let _ = writeln!(t, "- load average (1 min): {}\n", machine.load);
    let _ = writeln!(
        t,
        "| # | measurement | bigbro | alternative, same run | ratio | target | met |"
    );
    let _ = writeln!(t, "|---|---|---|---|---|---|---|");

    for (bench, label) in [
        ("bulk_apply", "bulk apply 1,000 svc × 10 dests (11,000 ops)"),
        ("weight_churn", "weight churn: every one of 10,000 weights"),
    ] {
        let Some((ours, _, _)) = per_method(kernel, bench, "bigbro") else {
            continue;
        };
        if let Some((restore, _, _)) = per_method(kernel, bench, "ipvsadm_restore") {
            let ratio = ours / restore;
            let _ = writeln!(
                t,
                "| 1 | {label} | {} | `ipvsadm -R`: {} | {ratio:.3} | ≤ 0.5 | {} |",
                dur(ours),
                dur(restore),
                met(ratio <= 0.5)
            );
        }
        if let Some((exec, measured, ops)) = per_method(kernel, bench, "exec_per_op") {
            let ratio = ours / exec;
            let _ = writeln!(
                t,
                "| 1 | {label} | {} | one `ipvsadm` per op: {} (extrapolated from {measured} of {ops} ops) | 1/{:.0} | ≤ 1/50 | {} |",
                dur(ours),
                dur(exec),
                1.0 / ratio,
                met(ratio <= 1.0 / 50.0)
            );
        }
    }

    let noop = |method: &str| {
        kernel
            .iter()
            .find(|l| l["bench"] == "noop_reconcile" && l["method"] == method)
            .map(|l| floats(&l["seconds"]))
            .unwrap_or_default()
    };
    let pass = noop("bigbro_noop_pass");
    if !pass.is_empty() {
        let save = median(&noop("ipvsadm_save"));
        let m = median(&pass);
        let _ = writeln!(
            t,
            "| 2 | no-op reconcile of 1,000 × 10 (1,001 dumps, 0 writes), median of {} (max {}) | {} | `ipvsadm -S -n` of the same table: {} | {:.2} | ≤ 20 ms | {} |",
            pass.len(),
            dur(max(&pass)),
            dur(m),
            dur(save),
            m / save,
            met(m <= 0.020)
        );
        let _ = writeln!(
            t,
            "| 2 | floor: 1,001 bare netlink round trips (GET_INFO) | {} | | | | |",
            dur(median(&noop("bigbro_1001_get_info")))
        );
        let _ = writeln!(
            t,
            "| 2 | one service dump (all 1,000 services) | {} | | | | |",
            dur(median(&noop("bigbro_service_dump")))
        );
        let _ = writeln!(
            t,
            "| 2 | pass fixing 1 weight: over all 1,000 owned services / over the 1 changed service | {} / {} | | | | |",
            dur(median(&noop("bigbro_pass_one_change"))),
            dur(median(&noop("bigbro_pass_one_service")))
        );
        let each = noop("bigbro_pass_one_service_each");
        if !each.is_empty() {
            let _ = writeln!(
                t,
                "| 2 | pass fixing 1 weight, the changed service read alone (GET_SERVICE; the daemon's weight passes) | {} | | | | |",
                dur(median(&each))
            );
        }
    }

    for p in probing {
        let nodes = num(p, "nodes");
        let wall = num(p, "wall_seconds");
        let probes = num(p, "probes_ok") + num(p, "probes_failed");
        let cpu_share = num(p, "cpu_share");
        let rss_mib = num(p, "peak_rss_kib") / 1024.0;
        let on_time = num(p, "on_time_share");
        let per_probe = num(p, "cpu_seconds") / probes;
        let stub = &p["stub"];
        let per_request = num(stub, "cpu_seconds") / num(stub, "requests");
        let big = nodes >= 10_000.0;
        let target = |s: &str| {
            if big {
                s.to_string()
            } else {
                "—".to_string()
            }
        };
        let _ = writeln!(
            t,
            "| 3 | probing {nodes} nodes every {}s, {:.0}s of steady state: CPU, share of one core (user {:.1} %, system {:.1} %) | {:.1} % | | | {} | {} |",
            num(p, "interval_seconds"),
            wall,
            num(p, "cpu_user_seconds") / wall * 100.0,
            num(p, "cpu_system_seconds") / wall * 100.0,
            cpu_share * 100.0,
            target("≤ 10 %"),
            if big { met(cpu_share <= 0.10) } else { "" }
        );
        let _ = writeln!(
            t,
            "| 3 | probing {nodes}: peak RSS (RSS after registering the nodes {:.1} MiB, at the end {:.1} MiB) | {rss_mib:.1} MiB | | | {} | {} |",
            num(p, "rss_after_setup_kib") / 1024.0,
            num(p, "rss_end_kib") / 1024.0,
            target("≤ 64 MiB"),
            if big { met(rss_mib <= 64.0) } else { "" }
        );
        let _ = writeln!(
            t,
            "| 3 | probing {nodes}: registering the nodes with the weight driver ({:.0} clusters of 10, one `set_cluster` each), before the steady state | {} ({} CPU) | | | | |",
            (nodes / 10.0).ceil(),
            dur(num(p, "setup_seconds")),
            dur(num(p, "setup_cpu_seconds"))
        );
        let _ = writeln!(
            t,
            "| 3 | probing {nodes}: probes started ≤ 100 ms after their tick ({} of {} ticks; lateness p99 {} ms, max {} ms) | {:.3} % | | | {} | {} |",
            num(p, "on_time"),
            num(p, "ticks"),
            p["lateness_ms"]["p99"],
            p["lateness_ms"]["max"],
            on_time * 100.0,
            target("≥ 99.9 %"),
            if big { met(on_time >= 0.999) } else { "" }
        );
        let _ = writeln!(
            t,
            "| 3 | probing {nodes}: stall monitors, how late a 10 ms sleep woke: plain thread max {:.0} ms ({} of {} wake-ups > 100 ms), tokio task max {:.0} ms ({} of {}) | | | | | |",
            num(&p["stalls"]["thread"], "max_ms"),
            p["stalls"]["thread"]["wakeups_over_100ms"],
            p["stalls"]["thread"]["wakeups"],
            num(&p["stalls"]["tokio"], "max_ms"),
            p["stalls"]["tokio"]["wakeups_over_100ms"],
            p["stalls"]["tokio"]["wakeups"]
        );
        let _ = writeln!(
            t,
            "| 3 | probing {nodes}: CPU per probe ({:.0} probes/s, {} failed) | {} | stub's CPU per request served: {} | {:.1} | | |",
            probes / wall,
            num(p, "probes_failed"),
            dur(per_probe),
            dur(per_request),
            per_probe / per_request
        );
    }

    for r in kernel.iter().filter(|l| l["bench"] == "reaction") {
        let reaction = floats(&r["reaction_seconds"]);
        let pipeline = floats(&r["pipeline_seconds"]);
        let interval = num(r, "interval_seconds");
        let worst = max(&reaction);
        let split = if pipeline.is_empty() {
            "the real daemon, in-process (no split)".to_string()
        } else {
            format!(
                "probe start → kernel weight: median {}, max {}",
                dur(median(&pipeline)),
                dur(max(&pipeline))
            )
        };
        let _ = writeln!(
            t,
            "| 4 | reaction, health change → kernel weight, {} service(s) in the table, pass over {} ({} changes): median / max | {} / {} | {split} | | ≤ {} | {} |",
            r["services"],
            r["pass_over"].as_str().unwrap_or("?"),
            reaction.len(),
            dur(median(&reaction)),
            dur(worst),
            dur(interval + 0.1),
            met(worst <= interval + 0.1)
        );
    }
    t
}
