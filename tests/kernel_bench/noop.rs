//! The no-op reconcile: with 1,000 services × 10 destinations in the kernel exactly as
//! desired, `reconcile::pass` reads the state (one service dump and one destination dump
//! per owned service: IPVS has no "all destinations" dump) and writes nothing. Also timed,
//! as yardsticks: one service dump alone, a pass that has one weight to fix (the reaction
//! path), the same fix by a pass limited to the one changed service (after a dump of every
//! service, and read alone with GET_SERVICE, as the daemon's weight passes do), 1,001 bare netlink
//! round trips (GET_INFO: the floor under 1,001 dumps), and `ipvsadm -S -n` (big_brother's
//! read-back of the same table).

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use bigbro::ipvs::{Client, Dest, ServiceKey};
use bigbro::reconcile::{self, Desired, Reading};
use serde_json::json;

use crate::measure::{apply_all, assert_state, emit, secs, setting, timed_command};
use crate::testbed;
use crate::workload::{self, DESTS, SERVICES};

pub fn run() {
    let passes = setting("BIGBRO_BENCH_PASSES", 20);
    let state = workload::state(SERVICES, DESTS, 100);
    testbed::block_on(async {
        let client = Client::connect().await.expect("connecting to IPVS");
        apply_all(&client, &workload::add_ops(&state)).await;
        assert_state(&client, &state, "setup").await;
        let owned = workload::owned(&state);
        let desired = workload::desired(&state);

        let mut noop = Vec::new();
        for _ in 0..passes {
            let started = Instant::now();
            let report = reconcile::pass(&client, &owned, &desired).await;
            noop.push(started.elapsed());
            assert!(report.is_clean(), "pass failed: {report:?}");
            assert!(
                report.applied.is_empty(),
                "a no-op pass wrote {} ops",
                report.applied.len()
            );
        }

        let mut dump = Vec::new();
        for _ in 0..passes {
            let started = Instant::now();
            let services = client.services().await.expect("dumping services");
            dump.push(started.elapsed());
            assert_eq!(services.len(), SERVICES as usize);
        }

        // One destination's weight differs each time: the pass reads and fixes exactly it.
        let mut one_change = Vec::new();
        let mut desired_now = desired.clone();
        for i in 0..passes {
            let (svc, _) = &state[i * 37 % state.len()];
            set_first_weight(&mut desired_now, svc.key, 1 + i as u32);
            let started = Instant::now();
            let report = reconcile::pass(&client, &owned, &desired_now).await;
            one_change.push(started.elapsed());
            assert!(report.is_clean(), "pass failed: {report:?}");
            assert_eq!(report.applied.len(), 1, "{:?}", report.applied);
        }

        // The same fix with the pass limited to the one service that changed.
        let mut one_service = Vec::new();
        for i in 0..passes {
            let (svc, _) = &state[i * 41 % state.len()];
            set_first_weight(&mut desired_now, svc.key, 1000 + i as u32);
            let scope = BTreeSet::from([svc.key]);
            let started = Instant::now();
            let report = reconcile::pass(&client, &scope, &desired_now).await;
            one_service.push(started.elapsed());
            assert!(report.is_clean(), "pass failed: {report:?}");
            assert_eq!(report.applied.len(), 1, "{:?}", report.applied);
        }

        // The same, the service read alone (GET_SERVICE, its destinations; written; read
        // again): the daemon's weight-triggered passes.
        let mut one_service_each = Vec::new();
        for i in 0..passes {
            let (svc, _) = &state[i * 43 % state.len()];
            set_first_weight(&mut desired_now, svc.key, 2000 + i as u32);
            let scope = BTreeSet::from([svc.key]);
            let started = Instant::now();
            let report = reconcile::pass_with(&client, &scope, &desired_now, Reading::Each).await;
            one_service_each.push(started.elapsed());
            assert!(report.is_clean(), "pass failed: {report:?}");
            assert_eq!(report.applied.len(), 1, "{:?}", report.applied);
        }

        // The floor: 1,001 netlink round trips that carry almost nothing (GET_INFO).
        let mut round_trips = Vec::new();
        for _ in 0..3 {
            let started = Instant::now();
            for _ in 0..=SERVICES {
                client.info().await.expect("GET_INFO");
            }
            round_trips.push(started.elapsed());
        }

        let runs = setting("BIGBRO_BENCH_RUNS", 3);
        let save_args = ["-S".to_string(), "-n".to_string()];
        let save: Vec<Duration> = (0..runs)
            .map(|_| timed_command("ipvsadm", &save_args, None))
            .collect();

        let list = |v: &[Duration]| v.iter().map(|d| secs(*d)).collect::<Vec<f64>>();
        let services = SERVICES as usize;
        let dests = (SERVICES * DESTS) as usize;
        for (method, runs) in [
            ("bigbro_noop_pass", &noop),
            ("bigbro_service_dump", &dump),
            ("bigbro_pass_one_change", &one_change),
            ("bigbro_pass_one_service", &one_service),
            ("bigbro_pass_one_service_each", &one_service_each),
            ("bigbro_1001_get_info", &round_trips),
            ("ipvsadm_save", &save),
        ] {
            emit(json!({
                "bench": "noop_reconcile",
                "method": method,
                "services": services,
                "dests": dests,
                "seconds": list(runs),
            }));
        }
    });
}

/// Sets the weight of the first destination of `service` in `desired`.
fn set_first_weight(desired: &mut Desired, service: ServiceKey, weight: u32) {
    let slot = desired
        .services
        .get_mut(&service)
        .and_then(|s| s.dests.values_mut().next())
        .expect("a destination");
    *slot = Dest {
        weight,
        ..slot.clone()
    };
}
