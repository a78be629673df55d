//! Tests of the weight driver on tokio's paused clock, with a scripted prober: every wait
//! is virtual time, so a 90 s ramp takes milliseconds and its timing is exact.

use std::time::Duration;

use tokio::sync::mpsc;
use tokio::time::{timeout_at, Instant};

use super::driver::{Driver, DriverCommand};
use super::test_util::*;
use super::*;
use crate::health::{ProbeError, Script, ScriptedProber};

fn start(
    prober: &ScriptedProber,
    data_dir: Option<std::path::PathBuf>,
) -> (DriverHandle, mpsc::UnboundedReceiver<WeightBatch>) {
    let options = DriverOptions {
        data_dir,
        jitter_seed: Some(42),
        ..DriverOptions::default()
    };
    spawn(options, prober.clone())
}

type Changes = mpsc::UnboundedReceiver<WeightBatch>;

/// A driver whose cluster `app` holds `nodes`, and the time it was set up.
async fn app(
    prober: &ScriptedProber,
    data_dir: Option<std::path::PathBuf>,
    nodes: Vec<NodeSpec>,
) -> (DriverHandle, Changes, Instant) {
    let (handle, rx) = start(prober, data_dir);
    let t0 = Instant::now();
    handle.set_cluster(cluster("app"), nodes).await.unwrap();
    (handle, rx, t0)
}

/// Every batch until `until`.
async fn batches(
    rx: &mut mpsc::UnboundedReceiver<WeightBatch>,
    until: Instant,
) -> Vec<WeightBatch> {
    let mut out = Vec::new();
    while let Ok(Some(b)) = timeout_at(until, rx.recv()).await {
        out.push(b);
    }
    out
}

/// The (time, weight) steps of one node.
fn steps(batches: &[WeightBatch], k: &NodeKey) -> Vec<(Instant, u32)> {
    let mut out = Vec::new();
    for b in batches {
        for c in b.changes.iter().filter(|c| c.key == *k) {
            out.push((b.at, c.to.get()));
        }
    }
    out
}

#[tokio::test(start_paused = true)]
async fn a_new_node_ramps_on_time() {
    let prober = ScriptedProber::new();
    let (handle, mut rx, t0) = app(&prober, None, vec![spec(1, 60, Initial::Fresh(w(1)))]).await;
    let all = batches(&mut rx, t0 + S(90)).await;
    let t_up = prober.starts_of(&target(1))[0];
    assert!(t_up < t0 + S(2), "first probe within one interval");
    let steps = steps(&all, &key("app", 1));
    // Every reported weight is big_brother's formula at the moment it was computed, and
    // each one differs from the one before (reported only on change).
    let mut last = 1;
    for (at, weight) in &steps {
        let elapsed = (*at - t_up).as_secs_f64();
        let want = ((100.0 * elapsed / 60.0) as u32).clamp(1, 100);
        assert_eq!(*weight, want, "at {elapsed:.3} s");
        assert_ne!(*weight, last);
        last = *weight;
    }
    assert_eq!(last, 100);
    // Evaluated every second: about 60 steps, the last at the end of the ramp.
    assert!(steps.len() >= 55, "{}", steps.len());
    let done = steps.last().unwrap().0 - t_up;
    assert!(done >= S(60) && done < S(61), "{done:?}");
    let snap = handle.snapshot().await.unwrap();
    assert_eq!(snap.node("app", addr(1)).unwrap().ramp_progress, 1.0);
}

