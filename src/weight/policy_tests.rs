//! Tests of the pure weight policy: every time is an explicit `Instant`, no runtime needed.

use std::time::Duration;

use tokio::time::Instant;

use super::test_util::*;
use super::*;
use crate::health::{ProbeError, ProbeResult, ProbeSettings, Sample};

fn fresh(n: u8, ramp_s: u64) -> NodeSpec {
    spec(n, ramp_s, Initial::Fresh(w(1)))
}

fn sample(n: u8, at: Instant, result: ProbeResult) -> Sample {
    Sample {
        target: target(n),
        result,
        started: at,
        latency: Duration::ZERO,
    }
}

fn change(c: &str, n: u8, from: u64, to: u64, source: Source) -> WeightChange {
    WeightChange {
        key: key(c, n),
        from: w(from),
        to: w(to),
        source,
    }
}

/// A policy with cluster `app` of the given nodes, set at `t0`.
fn app(nodes: Vec<NodeSpec>, t0: Instant) -> Policy {
    let mut p = Policy::new();
    p.set_cluster(&cluster("app"), nodes, t0).unwrap();
    assert_eq!(
        p.evaluate(t0),
        Evaluation::default(),
        "initial weights are not changes"
    );
    p
}

#[test]
fn changes_are_reported_only_when_a_weight_changes() {
    let t0 = Instant::now();
    let mut p = app(vec![fresh(1, 0)], t0);
    p.observe(&sample(1, t0, Ok(80)));
    assert_eq!(
        p.evaluate(t0).changes,
        vec![change("app", 1, 1, 80, Source::Health)]
    );
    p.observe(&sample(1, t0 + S(2), Ok(80)));
    assert!(p.evaluate(t0 + S(2)).changes.is_empty());
    assert!(p.evaluate_all(t0 + S(3)).changes.is_empty());
    p.observe(&sample(1, t0 + S(4), Ok(60)));
    assert_eq!(
        p.evaluate(t0 + S(4)).changes,
        vec![change("app", 1, 80, 60, Source::Health)]
    );
    assert_eq!(p.weight(&key("app", 1)), Some(w(60)));
}

#[test]
fn the_ramp_table_through_the_policy() {
    let t0 = Instant::now();
    let mut p = app(vec![fresh(1, 60)], t0);
    p.observe(&sample(1, t0, Ok(100)));
    assert!(
        p.evaluate(t0).changes.is_empty(),
        "1 → max(1, 0) = 1: no change"
    );
    let mut seen = vec![1];
    for s in 1..=130 {
        for c in p.evaluate_all(t0 + S(s)).changes {
            assert_eq!(c.from.get(), *seen.last().unwrap());
            seen.push(c.to.get());
        }
        match s {
            30 => assert_eq!(p.weight(&key("app", 1)), Some(w(50))),
            45 => assert_eq!(p.weight(&key("app", 1)), Some(w(75))),
            120 => assert_eq!(p.weight(&key("app", 1)), Some(w(100))),
            _ => {}
        }
    }
    // One change per whole second of the ramp (100/60 per second, truncated), then none.
    assert_eq!(seen.len(), 60);
    assert!(seen.windows(2).all(|p| p[0] < p[1]));
    assert_eq!(*seen.last().unwrap(), 100);
}

#[test]
fn recovery_restarts_the_ramp() {
    let t0 = Instant::now();
    let mut p = app(vec![fresh(1, 60)], t0);
    p.observe(&sample(1, t0, Ok(100)));
    p.evaluate_all(t0 + S(100));
    assert_eq!(p.weight(&key("app", 1)), Some(w(100)));
    p.observe(&sample(1, t0 + S(100), Err(ProbeError::Refused)));
    assert_eq!(
        p.evaluate(t0 + S(100)).changes,
        vec![change("app", 1, 100, 0, Source::Down)]
    );
    p.observe(&sample(1, t0 + S(102), Ok(100)));
    assert_eq!(
        p.evaluate(t0 + S(102)).changes,
        vec![change("app", 1, 0, 1, Source::Ramp)]
    );
    p.evaluate_all(t0 + S(132));
    assert_eq!(p.weight(&key("app", 1)), Some(w(50)));
    p.evaluate_all(t0 + S(162));
    assert_eq!(p.weight(&key("app", 1)), Some(w(100)));
}

