//! Service options and node thresholds from the configuration to the kernel: `bigbro
//! check` prints them in `ipvsadm -S -n` syntax (thresholds as `-x`/`-y`, which `ipvsadm
//! -S` leaves out), a daemon on the fake kernel programs what the plan says, and a reload
//! that changes them edits the services and destinations in place (`ipvsadm -E`/`-e`),
//! never deleting and re-adding them, which would drop the persistence entries and the
//! connection counters of a live service.

use super::plan::{self, ipvs_text};
use super::test_util::text;
use crate::daemon::testing::spawn_fake;
use crate::daemon::StartOutcome;
use crate::health::Script;
use crate::ipvs::Op;

fn dns(timeout: u32, thresholds: [&str; 2]) -> String {
    format!(
        "\
clusters:
  - cluster_name: dns
    fwmark: 53
    scheduler: mh
    persistence: {{timeout: {timeout}, netmask: 24}}
    scheduler_flags: [mh-port, mh-fallback]
    one_packet: true
    multi_datacenter: true
    health: {{kind: tcp}}
    vips: [{{address: 192.0.2.53, protocol: udp, port: 53}}]
    nodes:
      - {{address: 10.0.0.1, port: 8053{}}}
      - {{address: 10.0.0.2, port: 8053{}}}
",
        thresholds[0], thresholds[1]
    )
}

#[test]
fn check_prints_persistence_flags_one_packet_and_thresholds() {
    let m = super::test_util::model(&dns(
        300,
        [", upper_threshold: 100, lower_threshold: 50", ""],
    ));
    assert_eq!(
        ipvs_text(&m),
        "-A -f 53 -s mh -p 300 -M 255.255.255.0 -o -b mh-fallback,mh-port\n\
         -a -f 53 -r 10.0.0.1:0 -i -w 1 --tun-type ipip -x 100 -y 50\n\
         -a -f 53 -r 10.0.0.2:0 -i -w 1 --tun-type ipip\n\
         -A -f 10053 -s mh -p 300 -M 255.255.255.0 -o -b mh-fallback,mh-port\n\
         -a -f 10053 -r 10.0.0.1:0 -i -w 1 --tun-type ipip -x 100 -y 50\n\
         -a -f 10053 -r 10.0.0.2:0 -i -w 1 --tun-type ipip\n"
    );
    let v6 = super::test_util::model(
        "clusters:\n  - {cluster_name: v6, fwmark: 6, scheduler: sh, persistence: {netmask: 64}, \
         scheduler_flags: [sh-port], nodes: [{address: 'fd00::1', port: 80, path: /}]}\n",
    );
    assert_eq!(
        ipvs_text(&v6).lines().next(),
        Some("-A -f 6 -6 -s sh -p 300 -M 64 -b sh-port")
    );
}

#[tokio::test(start_paused = true)]
async fn a_reload_changing_options_edits_in_place() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bigbro.yml");
    std::fs::write(&path, dns(300, [", upper_threshold: 100", ""])).unwrap();
    let fake = spawn_fake(&path).unwrap_or_else(|e| panic!("{e}"));
    fake.prober.set_default(Script::Hang);
    let h = &fake.handle;
    assert!(matches!(h.start("dns").await, Ok(StartOutcome::Started)));
    let model = crate::config::load(&path).unwrap();
    assert_eq!(
        fake.kernel.save(),
        text(&plan::plan(&model).desired),
        "the daemon programs the plan"
    );
    let before = fake.kernel.log.lock().unwrap().len();

    std::fs::write(
        &path,
        dns(600, [", upper_threshold: 200", ", upper_threshold: 5"]),
    )
    .unwrap();
    h.reload().await.unwrap();
    let log = fake.kernel.log.lock().unwrap()[before..].to_vec();
    let services: Vec<u32> = log
        .iter()
        .filter_map(|op| match op {
            Op::EditService(s) => Some(s.timeout),
            _ => None,
        })
        .collect();
    assert_eq!(services, [600, 600], "main and relay edited: {log:?}");
    let dests: Vec<(String, u32)> = log
        .iter()
        .filter_map(|op| match op {
            Op::EditDest { dest, .. } => Some((dest.addr.to_string(), dest.upper_threshold)),
            _ => None,
        })
        .collect();
    assert_eq!(dests.len(), 4, "both nodes on both services: {log:?}");
    assert!(dests.contains(&("10.0.0.1".into(), 200)) && dests.contains(&("10.0.0.2".into(), 5)));
    assert_eq!(
        log.len(),
        services.len() + dests.len(),
        "edits only, nothing deleted or re-added: {log:?}"
    );
    let table = fake.kernel.save();
    assert!(
        table.starts_with("-A -f 53 -s mh -p 600 -M 255.255.255.0 -o -b mh-fallback,mh-port\n"),
        "{table}"
    );
    fake.task.abort();
}

/// `start_weight` on the daemon's own paths: the nodes of a cluster it starts, and a node
/// a reload adds, enter IPVS at that weight while no probe has answered.
#[tokio::test(start_paused = true)]
async fn start_and_reload_add_nodes_at_the_start_weight() {
    let text = |start: &str, nodes: &str| {
        format!(
            "clusters:\n  - {{cluster_name: web, fwmark: 7, scheduler: wrr, health: {{kind: tcp}}, {start}\
             nodes: [{nodes}]}}\n"
        )
    };
    let one = "{address: 10.0.0.1, port: 80}";
    let two = "{address: 10.0.0.1, port: 80}, {address: 10.0.0.2, port: 80}";
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bigbro.yml");
    let weights = |fake: &crate::daemon::testing::Fake| -> Vec<String> {
        fake.kernel
            .save()
            .lines()
            .filter_map(|l| l.split(" -w ").nth(1))
            .map(|w| w.split(' ').next().unwrap().to_string())
            .collect()
    };
    for (start, at_start, added) in [
        ("", "1", "0"),
        ("start_weight: 0, ", "0", "0"),
        ("start_weight: 7, ", "7", "7"),
    ] {
        std::fs::write(&path, text(start, one)).unwrap();
        let fake = spawn_fake(&path).unwrap_or_else(|e| panic!("{e}"));
        fake.prober.set_default(Script::Hang);
        assert!(matches!(
            fake.handle.start("web").await,
            Ok(StartOutcome::Started)
        ));
        assert_eq!(weights(&fake), [at_start], "{start:?} at start");
        std::fs::write(&path, text(start, two)).unwrap();
        fake.handle.reload().await.unwrap();
        assert_eq!(
            weights(&fake),
            [at_start, added],
            "{start:?} after the reload"
        );
        fake.task.abort();
    }
}