#[tokio::test(start_paused = true)]
async fn a_failed_node_drops_at_once_and_ramps_again_on_recovery() {
    let prober = ScriptedProber::new();
    let (handle, mut rx, t0) = app(&prober, None, vec![spec(1, 60, Initial::Fresh(w(1)))]).await;
    batches(&mut rx, t0 + S(70)).await;
    assert_eq!(handle.weights().await.unwrap()[&key("app", 1)], w(100));

    let fail = Script::Answer {
        result: Err(ProbeError::Refused),
        after: Duration::ZERO,
    };
    prober.set(&target(1), fail);
    let failed_at = Instant::now();
    let down = batches(&mut rx, failed_at + S(3)).await;
    let steps_down = steps(&down, &key("app", 1));
    assert_eq!(steps_down.len(), 1);
    assert_eq!(steps_down[0].1, 0);
    assert!(steps_down[0].0 - failed_at <= S(2), "at the next probe");
    let snap = handle.snapshot().await.unwrap();
    let n = snap.node("app", addr(1)).unwrap();
    assert_eq!(
        (n.status, n.last_probe.as_ref().unwrap().error_code),
        (Status::Down, Some("refused"))
    );

    prober.set(&target(1), Script::healthy(100));
    let healed_at = Instant::now();
    let up = batches(&mut rx, healed_at + S(40)).await;
    let up_steps = steps(&up, &key("app", 1));
    let (t_back, first) = up_steps[0];
    assert_eq!(first, 1, "recovery starts the ramp again");
    let at_30 = up_steps
        .iter()
        .rev()
        .find(|(at, _)| *at <= t_back + S(30))
        .unwrap();
    assert!((49..=50).contains(&at_30.1), "{at_30:?}");
}

#[tokio::test(start_paused = true)]
async fn a_hung_node_does_not_hold_up_the_others() {
    let prober = ScriptedProber::new();
    prober.set(&target(1), Script::Hang);
    let (handle, mut rx, t0) = app(
        &prober,
        None,
        vec![
            spec(1, 0, Initial::Fresh(w(1))),
            spec(2, 0, Initial::Fresh(w(1))),
        ],
    )
    .await;
    let all = batches(&mut rx, t0 + S(10)).await;
    let two = steps(&all, &key("app", 2));
    assert_eq!(two.len(), 1);
    assert_eq!(
        two[0],
        (prober.starts_of(&target(2))[0], 100),
        "as soon as its probe answered"
    );
    let one = steps(&all, &key("app", 1));
    assert_eq!(
        one,
        vec![(prober.starts_of(&target(1))[0] + S(1), 0)],
        "at its timeout"
    );
    let snap = handle.snapshot().await.unwrap();
    let n = snap.node("app", addr(1)).unwrap();
    assert_eq!(n.last_probe.as_ref().unwrap().error_code, Some("timeout"));
}

#[tokio::test(start_paused = true)]
async fn steady_health_reports_one_change_in_ten_minutes() {
    let prober = ScriptedProber::new();
    prober.set_default(Script::healthy(80));
    let nodes = vec![spec(1, 0, Initial::Fresh(w(1)))];
    let (_handle, mut rx, t0) = app(&prober, None, nodes).await;
    let all = batches(&mut rx, t0 + S(600)).await;
    assert_eq!(all.len(), 1);
    assert_eq!(all[0].changes.len(), 1);
    assert_eq!(
        (all[0].changes[0].from, all[0].changes[0].to),
        (w(1), w(80))
    );
    assert!(prober.starts_of(&target(1)).len() >= 299);
}

#[tokio::test(start_paused = true)]
async fn adopted_weights_survive_a_restart_unchanged() {
    let prober = ScriptedProber::new();
    let (handle, mut rx) = start(&prober, None);
    let t0 = Instant::now();
    let nodes = vec![
        spec(1, 60, Initial::Adopted(w(100))),
        spec(2, 60, Initial::Adopted(w(100))),
    ];
    handle.set_cluster(cluster("app"), nodes).await.unwrap();
    assert!(batches(&mut rx, t0 + S(120)).await.is_empty());
    assert_eq!(prober.starts_of(&target(1)).len(), 60);
}

