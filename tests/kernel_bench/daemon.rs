//! Reaction time through the real daemon: the same health changes as `reaction.rs`, but
//! the chain is bigbro's daemon itself (configuration file loaded, cluster started through
//! its `Handle`, its own weight driver, controller and pass scheduling; no VIP, so no
//! mark rules), run in-process on the test bed's daemon helpers. One cluster of one real
//! server, probed every 2 s with a 1 s timeout, no ramp; the time is taken from the health
//! change to the moment a separate netlink client (polling every 5 ms) sees the new weight.
//!
//! Measured twice: with that cluster alone, and with 999 more configured clusters of 10
//! nodes each that the daemon adopts from the kernel at start (1,000 services, 10,001
//! destinations): their nodes are down (weight 0 in the kernel, addresses with no route,
//! probed once an hour), so their weights never change and every weight-triggered pass is
//! the daemon's reaction to the one real server. Anti-entropy runs every 60 s throughout.

use std::time::{Duration, Instant};

use bigbro::daemon::{Handle, StartOutcome};
use bigbro::ipvs::{Client, ServiceKey};
use bigbro::types::Fwmark;
use serde_json::json;

use crate::daemon_bed::{nodes, runtime, settings, spawn_daemon, ConfigFile};
use crate::measure::{apply_all, emit, secs, setting};
use crate::reaction::{change_health, wait_for_weight};
use crate::testbed::dataplane::{DataPlane, Health, RealServer, HEALTH_PORT};
use crate::workload;

/// The measured cluster's fwmark (above the background services' 1..=999).
const FWMARK: u32 = 5000;
const INTERVAL: Duration = Duration::from_secs(2);

/// The measured cluster `web` of real server rs1.
fn web(plane: &DataPlane) -> String {
    format!(
        "  - cluster_name: web\n    fwmark: {FWMARK}\n    scheduler: wrr\n    \
         check_interval: {}\n    health: {{timeout: 1}}\n    ramp_up_time: 0\n    nodes:\n{}",
        INTERVAL.as_secs(),
        nodes(plane, &["rs1"])
    )
}

pub fn run() {
    let changes = setting("BIGBRO_BENCH_CHANGES", 12);
    let plane = DataPlane::new(1);
    let rs = &plane.servers()[0];
    rs.set_health(Health::litmus(100));
    let dir = tempfile::tempdir().expect("temp dir");
    let cfg = ConfigFile::new(&format!(
        "{}clusters:\n{}",
        settings(dir.path(), 60),
        web(&plane)
    ));
    let rt = runtime();
    let handle = spawn_daemon(&rt, &cfg.path);
    assert_eq!(rt.block_on(handle.start("web")), Ok(StartOutcome::Started));
    let reaction = rt.block_on(reactions(&handle, rs, changes));
    emit(json!({
        "bench": "reaction",
        "services": 1,
        "pass_over": "the daemon's own passes",
        "interval_seconds": INTERVAL.as_secs_f64(),
        "reaction_seconds": reaction.iter().map(|d| secs(*d)).collect::<Vec<_>>(),
        "pipeline_seconds": Vec::<f64>::new(),
        "passes": handle.metrics().passes,
    }));
    drop(handle);
    drop(rt);
}

/// The same with 999 adopted background clusters of 10 down nodes each.
pub fn run_thousand() {
    let changes = setting("BIGBRO_BENCH_CHANGES", 12);
    let plane = DataPlane::new(1);
    let rs = &plane.servers()[0];
    rs.set_health(Health::litmus(100));
    let background = workload::state(workload::SERVICES - 1, workload::DESTS, 0);
    let dir = tempfile::tempdir().expect("temp dir");
    let mut text = format!("{}clusters:\n{}", settings(dir.path(), 60), web(&plane));
    for (svc, dests) in &background {
        let mark = svc.key.fwmark().expect("fwmark services").get();
        text.push_str(&format!(
            "  - cluster_name: bg{mark}\n    fwmark: {mark}\n    scheduler: wrr\n    \
             check_interval: 3600\n    ramp_up_time: 0\n    nodes:\n"
        ));
        for d in dests {
            text.push_str(&format!(
                "      - {{address: {}, port: {HEALTH_PORT}, path: /health}}\n",
                d.addr
            ));
        }
    }
    let cfg = ConfigFile::new(&text);
    let rt = runtime();
    rt.block_on(async {
        let client = Client::connect().await.expect("connecting to IPVS");
        apply_all(&client, &workload::add_ops(&background)).await;
    });
    let started = Instant::now();
    let handle = spawn_daemon(&rt, &cfg.path);
    // Commands wait for the adoption of the 999 clusters found in the kernel.
    assert_eq!(rt.block_on(handle.start("web")), Ok(StartOutcome::Started));
    let adopt_and_start = started.elapsed();
    let running = handle.clusters().iter().filter(|c| c.running).count();
    assert_eq!(
        running,
        workload::SERVICES as usize,
        "every cluster running"
    );
    let reaction = rt.block_on(reactions(&handle, rs, changes));
    let in_kernel = rt.block_on(async {
        let client = Client::connect().await.expect("connecting to IPVS");
        client.services().await.expect("dumping services").len()
    });
    assert_eq!(in_kernel, workload::SERVICES as usize, "no service lost");
    let m = handle.metrics();
    emit(json!({
        "bench": "reaction",
        "services": workload::SERVICES,
        "pass_over": "the daemon's own passes (999 adopted clusters of 10 nodes)",
        "interval_seconds": INTERVAL.as_secs_f64(),
        "reaction_seconds": reaction.iter().map(|d| secs(*d)).collect::<Vec<_>>(),
        "pipeline_seconds": Vec::<f64>::new(),
        "adopt_and_start_seconds": secs(adopt_and_start),
        "passes": m.passes,
        "last_pass": handle.daemon_status().last_pass.map(|p| json!({
            "full": p.full, "services": p.services, "seconds": p.duration_seconds,
        })),
    }));
    drop(handle);
    drop(rt);
}

/// `changes` health changes of `rs` at random phases of the probe grid; each one's time
/// until the kernel holds the new weight of `web`.
async fn reactions(handle: &Handle, rs: &RealServer, changes: usize) -> Vec<Duration> {
    let service = ServiceKey::fwmark_v4(Fwmark::new(FWMARK).unwrap());
    let poller = Client::connect().await.expect("connecting to IPVS");
    wait_for_weight(&poller, service, 100, Duration::from_secs(60)).await;
    let mut reaction = Vec::new();
    for i in 0..changes {
        let (_, changed, seen) = change_health(rs, &poller, service, i, INTERVAL, || {}).await;
        reaction.push(seen - changed);
    }
    assert!(handle.daemon_status().adopted);
    reaction
}