#[test]
fn rise_and_fall_hold_the_weight() {
    let t0 = Instant::now();
    let mut s = fresh(1, 0);
    s.params.rise = 2;
    s.params.fall = 3;
    let mut p = app(vec![s], t0);
    p.observe(&sample(1, t0, Ok(70)));
    assert!(
        p.evaluate(t0).changes.is_empty(),
        "one good probe of two: still initial"
    );
    p.observe(&sample(1, t0 + S(2), Ok(70)));
    assert_eq!(
        p.evaluate(t0 + S(2)).changes,
        vec![change("app", 1, 1, 70, Source::Health)]
    );
    for i in 1..=2 {
        p.observe(&sample(1, t0 + S(2 + 2 * i), Err(ProbeError::Reset)));
        assert!(
            p.evaluate(t0 + S(2 + 2 * i)).changes.is_empty(),
            "failure {i} of 3: held"
        );
    }
    p.observe(&sample(1, t0 + S(8), Err(ProbeError::Reset)));
    assert_eq!(
        p.evaluate(t0 + S(8)).changes,
        vec![change("app", 1, 70, 0, Source::Down)]
    );
}

#[test]
fn shared_targets_feed_every_user() {
    let t0 = Instant::now();
    let mut p = Policy::new();
    p.set_cluster(&cluster("a"), vec![fresh(1, 0)], t0).unwrap();
    p.set_cluster(&cluster("b"), vec![fresh(1, 0), fresh(2, 0)], t0)
        .unwrap();
    let plan = p.probe_plan();
    assert_eq!(plan.iter().filter(|(t, _)| *t == target(1)).count(), 2);
    p.observe(&sample(1, t0, Ok(33)));
    let changes = p.evaluate(t0).changes;
    assert_eq!(
        changes,
        vec![
            change("a", 1, 1, 33, Source::Health),
            change("b", 1, 1, 33, Source::Health)
        ]
    );
    assert_eq!(p.remove_cluster(&cluster("a")), vec![key("a", 1)]);
    p.observe(&sample(1, t0 + S(2), Ok(44)));
    assert_eq!(
        p.evaluate(t0 + S(2)).changes,
        vec![change("b", 1, 33, 44, Source::Health)]
    );
    assert_eq!(p.weight(&key("a", 1)), None);
}

#[test]
fn reconfiguring_keeps_state_of_nodes_that_stay() {
    let t0 = Instant::now();
    let mut p = app(vec![fresh(1, 60), fresh(2, 60)], t0);
    p.observe(&sample(1, t0, Ok(100)));
    p.evaluate_all(t0 + S(30));
    assert_eq!(p.weight(&key("app", 1)), Some(w(50)));

    // Reload: node 1 stays with a cap, node 2 goes, node 3 arrives.
    let mut one = fresh(1, 60);
    one.params.max_weight = Some(w(60));
    let update = p
        .set_cluster(
            &cluster("app"),
            vec![one, spec(3, 60, Initial::Fresh(w(0)))],
            t0 + S(30),
        )
        .unwrap();
    assert_eq!(update.kept, vec![key("app", 1)]);
    assert_eq!(update.removed, vec![key("app", 2)]);
    assert_eq!(update.added, vec![key("app", 3)]);
    assert!(
        p.evaluate(t0 + S(30)).changes.is_empty(),
        "ramp continues, nothing reset"
    );
    p.evaluate_all(t0 + S(45));
    assert_eq!(p.weight(&key("app", 1)), Some(w(60)), "new cap applies");
    assert_eq!(p.weight(&key("app", 2)), None);
    assert_eq!(p.weight(&key("app", 3)), Some(w(0)));
    p.observe(&sample(2, t0 + S(46), Ok(100)));
    assert!(
        p.evaluate(t0 + S(46)).changes.is_empty(),
        "samples of a dropped target are ignored"
    );
}

#[test]
fn a_duplicate_address_changes_nothing() {
    let t0 = Instant::now();
    let mut p = app(vec![fresh(1, 0)], t0);
    let err = p
        .set_cluster(&cluster("app"), vec![fresh(2, 0), fresh(2, 0)], t0)
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "cluster app lists node 10.0.0.2 twice; each address may appear once per cluster"
    );
    assert_eq!(
        p.weights().into_keys().collect::<Vec<_>>(),
        vec![key("app", 1)]
    );
}