#[tokio::test(start_paused = true)]
async fn overrides_apply_at_once_and_expire_on_time() {
    let prober = ScriptedProber::new();
    prober.set_default(Script::healthy(80));
    let (handle, mut rx, t0) = app(&prober, None, vec![spec(1, 0, Initial::Fresh(w(80)))]).await;
    assert!(batches(&mut rx, t0 + S(5)).await.is_empty());

    let request = OverrideRequest {
        force: Force::Down,
        reason: "kernel upgrade".into(),
        ttl: Some(S(30)),
    };
    let set_at = Instant::now();
    assert_eq!(
        handle
            .set_node_override(key("app", 1), request)
            .await
            .unwrap(),
        None
    );
    let b = rx.recv().await.unwrap();
    assert_eq!(b.at, set_at, "applied by the command itself, not at a tick");
    assert_eq!(b.changes[0].to, w(0));
    assert_eq!(b.changes[0].source, Source::NodeOverride);
    let snap = handle.snapshot().await.unwrap();
    let view = snap.node("app", addr(1)).unwrap().over.clone().unwrap();
    assert_eq!(
        (view.force, view.reason.as_str()),
        (Force::Down, "kernel upgrade")
    );

    let b = rx.recv().await.unwrap();
    assert!(
        b.at >= set_at + S(30) && b.at <= set_at + S(31),
        "expired within a tick"
    );
    assert_eq!(
        (b.changes[0].to, b.changes[0].source),
        (w(80), Source::Health)
    );

    let fixed = OverrideRequest {
        force: Force::Weight(w(5)),
        reason: "canary".into(),
        ttl: None,
    };
    handle
        .set_cluster_override(cluster("app"), fixed)
        .await
        .unwrap();
    assert_eq!(rx.recv().await.unwrap().changes[0].to, w(5));
    let cleared = handle
        .clear_cluster_override(cluster("app"))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(cleared.reason, "canary");
    assert_eq!(rx.recv().await.unwrap().changes[0].to, w(80));

    let err = handle.clear_node_override(key("app", 9)).await.unwrap_err();
    assert_eq!(
        err,
        DriverError::Policy(PolicyError::UnknownNode(key("app", 9)))
    );
    let err = handle
        .clear_cluster_override(cluster("nope"))
        .await
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "cluster nope is not known to the weight policy (is it in the configuration?)"
    );
}

#[tokio::test(start_paused = true)]
async fn override_files_are_followed() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("up")).unwrap();
    std::fs::create_dir(dir.path().join("down")).unwrap();
    let prober = ScriptedProber::new();
    prober.set_default(Script::healthy(40));
    let (handle, mut rx, t0) = app(
        &prober,
        Some(dir.path().to_path_buf()),
        vec![spec(1, 0, Initial::Fresh(w(40)))],
    )
    .await;
    assert!(batches(&mut rx, t0 + S(5)).await.is_empty());

    std::fs::write(dir.path().join("down/app"), "").unwrap();
    let written = Instant::now();
    let b = rx.recv().await.unwrap();
    assert!(b.at - written <= S(1), "within one tick");
    assert_eq!(
        (b.changes[0].to, b.changes[0].source),
        (w(0), Source::DownFile)
    );

    std::fs::write(dir.path().join("up/app"), "").unwrap();
    let b = rx.recv().await.unwrap();
    assert_eq!(
        (b.changes[0].to, b.changes[0].source),
        (w(100), Source::UpFile)
    );

    std::fs::remove_file(dir.path().join("up/app")).unwrap();
    std::fs::remove_file(dir.path().join("down/app")).unwrap();
    let b = rx.recv().await.unwrap();
    assert_eq!(
        (b.changes[0].to, b.changes[0].source),
        (w(40), Source::Health)
    );
    let snap = handle.snapshot().await.unwrap();
    assert_eq!(snap.cluster("app").unwrap().files, FileOverrides::default());
}

