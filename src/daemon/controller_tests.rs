//! The controller on fakes (in-memory IPVS table and mark rules, scripted probes) and
//! tokio's paused clock: lifecycle, adoption, reload, anti-entropy, coalescing and the
//! big_brother parity rules, each asserted on the table the fake kernel ends up with.
//! Every wait is for an event (a published view), bounded in virtual time.

use std::collections::BTreeSet;
use std::net::IpAddr;
use std::path::PathBuf;
use std::time::Duration;

use nix::libc;
use tokio::time::{timeout_at, Instant};

use super::testing::{
    spawn_fake, spawn_fake_on, spawn_fake_opts, spawn_fake_with, test_options, Fake,
};
use super::*;
use crate::health::{ProbeError, Script, Target};
use crate::ipvs::{Dest, Op, Service, ServiceKey};
use crate::reconcile::FakeKernel;
use crate::types::Fwmark;

struct Setup {
    fake: Fake,
    path: PathBuf,
    _dir: tempfile::TempDir,
}

fn write(yaml: &str) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bigbro.yml");
    std::fs::write(&path, yaml).unwrap();
    (dir, path)
}

fn setup(yaml: &str) -> Setup {
    setup_with(yaml, FakeKernel::new())
}

fn setup_with(yaml: &str, kernel: FakeKernel) -> Setup {
    let (dir, path) = write(yaml);
    let fake = spawn_fake_with(&path, kernel).unwrap_or_else(|e| panic!("{e}"));
    Setup {
        fake,
        path,
        _dir: dir,
    }
}

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn key(mark: u32) -> ServiceKey {
    ServiceKey::fwmark_v4(Fwmark::new(mark).unwrap())
}

fn target(addr: &str) -> Target {
    Target::litmus(ip(addr), 9292, "/s").unwrap()
}

fn down() -> Script {
    Script::Answer {
        result: Err(ProbeError::Refused),
        after: Duration::ZERO,
    }
}

/// Waits (in virtual time) until `cluster`'s status satisfies `ok`.
async fn until(
    h: &Handle,
    cluster: &str,
    what: &str,
    ok: impl Fn(&ClusterStatus) -> bool,
) -> ClusterStatus {
    let mut h = h.clone();
    let deadline = Instant::now() + Duration::from_secs(600);
    loop {
        let s = h.status(cluster).await.expect("configured");
        if ok(&s) {
            return s;
        }
        match timeout_at(deadline, h.changed()).await {
            Ok(Ok(())) => {}
            _ => panic!("timed out waiting for {what}; last status: {s:#?}"),
        }
    }
}

/// Waits (in virtual time) until `ok` holds of the daemon as a whole.
async fn until_daemon(h: &Handle, what: &str, ok: impl Fn(&Handle) -> bool) {
    let mut watch = h.clone();
    let deadline = Instant::now() + Duration::from_secs(600);
    while !ok(h) {
        match timeout_at(deadline, watch.changed()).await {
            Ok(Ok(())) => {}
            _ => panic!("timed out waiting for {what}: {:#?}", h.daemon_status()),
        }
    }
}

fn kernel_weights(s: &ClusterStatus) -> Vec<(IpAddr, u32)> {
    s.kernel
        .as_ref()
        .map(|k| k.dests.iter().map(|d| (d.address, d.weight)).collect())
        .unwrap_or_default()
}

/// The addresses on interface `name` of the fake namespace.
fn vips_on(t: &Setup, name: &str) -> Vec<IpAddr> {
    t.fake
        .route
        .all()
        .into_iter()
        .filter(|a| a.interface == name)
        .map(|a| a.addr)
        .collect()
}

#[tokio::test(start_paused = true)]
async fn without_vips_route_netlink_is_never_touched() {
    let t = setup(&WEB.replace("    vips: [{address: 192.0.2.10, port: 80}]\n", ""));
    let h = &t.fake.handle;
    let before = t.fake.route.all();
    h.start("web").await.unwrap();
    h.start("db").await.unwrap();
    h.stop("web").await.unwrap();
    assert!(
        t.fake.route.link("bigbro0").is_none(),
        "no interface created"
    );
    assert_eq!(t.fake.route.all(), before);
    assert!(!h.daemon_status().vips.managed);
    // vip_mode: none marks, and adds no address either.
    let t = setup(&WEB.replace("    vips:", "    vip_mode: none\n    vips:"));
    t.fake.handle.start("web").await.unwrap();
    assert_eq!(t.fake.marks.rules().len(), 1);
    assert!(t.fake.route.link("bigbro0").is_none());
}

#[tokio::test(start_paused = true)]
async fn a_vip_that_is_a_foreign_address_is_reported_and_untouched() {
    let (dir, path) = write(WEB);
    let route = crate::route::FakeRoute::new();
    let eth0 = route.add_link("eth0", None);
    route.hand_add(eth0, ip("192.0.2.10"), 24);
    let fake = spawn_fake_on(FakeKernel::new(), route, test_options(&path)).unwrap();
    let t = Setup {
        fake,
        path,
        _dir: dir,
    };
    let h = &t.fake.handle;
    h.start("web").await.unwrap();
    let d = h.daemon_status().vips;
    assert_eq!(d.conflicts.len(), 1, "{d:?}");
    assert!(
        d.conflicts[0].contains("already a local address on eth0"),
        "{d:?}"
    );
    assert!(vips_on(&t, "bigbro0").is_empty());
    h.stop("web").await.unwrap();
    assert_eq!(vips_on(&t, "eth0"), [ip("192.0.2.10")], "untouched");
}