#[test]
fn node_overrides_force_up_down_and_weight_then_clear() {
    let t0 = Instant::now();
    let mut p = app(vec![fresh(1, 0), fresh(2, 0)], t0);
    p.observe(&sample(1, t0, Ok(40)));
    p.observe(&sample(2, t0, Ok(40)));
    p.evaluate(t0);
    let k = key("app", 1);
    for (force, want) in [(Force::Down, 0), (Force::Weight(w(7)), 7), (Force::Up, 100)] {
        p.set_node_override(&k, Override::new(force, "maintenance", t0, None))
            .unwrap();
        let changes = p.evaluate(t0 + S(1)).changes;
        let from = if want == 0 {
            40
        } else if want == 7 {
            0
        } else {
            7
        };
        assert_eq!(
            changes,
            vec![change("app", 1, from, want, Source::NodeOverride)]
        );
    }
    // Health no longer moves it.
    p.observe(&sample(1, t0 + S(2), Err(ProbeError::Refused)));
    assert!(p.evaluate(t0 + S(2)).changes.is_empty());
    let cleared = p.clear_node_override(&k).unwrap().unwrap();
    assert_eq!(
        (cleared.force, cleared.reason.as_str()),
        (Force::Up, "maintenance")
    );
    assert_eq!(
        p.evaluate(t0 + S(3)).changes,
        vec![change("app", 1, 100, 0, Source::Down)]
    );
    assert_eq!(p.clear_node_override(&k).unwrap(), None);
    let unknown = key("app", 9);
    let err = p.set_node_override(&unknown, Override::new(Force::Down, "x", t0, None));
    assert_eq!(
        err.unwrap_err().to_string(),
        "node 10.0.0.9 of cluster app is not configured"
    );
}

#[test]
fn overrides_expire() {
    let t0 = Instant::now();
    let mut p = app(vec![fresh(1, 0)], t0);
    p.observe(&sample(1, t0, Ok(40)));
    p.evaluate(t0);
    let k = key("app", 1);
    p.set_node_override(&k, Override::new(Force::Down, "deploy", t0, Some(S(60))))
        .unwrap();
    assert_eq!(
        p.evaluate(t0).changes,
        vec![change("app", 1, 40, 0, Source::NodeOverride)]
    );
    assert!(p.evaluate_all(t0 + S(59)).changes.is_empty());
    let e = p.evaluate_all(t0 + S(60));
    assert_eq!(e.changes, vec![change("app", 1, 0, 40, Source::Health)]);
    assert_eq!(e.expired.len(), 1);
    assert_eq!(e.expired[0].0, Scope::Node(k.clone()));
    assert_eq!(e.expired[0].1.reason, "deploy");

    p.set_cluster_override(
        &cluster("app"),
        Override::new(Force::Weight(w(5)), "canary", t0 + S(60), Some(S(10))),
    )
    .unwrap();
    assert_eq!(
        p.evaluate(t0 + S(60)).changes,
        vec![change("app", 1, 40, 5, Source::ClusterOverride)]
    );
    // Expiry is noticed by `evaluate` too, not only by `evaluate_all`.
    let e = p.evaluate(t0 + S(70));
    assert_eq!(e.changes, vec![change("app", 1, 5, 40, Source::Health)]);
    assert_eq!(e.expired[0].0, Scope::Cluster(cluster("app")));
}

#[test]
fn cluster_overrides_apply_to_every_node_and_yield_to_node_overrides() {
    let t0 = Instant::now();
    let mut p = app(vec![fresh(1, 0), fresh(2, 0)], t0);
    p.set_cluster(&cluster("other"), vec![fresh(3, 0)], t0)
        .unwrap();
    p.set_cluster_override(
        &cluster("app"),
        Override::new(Force::Down, "incident", t0, None),
    )
    .unwrap();
    p.set_node_override(
        &key("app", 2),
        Override::new(Force::Weight(w(3)), "probe it", t0, None),
    )
    .unwrap();
    let changes = p.evaluate(t0).changes;
    assert_eq!(
        changes,
        vec![
            change("app", 1, 1, 0, Source::ClusterOverride),
            change("app", 2, 1, 3, Source::NodeOverride)
        ]
    );
    assert_eq!(
        p.weight(&key("other", 3)),
        Some(w(1)),
        "other clusters untouched"
    );
    let err = p.set_cluster_override(&cluster("nope"), Override::new(Force::Up, "x", t0, None));
    assert_eq!(
        err.unwrap_err().to_string(),
        "cluster nope is not known to the weight policy (is it in the configuration?)"
    );
    assert!(p.clear_cluster_override(&cluster("app")).unwrap().is_some());
    assert_eq!(
        p.evaluate(t0).changes,
        vec![change("app", 1, 0, 1, Source::Initial)]
    );
}

