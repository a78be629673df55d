//! Reaction time through the real daemon: the same health changes as `reaction.rs`, but
//! the chain is bigbro's daemon itself (configuration file loaded, cluster started through
//! its `Handle`, its own weight driver, controller and pass scheduling; no VIP, so no
//! mark rules), run in-process on the test bed's daemon helpers. One cluster of one real server, probed
//! every 2 s with a 1 s timeout, no ramp; the time is taken from the health change to the
//! moment a separate netlink client (polling every 5 ms) sees the new weight.

use std::time::{Duration, Instant};

use bigbro::daemon::StartOutcome;
use bigbro::ipvs::{Client, ServiceKey};
use bigbro::types::Fwmark;
use serde_json::json;

use crate::daemon_bed::{nodes, runtime, settings, spawn_daemon, ConfigFile};
use crate::measure::{emit, secs, setting};
use crate::reaction::{wait_for_weight, CYCLE};
use crate::testbed::dataplane::{DataPlane, Health};

const FWMARK: u32 = 7;
const INTERVAL: Duration = Duration::from_secs(2);

pub fn run() {
    let changes = setting("BIGBRO_BENCH_CHANGES", 12);
    let plane = DataPlane::new(1);
    let rs = &plane.servers()[0];
    rs.set_health(Health::litmus(100));
    let dir = tempfile::tempdir().expect("temp dir");
    let cfg = ConfigFile::new(&format!(
        "{}clusters:\n  - cluster_name: web\n    fwmark: {FWMARK}\n    scheduler: wrr\n    \
         check_interval: {}\n    health: {{timeout: 1}}\n    ramp_up_time: 0\n    nodes:\n{}",
        settings(dir.path(), 60),
        INTERVAL.as_secs(),
        nodes(&plane, &["rs1"])
    ));
    let rt = runtime();
    let handle = spawn_daemon(&rt, &cfg.path);
    assert_eq!(rt.block_on(handle.start("web")), Ok(StartOutcome::Started));

    let service = ServiceKey::fwmark_v4(Fwmark::new(FWMARK).unwrap());
    let reaction = rt.block_on(async {
        let poller = Client::connect().await.expect("connecting to IPVS");
        wait_for_weight(&poller, service, 100, Duration::from_secs(30)).await;
        let mut reaction = Vec::new();
        for i in 0..changes {
            let pause = rand::random_range(0..INTERVAL.as_millis() as u64);
            tokio::time::sleep(Duration::from_millis(pause)).await;
            let health = CYCLE[i % CYCLE.len()];
            rs.set_health(Health::litmus(u32::from(health)));
            let changed = Instant::now();
            let seen =
                wait_for_weight(&poller, service, u32::from(health), Duration::from_secs(30)).await;
            reaction.push(seen - changed);
        }
        reaction
    });
    emit(json!({
        "bench": "reaction",
        "services": 1,
        "pass_over": "the daemon's own passes",
        "interval_seconds": INTERVAL.as_secs_f64(),
        "reaction_seconds": reaction.iter().map(|d| secs(*d)).collect::<Vec<_>>(),
        "pipeline_seconds": Vec::<f64>::new(),
    }));
    drop(handle);
    drop(rt);
}