#[tokio::test(start_paused = true)]
async fn clusters_share_probes_and_removal_stops_them() {
    let prober = ScriptedProber::new();
    let (handle, mut rx) = start(&prober, None);
    let t0 = Instant::now();
    handle
        .set_cluster(cluster("a"), vec![spec(1, 0, Initial::Fresh(w(1)))])
        .await
        .unwrap();
    handle
        .set_cluster(cluster("b"), vec![spec(1, 0, Initial::Fresh(w(1)))])
        .await
        .unwrap();
    let all = batches(&mut rx, t0 + S(20)).await;
    assert_eq!(
        prober.starts_of(&target(1)).len(),
        10,
        "one probe per interval for both"
    );
    assert_eq!(prober.max_in_flight_per_target(), 1);
    let keys: Vec<_> = all
        .iter()
        .flat_map(|b| b.changes.iter().map(|c| c.key.clone()))
        .collect();
    assert_eq!(
        keys,
        vec![key("a", 1), key("b", 1)],
        "both fed by the first sample"
    );

    assert_eq!(
        handle.remove_cluster(cluster("a")).await.unwrap(),
        vec![key("a", 1)]
    );
    batches(&mut rx, Instant::now() + S(10)).await;
    assert_eq!(prober.starts_of(&target(1)).len(), 15, "still probed for b");
    handle.remove_cluster(cluster("b")).await.unwrap();
    let probes = prober.starts_of(&target(1)).len();
    batches(&mut rx, Instant::now() + S(10)).await;
    assert_eq!(
        prober.starts_of(&target(1)).len(),
        probes,
        "no user left: not probed"
    );
    assert!(handle.snapshot().await.unwrap().clusters.is_empty());
}

#[tokio::test(start_paused = true)]
async fn samples_can_be_watched_and_the_driver_stops_with_its_handles() {
    let prober = ScriptedProber::new();
    let (handle, mut rx) = start(&prober, None);
    let mut samples = handle.subscribe_samples();
    handle
        .set_cluster(cluster("app"), vec![spec(1, 0, Initial::Fresh(w(1)))])
        .await
        .unwrap();
    let s = samples.recv().await.unwrap();
    assert_eq!((s.target, s.result), (target(1), Ok(100)));
    let err = handle
        .set_cluster(
            cluster("app"),
            vec![
                spec(2, 0, Initial::Fresh(w(1))),
                spec(2, 0, Initial::Fresh(w(1))),
            ],
        )
        .await
        .unwrap_err();
    assert!(matches!(
        err,
        DriverError::Policy(PolicyError::DuplicateNode { .. })
    ));
    drop(handle);
    // The driver ends, and with it the change stream.
    while rx.recv().await.is_some() {}
}

/// Node `i` of a large fleet (10.x.y.z), probed every 2 s.
fn fleet_spec(i: u32) -> NodeSpec {
    let addr = std::net::IpAddr::V4(std::net::Ipv4Addr::from(0x0a00_0000 + i));
    NodeSpec {
        addr,
        params: NodeParams::new(
            crate::health::Target::litmus(addr, 9292, "/status").unwrap(),
            crate::health::ProbeSettings::default(),
        ),
        initial: Initial::Fresh(w(1)),
    }
}

/// Applies one `set_cluster` to a driver run by hand, as its task would.
fn set(d: &mut Driver<ScriptedProber>, name: &str, nodes: Vec<NodeSpec>) {
    let (reply, mut rx) = tokio::sync::oneshot::channel();
    d.command(DriverCommand::SetCluster(cluster(name), nodes, reply));
    rx.try_recv().unwrap().unwrap();
}

