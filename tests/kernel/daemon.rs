//! The daemon on a real kernel, each test with the test bed's data
//! plane and client traffic to the VIP running throughout: IPVS weights follow backend
//! health and the traffic follows the weights; a new node ramps up in steps; a failed node
//! gets weight 0 and no new connections; a restart changes no weight and fails no request;
//! SIGHUP with a broken file changes nothing and with a new scheduler changes it; a hand
//! `ipvsadm -C` is repaired within one anti-entropy interval; stopping a cluster removes
//! exactly its services; downpage, active_passive failover and the relay service; service
//! options (persistence, mh flags) in the kernel, and a reload that edits them in place;
//! and a director with no hand routing at all, whose VIP bigbro puts on its own interface.
//!
//! Clusters are started through the daemon's `Handle`, in-process, with the real IPVS,
//! nf_tables and probes (the HTTP API is another issue's). Tests of signals and restarts
//! run the real `bigbro daemon` binary, which takes over services found in the kernel.

use crate::daemon_bed;
use crate::testbed;

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bigbro::daemon::{StartOutcome, StopOutcome};
use daemon_bed::*;
use nix::sys::signal::Signal;
use testbed::dataplane::{Config, DataPlane, Health, SERVICE_PORT};
use testbed::{kernel_test, sh};

const S: fn(u64) -> Duration = Duration::from_secs;

fn ip(plane: &DataPlane, name: &str) -> IpAddr {
    IpAddr::V4(plane.server(name).addr())
}

/// Probes every second with a 0.9 s timeout: under TCG on a loaded host the default half
/// second is sometimes not enough, and a probe timing out would flap a weight.
const HEALTH: &str = "    health: {timeout: 0.9}\n";

/// A `web` cluster (fwmark 7, the VIP on port 80) of the named real servers, probed every
/// second; `extra` adds cluster keys (each line indented by four spaces).
fn web(plane: &DataPlane, dir: &std::path::Path, names: &[&str], extra: &str) -> String {
    format!(
        "{}clusters:\n  - cluster_name: web\n    fwmark: 7\n    scheduler: wrr\n    check_interval: 1\n{HEALTH}    ramp_up_time: 0\n{extra}    vips: [{{address: {}, port: {SERVICE_PORT}}}]\n    nodes:\n{}",
        settings(dir, 3),
        plane.vip(),
        nodes(plane, names)
    )
}

/// The in-process daemon on `cfg`, with `web` started and every node in `all` at 100.
fn started(cfg: &ConfigFile, all: &[IpAddr]) -> (tokio::runtime::Runtime, bigbro::daemon::Handle) {
    let rt = runtime();
    let h = spawn_daemon(&rt, &cfg.path);
    assert_eq!(rt.block_on(h.start("web")), Ok(StartOutcome::Started));
    let want: BTreeMap<IpAddr, u32> = all.iter().map(|a| (*a, 100)).collect();
    rt.block_on(until(&h, "web", S(30), "every node at 100", |s| {
        kernel_weights(s) == want
    }));
    (rt, h)
}

/// A `web` service put in the kernel by hand, and the real `bigbro daemon` on `cfg`
/// taking it over as running: returns the daemon once both nodes are at 100, with
/// `ipvsadm -S -n` as it then is.
fn binary_took_over(
    cfg: &ConfigFile,
    dir: &std::path::Path,
    rs1: IpAddr,
    rs2: IpAddr,
) -> (DaemonProcess, String) {
    sh("ipvsadm -A -f 7 -s wrr");
    let d = DaemonProcess::start(&cfg.path, &dir.join("daemon.log"));
    let want = format!(
        "-A -f 7 -s wrr\n-a -f 7 -r {rs1}:0 -i -w 100 --tun-type ipip\n\
         -a -f 7 -r {rs2}:0 -i -w 100 --tun-type ipip\n"
    );
    poll(S(30), "both nodes at 100", || {
        (sh("ipvsadm -S -n") == want).then_some(())
    });
    (d, want)
}

fn weights(pairs: &[(IpAddr, u32)]) -> BTreeMap<IpAddr, u32> {
    pairs.iter().copied().collect()
}

/// A data plane of `n` real servers whose VIP traffic (fwmark 7) reaches IPVS.
fn plane(n: usize) -> Arc<DataPlane> {
    let plane = Arc::new(DataPlane::new(n));
    plane.route_fwmark_locally(7);
    plane
}

