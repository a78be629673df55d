//! Passes limited to the services whose desired state changed, on the real kernel: a
//! pass over one service reads it alone (GET_SERVICE, then its destinations), writes only
//! to it, recreates it when it was deleted by hand, and reports what the kernel then holds;
//! in the daemon a weight change is applied by such a pass, leaving a hand edit of another
//! service alone, and the next anti-entropy pass repairs that edit.

use crate::daemon_bed;
use crate::testbed;

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;
use std::time::Duration;

use bigbro::daemon::{Handle, StartOutcome};
use bigbro::ipvs::{Client, Dest, Service, ServiceKey};
use bigbro::reconcile::{self, Desired, DesiredService, Reading};
use bigbro::types::Fwmark;
use daemon_bed::*;
use testbed::dataplane::{DataPlane, Health};
use testbed::{kernel_test, sh};

const S: fn(u64) -> Duration = Duration::from_secs;

fn key(mark: u32) -> ServiceKey {
    ServiceKey::fwmark_v4(Fwmark::new(mark).unwrap())
}

/// Services 7, 8 and 9, one IPIP destination each at `weight(mark)`.
fn desired(weight: impl Fn(u32) -> u32) -> Desired {
    let mut d = Desired::default();
    for mark in [7, 8, 9] {
        d.insert(DesiredService::new(
            Service::new(key(mark), "wrr"),
            [Dest::ipip(
                format!("10.0.0.{mark}").parse().unwrap(),
                weight(mark),
            )],
        ));
    }
    d
}

fn save_line(mark: u32, weight: u32) -> String {
    format!("-a -f {mark} -r 10.0.0.{mark}:0 -i -w {weight} --tun-type ipip\n")
}

fn passes(h: &Handle, trigger: &str) -> u64 {
    h.metrics().passes.get(trigger).copied().unwrap_or(0)
}

fn ip(plane: &DataPlane, name: &str) -> IpAddr {
    IpAddr::V4(plane.server(name).addr())
}