#[tokio::test(start_paused = true)]
async fn registering_clusters_one_by_one_costs_only_what_changed() {
    let (samples, _samples_rx) = mpsc::channel(16);
    let (changes, _changes_rx) = mpsc::unbounded_channel();
    let mut d = Driver {
        policy: Policy::new(),
        scheduler: crate::health::ProbeScheduler::with_seed(ScriptedProber::new(), samples, 7),
        changes,
        samples_out: tokio::sync::broadcast::channel(16).0,
    };
    // The daemon's start: 300 clusters of 10 nodes, one set_cluster each. Re-syncing the
    // whole plan each time would look at 10 + 20 + ... + 3,000 targets (about 450,000).
    for c in 0..300u32 {
        set(
            &mut d,
            &format!("c{c}"),
            (c * 10..c * 10 + 10).map(fleet_spec).collect(),
        );
    }
    assert_eq!(d.scheduler.len(), 3000);
    assert_eq!(d.scheduler.examined(), 3000, "one look per new target");

    // A reload changing one cluster: node 0 retimed, node 9 gone, node 3000 new.
    let mut nodes: Vec<NodeSpec> = (0..9).map(fleet_spec).collect();
    nodes[0].params.probe.interval = S(5);
    nodes.push(fleet_spec(3000));
    set(&mut d, "c0", nodes);
    assert_eq!(
        d.scheduler.examined(),
        3000 + 11,
        "the cluster's 11 targets"
    );
    let (reply, mut rx) = tokio::sync::oneshot::channel();
    d.command(DriverCommand::RemoveCluster(cluster("c1"), reply));
    assert_eq!(rx.try_recv().unwrap().len(), 10);
    assert_eq!(d.scheduler.examined(), 3000 + 11 + 10);

    // And the probes are exactly what a full sync of the plan would make them.
    let mut wanted: Vec<_> = d
        .policy
        .probe_plan()
        .into_iter()
        .map(|(t, s)| (t, s.sanitized()))
        .collect();
    wanted.sort_by(|a, b| a.0.cmp(&b.0));
    assert_eq!(d.scheduler.targets(), wanted);
    assert_eq!(d.scheduler.len(), 3000 - 10);
    let retimed = fleet_spec(0).params.target;
    assert!(d.scheduler.targets().contains(&(
        retimed,
        crate::health::ProbeSettings {
            interval: S(5),
            ..Default::default()
        }
    )));
}

/// Answers at once and notes the thread each probe ran on.
#[derive(Clone, Default)]
struct Threads(std::sync::Arc<std::sync::Mutex<Vec<Option<String>>>>);

impl crate::health::Prober for Threads {
    fn probe(
        &self,
        _target: &crate::health::Target,
        _timeout: Duration,
        _deadline: Instant,
    ) -> impl std::future::Future<Output = crate::health::ProbeResult> + Send {
        let name = std::thread::current().name().map(str::to_string);
        self.0.lock().unwrap().push(name);
        std::future::ready(Ok(100))
    }
}

#[tokio::test]
async fn the_driver_and_its_probes_can_run_on_a_probe_thread() {
    let probes = crate::health::ProbeThread::start("driver-probes").unwrap();
    let prober = Threads::default();
    let options = DriverOptions {
        probe_runtime: Some(probes.handle()),
        jitter_seed: Some(3),
        ..DriverOptions::default()
    };
    let (handle, mut changes) = spawn(options, prober.clone());
    let mut nodes = vec![fleet_spec(1), fleet_spec(2)];
    for n in &mut nodes {
        n.params.probe.interval = Duration::from_millis(10);
        n.params.ramp_up_time = Duration::ZERO;
    }
    handle.set_cluster(cluster("app"), nodes).await.unwrap();
    // Both nodes go from 1 to 100 (no ramp) once their first probes are judged.
    let mut raised = 0;
    while raised < 2 {
        let batch = timeout_at(Instant::now() + S(30), changes.recv())
            .await
            .expect("weights from the driver on the probe thread")
            .unwrap();
        raised += batch.changes.iter().filter(|c| c.to == w(100)).count();
    }
    let names = prober.0.lock().unwrap().clone();
    assert!(names.len() >= 2);
    assert!(
        names.iter().all(|n| n.as_deref() == Some("driver-probes")),
        "{names:?}"
    );
    drop(handle);
    // Stopping the thread blocks until it ends: not on this runtime's thread.
    tokio::task::spawn_blocking(move || drop(probes))
        .await
        .unwrap();
}