kernel_test! {
    fn kernel_weights_follow_backend_health_and_traffic_follows_the_weights() {
        let plane = plane(2);
        let (rs1, rs2) = (ip(&plane, "rs1"), ip(&plane, "rs2"));
        plane.server("rs1").set_health(Health::litmus(30));
        plane.server("rs2").set_health(Health::litmus(70));
        let dir = tempfile::tempdir().unwrap();
        // Three good probes (1 s apart) before a node counts as up: time to see the start.
        let text = web(&plane, dir.path(), &["rs1", "rs2"], "")
            .replace(HEALTH, "    health: {timeout: 0.9, rise: 3}\n");
        let cfg = ConfigFile::new(&text);
        let rt = runtime();
        let h = spawn_daemon(&rt, &cfg.path);
        assert_eq!(rt.block_on(h.start("web")), Ok(StartOutcome::Started));
        // Before health is known: every node at weight 1 (big_brother's choice).
        let started = sh("ipvsadm -S -n");
        assert!(started.contains(&format!("-a -f 7 -r {rs1}:0 -i -w 1")), "{started}");
        let traffic = Traffic::start(plane.clone(), 10);
        let s = rt.block_on(until(&h, "web", S(30), "weights 30/70", |s| {
            kernel_weights(s) == weights(&[(rs1, 30), (rs2, 70)])
        }));
        assert_eq!(s.combined_weight, 100);
        assert_eq!(
            sh("ipvsadm -S -n"),
            format!(
                "-A -f 7 -s wrr\n-a -f 7 -r {rs1}:0 -i -w 30 --tun-type ipip\n\
                 -a -f 7 -r {rs2}:0 -i -w 70 --tun-type ipip\n"
            )
        );
        // wrr with weights 30 and 70 repeats a cycle of 10 connections (3 to rs1); the
        // tolerance of 3 in 100 covers a cycle cut at each end of the window.
        let window = traffic.wait_requests(100);
        let share = window.count("rs1") * 100 / window.answered();
        assert!((27..=33).contains(&share), "rs1 got {share}% of {window:?}");
        let all = traffic.stop();
        assert!(all.failures.is_empty(), "failed requests: {:?}", all.failures);
        eprintln!("answers: {:?}", all.answers);
    }

    fn bigbro_alone_delivers_the_vip_and_a_stop_removes_it_leaving_foreign_routing_alone() {
        // No hand routing at all: no `ip rule`, no local route, no address for the VIP.
        let plane = Arc::new(DataPlane::new(2));
        let vip = plane.vip();
        let dir = tempfile::tempdir().unwrap();
        let cfg = ConfigFile::new(&web(&plane, dir.path(), &["rs1", "rs2"], ""));
        // Foreign state bigbro must never touch: an address, a rule and a route.
        sh("ip link add foreign0 type dummy && ip link set foreign0 up
            ip addr add 198.18.0.1/32 dev foreign0
            ip rule add fwmark 99 lookup 200
            ip route add local 198.18.1.0/24 dev lo table 200");
        let foreign = || {
            [
                sh("ip -o addr show dev foreign0"),
                sh("ip rule show"),
                sh("ip route show table 200"),
                sh("ip -o addr show dev lo"),
            ]
        };
        let before = foreign();
        assert!(before[0].contains("198.18.0.1/32"), "{}", before[0]);
        let d = DaemonProcess::start(&cfg.path, &dir.path().join("daemon.log"));
        let bin = env!("CARGO_BIN_EXE_bigbro");
        // The API is up once the daemon is ready; until then the CLI cannot connect.
        poll(S(30), "bigbro start web", || {
            (testbed::sh_status(&format!("{bin} start web")).0 == 0).then_some(())
        });
        let on_bigbro0 = sh("ip -o addr show dev bigbro0");
        assert!(on_bigbro0.contains(&format!("inet {vip}/32")), "{on_bigbro0}");
        assert!(sh("ip -d link show dev bigbro0").contains("dummy"));
        let traffic = Traffic::start(plane.clone(), 10);
        traffic.wait_requests(100);
        let all = traffic.stop();
        assert!(all.failures.is_empty(), "failed requests: {:?}\n{}", all.failures, d.log());
        assert!(all.answers.len() == 2, "both real servers answered: {:?}", all.answers);
        // Stopping the cluster removes the VIP: the client can no longer connect.
        sh(&format!("{bin} stop web"));
        let on_bigbro0 = sh("ip -o addr show dev bigbro0");
        assert!(!on_bigbro0.contains(&vip.to_string()), "{on_bigbro0}");
        let r = plane.client().get(plane.vip_addr(SERVICE_PORT), "/");
        assert!(r.is_err(), "the VIP still answers: {r:?}");
        assert_eq!(foreign(), before, "foreign addresses, rules and routes untouched");
        // Started again, then SIGTERM: the VIP stays where it is.
        sh(&format!("{bin} start web"));
        assert!(sh("ip -o addr show dev bigbro0").contains(&format!("inet {vip}/32")));
        let status = d.terminate();
        assert!(status.success(), "exit status {status}");
        assert!(sh("ip -o addr show dev bigbro0").contains(&format!("inet {vip}/32")), "SIGTERM leaves the VIP");
        assert_eq!(foreign(), before);
        let log = std::fs::read_to_string(dir.path().join("daemon.log")).unwrap();
        assert!(log.contains(&format!("ip addr add {vip}/32 dev bigbro0")), "{log}");
        assert!(!log.contains("to bigbro0: ") && !log.contains("panicked"), "{log}");
    }

    fn a_new_node_ramps_up_in_visible_steps() {
        let plane = plane(3);
        let rs3 = ip(&plane, "rs3");
        let dir = tempfile::tempdir().unwrap();
        let ramp = "    ramp_up_time: 8\n";
        let two = web(&plane, dir.path(), &["rs1", "rs2"], "").replace("    ramp_up_time: 0\n", ramp);
        let cfg = ConfigFile::new(&two);
        let rt = runtime();
        let h = spawn_daemon(&rt, &cfg.path);
        rt.block_on(h.start("web")).unwrap();
        rt.block_on(until(&h, "web", S(40), "rs1 and rs2 at 100", |s| {
            kernel_weights(s).values().all(|w| *w == 100) && kernel_weights(s).len() == 2
        }));
        let traffic = Traffic::start(plane.clone(), 10);
        cfg.write(&web(&plane, dir.path(), &["rs1", "rs2", "rs3"], "").replace("    ramp_up_time: 0\n", ramp));
        let joined = Instant::now();
        rt.block_on(h.reload()).unwrap();
        // Every weight rs3 has in the kernel from now on, in order.
        let steps = rt.block_on(async {
            let mut watch = h.clone();
            let mut steps: Vec<u32> = Vec::new();
            let deadline = tokio::time::Instant::now() + S(40);
            loop {
                let s = h.status("web").await.unwrap();
                if let Some(w) = kernel_weights(&s).get(&rs3) {
                    if steps.last() != Some(w) {
                        steps.push(*w);
                    }
                    if *w == 100 {
                        return steps;
                    }
                }
                tokio::time::timeout_at(deadline, watch.changed())
                    .await
                    .unwrap_or_else(|_| panic!("rs3 did not reach 100: {steps:?}"))
                    .unwrap();
            }
        });
        let took = joined.elapsed();
        eprintln!("rs3's weights in the kernel: {steps:?} over {took:?}");
        // It starts at 0 (until healthy), then 1: the first value seen may be a step later.
        assert!(steps[0] <= 25, "started high: {steps:?}");
        let ramping: Vec<u32> = steps.iter().copied().filter(|w| (1..100).contains(w)).collect();
        assert!(ramping.len() >= 4, "visible steps: {steps:?}");
        assert!(steps.windows(2).all(|w| w[0] <= w[1]), "never down: {steps:?}");
        assert!(took >= S(6), "an 8 s ramp took {took:?}");
        // Its share of new connections grows: at the end it takes a third.
        let late = traffic.wait_requests(60);
        let share = late.count("rs3") * 100 / late.answered();
        assert!((28..=38).contains(&share), "rs3 at full weight got {share}% of {late:?}");
        let all = traffic.stop();
        assert!(all.failures.is_empty(), "failed requests: {:?}", all.failures);
    }

    fn a_failed_node_gets_weight_zero_and_no_new_connections() {
        let plane = plane(2);
        let (rs1, rs2) = (ip(&plane, "rs1"), ip(&plane, "rs2"));
        let dir = tempfile::tempdir().unwrap();
        let cfg = ConfigFile::new(&web(&plane, dir.path(), &["rs1", "rs2"], ""));
        let (rt, h) = started(&cfg, &[rs1, rs2]);
        let traffic = Traffic::start(plane.clone(), 10);
        traffic.wait_requests(20);
        plane.server("rs2").set_health(Health::down());
        let s = rt.block_on(until(&h, "web", S(30), "rs2 at 0", |s| {
            kernel_weights(s) == weights(&[(rs1, 100), (rs2, 0)])
        }));
        let drained = Instant::now();
        assert_eq!(s.node_policy(s.nodes[1].address).unwrap().status, bigbro::weight::Status::Down);
        assert!(
            sh("ipvsadm -S -n").contains(&format!("-a -f 7 -r {rs2}:0 -i -w 0")),
            "a failed node stays in IPVS at weight 0"
        );
        let after = traffic.wait_requests(60);
        assert_eq!(after.count("rs2"), 0, "new connections after the drain: {after:?}");
        // Nothing new reaches rs2 from the moment its weight is 0.
        let served = plane.server("rs2").service_requests();
        let later = traffic.since(drained);
        assert_eq!(later.count("rs2"), 0);
        assert_eq!(plane.server("rs2").service_requests(), served);
        let all = traffic.stop();
        assert!(all.failures.is_empty(), "failed requests: {:?}", all.failures);
    }

    fn a_daemon_restart_changes_no_weight_and_fails_no_request() {
        let plane = plane(2);
        let (rs1, rs2) = (ip(&plane, "rs1"), ip(&plane, "rs2"));
        plane.server("rs1").set_health(Health::litmus(30));
        plane.server("rs2").set_health(Health::litmus(70));
        let dir = tempfile::tempdir().unwrap();
        let cfg = ConfigFile::new(&web(&plane, dir.path(), &["rs1", "rs2"], ""));
        let steady = weights(&[(rs1, 30), (rs2, 70)]);
        let rt = runtime();
        let h = spawn_daemon(&rt, &cfg.path);
        rt.block_on(h.start("web")).unwrap();
        rt.block_on(until(&h, "web", S(30), "30/70", |s| kernel_weights(s) == steady));
        let nft_before = sh("nft list table ip bigbro");
        let traffic = Traffic::start(plane.clone(), 10);
        // Sample the kernel's weights every 20 ms for the rest of the test.
        let samples = Arc::new(std::sync::Mutex::new(Vec::new()));
        let sampler = {
            let samples = samples.clone();
            rt.spawn(async move {
                let client = bigbro::ipvs::Client::connect().await.unwrap();
                loop {
                    let w = read_weights(&client, 7).await;
                    samples.lock().unwrap().push(w);
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
            })
        };
        // The in-process daemon stops (as on SIGTERM) ...
        rt.block_on(h.shutdown());
        // ... and the real binary takes over, twice.
        for round in 1..=2 {
            let log = dir.path().join(format!("daemon{round}.log"));
            let d = DaemonProcess::start(&cfg.path, &log);
            d.wait_log("resuming previously running cluster web", 1);
            // Several probe rounds (1 s apart) and an anti-entropy pass (3 s).
            traffic.wait_requests(50);
            let deadline = Instant::now() + S(4);
            while Instant::now() < deadline {
                traffic.wait_requests(10);
            }
            let status = d.terminate();
            assert!(status.success(), "exit status {status}: {}", std::fs::read_to_string(&log).unwrap());
            let text = std::fs::read_to_string(&log).unwrap();
            assert!(!text.contains("panicked"), "{text}");
            assert_eq!(
                sh("ipvsadm -S -n"),
                format!(
                    "-A -f 7 -s wrr\n-a -f 7 -r {rs1}:0 -i -w 30 --tun-type ipip\n\
                     -a -f 7 -r {rs2}:0 -i -w 70 --tun-type ipip\n"
                ),
                "SIGTERM leaves IPVS as it is"
            );
            assert_eq!(sh("nft list table ip bigbro"), nft_before, "and the mark rules");
        }
        sampler.abort();
        let samples = samples.lock().unwrap().clone();
        assert!(samples.len() > 100, "{} samples", samples.len());
        let changed: Vec<_> = samples.iter().filter(|w| **w != steady).collect();
        assert!(changed.is_empty(), "weights changed across restarts: {changed:?}");
        let all = traffic.stop();
        assert!(all.failures.is_empty(), "failed requests: {:?}", all.failures);
        assert!(all.answered() >= 100);
    }

    fn sighup_with_a_broken_config_changes_nothing() {
        let plane = plane(2);
        let (rs1, rs2) = (ip(&plane, "rs1"), ip(&plane, "rs2"));
        let dir = tempfile::tempdir().unwrap();
        let text = web(&plane, dir.path(), &["rs1", "rs2"], "");
        let cfg = ConfigFile::new(&text);
        let (mut d, want) = binary_took_over(&cfg, dir.path(), rs1, rs2);
        let nft_before = sh("nft list ruleset");
        let traffic = Traffic::start(plane.clone(), 10);
        traffic.wait_requests(20);
        cfg.write(&text.replace("scheduler: wrr", "scheduler: [wrr").replace("fwmark: 7", "fwmark: seven"));
        d.signal(Signal::SIGHUP);
        d.wait_log("is not valid", 1);
        traffic.wait_requests(30);
        assert!(d.is_running(), "a broken file must not stop the daemon:\n{}", d.log());
        assert_eq!(sh("ipvsadm -S -n"), want, "IPVS unchanged");
        assert_eq!(sh("nft list ruleset"), nft_before, "nf_tables unchanged");
        let log = d.log();
        assert!(log.contains("the running configuration is unchanged"), "{log}");
        // Still at work on the old configuration: a failing node is still drained.
        plane.server("rs2").set_health(Health::down());
        poll(S(30), "rs2 drained", || {
            sh("ipvsadm -S -n").contains(&format!("-r {rs2}:0 -i -w 0")).then_some(())
        });
        let all = traffic.stop();
        assert!(all.failures.is_empty(), "failed requests: {:?}", all.failures);
        assert!(d.terminate().success());
    }

    fn sighup_with_a_new_scheduler_changes_it_in_the_kernel() {
        let plane = plane(2);
        let (rs1, rs2) = (ip(&plane, "rs1"), ip(&plane, "rs2"));
        let dir = tempfile::tempdir().unwrap();
        // The fwmark routing of `plane` alone, as before bigbro owned VIPs: while the
        // kernel swaps a service's scheduler (an RCU grace period) IPVS has no scheduler
        // and answers a new connection with ICMP port unreachable from the VIP. When the
        // VIP is a local address (bigbro's default) that answer goes out and the client
        // sees "connection refused"; with fwmark routing alone the VIP is no local
        // address, the kernel cannot send it, and the client's SYN is simply retried.
        // What this test checks (the scheduler changes, no request fails) holds here; the
        // refusal with an owned VIP is the kernel's, documented in the operator guide.
        let text = web(&plane, dir.path(), &["rs1", "rs2"], "    vip_mode: none\n");
        let cfg = ConfigFile::new(&text);
        let (d, want) = binary_took_over(&cfg, dir.path(), rs1, rs2);
        let dests = want.trim_start_matches("-A -f 7 -s wrr\n").to_string();
        let traffic = Traffic::start(plane.clone(), 10);
        traffic.wait_requests(20);
        cfg.write(&text.replace("scheduler: wrr", "scheduler: wlc"));
        d.signal(Signal::SIGHUP);
        poll(S(30), "scheduler wlc", || {
            (sh("ipvsadm -S -n") == format!("-A -f 7 -s wlc\n{dests}")).then_some(())
        });
        d.wait_log("configuration reloaded", 1);
        traffic.wait_requests(30);
        let all = traffic.stop();
        assert!(all.failures.is_empty(), "failed requests: {:?}", all.failures);
        assert!(d.terminate().success());
    }

    fn ipvsadm_clear_by_hand_is_repaired_within_one_anti_entropy_interval() {
        let plane = plane(2);
        let (rs1, rs2) = (ip(&plane, "rs1"), ip(&plane, "rs2"));
        let dir = tempfile::tempdir().unwrap();
        let cfg = ConfigFile::new(&web(&plane, dir.path(), &["rs1", "rs2"], ""));
        let (rt, h) = started(&cfg, &[rs1, rs2]);
        let want = sh("ipvsadm -S -n");
        let rules = sh("nft list table ip bigbro");
        let traffic = Traffic::start(plane.clone(), 10);
        traffic.wait_requests(20);
        let interval = S(3);
        for (what, command) in [
            ("ipvsadm -C", "ipvsadm -C && nft delete table ip bigbro".to_string()),
            ("ipvsadm -e", format!("ipvsadm -e -f 7 -r {rs1} -i -w 5")),
            ("ipvsadm -d", format!("ipvsadm -d -f 7 -r {rs2}")),
        ] {
            sh(&command);
            let edited = unix_now();
            // The first pass that starts after the edit and finds the kernel as wanted
            // (an event of the daemon's, so no process polls the kernel meanwhile).
            let repaired = rt.block_on(until_pass_after(&h, "web", edited, interval + S(5), what, |s| {
                kernel_weights(s) == weights(&[(rs1, 100), (rs2, 100)])
            }));
            let took = Duration::from_secs_f64(repaired - edited);
            eprintln!("{what} repaired after {took:?}");
            // One interval, plus the pass itself under TCG.
            assert!(took <= interval + Duration::from_millis(1000), "{what}: {took:?}");
            assert_eq!(sh("ipvsadm -S -n"), want);
            assert_eq!(sh("nft list table ip bigbro"), rules);
        }
        let repairs = h.metrics().repairs;
        assert!(repairs >= 5, "{repairs} repairs counted");
        // Requests fail while the service is gone, and only then.
        let after = traffic.wait_requests(30);
        assert!(after.failures.is_empty(), "after the repair: {:?}", after.failures);
        drop(traffic);
    }

    fn stopping_a_cluster_removes_exactly_its_services() {
        let plane = plane(2);
        let dir = tempfile::tempdir().unwrap();
        let vip = plane.vip();
        let text = [
            settings(dir.path(), 3),
            "  sync_daemon: {role: master, interface: cl0, syncid: 5}\n".into(),
            "clusters:\n".into(),
            "  - cluster_name: web\n    fwmark: 7\n    scheduler: wrr\n    check_interval: 1\n".into(),
            HEALTH.into(),
            "    ramp_up_time: 0\n    multi_datacenter: true\n".into(),
            format!("    vips: [{{address: {vip}, port: {SERVICE_PORT}}}]\n    nodes:\n"),
            nodes(&plane, &["rs1", "rs2"]),
            "  - cluster_name: db\n    fwmark: 8\n    scheduler: wlc\n    check_interval: 1\n".into(),
            HEALTH.into(),
            format!("    ramp_up_time: 0\n    vips: [{{address: {vip}, port: 5432}}]\n    nodes:\n"),
            nodes(&plane, &["rs2"]),
        ]
        .concat();
        let cfg = ConfigFile::new(&text);
        // Foreign state bigbro must never touch.
        sh(&format!("ipvsadm -A -f 99 -s rr && ipvsadm -a -f 99 -r {} -i -w 3", plane.server("rs1").addr()));
        sh("nft add table ip foreign && nft add chain ip foreign c");
        let rt = runtime();
        let h = spawn_daemon(&rt, &cfg.path);
        rt.block_on(h.start("web")).unwrap();
        rt.block_on(h.start("db")).unwrap();
        rt.block_on(until(&h, "db", S(30), "db at 100", |s| s.combined_weight == 100));
        rt.block_on(until(&h, "web", S(30), "web at 200", |s| s.combined_weight == 200));
        let all = sh("ipvsadm -S -n");
        for line in ["-A -f 7 -s wrr", "-A -f 10007 -s wrr", "-A -f 8 -s wlc", "-A -f 99 -s rr"] {
            assert!(all.contains(line), "{line} missing from\n{all}");
        }
        let daemons = sh("ipvsadm -L -n --daemon");
        assert!(daemons.contains("master sync daemon (mcast=cl0, syncid=5"), "{daemons}");
        let traffic = Traffic::start(plane.clone(), 10);
        traffic.wait_requests(20);
        let db_lines: String = all.lines().filter(|l| l.contains(" -f 8 ")).map(|l| format!("{l}\n")).collect();
        let foreign: String = all.lines().filter(|l| l.contains(" -f 99 ")).map(|l| format!("{l}\n")).collect();
        assert_eq!(rt.block_on(h.stop("web")), Ok(StopOutcome::Stopped));
        assert_eq!(sh("ipvsadm -S -n"), format!("{db_lines}{foreign}"), "web and its relay gone, nothing else");
        let ruleset = sh("nft list ruleset");
        assert!(ruleset.contains("table ip foreign"), "{ruleset}");
        assert!(ruleset.contains("tcp dport 5432 meta mark set 0x00000008"), "{ruleset}");
        assert!(!ruleset.contains("meta mark set 0x00000007"), "{ruleset}");
        assert!(sh("ipvsadm -L -n --daemon").contains("master sync daemon"), "the sync daemon stays");
        // web's traffic now has nowhere to go; db is untouched.
        assert_eq!(rt.block_on(h.stop("web")), Ok(StopOutcome::NotRunning));
        assert!(rt.block_on(h.status("db")).unwrap().running);
        drop(traffic);
    }

    fn downpage_takes_over_a_dead_cluster_and_leaves_on_recovery() {
        let plane = plane(3);
        let (rs1, rs2, rs3) = (ip(&plane, "rs1"), ip(&plane, "rs2"), ip(&plane, "rs3"));
        let dir = tempfile::tempdir().unwrap();
        // rs3 plays the downpage server.
        let extra = format!("    has_downpage: true\n    downpage_address: {rs3}\n");
        let text = web(&plane, dir.path(), &["rs1", "rs2"], &extra);
        let cfg = ConfigFile::new(&text);
        let (rt, h) = started(&cfg, &[rs1, rs2]);
        let traffic = Traffic::start(plane.clone(), 10);
        traffic.wait_requests(20);
        plane.server("rs1").set_health(Health::down());
        plane.server("rs2").set_health(Health::down());
        let s = rt.block_on(until(&h, "web", S(30), "the downpage", |s| {
            kernel_weights(s) == weights(&[(rs1, 0), (rs2, 0), (rs3, 1)])
        }));
        assert!(s.downpage.as_ref().unwrap().active);
        let down = traffic.wait_requests(30);
        assert_eq!(down.count("rs3"), down.answered(), "everything to the downpage: {down:?}");
        plane.server("rs1").set_health(Health::litmus(100));
        rt.block_on(until(&h, "web", S(30), "recovery", |s| {
            kernel_weights(s) == weights(&[(rs1, 100), (rs2, 0)])
        }));
        let up = traffic.wait_requests(30);
        assert_eq!(up.count("rs1"), up.answered(), "back to rs1: {up:?}");
        // The real servers never stopped serving (only their health said so), some server
        // took connections at every moment, and the downpage was drained before it was
        // deleted: no request failed.
        let all = traffic.stop();
        assert!(all.failures.is_empty(), "failed requests: {:?}", all.failures);
        // big_brother's issue #25: removing has_downpage while it is in place removes it.
        plane.server("rs1").set_health(Health::down());
        rt.block_on(until(&h, "web", S(30), "the downpage again", |s| kernel_weights(s).get(&rs3) == Some(&1)));
        cfg.write(&text.replace(&extra, ""));
        rt.block_on(h.reload()).unwrap();
        rt.block_on(until(&h, "web", S(30), "the downpage gone", |s| !kernel_weights(s).contains_key(&rs3)));
    }

    fn active_passive_fails_over_without_failing_a_request() {
        let plane = plane(2);
        let (rs1, rs2) = (ip(&plane, "rs1"), ip(&plane, "rs2"));
        let dir = tempfile::tempdir().unwrap();
        let text = web(&plane, dir.path(), &["rs1", "rs2"], "    backend_mode: active_passive\n")
            .replace(&format!("{rs2}, port: 9292, path: /web/status}}"), &format!("{rs2}, port: 9292, path: /web/status, priority: 1}}"));
        let cfg = ConfigFile::new(&text);
        let rt = runtime();
        let h = spawn_daemon(&rt, &cfg.path);
        rt.block_on(h.start("web")).unwrap();
        // Only the preferred node (at 1 until its first probe, which may already be in).
        let dests: Vec<String> = sh("ipvsadm -S -n")
            .lines()
            .filter(|l| l.starts_with("-a "))
            .map(|l| l.split_whitespace().nth(4).unwrap_or("").to_string())
            .collect();
        assert_eq!(dests, [format!("{rs1}:0")], "only the preferred node");
        rt.block_on(until(&h, "web", S(30), "rs1 active at 100", |s| kernel_weights(s) == weights(&[(rs1, 100)])));
        let traffic = Traffic::start(plane.clone(), 10);
        let before = traffic.wait_requests(20);
        assert_eq!(before.count("rs1"), before.answered());
        plane.server("rs1").set_health(Health::down());
        // The new active node goes in and the old one drains at 0 in the same batch, then
        // goes once its connections are done: one node takes new connections at any time.
        let s = rt.block_on(until(&h, "web", S(30), "failover to rs2", |s| {
            kernel_weights(s) == weights(&[(rs1, 0), (rs2, 100)])
        }));
        assert_eq!(s.active_node, Some(rs2));
        rt.block_on(until(&h, "web", S(30), "rs1 deleted after draining", |s| {
            kernel_weights(s) == weights(&[(rs2, 100)])
        }));
        let after = traffic.wait_requests(30);
        assert_eq!(after.count("rs2"), after.answered(), "{after:?}");
        plane.server("rs1").set_health(Health::litmus(100));
        rt.block_on(until(&h, "web", S(30), "failback to rs1", |s| kernel_weights(s).get(&rs1) == Some(&100)));
        let back = traffic.wait_requests(20);
        assert_eq!(back.count("rs1"), back.answered(), "{back:?}");
        let all = traffic.stop();
        assert!(all.failures.is_empty(), "failed requests: {:?}", all.failures);
    }

    fn the_relay_service_holds_local_nodes_and_remote_load_balancers_stay_on_the_main_fwmark() {
        let plane = Arc::new(DataPlane::with(Config {
            servers: 3,
            service_ports: vec![SERVICE_PORT, 81],
            ..Config::default()
        }));
        plane.route_fwmark_locally(7);
        plane.route_fwmark_locally(10007);
        let (rs1, rs2, rs3) = (ip(&plane, "rs1"), ip(&plane, "rs2"), ip(&plane, "rs3"));
        let rt = runtime();
        // interpol: lists rs3 as the other datacenter's load balancer, health 40.
        let answer = Arc::new(std::sync::Mutex::new(format!(
            r#"[{{"lb_ip_address":"{rs3}","health":40,"lb_source_location":"west"}}]"#
        )));
        let port = rt.block_on(interpol_server(answer.clone()));
        let dir = tempfile::tempdir().unwrap();
        let text = web(&plane, dir.path(), &["rs1", "rs2"], "    multi_datacenter: true\n    max_down_ticks: 1\n")
            + &format!("      - {{address: 127.0.0.1, port: {port}, interpol: true}}\n");
        let cfg = ConfigFile::new(&text);
        let h = spawn_daemon(&rt, &cfg.path);
        rt.block_on(h.start("web")).unwrap();
        let s = rt.block_on(until(&h, "web", S(30), "remote LB and local nodes", |s| {
            kernel_weights(s) == weights(&[(rs1, 100), (rs2, 100), (rs3, 40)])
        }));
        let relay: BTreeMap<IpAddr, u32> = s.relay_kernel.as_ref().unwrap().dests.iter().map(|d| (d.address, d.weight)).collect();
        assert_eq!(relay, weights(&[(rs1, 100), (rs2, 100)]), "the relay holds local nodes only");
        // Traffic relayed from another datacenter arrives marked with the relay fwmark
        // (by rules outside bigbro): here, VIP:81.
        sh(&format!(
            "nft add table ip relay && nft add chain ip relay pre '{{ type filter hook prerouting priority mangle; }}' \
             && nft add rule ip relay pre ip daddr {} tcp dport 81 meta mark set 10007",
            plane.vip()
        ));
        let relayed = plane.client().tally(plane.vip_addr(81), 40);
        assert!(relayed.failures.is_empty(), "{:?}", relayed.failures);
        assert_eq!(relayed.count("rs3"), 0, "relayed traffic never leaves for a remote LB");
        assert_eq!(relayed.count("rs1") + relayed.count("rs2"), 40);
        let direct = plane.client().tally(plane.vip_addr(SERVICE_PORT), 36);
        assert!(direct.count("rs3") > 0, "the main service uses the remote LB: {direct:?}");
        // interpol stops listing it: weight 0, then removed after max_down_ticks misses.
        *answer.lock().unwrap() = "[]".into();
        rt.block_on(until(&h, "web", S(30), "remote removed", |s| !kernel_weights(s).contains_key(&rs3)));
        let m = h.metrics();
        assert!(m.interpol_polls >= 2, "{m:?}");
    }

    /// Persistence and scheduler flags from the configuration are what the real kernel
    /// lists, and a reload changing the persistence timeout edits the service in place
    /// (`ipvsadm -E`): its connection counter is kept, where a service deleted and added
    /// again would count from 0.
    fn persistence_and_mh_flags_reach_the_kernel_and_a_reload_edits_them_in_place() {
        let plane = plane(2);
        let (rs1, rs2) = (ip(&plane, "rs1"), ip(&plane, "rs2"));
        let dir = tempfile::tempdir().unwrap();
        let options = "    persistence: {timeout: 300, netmask: 24}\n    scheduler_flags: [mh-fallback, mh-port]\n";
        let text = web(&plane, dir.path(), &["rs1", "rs2"], options).replace("scheduler: wrr", "scheduler: mh");
        let cfg = ConfigFile::new(&text);
        let (rt, h) = started(&cfg, &[rs1, rs2]);
        let line = |timeout: u32| format!("-A -f 7 -s mh -p {timeout} -M 255.255.255.0 -b mh-fallback,mh-port\n");
        let saved = sh("ipvsadm -S -n");
        assert!(saved.starts_with(&line(300)), "{saved}");
        let served = plane.client().tally(plane.vip_addr(SERVICE_PORT), 20);
        assert!(served.failures.is_empty(), "{:?}", served.failures);
        // The kernel sums its per-CPU counters every 2 s: wait until all 20 are counted.
        let counted = |n: u64| poll(S(10), &format!("{n} connections counted"), || {
            let conns = service_conns(7);
            (conns >= n).then_some(conns)
        });
        let before = counted(20);
        cfg.write(&text.replace("timeout: 300", "timeout: 600"));
        rt.block_on(h.reload()).unwrap();
        poll(S(10), "persistence timeout 600", || sh("ipvsadm -S -n").starts_with(&line(600)).then_some(()));
        let served = plane.client().tally(plane.vip_addr(SERVICE_PORT), 10);
        assert!(served.failures.is_empty(), "{:?}", served.failures);
        // The check is the poll: created again, the service would count these 10 alone
        // and never reach before + 10.
        counted(before + 10);
    }
}

/// The connection counter of fwmark service `mark` (`ipvsadm -L -n --stats --exact`).
fn service_conns(mark: u32) -> u64 {
    let out = sh("ipvsadm -L -n --stats --exact");
    out.lines()
        .find_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            (f.len() > 2 && f[0] == "FWM" && f[1] == mark.to_string())
                .then(|| f[2].parse().unwrap())
        })
        .unwrap_or_else(|| panic!("no FWM {mark} in:\n{out}"))
}

/// A minimal interpol on 127.0.0.1: answers every `GET /fwmark/N` with `answer`.
async fn interpol_server(answer: Arc<std::sync::Mutex<String>>) -> u16 {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        loop {
            let Ok((mut stream, _)) = listener.accept().await else {
                continue;
            };
            let answer = answer.clone();
            tokio::spawn(async move {
                let mut buf = vec![0u8; 4096];
                let _ = stream.read(&mut buf).await;
                let body = answer.lock().unwrap().clone();
                let reply = format!(
                    "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = stream.write_all(reply.as_bytes()).await;
            });
        }
    });
    port
}