kernel_test! {
    fn a_pass_over_one_service_touches_only_it_and_recreates_it_when_gone() {
        testbed::block_on(async {
            let client = Client::connect().await.unwrap();
            let all = BTreeSet::from([key(7), key(8), key(9)]);
            let r = reconcile::pass(&client, &all, &desired(|m| m)).await;
            assert!(r.is_clean(), "{r:?}");
            // Behind bigbro's back: 7's weight changed, 9 deleted.
            sh("ipvsadm -e -f 7 -r 10.0.0.7 -i -w 55 && ipvsadm -D -f 9");
            let want = desired(|m| if m == 8 { 80 } else { m });
            let r = reconcile::pass_with(&client, &BTreeSet::from([key(8)]), &want, Reading::Each)
                .await;
            assert!(r.is_clean() && r.reread_error.is_none(), "{r:?}");
            assert_eq!(r.applied.len(), 1, "{:?}", r.applied);
            let observed = r.observed.unwrap();
            assert_eq!(observed.len(), 1);
            assert_eq!(observed[0].service.service.key, key(8));
            assert_eq!(observed[0].dests[0].dest.weight, 80, "read again after the write");
            assert_eq!(
                sh("ipvsadm -S -n"),
                format!("-A -f 7 -s wrr\n{}-A -f 8 -s wrr\n{}", save_line(7, 55), save_line(8, 80)),
                "7 and 9 are left as the operator left them"
            );
            // A service of the pass that is gone (GET_SERVICE: ESRCH) is created again.
            sh("ipvsadm -D -f 8");
            let r = reconcile::pass_with(&client, &BTreeSet::from([key(8)]), &want, Reading::Each)
                .await;
            assert!(r.is_clean(), "{r:?}");
            assert_eq!(r.applied.len(), 2, "{:?}", r.applied);
            assert!(sh("ipvsadm -S -n").contains(&save_line(8, 80)));
            // The full pass puts everything right.
            let r = reconcile::pass(&client, &all, &want).await;
            assert!(r.is_clean(), "{r:?}");
            assert_eq!(
                sh("ipvsadm -S -n"),
                format!(
                    "-A -f 7 -s wrr\n{}-A -f 8 -s wrr\n{}-A -f 9 -s wrr\n{}",
                    save_line(7, 7),
                    save_line(8, 80),
                    save_line(9, 9)
                )
            );
            let seen: BTreeMap<ServiceKey, u32> = r
                .observed
                .unwrap()
                .iter()
                .map(|o| (o.service.service.key, o.dests[0].dest.weight))
                .collect();
            assert_eq!(seen, BTreeMap::from([(key(7), 7), (key(8), 80), (key(9), 9)]));
        });
    }

    fn the_daemon_applies_a_weight_change_alone_and_anti_entropy_repairs_the_rest() {
        let plane = DataPlane::new(2);
        let (rs1, rs2) = (ip(&plane, "rs1"), ip(&plane, "rs2"));
        let dir = tempfile::tempdir().unwrap();
        let cluster = |name: &str, mark: u32, rs: &str| {
            format!(
                "  - cluster_name: {name}\n    fwmark: {mark}\n    scheduler: wrr\n    \
                 check_interval: 1\n    health: {{timeout: 0.9}}\n    ramp_up_time: 0\n    \
                 nodes:\n{}",
                nodes(&plane, &[rs])
            )
        };
        let cfg = ConfigFile::new(&format!(
            "{}clusters:\n{}{}",
            settings(dir.path(), 15),
            cluster("a", 7, "rs1"),
            cluster("b", 8, "rs2")
        ));
        let rt = runtime();
        let h = spawn_daemon(&rt, &cfg.path);
        for (name, rs) in [("a", rs1), ("b", rs2)] {
            assert_eq!(rt.block_on(h.start(name)), Ok(StartOutcome::Started));
            rt.block_on(until(&h, name, S(30), "at 100", |s| {
                kernel_weights(s) == BTreeMap::from([(rs, 100)])
            }));
        }
        // Right after an anti-entropy pass, so the next one is 15 s away.
        let before = passes(&h, "anti_entropy");
        poll(S(30), "an anti-entropy pass", || {
            (passes(&h, "anti_entropy") > before).then_some(())
        });
        let anti_entropy = passes(&h, "anti_entropy");
        sh(&format!("ipvsadm -e -f 8 -r {rs2} -i -w 5"));
        plane.server("rs1").set_health(Health::litmus(40));
        rt.block_on(until(&h, "a", S(10), "a at 40", |s| {
            kernel_weights(s) == BTreeMap::from([(rs1, 40)])
        }));
        let last = h.daemon_status().last_pass.unwrap();
        assert_eq!(passes(&h, "anti_entropy"), anti_entropy, "no anti-entropy pass yet");
        assert!(!last.full && last.services == 1, "{last:?}");
        let save = sh("ipvsadm -S -n");
        assert!(save.contains(&format!("-a -f 7 -r {rs1}:0 -i -w 40 ")), "{save}");
        assert!(save.contains(&format!("-a -f 8 -r {rs2}:0 -i -w 5 ")), "b untouched: {save}");
        // The next anti-entropy pass reads everything and puts b back.
        // (b's status shows it as the last pass that read it: at 100 until then.)
        let repaired = format!("-a -f 8 -r {rs2}:0 -i -w 100 ");
        poll(S(30), "b repaired", || sh("ipvsadm -S -n").contains(&repaired).then_some(()));
        // The kernel shows the repair while the pass that made it is still running; the
        // pass is counted (and published) when it ends, within the same pass.
        poll(S(5), "the repairing pass counted as anti-entropy", || {
            (passes(&h, "anti_entropy") > anti_entropy).then_some(())
        });
        assert!(h.metrics().repairs >= 1);
        let save = sh("ipvsadm -S -n");
        assert!(save.contains(&format!("-a -f 7 -r {rs1}:0 -i -w 40 ")), "{save}");
        drop(h);
        drop(rt);
    }
}