#[test]
fn override_files_up_wins_over_down() {
    let t0 = Instant::now();
    let mut p = app(vec![fresh(1, 60), fresh(2, 60)], t0);
    p.set_cluster(&cluster("other"), vec![fresh(3, 0)], t0)
        .unwrap();
    p.observe(&sample(1, t0, Ok(50)));
    p.observe(&sample(2, t0, Err(ProbeError::Refused)));
    let mut files = OverrideFiles::default();
    files.down.insert("app".into());
    files.down.insert("unconfigured".into());
    let changed = p.set_override_files(&files);
    assert_eq!(
        changed,
        vec![(
            cluster("app"),
            FileOverrides {
                up: false,
                down: true
            }
        )]
    );
    let changes = p.evaluate(t0 + S(1)).changes;
    assert_eq!(
        changes,
        vec![
            change("app", 1, 1, 0, Source::DownFile),
            change("app", 2, 1, 0, Source::DownFile)
        ]
    );
    files.up.insert("app".into());
    p.set_override_files(&files);
    // 100 for every node, bypassing health, ramp and max_weight.
    let changes = p.evaluate(t0 + S(2)).changes;
    assert_eq!(
        changes,
        vec![
            change("app", 1, 0, 100, Source::UpFile),
            change("app", 2, 0, 100, Source::UpFile)
        ]
    );
    assert!(
        p.set_override_files(&files).is_empty(),
        "no change, nothing marked"
    );
    p.set_override_files(&OverrideFiles::default());
    let changes = p.evaluate(t0 + S(30)).changes;
    assert_eq!(
        changes,
        vec![
            change("app", 1, 100, 25, Source::Ramp),
            change("app", 2, 100, 0, Source::Down)
        ]
    );
    assert_eq!(p.weight(&key("other", 3)), Some(w(1)));
}

#[test]
fn a_restart_that_adopts_kernel_weights_changes_nothing() {
    // Before the restart: node 1 at full weight, node 2 half way through its ramp, node 3
    // down.
    let t0 = Instant::now() + S(10_000);
    let nodes = vec![
        spec(1, 60, Initial::Adopted(w(100))),
        spec(2, 60, Initial::Adopted(w(50))),
        spec(3, 60, Initial::Adopted(w(0))),
    ];
    let mut p = app(nodes, t0);
    p.observe(&sample(1, t0 + S(1), Ok(100)));
    p.observe(&sample(2, t0 + S(1), Ok(100)));
    p.observe(&sample(3, t0 + S(1), Err(ProbeError::Refused)));
    assert!(
        p.evaluate(t0 + S(1)).changes.is_empty(),
        "the first probes confirm the kernel"
    );
    // Node 2 carries on from 50 (30 s of a 60 s ramp behind it).
    p.evaluate_all(t0 + S(16));
    assert_eq!(p.weight(&key("app", 2)), Some(w(75)));
    p.evaluate_all(t0 + S(31));
    assert_eq!(p.weight(&key("app", 2)), Some(w(100)));
    assert_eq!(p.weight(&key("app", 1)), Some(w(100)));
    assert_eq!(p.weight(&key("app", 3)), Some(w(0)));
}

#[test]
fn snapshot_shows_state_for_the_api() {
    let t0 = Instant::now();
    let mut s = fresh(1, 60);
    s.params.fall = 2;
    let mut p = app(vec![s, fresh(2, 60)], t0);
    p.observe(&sample(1, t0, Ok(100)));
    p.observe(&Sample {
        latency: Duration::from_millis(1500),
        ..sample(1, t0 + S(2), Err(ProbeError::Refused))
    });
    p.observe(&sample(2, t0, Ok(0)));
    p.set_node_override(
        &key("app", 2),
        Override::new(Force::Down, "disk", t0, Some(S(100))),
    )
    .unwrap();
    p.evaluate_all(t0 + S(15));
    let snap = p.snapshot(t0 + S(15));
    let one = snap.node("app", addr(1)).unwrap();
    assert_eq!(one.status, Status::Up);
    assert_eq!(
        (one.ok_streak, one.fail_streak, one.rise, one.fall),
        (0, 1, 1, 2)
    );
    assert_eq!(one.health, Some(100));
    assert_eq!((one.weight, one.source), (w(25), Source::Ramp));
    assert_eq!(one.ramp_progress, 0.25);
    let last = one.last_probe.as_ref().unwrap();
    assert!(!last.ok);
    assert_eq!(last.error_code, Some("refused"));
    assert_eq!(last.latency_seconds, 1.5);
    assert!(
        (last.seconds_ago - 11.5).abs() < 1e-9,
        "{}",
        last.seconds_ago
    );
    let two = snap.node("app", addr(2)).unwrap();
    assert_eq!(
        (two.status, two.weight, two.source),
        (Status::Down, w(0), Source::NodeOverride)
    );
    assert_eq!(two.last_probe.as_ref().unwrap().health, Some(0));
    let over = two.over.as_ref().unwrap();
    assert_eq!((over.force, over.reason.as_str()), (Force::Down, "disk"));
    assert_eq!(over.expires_in_seconds, Some(85.0));
    assert_eq!(snap.cluster("app").unwrap().combined_weight(), 25);

    let json = serde_json::to_value(&snap).unwrap();
    let node = &json["clusters"][0]["nodes"][1];
    assert_eq!(node["status"], "down");
    assert_eq!(node["source"], "node_override");
    assert_eq!(node["override"]["force"], "down");
    assert_eq!(node["override"]["reason"], "disk");
    assert_eq!(node["target"], "litmus http://10.0.0.2:9292/status");
    assert_eq!(
        json["clusters"][0]["nodes"][0]["last_probe"]["error"],
        "connection refused: nothing listens on the health check port"
    );
    assert_eq!(json["clusters"][0]["files"]["up"], false);
}