#[tokio::test(start_paused = true)]
async fn a_reload_moves_a_vip_between_clusters_without_a_blip_and_a_new_vip_is_added() {
    let t = setup(WEB);
    let h = &t.fake.handle;
    h.start("web").await.unwrap();
    h.start("db").await.unwrap();
    assert_eq!(vips_on(&t, "bigbro0"), [ip("192.0.2.10")]);
    t.fake.route.log.lock().unwrap().clear();
    // The vip moves from web to db (both running), and web gets a new one.
    let moved = WEB
        .replace(
            "    vips: [{address: 192.0.2.10, port: 80}]\n",
            "    vips: [{address: 192.0.2.11, port: 80}]\n",
        )
        .replace(
            "    scheduler: wlc\n",
            "    scheduler: wlc\n    vips: [{address: 192.0.2.10, port: 5432}]\n",
        );
    std::fs::write(&t.path, moved).unwrap();
    h.reload().await.unwrap();
    assert_eq!(vips_on(&t, "bigbro0"), [ip("192.0.2.10"), ip("192.0.2.11")]);
    assert_eq!(
        *t.fake.route.log.lock().unwrap(),
        [crate::route::AddrOp::Add(ip("192.0.2.11"))],
        "the moved vip was never removed"
    );
    h.stop("db").await.unwrap();
    assert_eq!(vips_on(&t, "bigbro0"), [ip("192.0.2.11")]);
}

const WEB: &str = "\
bigbro:
  anti_entropy_interval: 30
clusters:
  - cluster_name: web
    fwmark: 7
    scheduler: wrr
    ramp_up_time: 0
    vips: [{address: 192.0.2.10, port: 80}]
    nodes:
      - {address: 10.0.0.1, port: 9292, path: /s}
      - {address: 10.0.0.2, port: 9292, path: /s}
  - cluster_name: db
    fwmark: 8
    scheduler: wlc
    ramp_up_time: 0
    nodes:
      - {address: 10.0.1.1, port: 9292, path: /s}
";

