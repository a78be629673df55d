//! Reaction time: a real server's litmus health changes, and the kernel's IPVS weight for
//! it follows. The chain is bigbro's own parts wired as the daemon wires them: the real
//! health scheduler and `NetProber` (2 s interval, 1 s timeout) inside the weight driver
//! (rise 1, fall 1, no ramp), whose weight batches a small loop turns into the desired
//! state and hands to `reconcile::pass` over the real `ipvs::Client`. The real server is
//! the test bed's data-plane fixture (its own namespace, IPIP, litmus health endpoint).
//!
//! Left out (the daemon was not there to measure): config loading, the nft rules, the
//! daemon's own scheduling of passes (this loop runs one pass per batch at once), its API
//! and logging. The time is taken from the health change to the moment a separate netlink
//! client sees the new weight in the kernel (polled every 5 ms), with and without 999
//! other services × 10 destinations in the table. With them it is measured twice: every
//! pass over all owned services (what the daemon does on a weight change), and a pass over
//! only the services whose weights changed (the reconciler allows it: services outside
//! `owned` are neither read nor touched).

use std::collections::BTreeSet;
use std::net::IpAddr;
use std::time::{Duration, Instant};

use bigbro::health::{NetProber, ProbeSettings, Target};
use bigbro::ipvs::{Client, Dest, Service, ServiceKey};
use bigbro::reconcile::{self, Desired, DesiredService};
use bigbro::types::{ClusterName, Weight};
use bigbro::weight::{self, DriverOptions, Initial, NodeParams, NodeSpec};
use serde_json::json;

use crate::measure::{emit, secs, setting};
use crate::testbed::dataplane::{DataPlane, Health};
use crate::testbed::{self};
use crate::workload;

/// The health values the real server cycles through: down, back up, partial.
pub const CYCLE: [u16; 3] = [40, 0, 100];

pub fn run() {
    let changes = setting("BIGBRO_BENCH_CHANGES", 12);
    let plane = DataPlane::new(1);
    let rs = &plane.servers()[0];
    for (background, scope) in [
        (0, Scope::All),
        (workload::SERVICES - 1, Scope::All),
        (workload::SERVICES - 1, Scope::Changed),
    ] {
        let (reaction, pipeline) = testbed::block_on(measure(rs, background, scope, changes));
        emit(json!({
            "bench": "reaction",
            "services": background + 1,
            "pass_over": match scope {
                Scope::All => "all owned services",
                Scope::Changed => "changed services only",
            },
            "interval_seconds": ProbeSettings::default().interval.as_secs_f64(),
            "reaction_seconds": reaction.iter().map(|d| secs(*d)).collect::<Vec<_>>(),
            "pipeline_seconds": pipeline.iter().map(|d| secs(*d)).collect::<Vec<_>>(),
        }));
    }
}

/// What each weight-triggered pass reads and may change.
#[derive(Clone, Copy)]
enum Scope {
    /// Every owned service.
    All,
    /// Only the services whose weights changed in the batch.
    Changed,
}