#[test]
fn probe_changes_name_only_the_touched_targets_with_merged_settings() {
    let t0 = Instant::now();
    let mut p = Policy::new();
    let every = |interval: u64, timeout: u64| ProbeSettings {
        interval: S(interval),
        timeout: S(timeout),
    };
    let with = |n: u8, probe: ProbeSettings| {
        let mut s = fresh(n, 0);
        s.params.probe = probe;
        s
    };
    p.set_cluster(
        &cluster("a"),
        vec![with(1, every(2, 1)), with(2, every(2, 1))],
        t0,
    )
    .unwrap();
    assert_eq!(
        p.take_probe_changes(),
        vec![
            (target(1), Some(every(2, 1))),
            (target(2), Some(every(2, 1)))
        ]
    );
    assert_eq!(p.take_probe_changes(), vec![], "drained");
    // b shares target 1, asking for a shorter interval and a longer timeout.
    p.set_cluster(&cluster("b"), vec![with(1, every(1, 3))], t0)
        .unwrap();
    assert_eq!(p.take_probe_changes(), vec![(target(1), Some(every(1, 1)))]);
    p.remove_cluster(&cluster("a"));
    assert_eq!(
        p.take_probe_changes(),
        vec![(target(1), Some(every(1, 3))), (target(2), None)]
    );
    // A rejected update touches nothing.
    assert!(p
        .set_cluster(&cluster("b"), vec![fresh(1, 0), fresh(1, 0)], t0)
        .is_err());
    assert_eq!(p.take_probe_changes(), vec![]);
    p.remove_cluster(&cluster("b"));
    assert_eq!(p.take_probe_changes(), vec![(target(1), None)]);
}

#[test]
fn evaluate_all_walks_every_cluster_with_its_own_overrides() {
    let t0 = Instant::now();
    let mut p = Policy::new();
    for c in ["a", "b", "c"] {
        p.set_cluster(&cluster(c), vec![fresh(1, 60), fresh(2, 60)], t0)
            .unwrap();
    }
    for n in [1, 2] {
        p.observe(&sample(n, t0, Ok(100)));
    }
    p.evaluate(t0);
    let down = |r: &str| Override::new(Force::Down, r, t0, None);
    p.set_cluster_override(&cluster("b"), down("maintenance"))
        .unwrap();
    p.set_node_override(&key("c", 2), down("bad disk")).unwrap();
    p.evaluate(t0);
    // 30 s into the ramp: 50 for every node but those held down.
    assert_eq!(
        p.evaluate_all(t0 + S(30)).changes,
        vec![
            change("a", 1, 1, 50, Source::Ramp),
            change("a", 2, 1, 50, Source::Ramp),
            change("c", 1, 1, 50, Source::Ramp),
        ]
    );
    assert_eq!(p.weight(&key("b", 1)), Some(w(0)));
    assert_eq!(p.weight(&key("c", 2)), Some(w(0)));
    assert!(p.evaluate_all(t0 + S(30)).changes.is_empty());
}

#[test]
fn a_clusters_snapshot_lists_its_nodes_in_address_order() {
    // The daemon's status finds a node's view by binary search on this order.
    let t0 = Instant::now();
    let p = app(vec![fresh(3, 0), fresh(1, 0), fresh(2, 0)], t0);
    let snap = p.snapshot(t0);
    let addrs: Vec<_> = snap.clusters[0].nodes.iter().map(|n| n.addr).collect();
    let mut sorted = addrs.clone();
    sorted.sort();
    assert_eq!(addrs.len(), 3);
    assert_eq!(addrs, sorted);
}