#[tokio::test(start_paused = true)]
async fn start_programs_weight_one_then_health_and_stop_removes_exactly_its_services() {
    let t = setup(WEB);
    let (h, k) = (&t.fake.handle, &t.fake.kernel);
    k.hand_edit(Op::AddService(Service::new(key(99), "rr")));
    t.fake.set_health(&target("10.0.0.1"), 30);
    t.fake.set_health(&target("10.0.0.2"), 70);
    assert_eq!(h.start("web").await, Ok(StartOutcome::Started));
    // Right after start, before any probe: every node at 1 (big_brother's choice).
    assert_eq!(
        k.save(),
        "-A -f 7 -s wrr\n\
         -a -f 7 -r 10.0.0.1:0 -i -w 1 --tun-type ipip\n\
         -a -f 7 -r 10.0.0.2:0 -i -w 1 --tun-type ipip\n\
         -A -f 99 -s rr\n"
    );
    assert_eq!(t.fake.marks.rules().len(), 1, "the vip's mark rule");
    assert_eq!(
        vips_on(&t, "bigbro0"),
        [ip("192.0.2.10")],
        "the vip's address"
    );
    let d = h.daemon_status().vips;
    assert!(
        d.managed && d.in_sync && d.present == [ip("192.0.2.10")],
        "{d:?}"
    );
    assert_eq!(h.start("web").await, Ok(StartOutcome::AlreadyRunning));
    assert_eq!(h.start("nope").await, Ok(StartOutcome::NotFound));
    let s = until(h, "web", "weights 30/70 in the kernel", |s| {
        kernel_weights(s) == [(ip("10.0.0.1"), 30), (ip("10.0.0.2"), 70)]
    })
    .await;
    assert!(s.running);
    assert_eq!(s.combined_weight, 100);
    assert_eq!(s.nodes[0].kernel_weight(), Some(30));
    assert!(
        s.node_policy(s.nodes[0].address).is_some(),
        "policy view merged in"
    );
    let listed = h.clusters();
    assert_eq!(
        listed
            .iter()
            .map(|c| (c.name.as_str(), c.running, c.combined_weight))
            .collect::<Vec<_>>(),
        [("web", true, 100), ("db", false, 0)]
    );

    assert_eq!(h.stop("db").await, Ok(StopOutcome::NotRunning));
    assert_eq!(h.stop("web").await, Ok(StopOutcome::Stopped));
    assert_eq!(
        k.save(),
        "-A -f 99 -s rr\n",
        "only the foreign service is left"
    );
    assert!(t.fake.marks.rules().is_empty());
    assert!(
        vips_on(&t, "bigbro0").is_empty(),
        "the stopped cluster's vip is gone"
    );
    let s = h.status("web").await.unwrap();
    assert!(!s.running && s.combined_weight == 0 && s.policy.is_none());
    assert_eq!(h.stop("web").await, Ok(StopOutcome::NotRunning));
    let m = h.metrics();
    assert!(
        m.ops["add_service"] >= 1 && m.ops["del_service"] == 1,
        "{m:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn a_failed_node_drops_to_zero_and_stays_in_ipvs() {
    let t = setup(WEB);
    let h = &t.fake.handle;
    h.start("web").await.unwrap();
    until(h, "web", "both up", |s| {
        kernel_weights(s) == [(ip("10.0.0.1"), 100), (ip("10.0.0.2"), 100)]
    })
    .await;
    t.fake.prober.set(&target("10.0.0.2"), down());
    let s = until(h, "web", "rs2 at 0", |s| {
        kernel_weights(s) == [(ip("10.0.0.1"), 100), (ip("10.0.0.2"), 0)]
    })
    .await;
    assert_eq!(s.combined_weight, 100);
}

#[tokio::test(start_paused = true)]
async fn a_restart_adopts_running_clusters_without_changing_any_weight() {
    let k = FakeKernel::new();
    k.hand_edit(Op::AddService(Service::new(key(7), "wrr")));
    k.hand_edit(Op::AddDest {
        service: key(7),
        dest: Dest::ipip(ip("10.0.0.1"), 37),
    });
    k.hand_edit(Op::AddDest {
        service: key(7),
        dest: Dest::ipip(ip("10.0.0.2"), 63),
    });
    // Health differs from the kernel weights: the adopted weights must hold until the
    // first probe, and then move only through the ramp, never through 0 or 1.
    let yaml = WEB.replace("ramp_up_time: 0\n    vips", "ramp_up_time: 60\n    vips");
    let (dir, path) = write(&yaml);
    let route = crate::route::FakeRoute::new();
    let index = route.add_link("bigbro0", Some("dummy"));
    route.hand_add(index, ip("192.0.2.10"), 32);
    let fake = spawn_fake_on(k, route, test_options(&path)).unwrap();
    let t = Setup {
        fake,
        path,
        _dir: dir,
    };
    let h = &t.fake.handle;
    let s = until(h, "web", "adopted", |s| s.running).await;
    assert!(
        t.fake.route.log.lock().unwrap().is_empty(),
        "the vip already on bigbro0 stays: no blip"
    );
    assert_eq!(vips_on(&t, "bigbro0"), [ip("192.0.2.10")]);
    assert_eq!(
        kernel_weights(&s),
        [(ip("10.0.0.1"), 37), (ip("10.0.0.2"), 63)]
    );
    assert!(
        t.fake.kernel.log.lock().unwrap().is_empty(),
        "nothing written on adoption"
    );
    assert_eq!(h.start("web").await, Ok(StartOutcome::AlreadyRunning));
    assert!(!h.status("db").await.unwrap().running);
    // Every edit from now on only raises weights (health 100 ramps them up from where they
    // were); none ever lowers one.
    let s = until(h, "web", "ramped to 100", |s| {
        kernel_weights(s) == [(ip("10.0.0.1"), 100), (ip("10.0.0.2"), 100)]
    })
    .await;
    assert!(s.running);
    let log = t.fake.kernel.log.lock().unwrap().clone();
    let mut last = std::collections::BTreeMap::from([(ip("10.0.0.1"), 37), (ip("10.0.0.2"), 63)]);
    for op in &log {
        let Op::EditDest { dest, .. } = op else {
            panic!("only edits expected, got {op}")
        };
        assert!(dest.weight >= last[&dest.addr], "{op} lowers a weight");
        last.insert(dest.addr, dest.weight);
    }
}

#[tokio::test(start_paused = true)]
async fn nothing_is_written_while_ipvs_cannot_be_read() {
    let k = FakeKernel::new();
    k.hand_edit(Op::AddService(Service::new(key(7), "wrr")));
    k.hand_edit(Op::AddDest {
        service: key(7),
        dest: Dest::ipip(ip("10.0.0.1"), 50),
    });
    k.fail_dumps(libc::EPERM);
    let t = setup_with(WEB, k);
    let h = &t.fake.handle;
    let err = h.start("db").await.unwrap_err();
    assert!(matches!(err, Error::KernelUnavailable(_)), "{err}");
    let d = h.daemon_status();
    assert!(!d.adopted);
    assert!(d.kernel_error.unwrap().contains("permission denied"));
    assert!(t.fake.kernel.log.lock().unwrap().is_empty());
    // Once the kernel answers, web is adopted as running (not deleted as "unwanted").
    t.fake.kernel.clear_failures();
    let s = until(h, "web", "adopted after the retry", |s| s.running).await;
    assert_eq!(kernel_weights(&s)[0], (ip("10.0.0.1"), 50));
    assert!(h.daemon_status().adopted);
}

#[tokio::test(start_paused = true)]
async fn anti_entropy_repairs_hand_edits_within_one_interval() {
    let t = setup(WEB);
    let (h, k) = (&t.fake.handle, &t.fake.kernel);
    h.start("web").await.unwrap();
    until(h, "web", "weights", |s| {
        kernel_weights(s) == [(ip("10.0.0.1"), 100), (ip("10.0.0.2"), 100)]
    })
    .await;
    let wanted = k.save();
    k.hand_edit(Op::Flush);
    t.fake.marks.delete_tables();
    let index = t.fake.route.link("bigbro0").unwrap().index;
    t.fake.route.hand_remove(index, ip("192.0.2.10"));
    let edited = Instant::now();
    until_daemon(h, "repaired", |h| {
        h.metrics().repairs >= 3 && h.metrics().vip_ops >= 2
    })
    .await;
    assert_eq!(
        vips_on(&t, "bigbro0"),
        [ip("192.0.2.10")],
        "the vip is back"
    );
    assert!(
        edited.elapsed() <= Duration::from_secs(30),
        "{:?}",
        edited.elapsed()
    );
    assert_eq!(k.save(), wanted);
    assert_eq!(t.fake.marks.rules().len(), 1, "mark rules restored too");
    // A hand edit of a weight is put back the same way.
    k.hand_edit(Op::EditDest {
        service: key(7),
        dest: Dest::ipip(ip("10.0.0.1"), 5),
    });
    until(h, "web", "weight repaired", |s| {
        kernel_weights(s).first() == Some(&(ip("10.0.0.1"), 100))
    })
    .await;
}

#[tokio::test(start_paused = true)]
async fn weight_changes_are_coalesced_into_few_passes() {
    // 30 nodes ramping for 10 s, re-evaluated every second: about 300 weight changes.
    let mut yaml = String::from(
        "clusters:\n  - cluster_name: big\n    fwmark: 9\n    scheduler: wrr\n    ramp_up_time: 10\n    nodes:\n",
    );
    for i in 1..=30 {
        yaml.push_str(&format!(
            "      - {{address: 10.0.2.{i}, port: 9292, path: /s}}\n"
        ));
    }
    let t = setup(&yaml);
    let h = &t.fake.handle;
    let started = Instant::now();
    h.start("big").await.unwrap();
    until(h, "big", "all at 100", |s| s.combined_weight == 3000).await;
    let took = started.elapsed();
    let m = h.metrics();
    let passes: u64 = m.passes.values().sum();
    let edits = m.ops["edit_dest"];
    assert!(edits >= 200, "{edits} edits");
    // At most one pass per 100 ms (a probe of one of the 30 nodes every ~67 ms, each
    // able to move a ramping weight, keeps it near that), and far fewer passes than edits.
    let bound = took.as_millis() as u64 / 100 + 5;
    assert!(passes <= bound, "{passes} passes in {took:?}");
    assert!(passes * 4 < edits, "{passes} passes for {edits} edits");
}

#[tokio::test(start_paused = true)]
async fn failed_operations_are_reported_and_retried() {
    let t = setup(WEB);
    let (h, k) = (&t.fake.handle, &t.fake.kernel);
    k.fail_ops_matching("adding service FWM 7", libc::ENOENT);
    assert_eq!(h.start("web").await, Ok(StartOutcome::Started));
    let s = h.status("web").await.unwrap();
    assert!(
        s.errors
            .iter()
            .any(|e| e.starts_with("adding service FWM 7")),
        "{:?}",
        s.errors
    );
    assert!(h.metrics().kernel_errors["add_service"] >= 1);
    k.clear_failures();
    let s = until(h, "web", "retried", |s| s.kernel.is_some()).await;
    assert!(s.errors.is_empty(), "{:?}", s.errors);
}

#[tokio::test(start_paused = true)]
async fn reload_refuses_an_invalid_file_and_changes_nothing() {
    let t = setup(WEB);
    let (h, k) = (&t.fake.handle, &t.fake.kernel);
    h.start("web").await.unwrap();
    until(h, "web", "up", |s| s.combined_weight == 200).await;
    let before = k.save();
    let ops_before = k.log.lock().unwrap().len();
    std::fs::write(&t.path, WEB.replace("scheduler: wrr", "schedular: wrr")).unwrap();
    let Err(Error::ConfigInvalid(errors)) = h.reload().await else {
        panic!("an invalid file must be refused")
    };
    assert!(errors.to_string().contains("schedular"), "{errors}");
    assert_eq!(k.save(), before);
    assert_eq!(k.log.lock().unwrap().len(), ops_before);
    let d = h.daemon_status();
    assert!(d.reload.last_failure_unix.is_some());
    assert!(
        d.reload.last_errors.iter().any(|e| e.contains("schedular")),
        "{:?}",
        d.reload.last_errors
    );
    let m = h.metrics();
    assert_eq!((m.reload_failure, m.last_reload_ok), (1, false));
    assert!(h.status("web").await.unwrap().running);
    assert_eq!(h.config().cluster("web").unwrap().scheduler.as_str(), "wrr");
}

#[tokio::test(start_paused = true)]
async fn reload_applies_scheduler_fwmark_nodes_and_downpage_changes() {
    let yaml = WEB.replace(
        "    ramp_up_time: 0\n    vips",
        "    ramp_up_time: 0\n    has_downpage: true\n    vips",
    );
    let t = setup(&yaml);
    let (h, k) = (&t.fake.handle, &t.fake.kernel);
    h.start("web").await.unwrap();
    h.start("db").await.unwrap();
    // Every node of web down: the downpage goes in.
    t.fake.prober.set(&target("10.0.0.1"), down());
    t.fake.prober.set(&target("10.0.0.2"), down());
    until(h, "web", "downpage", |s| {
        s.downpage.as_ref().is_some_and(|d| d.active)
    })
    .await;
    assert!(
        k.save().contains("-a -f 7 -r 169.254.254.254:0 -i -w 1"),
        "{}",
        k.save()
    );

    // New scheduler, web moves to fwmark 17, node .2 replaced by .3, downpage removed
    // (big_brother's issue #25), db removed.
    let new = "\
clusters:
  - cluster_name: web
    fwmark: 17
    scheduler: sh
    ramp_up_time: 0
    nodes:
      - {address: 10.0.0.1, port: 9292, path: /s}
      - {address: 10.0.0.3, port: 9292, path: /s}
";
    std::fs::write(&t.path, new).unwrap();
    let report = h.reload().await.unwrap();
    assert_eq!(
        report
            .removed
            .iter()
            .map(|n| n.as_str())
            .collect::<Vec<_>>(),
        ["db"]
    );
    assert_eq!(
        report
            .changed
            .iter()
            .map(|n| n.as_str())
            .collect::<Vec<_>>(),
        ["web"]
    );
    let table = k.save();
    assert!(table.starts_with("-A -f 17 -s sh\n"), "{table}");
    assert!(
        !table.contains("-f 7 ") && !table.contains("-f 8 "),
        "{table}"
    );
    assert!(!table.contains("169.254.254.254"), "{table}");
    assert!(table.contains("-a -f 17 -r 10.0.0.3:0"), "{table}");
    assert!(!table.contains("10.0.0.2"), "{table}");
    assert!(t.fake.marks.rules().is_empty(), "the vip is gone");
    assert!(vips_on(&t, "bigbro0").is_empty(), "its address too");
    // The node that stayed kept its state (down: its probes still fail).
    let s = h.status("web").await.unwrap();
    assert!(s.running);
    assert_eq!(
        s.node_policy(s.nodes[0].address).unwrap().status,
        crate::weight::Status::Down
    );
    let s = until(h, "web", "new node up", |s| {
        kernel_weights(s).contains(&(ip("10.0.0.3"), 100))
    })
    .await;
    assert_eq!(s.fwmark.get(), 17);
    assert_eq!(h.metrics().reload_success, 1);
    assert!(h.status("db").await.is_none());
}

#[tokio::test(start_paused = true)]
async fn synchronize_adopts_a_service_found_in_the_kernel() {
    let t = setup(WEB);
    let (h, k) = (&t.fake.handle, &t.fake.kernel);
    assert!(!h.synchronize("web").await.unwrap().unwrap().running);
    assert!(h.synchronize("nope").await.unwrap().is_none());
    // Someone (a previous daemon, pacemaker on another node...) put it there.
    k.hand_edit(Op::AddService(Service::new(key(7), "wrr")));
    k.hand_edit(Op::AddDest {
        service: key(7),
        dest: Dest::ipip(ip("10.0.0.1"), 44),
    });
    k.hand_edit(Op::AddDest {
        service: key(7),
        dest: Dest::ipip(ip("10.9.9.9"), 5),
    });
    let s = h.synchronize("web").await.unwrap().unwrap();
    assert!(s.running);
    // 10.0.0.1 kept its weight; the unknown dest is removed and the missing node added
    // at 0 until its health is known.
    let kw = kernel_weights(&s);
    assert!(kw.contains(&(ip("10.0.0.1"), 44)), "{kw:?}");
    assert!(kw.contains(&(ip("10.0.0.2"), 0)), "{kw:?}");
    assert!(!kw.iter().any(|(a, _)| *a == ip("10.9.9.9")), "{kw:?}");
}

const AP: &str = "\
clusters:
  - cluster_name: pay
    fwmark: 5
    scheduler: wrr
    backend_mode: active_passive
    ramp_up_time: 0
    nodes:
      - {address: 10.0.0.10, port: 9292, path: /s, priority: 1}
      - {address: 10.0.0.9, port: 9292, path: /s, priority: 1}
      - {address: 10.0.0.2, port: 9292, path: /s, priority: 2}
";

#[tokio::test(start_paused = true)]
async fn active_passive_fails_over_adding_then_draining_the_old_node() {
    let t = setup(AP);
    let (h, k) = (&t.fake.handle, &t.fake.kernel);
    h.start("pay").await.unwrap();
    assert_eq!(
        k.save(),
        "-A -f 5 -s wrr\n-a -f 5 -r 10.0.0.9:0 -i -w 1 --tun-type ipip\n"
    );
    let s = until(h, "pay", "active at 100", |s| {
        kernel_weights(s) == [(ip("10.0.0.9"), 100)]
    })
    .await;
    assert_eq!(s.active_node, Some(ip("10.0.0.9")));
    let before = k.log.lock().unwrap().len();
    t.fake.prober.set(&target("10.0.0.9"), down());
    let s = until(h, "pay", "failover", |s| {
        s.active_node == Some(ip("10.0.0.10"))
    })
    .await;
    // The new active node in, the old one drained at 0 in the same batch...
    assert_eq!(
        kernel_weights(&s),
        [(ip("10.0.0.9"), 0), (ip("10.0.0.10"), 100)]
    );
    let log = k.log.lock().unwrap()[before..].to_vec();
    let add = log
        .iter()
        .position(|op| matches!(op, Op::AddDest { dest, .. } if dest.addr == ip("10.0.0.10")))
        .expect("the new active node is added");
    assert!(
        matches!(&log[add + 1], Op::EditDest { dest, .. } if dest.addr == ip("10.0.0.9") && dest.weight == 0),
        "added, then the old one drained, in one batch: {log:?}"
    );
    // ... and deleted once its connections had time to finish.
    let drained = Instant::now();
    until(h, "pay", "old node deleted", |s| {
        kernel_weights(s) == [(ip("10.0.0.10"), 100)]
    })
    .await;
    assert!(
        drained.elapsed() >= Duration::from_secs(4),
        "{:?}",
        drained.elapsed()
    );
    // Pre-emptive failback once .9 is healthy again.
    t.fake.prober.set(&target("10.0.0.9"), Script::healthy(100));
    until(h, "pay", "failback", |s| {
        s.active_node == Some(ip("10.0.0.9"))
    })
    .await;
    // Nobody healthy: the active node stays, at weight 0.
    for a in ["10.0.0.9", "10.0.0.10", "10.0.0.2"] {
        t.fake.prober.set(&target(a), down());
    }
    let s = until(h, "pay", "all down", |s| {
        kernel_weights(s) == [(ip("10.0.0.9"), 0)]
    })
    .await;
    assert_eq!(s.active_node, Some(ip("10.0.0.9")));
}

#[tokio::test(start_paused = true)]
async fn the_relay_service_holds_the_local_nodes() {
    let yaml = WEB.replace(
        "    scheduler: wrr\n    ramp_up_time: 0\n",
        "    scheduler: wrr\n    ramp_up_time: 0\n    multi_datacenter: true\n",
    );
    let t = setup(&yaml);
    let (h, k) = (&t.fake.handle, &t.fake.kernel);
    h.start("web").await.unwrap();
    let s = until(h, "web", "relay weights", |s| {
        s.relay_kernel
            .as_ref()
            .is_some_and(|r| r.dests.iter().all(|d| d.weight == 100) && r.dests.len() == 2)
    })
    .await;
    assert_eq!(s.relay_fwmark.map(|f| f.get()), Some(10007));
    h.stop("web").await.unwrap();
    assert_eq!(k.save(), "", "main and relay deleted");
}

#[tokio::test(start_paused = true)]
async fn sync_daemon_follows_the_configuration() {
    let yaml = format!(
        "bigbro:\n  sync_daemon: {{role: both, interface: eth1, syncid: 3}}\n{}",
        WEB.trim_start_matches("bigbro:\n  anti_entropy_interval: 30\n")
    );
    let t = setup(&yaml);
    let (h, k) = (&t.fake.handle, &t.fake.kernel);
    // The first pass has run once a start is answered.
    h.start("db").await.unwrap();
    use crate::reconcile::IpvsKernel;
    let d = k.daemons().await.unwrap();
    assert_eq!(d.len(), 2);
    assert!(d.iter().all(|d| d.mcast_ifn == "eth1" && d.sync_id == 3));
    std::fs::write(&t.path, WEB).unwrap();
    h.reload().await.unwrap();
    assert!(
        k.daemons().await.unwrap().is_empty(),
        "stopped when no longer configured"
    );
}

#[tokio::test(start_paused = true)]
async fn overrides_pass_through_to_the_policy() {
    let t = setup(WEB);
    let h = &t.fake.handle;
    let req = crate::weight::OverrideRequest {
        force: crate::weight::Force::Down,
        reason: "maintenance".into(),
        ttl: None,
    };
    assert!(matches!(
        h.set_node_override("web", ip("10.0.0.1"), req.clone())
            .await,
        Err(Error::NotRunning(_))
    ));
    h.start("web").await.unwrap();
    assert!(matches!(
        h.set_node_override("web", ip("10.7.7.7"), req.clone())
            .await,
        Err(Error::UnknownNode { .. })
    ));
    assert!(matches!(
        h.set_cluster_override("nope", req.clone()).await,
        Err(Error::UnknownCluster(_))
    ));
    h.set_node_override("web", ip("10.0.0.1"), req)
        .await
        .unwrap();
    until(h, "web", "drained", |s| {
        kernel_weights(s) == [(ip("10.0.0.1"), 0), (ip("10.0.0.2"), 100)]
    })
    .await;
    h.clear_node_override("web", ip("10.0.0.1")).await.unwrap();
    until(h, "web", "back", |s| {
        kernel_weights(s) == [(ip("10.0.0.1"), 100), (ip("10.0.0.2"), 100)]
    })
    .await;
}

#[tokio::test(start_paused = true)]
async fn shutdown_leaves_the_kernel_as_it_is() {
    let t = setup(WEB);
    let h = t.fake.handle.clone();
    h.start("web").await.unwrap();
    until(&h, "web", "up", |s| s.combined_weight == 200).await;
    let before = t.fake.kernel.save();
    h.shutdown().await;
    t.fake.task.await.unwrap();
    assert_eq!(t.fake.kernel.save(), before);
    assert_eq!(h.start("db").await, Err(Error::Stopped));
    assert_eq!(t.fake.marks.rules().len(), 1);
    let _ = spawn_fake; // (the plain constructor is covered by the API's tests)
}

/// Nagios on the real clock: it runs `send_nsca` (here a script that appends its arguments
/// and standard input to a file) as processes, which the paused clock cannot wait for.
#[tokio::test]
async fn nagios_is_told_only_when_the_number_of_nodes_down_changes() {
    let (dir, path) = write(
        "\
clusters:
  - cluster_name: web
    fwmark: 7
    scheduler: wrr
    check_interval: 0.1
    ramp_up_time: 0
    nagios: {server: nsca.example, host: lb1, check: web_pool}
    nodes:
      - {address: 10.0.0.1, port: 9292, path: /s}
      - {address: 10.0.0.2, port: 9292, path: /s}
      - {address: 10.0.0.3, port: 9292, path: /s}
",
    );
    let out = dir.path().join("sent");
    let script = dir.path().join("send_nsca");
    std::fs::write(
        &script,
        format!("#!/bin/sh\n{{ echo \"$@\"; cat; }} >> {}\n", out.display()),
    )
    .unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
    let mut options = test_options(&path);
    options.nsca_program = script;
    let fake = spawn_fake_opts(FakeKernel::new(), options).unwrap();
    let h = &fake.handle;
    let sent = || std::fs::read_to_string(&out).unwrap_or_default();
    let wait_lines = |n: usize| async move {
        let deadline = Instant::now() + Duration::from_secs(20);
        while sent().lines().count() < n {
            assert!(Instant::now() < deadline, "only {:?}", sent());
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    };
    h.start("web").await.unwrap();
    wait_lines(2).await;
    fake.prober.set(&target("10.0.0.3"), down());
    wait_lines(4).await;
    fake.prober.set(&target("10.0.0.2"), down());
    wait_lines(6).await;
    // Same count for a while: nothing more is sent.
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        sent(),
        "-H nsca.example -d ,\nlb1,web_pool,0,OK all nodes up\n\
         -H nsca.example -d ,\nlb1,web_pool,1,WARNING a node is down\n\
         -H nsca.example -d ,\nlb1,web_pool,2,CRITICAL 50% of nodes are down\n"
    );
    assert_eq!(h.metrics().nagios_sent, 3);
}

/// `n` clusters `c1`.. on fwmarks 11.., one node each (10.0.3.i), no ramp.
fn clusters(n: u32, anti_entropy: u32) -> String {
    let mut yaml = format!("bigbro:\n  anti_entropy_interval: {anti_entropy}\nclusters:\n");
    for i in 1..=n {
        yaml.push_str(&format!(
            "  - cluster_name: c{i}\n    fwmark: {}\n    scheduler: wrr\n    ramp_up_time: 0\n    \
             nodes:\n      - {{address: 10.0.3.{i}, port: 9292, path: /s}}\n",
            10 + i
        ));
    }
    yaml
}

/// Starts clusters `c1`..`cn` and waits until each node is at 100 in the kernel.
async fn start_all(h: &Handle, n: u32) {
    for i in 1..=n {
        h.start(&format!("c{i}")).await.unwrap();
        until(h, &format!("c{i}"), "at 100", |s| {
            kernel_weights(s) == [(ip(&format!("10.0.3.{i}")), 100)]
        })
        .await;
    }
}

fn passes(h: &Handle, trigger: &str) -> u64 {
    h.metrics().passes.get(trigger).copied().unwrap_or(0)
}

/// The services a run of reads touched, and whether it dumped every service.
fn read_keys(reads: &[crate::reconcile::kernel::Read]) -> (BTreeSet<ServiceKey>, bool) {
    use crate::reconcile::kernel::Read;
    let mut keys = BTreeSet::new();
    let mut dumped = false;
    for r in reads {
        match r {
            Read::Services => dumped = true,
            Read::Service(k) | Read::Dests(k) => {
                keys.insert(*k);
            }
            Read::Daemons => {}
        }
    }
    (keys, dumped)
}

#[tokio::test(start_paused = true)]
async fn a_weight_change_reads_only_its_service_and_anti_entropy_repairs_the_rest() {
    let t = setup(&clusters(5, 30));
    let (h, k) = (&t.fake.handle, &t.fake.kernel);
    let begun = Instant::now();
    start_all(h, 5).await;
    let repairs = h.metrics().repairs;
    let weight_passes = passes(h, "weights");
    k.take_reads();
    // Behind bigbro's back: c2's weight. Then c4's health changes.
    k.hand_edit(Op::EditDest {
        service: key(12),
        dest: Dest::ipip(ip("10.0.3.2"), 5),
    });
    t.fake.set_health(&target("10.0.3.4"), 40);
    let s = until(h, "c4", "c4 at 40", |s| {
        kernel_weights(s) == [(ip("10.0.3.4"), 40)]
    })
    .await;
    assert_eq!(s.nodes[0].kernel.as_ref().map(|d| d.weight), Some(40));
    assert!(
        begun.elapsed() < Duration::from_secs(30),
        "before anti-entropy"
    );
    let (keys, dumped) = read_keys(&k.take_reads());
    assert_eq!(
        keys,
        BTreeSet::from([key(14)]),
        "only c4's service was read"
    );
    assert!(!dumped, "no dump of every service");
    assert!(
        k.save().contains("-a -f 12 -r 10.0.3.2:0 -i -w 5 "),
        "c2 untouched"
    );
    let m = h.metrics();
    assert!(passes(h, "weights") > weight_passes);
    assert_eq!(m.repairs, repairs);
    let last = h.daemon_status().last_pass.unwrap();
    assert!(!last.full && last.services == 1, "{last:?}");
    // The other clusters' status still shows their services (as last read).
    for i in [1, 2, 3, 5] {
        let s = h.status(&format!("c{i}")).await.unwrap();
        assert!(s.kernel.is_some(), "c{i} lost its kernel view: {s:#?}");
    }
    // The next anti-entropy pass reads everything and puts c2 back.
    until_daemon(h, "c2 repaired", |h| h.metrics().repairs > repairs).await;
    assert!(
        begun.elapsed() <= Duration::from_secs(31),
        "{:?}",
        begun.elapsed()
    );
    assert!(k.save().contains("-a -f 12 -r 10.0.3.2:0 -i -w 100 "));
    let (_, dumped) = read_keys(&k.take_reads());
    assert!(dumped, "anti-entropy dumps every service");
    let s = until(h, "c2", "c2's status repaired", |s| {
        kernel_weights(s) == [(ip("10.0.3.2"), 100)]
    })
    .await;
    assert!(s.errors.is_empty());
    assert!(h.daemon_status().last_pass.unwrap().full);
}

#[tokio::test(start_paused = true)]
async fn a_weight_change_recreates_its_service_when_it_is_gone() {
    let t = setup(&clusters(3, 300));
    let (h, k) = (&t.fake.handle, &t.fake.kernel);
    start_all(h, 3).await;
    k.hand_edit(Op::DelService(key(12)));
    k.hand_edit(Op::DelService(key(13)));
    k.take_reads();
    t.fake.set_health(&target("10.0.3.2"), 60);
    until(h, "c2", "c2 recreated at 60", |s| {
        kernel_weights(s) == [(ip("10.0.3.2"), 60)]
    })
    .await;
    let (keys, dumped) = read_keys(&k.take_reads());
    assert_eq!((keys, dumped), (BTreeSet::from([key(12)]), false));
    assert!(!k.save().contains("-f 13"), "c3 is left to anti-entropy");
}

#[tokio::test(start_paused = true)]
async fn a_failed_operation_keeps_its_service_dirty_until_it_succeeds() {
    let t = setup(&clusters(3, 300));
    let (h, k) = (&t.fake.handle, &t.fake.kernel);
    start_all(h, 3).await;
    k.fail_ops_matching("FWM 12", libc::ENOMEM);
    t.fake.set_health(&target("10.0.3.2"), 40);
    until(h, "c2", "the failure shown", |s| !s.errors.is_empty()).await;
    // Retries read c2 alone.
    let retries = passes(h, "retry");
    k.take_reads();
    until_daemon(h, "a retry", |h| passes(h, "retry") > retries).await;
    let (keys, dumped) = read_keys(&k.take_reads());
    assert_eq!((keys, dumped), (BTreeSet::from([key(12)]), false));
    // A weight change elsewhere reads c2 too while it still fails.
    t.fake.set_health(&target("10.0.3.3"), 70);
    until(h, "c3", "c3 at 70", |s| {
        kernel_weights(s) == [(ip("10.0.3.3"), 70)]
    })
    .await;
    let (keys, _) = read_keys(&k.take_reads());
    assert!(
        keys.contains(&key(12)) && keys.contains(&key(13)),
        "{keys:?}"
    );
    assert!(!keys.contains(&key(11)), "{keys:?}");
    // Once the kernel accepts it, c2 is clean and no longer read.
    k.clear_failures();
    let s = until(h, "c2", "c2 at 40", |s| {
        kernel_weights(s) == [(ip("10.0.3.2"), 40)]
    })
    .await;
    assert!(s.errors.is_empty(), "{:?}", s.errors);
    k.take_reads();
    t.fake.set_health(&target("10.0.3.1"), 20);
    until(h, "c1", "c1 at 20", |s| {
        kernel_weights(s) == [(ip("10.0.3.1"), 20)]
    })
    .await;
    let (keys, dumped) = read_keys(&k.take_reads());
    assert_eq!((keys, dumped), (BTreeSet::from([key(11)]), false));
    assert!(h.daemon_status().last_pass.unwrap().errors.is_empty());
}

fn force_down() -> crate::weight::OverrideRequest {
    crate::weight::OverrideRequest {
        force: crate::weight::Force::Down,
        reason: "test".into(),
        ttl: None,
    }
}

/// Forces cluster `c{i}`'s node (10.0.3.i) down; the driver sends its batch at once.
async fn force_node_down(h: &Handle, i: u32) {
    h.set_node_override(&format!("c{i}"), ip(&format!("10.0.3.{i}")), force_down())
        .await
        .unwrap();
}

/// Waits until `c{i}`'s node is at 0 in the kernel.
async fn until_down(h: &Handle, i: u32) {
    until(h, &format!("c{i}"), "down in the kernel", |s| {
        kernel_weights(s) == [(ip(&format!("10.0.3.{i}")), 0)]
    })
    .await;
}

/// `n` clusters started, at 100, and a second later (every coalescing window over).
async fn settled(n: u32) -> Setup {
    let t = setup(&clusters(n, 300));
    start_all(&t.fake.handle, n).await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    t
}

#[tokio::test(start_paused = true)]
async fn a_lone_weight_change_gets_its_pass_at_once() {
    let t = settled(2).await;
    let h = &t.fake.handle;
    let before = passes(h, "weights");
    let t0 = Instant::now();
    force_node_down(h, 1).await;
    until_down(h, 1).await;
    assert_eq!(t0.elapsed(), Duration::ZERO, "no coalescing delay");
    assert_eq!(passes(h, "weights"), before + 1);
    let last = h.daemon_status().last_pass.unwrap();
    assert_eq!(last.trigger, Trigger::Weights);
}

#[tokio::test(start_paused = true)]
async fn a_burst_of_weight_changes_gets_a_leading_and_one_trailing_pass() {
    let t = settled(6).await;
    let h = &t.fake.handle;
    let before = passes(h, "weights");
    let t0 = Instant::now();
    // Five changes 20 ms apart: the first at once, the other four within its window.
    for i in 1..=5 {
        if i > 1 {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        force_node_down(h, i).await;
    }
    assert_eq!(
        passes(h, "weights"),
        before + 1,
        "only the leading pass so far"
    );
    for i in 1..=5 {
        until_down(h, i).await;
    }
    assert_eq!(
        t0.elapsed(),
        Duration::from_millis(100),
        "the trailing pass"
    );
    assert_eq!(passes(h, "weights"), before + 2);
    // A change right at the end of the window is not lost: it gets the next window.
    force_node_down(h, 6).await;
    until_down(h, 6).await;
    assert_eq!(t0.elapsed(), Duration::from_millis(200));
    assert_eq!(passes(h, "weights"), before + 3);
    // Nothing more: no pass without a change, and every weight is as the policy says.
    tokio::time::sleep(Duration::from_secs(5)).await;
    assert_eq!(passes(h, "weights"), before + 3);
    for i in 1..=6 {
        let s = h.status(&format!("c{i}")).await.unwrap();
        assert_eq!(kernel_weights(&s), [(ip(&format!("10.0.3.{i}")), 0)]);
    }
}