/// `changes` health changes of `rs` with `background` other services in the table.
/// Returns each change's reaction time (health change → kernel weight) and pipeline time
/// (start of the probe that saw the change → kernel weight).
async fn measure(
    rs: &testbed::dataplane::RealServer,
    background: u32,
    scope: Scope,
    changes: usize,
) -> (Vec<Duration>, Vec<Duration>) {
    let addr = IpAddr::V4(rs.addr());
    let service = ServiceKey::fwmark_v4(bigbro::types::Fwmark::new(5000).unwrap());
    let mut desired = workload::desired(&workload::state(background, workload::DESTS, 100));
    desired.insert(DesiredService::new(
        Service::new(service, "wrr"),
        [Dest::ipip(addr, 1)],
    ));
    let owned: BTreeSet<ServiceKey> = desired.services.keys().copied().collect();
    let client = Client::connect().await.expect("connecting to IPVS");
    client
        .execute(bigbro::ipvs::Op::Flush)
        .await
        .expect("flushing IPVS");
    let first = reconcile::pass(&client, &owned, &desired).await;
    assert!(first.is_clean(), "initial pass: {first:?}");

    rs.set_health(Health::litmus(100));
    let (handle, mut batches) = weight::spawn(DriverOptions::default(), NetProber::default());
    let mut samples = handle.subscribe_samples();
    let target = Target::litmus(addr, rs.health_port(), "/health").expect("a valid target");
    let mut params = NodeParams::new(target, ProbeSettings::default());
    params.ramp_up_time = Duration::ZERO;
    handle
        .set_cluster(
            ClusterName("bench".into()),
            vec![NodeSpec {
                addr,
                params,
                initial: Initial::Fresh(Weight::clamped(1)),
            }],
        )
        .await
        .expect("setting the cluster");

    // The reconciler stand-in: every batch of weight changes becomes one pass.
    let reconciler = tokio::spawn(async move {
        while let Some(batch) = batches.recv().await {
            let mut all = vec![batch];
            while let Ok(more) = batches.try_recv() {
                all.push(more);
            }
            for change in all.iter().flat_map(|b| &b.changes) {
                set_weight(&mut desired, service, change.key.addr, change.to.get());
            }
            let scope = match scope {
                Scope::All => owned.clone(),
                // Every change here is in `service` (the only cluster's fwmark).
                Scope::Changed => BTreeSet::from([service]),
            };
            let report = reconcile::pass(&client, &scope, &desired).await;
            assert!(report.is_clean(), "pass failed: {report:?}");
        }
    });

    let poller = Client::connect().await.expect("connecting to IPVS");
    wait_for_weight(&poller, service, 100, Duration::from_secs(30)).await;
    let mut reaction = Vec::new();
    let mut pipeline = Vec::new();
    for i in 0..changes {
        let interval = ProbeSettings::default().interval;
        let (health, changed, seen) = change_health(rs, &poller, service, i, interval, || {
            while samples.try_recv().is_ok() {}
        })
        .await;
        reaction.push(seen - changed);
        let probe_start = first_probe_seeing(&mut samples, health, changed);
        pipeline.push(seen - probe_start.max(changed));
    }
    drop(handle);
    reconciler.await.expect("the reconciler loop");
    (reaction, pipeline)
}

/// Change `i` of a reaction run: after a random pause within `interval` (a random phase
/// against the probe grid, so the waits cover the whole interval) and `before`, sets the
/// health of `rs` to the next value of `CYCLE` and waits until the kernel holds it as the
/// weight of `service`. Returns the health, when it changed and when the kernel had it.
pub async fn change_health(
    rs: &testbed::dataplane::RealServer,
    poller: &Client,
    service: ServiceKey,
    i: usize,
    interval: Duration,
    before: impl FnOnce(),
) -> (u16, Instant, Instant) {
    let pause = rand::random_range(0..interval.as_millis() as u64);
    tokio::time::sleep(Duration::from_millis(pause)).await;
    before();
    let health = CYCLE[i % CYCLE.len()];
    rs.set_health(Health::litmus(u32::from(health)));
    let changed = Instant::now();
    let seen = wait_for_weight(poller, service, u32::from(health), Duration::from_secs(30)).await;
    (health, changed, seen)
}

/// Sets the weight of `addr` in `service` of the desired state.
fn set_weight(desired: &mut Desired, service: ServiceKey, addr: IpAddr, weight: u32) {
    if let Some(dest) = desired
        .services
        .get_mut(&service)
        .and_then(|s| s.dests.get_mut(&(addr, 0)))
    {
        dest.weight = weight;
    }
}

/// Polls the kernel every 5 ms until the service's only destination has `weight`; the
/// moment it was seen. Panics after `limit`.
pub async fn wait_for_weight(
    client: &Client,
    service: ServiceKey,
    weight: u32,
    limit: Duration,
) -> Instant {
    let started = Instant::now();
    loop {
        let dests = client.dests(&service).await.expect("dumping destinations");
        if dests.first().map(|d| d.dest.weight) == Some(weight) {
            return Instant::now();
        }
        assert!(
            started.elapsed() < limit,
            "the kernel weight did not become {weight} within {limit:?} (now {:?})",
            dests.first().map(|d| d.dest.weight)
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// When the first probe that returned the new health started (std time).
fn first_probe_seeing(
    samples: &mut tokio::sync::broadcast::Receiver<bigbro::health::Sample>,
    health: u16,
    changed: Instant,
) -> Instant {
    let wanted = |s: &bigbro::health::Sample| match (&s.result, health) {
        (Ok(h), _) => *h == health,
        (Err(_), 0) => true,
        _ => false,
    };
    while let Ok(sample) = samples.try_recv() {
        if wanted(&sample) {
            return sample.started.into_std();
        }
    }
    changed
}
