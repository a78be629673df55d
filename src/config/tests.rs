//! Tests of the whole loading pipeline through [`parse`]: each spelling, the defaults
//! merge, bigbro's defaults, and every validation rule with its exact message and
//! position. Garbage of every kind must give errors, never a panic.

use std::net::IpAddr;
use std::path::PathBuf;
use std::time::Duration;

use super::*;
use crate::ipvs::Family;
use crate::nft::{L4Proto, PortRange};
use crate::types::Weight;

fn errs(text: &str) -> Vec<String> {
    match parse("config.yml", text) {
        Ok(m) => panic!("expected errors, got a valid model: {m:#?}"),
        Err(e) => e.lines(),
    }
}

fn ok(text: &str) -> Model {
    match parse("config.yml", text) {
        Ok(m) => m,
        Err(e) => panic!("expected a valid configuration, got:\n{e}"),
    }
}

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

/// One valid cluster; line 6 is its node.
const BASE: &str = "\
clusters:
  - cluster_name: web
    fwmark: 7
    scheduler: wlc
    nodes:
      - {address: 10.0.0.1, port: 9001, path: /web/status}
";

/// BASE with `extra` lines added to the cluster (after `scheduler`, line 5 on).
fn with_cluster_keys(extra: &str) -> String {
    let mut s =
        String::from("clusters:\n  - cluster_name: web\n    fwmark: 7\n    scheduler: wlc\n");
    s.push_str(extra);
    s.push_str("    nodes:\n      - {address: 10.0.0.1, port: 9001, path: /web/status}\n");
    s
}

const REFERENCE_2_2: &str = include_str!("../../tests/fixtures/big_brother_reference.yml");

#[test]
fn the_reference_example_reads_as_big_brother_meant_it() {
    let m = ok(REFERENCE_2_2);
    assert_eq!(m.spelling, Spelling::BigBrother);
    assert_eq!(m.clusters.len(), 1);
    let c = &m.clusters[0];
    assert_eq!(c.name.as_str(), "test1");
    assert_eq!(c.fwmark.get(), 1);
    assert_eq!(c.scheduler, Scheduler::Wrr);
    // the cluster's check_interval wins over the default's
    assert_eq!(c.check_interval, Duration::from_secs(1));
    assert_eq!(c.backend_mode, BackendMode::ActivePassive);
    assert_eq!(c.ramp_up_time, Duration::from_secs(120));
    assert_eq!(c.downpage, Some(ip("169.254.254.254")));
    assert_eq!(c.max_down_ticks, 100);
    assert_eq!(c.non_egress_locations, ["test"]);
    assert_eq!(c.offset, 10_000);
    assert!(!c.multi_datacenter);
    assert_eq!(
        c.nagios,
        Some(Nagios {
            server: "nsca.host".into(),
            host: "prod-load".into(),
            check: "test1_status".into()
        })
    );
    assert_eq!(
        c.nodes,
        [Node {
            address: ip("127.0.0.1"),
            port: 9001,
            path: "/test/valid".into(),
            priority: 0,
            max_weight: None,
            upper_threshold: 0,
            lower_threshold: 0,
        }]
    );
    assert_eq!(
        c.interpol,
        [InterpolNode {
            address: ip("196.168.0.2"),
            port: 9292
        }]
    );
    // bigbro's defaults for what big_brother did not have
    assert_eq!(c.forwarding, Forwarding::Ipip);
    assert_eq!(
        c.health,
        HealthCheck {
            kind: ProbeKind::Litmus,
            timeout: Duration::from_millis(500),
            rise: 1,
            fall: 1
        }
    );
    assert!(c.vips.is_empty());
    assert_eq!(c.family, Family::V4);
}

#[test]
fn bigbro_defaults_fill_every_unset_key() {
    let m = ok(BASE);
    let c = &m.clusters[0];
    assert_eq!(c.check_interval, Duration::from_secs(2));
    assert_eq!(c.ramp_up_time, Duration::from_secs(60));
    assert_eq!(c.backend_mode, BackendMode::ActiveActive);
    assert_eq!(c.downpage, None);
    assert_eq!(c.max_down_ticks, 0);
    assert_eq!(c.offset, 10_000);
    assert!(!c.multi_datacenter);
    assert_eq!(c.relay_fwmark(), None);
    assert_eq!(c.nagios, None);
    assert_eq!(c.forwarding, Forwarding::Ipip);
    assert_eq!(c.health.kind, ProbeKind::Litmus);
    assert_eq!(c.health.timeout, Duration::from_secs(1));
    assert_eq!((c.health.rise, c.health.fall), (1, 1));
    assert_eq!(c.nodes[0].priority, 0);
    assert_eq!(c.nodes[0].max_weight, None);
    let s = &m.settings;
    assert_eq!(s.api.listen, "127.0.0.1:9292".parse().unwrap());
    assert_eq!(s.api.token_file, None);
    assert_eq!(s.data_dir, PathBuf::from("/etc/big_brother"));
    assert_eq!(s.state_dir, PathBuf::from("/var/lib/bigbro"));
    assert_eq!(s.anti_entropy_interval, Duration::from_secs(30));
    assert_eq!(s.sync_daemon, None);
    assert_eq!(s.vip_interface, "bigbro0");
    assert_eq!(c.vip_mode, VipMode::Address);
}

#[test]
fn the_vip_interface_and_mode_are_read_and_checked() {
    let text = format!(
        "bigbro: {{vip_interface: vip0}}\n_big_brother: {{vip_mode: none}}\n{}",
        with_cluster_keys("    vips: [{address: 127.0.0.2, port: 80}]\n")
    );
    let m = ok(&text);
    assert_eq!(m.settings.vip_interface, "vip0");
    assert_eq!(
        m.clusters[0].vip_mode,
        VipMode::None,
        "merged from _big_brother; a vip an interface cannot hold is fine for marks"
    );
    let text = format!(
        "bigbro: {{vip_interface: 'big bro'}}\n{}",
        with_cluster_keys("    vip_mode: anycast\n    vips: [{address: 127.0.0.2, port: 80}]\n")
    );
    assert_eq!(
        errs(&text),
        [
            "config.yml:1:25: bigbro.vip_interface: \"big bro\" is not an interface name (1 to 15 characters, no '/', ':' or spaces)",
            "config.yml:6:15: clusters[0].vip_mode: \"anycast\" is not a vip mode (one of: address, none)",
        ]
    );
    assert_eq!(
        errs(&with_cluster_keys("    vips: [{address: 127.0.0.2, port: 80}]\n")),
        [
            "config.yml:5:22: clusters[0].vips[0].address: 127.0.0.2 is not a unicast address an interface can hold (unspecified, multicast, broadcast, loopback or link-local); with vip_mode: address bigbro puts every vip on its interface (write vip_mode: none to only mark it)",
        ]
    );
}

#[test]
fn the_default_timeout_stays_under_a_short_interval() {
    let m = ok(&with_cluster_keys("    check_interval: 0.5\n"));
    assert_eq!(m.clusters[0].check_interval, Duration::from_millis(500));
    assert_eq!(m.clusters[0].health.timeout, Duration::from_millis(250));
}

#[test]
fn defaults_merge_deeply_and_the_cluster_wins() {
    let m = ok("\
_big_brother:
  scheduler: wrr
  ramp_up_time: 30
  nagios: {server: 10.1.0.5, host: lb, check: default_check}
  health: {kind: http, timeout: 0.5, rise: 3}
clusters:
  - cluster_name: a
    fwmark: 1
    ramp_up_time: 0
    nagios: {check: a_check}
    health: {rise: 5, fall: 2}
    nodes: [{address: 10.0.0.1, port: 80}]
  - cluster_name: b
    fwmark: 2
    scheduler: sh
    nagios: ~
    nodes: [{address: 10.0.0.2, port: 80}]
");
    let a = &m.clusters[0];
    assert_eq!(a.scheduler, Scheduler::Wrr);
    assert_eq!(a.ramp_up_time, Duration::ZERO);
    assert_eq!(
        a.nagios,
        Some(Nagios {
            server: "10.1.0.5".into(),
            host: "lb".into(),
            check: "a_check".into()
        })
    );
    assert_eq!(
        a.health,
        HealthCheck {
            kind: ProbeKind::Http,
            timeout: Duration::from_millis(500),
            rise: 5,
            fall: 2
        }
    );
    // http probes default their path to /
    assert_eq!(a.nodes[0].path, "/");
    let b = &m.clusters[1];
    assert_eq!(b.scheduler, Scheduler::Sh);
    assert_eq!(b.ramp_up_time, Duration::from_secs(30));
    assert_eq!(
        b.nagios, None,
        "an explicit `nagios: ~` turns the default off"
    );
    assert_eq!(b.health.rise, 3);
}

#[test]
fn the_cluster_map_spelling_reads_the_talks_example() {
    let m = ok("webapp: {checkInterval: 2000, scheduler: wlc, fwmark: 7, ramp_up_time: 120, nodes: [{address: 10.0.0.1, port: 80, path: /webapp/status}]}\n");
    assert_eq!(m.spelling, Spelling::ClusterMap);
    let c = &m.clusters[0];
    assert_eq!(c.name.as_str(), "webapp");
    assert_eq!(c.check_interval, Duration::from_secs(2));
    assert_eq!(c.ramp_up_time, Duration::from_secs(120));
    assert_eq!(c.scheduler, Scheduler::Wlc);
    assert_eq!(c.nodes[0].path, "/webapp/status");
}

#[test]
fn the_cluster_map_takes_defaults_and_bigbro_keys_too() {
    let m = ok("\
_big_brother: {scheduler: rr}
bigbro: {data_dir: /srv/bb}
api:
  checkInterval: 250
  fwmark: 3
  vips: [{address: 192.0.2.1, port: 443}]
  nodes: [{address: 10.0.0.1, port: 80, path: /s}]
");
    assert_eq!(m.clusters[0].name.as_str(), "api");
    assert_eq!(m.clusters[0].scheduler, Scheduler::Rr);
    assert_eq!(m.clusters[0].check_interval, Duration::from_millis(250));
    assert_eq!(m.settings.data_dir, PathBuf::from("/srv/bb"));
    assert_eq!(
        m.clusters[0].vips,
        [Vip {
            address: ip("192.0.2.1"),
            protocol: L4Proto::Tcp,
            ports: PortRange::single(443),
            interface: None
        }]
    );
}

#[test]
fn bigbros_own_keys() {
    let m = ok("\
bigbro:
  api: {listen: '[::1]:9000', token_file: /etc/bigbro/token}
  state_dir: /var/lib/bb
  anti_entropy_interval: 10
  sync_daemon: {role: master, interface: eth1, syncid: 9}
clusters:
  - cluster_name: media
    fwmark: 12
    scheduler: mh
    forwarding: gue
    gue_port: 6080
    tunnel_checksum: remcsum
    multi_datacenter: true
    offset: 500
    has_downpage: true
    downpage_address: 10.9.9.9
    health: {kind: tcp, timeout: 0.3, rise: 2, fall: 3}
    vips:
      - {address: 192.0.2.20, protocol: udp, port: 8000-8099, interface: eth0}
      - {address: 192.0.2.20, protocol: sctp, port: '9000'}
    nodes:
      - {address: 10.0.4.41, port: 8080, max_weight: 40, priority: -1}
");
    let c = &m.clusters[0];
    assert_eq!(
        c.forwarding,
        Forwarding::Gue {
            port: 6080,
            checksum: TunnelChecksum::Remcsum
        }
    );
    assert_eq!(c.relay_fwmark().map(|f| f.get()), Some(512));
    assert_eq!(c.downpage, Some(ip("10.9.9.9")));
    assert_eq!(
        c.health,
        HealthCheck {
            kind: ProbeKind::Tcp,
            timeout: Duration::from_millis(300),
            rise: 2,
            fall: 3
        }
    );
    assert_eq!(
        c.vips[0].ports,
        PortRange {
            first: 8000,
            last: 8099
        }
    );
    assert_eq!(c.vips[0].interface.as_deref(), Some("eth0"));
    assert_eq!(c.vips[1].protocol, L4Proto::Sctp);
    assert_eq!(c.nodes[0].max_weight, Some(Weight::clamped(40)));
    assert_eq!(c.nodes[0].priority, -1);
    let s = &m.settings;
    assert_eq!(s.api.listen, "[::1]:9000".parse().unwrap());
    assert_eq!(s.api.token_file, Some(PathBuf::from("/etc/bigbro/token")));
    assert_eq!(s.state_dir, PathBuf::from("/var/lib/bb"));
    assert_eq!(s.anti_entropy_interval, Duration::from_secs(10));
    assert_eq!(
        s.sync_daemon,
        Some(SyncDaemon {
            role: SyncRole::Master,
            interface: "eth1".into(),
            syncid: 9
        })
    );
}

#[test]
fn empty_max_weight_and_zero_mean_no_cap() {
    let m = ok("\
clusters:
  - cluster_name: web
    fwmark: 7
    scheduler: wlc
    nodes:
      - address: 10.0.0.1
        port: 80
        path: /s
        max_weight:
      - {address: 10.0.0.2, port: 80, path: /s, max_weight: 0}
      - {address: 10.0.0.3, port: 80, path: /s, max_weight: 65535}
");
    let caps: Vec<_> = m.clusters[0].nodes.iter().map(|n| n.max_weight).collect();
    assert_eq!(caps, [None, None, Some(Weight::MAX)]);
}

// ---- every rule, with its exact message and position ----

#[test]
fn rejects_duplicate_cluster_names() {
    let text = format!(
        "{BASE}{}",
        BASE.replacen("clusters:\n", "", 1)
            .replace("fwmark: 7", "fwmark: 8")
    );
    assert_eq!(
        errs(&text),
        ["config.yml:7:19: clusters[1].cluster_name: duplicate cluster name \"web\" (first at 2:19, clusters[0].cluster_name)"]
    );
    // in the cluster-map spelling a name is a key, so it is a duplicate key
    assert_eq!(
        errs("a: {fwmark: 1, scheduler: rr, nodes: [{address: 10.0.0.1, port: 1, path: /}]}\na: {fwmark: 2}\n"),
        ["config.yml:2:1: a: duplicate key (first given at 1:1)"]
    );
}

#[test]
fn rejects_duplicate_fwmarks() {
    let text = format!(
        "{BASE}{}",
        BASE.replacen("clusters:\n", "", 1).replace("web", "api")
    );
    assert_eq!(
        errs(&text),
        ["config.yml:8:13: clusters[1].fwmark: fwmark 7 is already the fwmark of cluster \"web\" (at 3:13)"]
    );
}

#[test]
fn rejects_fwmark_zero_and_out_of_range() {
    assert_eq!(
        errs(&BASE.replace("fwmark: 7", "fwmark: 0")),
        ["config.yml:3:13: clusters[0].fwmark: 0 is not a valid fwmark (IPVS fwmark services are numbered from 1)"]
    );
    assert_eq!(
        errs(&BASE.replace("fwmark: 7", "fwmark: 4294967296")),
        ["config.yml:3:13: clusters[0].fwmark: 4294967296 is outside 1..4294967295"]
    );
    assert_eq!(
        errs(&BASE.replace("fwmark: 7", "fwmark: seven")),
        ["config.yml:3:13: clusters[0].fwmark: \"seven\" is not an integer"]
    );
}

#[test]
fn rejects_relay_fwmarks_that_collide() {
    // web's relay 10007 is api's fwmark
    let text = "\
clusters:
  - cluster_name: web
    fwmark: 7
    scheduler: wlc
    multi_datacenter: true
    nodes: [{address: 10.0.0.1, port: 1, path: /}]
  - cluster_name: api
    fwmark: 10007
    scheduler: wlc
    nodes: [{address: 10.0.0.2, port: 1, path: /}]
";
    assert_eq!(
        errs(text),
        ["config.yml:8:13: clusters[1].fwmark: fwmark 10007 is already the relay fwmark of cluster \"web\" (7 + offset 10000, at 3:13)"]
    );
    // the other way round: api's relay lands on web's fwmark
    let text = "\
_big_brother: {multi_datacenter: true, offset: 5}
clusters:
  - cluster_name: web
    fwmark: 12
    scheduler: wlc
    nodes: [{address: 10.0.0.1, port: 1, path: /}]
  - cluster_name: api
    fwmark: 7
    scheduler: wlc
    nodes: [{address: 10.0.0.2, port: 1, path: /}]
  - cluster_name: db
    fwmark: 2
    scheduler: wlc
    nodes: [{address: 10.0.0.3, port: 1, path: /}]
";
    assert_eq!(
        errs(text),
        [
            "config.yml:8:13: clusters[1].fwmark: the relay fwmark 12 (7 + offset 5) is already the fwmark of cluster \"web\" (at 4:13)",
            "config.yml:12:13: clusters[2].fwmark: the relay fwmark 7 (2 + offset 5) is already the fwmark of cluster \"api\" (at 8:13)",
        ]
    );
    // relays that collide with each other, and a relay past the last fwmark
    let text = "\
_big_brother: {multi_datacenter: true}
clusters:
  - {cluster_name: a, fwmark: 1, offset: 20, scheduler: rr, nodes: [{address: 10.0.0.1, port: 1, path: /}]}
  - {cluster_name: b, fwmark: 11, offset: 10, scheduler: rr, nodes: [{address: 10.0.0.1, port: 1, path: /}]}
  - {cluster_name: c, fwmark: 4294967295, scheduler: rr, nodes: [{address: 10.0.0.1, port: 1, path: /}]}
";
    assert_eq!(
        errs(text),
        [
            "config.yml:4:31: clusters[1].fwmark: the relay fwmark 21 (11 + offset 10) is already the relay fwmark of cluster \"a\" (1 + offset 20, at 3:31)",
            "config.yml:5:31: clusters[2].fwmark: the relay fwmark 4294967295 + offset 10000 is above the largest fwmark, 4294967295",
        ]
    );
}

#[test]
fn relays_only_count_when_they_exist() {
    // without multi_datacenter there is no relay, so 10007 is free
    let text = "\
clusters:
  - {cluster_name: web, fwmark: 7, scheduler: rr, nodes: [{address: 10.0.0.1, port: 1, path: /}]}
  - {cluster_name: api, fwmark: 10007, scheduler: rr, nodes: [{address: 10.0.0.1, port: 1, path: /}]}
";
    assert_eq!(ok(text).clusters.len(), 2);
}

#[test]
fn rejects_duplicate_node_addresses() {
    let text = "\
clusters:
  - cluster_name: web
    fwmark: 7
    scheduler: wlc
    nodes:
      - {address: 10.0.0.1, port: 9001, path: /a}
      - {address: 10.0.0.1, port: 9002, path: /b}
";
    assert_eq!(
        errs(text),
        ["config.yml:7:19: clusters[0].nodes[1].address: 10.0.0.1 is listed twice in this cluster (first at 6:19); IPVS holds one real server per address (big_brother silently merged such nodes)"]
    );
    // the same address in two clusters is fine
    let two = "\
clusters:
  - {cluster_name: a, fwmark: 1, scheduler: rr, nodes: [{address: 10.0.0.1, port: 1, path: /}]}
  - {cluster_name: b, fwmark: 2, scheduler: rr, nodes: [{address: 10.0.0.1, port: 1, path: /}]}
";
    assert_eq!(ok(two).clusters.len(), 2);
}

#[test]
fn rejects_host_names_where_an_ip_is_needed() {
    let text = "\
bigbro:
  api: {listen: 'localhost:9292'}
clusters:
  - cluster_name: web
    fwmark: 7
    scheduler: wlc
    downpage_address: down.example.com
    vips: [{address: vip.example.com, port: 80}]
    nodes:
      - {address: web1.example.com, port: 9001, path: /a}
      - {address: 10.0.0, port: 9001, path: /a}
";
    assert_eq!(
        errs(text),
        [
            "config.yml:2:17: bigbro.api.listen: \"localhost:9292\" is not an address:port (write e.g. 127.0.0.1:9292 or [::1]:9292; host names are not resolved)",
            "config.yml:7:23: clusters[0].downpage_address: \"down.example.com\" is not an IP address (bigbro does not resolve host names: write the address)",
            "config.yml:8:22: clusters[0].vips[0].address: \"vip.example.com\" is not an IP address (bigbro does not resolve host names: write the address)",
            "config.yml:10:19: clusters[0].nodes[0].address: \"web1.example.com\" is not an IP address (bigbro does not resolve host names: write the address)",
            "config.yml:11:19: clusters[0].nodes[1].address: \"10.0.0\" is not an IP address",
        ]
    );
}

#[test]
fn rejects_unusable_addresses() {
    let text = "\
clusters:
  - cluster_name: web
    fwmark: 7
    scheduler: wlc
    vips: [{address: 0.0.0.0, port: 80}]
    nodes:
      - {address: 224.0.0.1, port: 9001, path: /a}
";
    assert_eq!(
        errs(text),
        [
            "config.yml:5:22: clusters[0].vips[0].address: 0.0.0.0 cannot be a vip address (unspecified, multicast or broadcast)",
            "config.yml:7:19: clusters[0].nodes[0].address: 224.0.0.1 cannot be a node address (unspecified, multicast or broadcast)",
        ]
    );
}

#[test]
fn rejects_unknown_schedulers() {
    assert_eq!(
        errs(&BASE.replace("scheduler: wlc", "scheduler: wrrr")),
        ["config.yml:4:16: clusters[0].scheduler: \"wrrr\" is not an IPVS scheduler; did you mean \"wrr\"?"]
    );
    assert_eq!(
        errs(&BASE.replace("scheduler: wlc", "scheduler: random")),
        ["config.yml:4:16: clusters[0].scheduler: \"random\" is not an IPVS scheduler (one of: rr, wrr, lc, wlc, lblc, lblcr, dh, sh, sed, nq, fo, ovf, mh, twos)"]
    );
    for s in Scheduler::ALL {
        let m = ok(&BASE.replace("scheduler: wlc", &format!("scheduler: {}", s.as_str())));
        assert_eq!(m.clusters[0].scheduler, s);
    }
}

#[test]
fn requires_a_scheduler_after_defaults() {
    let no_sched = BASE.replace("    scheduler: wlc\n", "");
    assert_eq!(
        errs(&no_sched),
        ["config.yml:2:5: clusters[0]: missing key scheduler (an IPVS scheduler such as wrr or wlc; set it here or in _big_brother)"]
    );
    // validation runs after the merge: a default scheduler is enough (big_brother refused it)
    let m = ok(&format!("_big_brother: {{scheduler: sed}}\n{no_sched}"));
    assert_eq!(m.clusters[0].scheduler, Scheduler::Sed);
}

#[test]
fn requires_cluster_name_fwmark_and_nodes() {
    assert_eq!(
        errs("clusters:\n  - scheduler: rr\n"),
        [
            "config.yml:2:5: clusters[0]: missing key cluster_name (the name the API and logs use)",
            "config.yml:2:5: clusters[0]: missing key fwmark (the IPVS fwmark service number)",
            "config.yml:2:5: clusters[0]: missing key nodes (the list of real servers)",
        ]
    );
    assert_eq!(
        errs(
            &BASE
                .replace(
                    "      - {address: 10.0.0.1, port: 9001, path: /web/status}\n",
                    "      []\n"
                )
                .replace("nodes:\n      []", "nodes: []")
        ),
        ["config.yml:5:12: clusters[0].nodes: no nodes: a cluster needs at least one node"]
    );
}

#[test]
fn requires_node_address_port_and_litmus_path() {
    let text = "\
clusters:
  - cluster_name: web
    fwmark: 7
    scheduler: wlc
    nodes:
      - {priority: 1}
";
    assert_eq!(
        errs(text),
        [
            "config.yml:6:9: clusters[0].nodes[0]: missing key address (the real server's IP address)",
            "config.yml:6:9: clusters[0].nodes[0]: missing key port (the health-check port)",
            "config.yml:6:9: clusters[0].nodes[0]: missing key path (the litmus health URL path, e.g. /myapp/status)",
        ]
    );
}

#[test]
fn rejects_timeouts_not_shorter_than_the_interval() {
    assert_eq!(
        errs(&with_cluster_keys("    check_interval: 1\n    health: {timeout: 1}\n")),
        ["config.yml:6:23: clusters[0].health.timeout: timeout 1 s is not shorter than the check interval 1 s"]
    );
    // from the defaults, the error names the cluster it is wrong for
    let text = format!(
        "_big_brother: {{health: {{timeout: 2.5}}}}\n{}",
        with_cluster_keys("    checkInterval: 2500\n")
    );
    assert_eq!(
        errs(&text),
        ["config.yml:1:34: _big_brother.health.timeout: timeout 2.5 s is not shorter than the check interval 2.5 s for cluster \"web\""]
    );
    assert_eq!(
        errs(&with_cluster_keys("    health: {timeout: 0}\n")),
        ["config.yml:5:23: clusters[0].health.timeout: a timeout must be longer than 0 s"]
    );
}

#[test]
fn a_bad_interval_does_not_hide_the_probe_kind() {
    // http probes need no path; the wrong interval must not make the node look wrong too
    let text = "\
clusters:
  - cluster_name: web
    fwmark: 7
    scheduler: wlc
    check_interval: soon
    health: {kind: http}
    nodes: [{address: 10.0.0.1, port: 80}]
";
    assert_eq!(
        errs(text),
        ["config.yml:5:21: clusters[0].check_interval: \"soon\" is not a number of seconds (write e.g. 2 or 0.5)"]
    );
}

#[test]
fn rejects_intervals_that_are_too_short_or_given_twice() {
    assert_eq!(
        errs(&with_cluster_keys("    check_interval: 0.05\n")),
        ["config.yml:5:21: clusters[0].check_interval: 0.05 s is shorter than the shortest check interval, 0.1 s"]
    );
    assert_eq!(
        errs(&with_cluster_keys("    check_interval: 2\n    checkInterval: 2000\n")),
        ["config.yml:6:5: clusters[0].checkInterval: both check_interval (seconds) and checkInterval (milliseconds) are set; keep one"]
    );
    assert_eq!(
        errs(&with_cluster_keys("    checkInterval: 1.5\n")),
        ["config.yml:5:20: clusters[0].checkInterval: \"1.5\" is not a whole number of milliseconds"]
    );
}

#[test]
fn rejects_weights_outside_0_to_65535() {
    let text = "\
clusters:
  - cluster_name: web
    fwmark: 7
    scheduler: wlc
    nodes:
      - {address: 10.0.0.1, port: 1, path: /a, max_weight: 65536}
      - {address: 10.0.0.2, port: 1, path: /a, max_weight: -1}
";
    assert_eq!(
        errs(text),
        [
            "config.yml:6:60: clusters[0].nodes[0].max_weight: 65536 is outside 0..65535",
            "config.yml:7:60: clusters[0].nodes[1].max_weight: -1 is outside 0..65535",
        ]
    );
}

#[test]
fn rejects_unknown_keys_with_a_hint() {
    let text = "\
_big_brother:
  schedular: wrr
  fwmark: 3
bigbro:
  apii: {}
  ramp_up_time: 3
  api: {listen: '127.0.0.1:1', tokenfile: /x}
  sync_daemon: {role: backup, interface: eth0, sync_id: 3}
clusters:
  - cluster_name: web
    fwmark: 7
    scheduler: wlc
    fw_mark: 8
    address: 10.0.0.9
    colour: blue
    health: {knd: tcp}
    nagios: {sever: x, host: h, check: c}
    vips: [{address: 192.0.2.1, port: 80, proto: tcp}]
    nodes:
      - {address: 10.0.0.1, port: 9001, path: /a, wieght: 3, scheduler: rr}
clusterz: []
";
    assert_eq!(
        errs(text),
        [
            "config.yml:2:3: _big_brother.schedular: unknown key; did you mean \"scheduler\"?",
            "config.yml:3:3: _big_brother.fwmark: unknown key here: fwmark cannot be a default: each cluster sets its own",
            "config.yml:5:3: bigbro.apii: unknown key; did you mean \"api\"?",
            "config.yml:6:3: bigbro.ramp_up_time: unknown key here: ramp_up_time is a cluster key (set it on a cluster, or in _big_brother for all)",
            "config.yml:7:32: bigbro.api.tokenfile: unknown key; did you mean \"token_file\"?",
            "config.yml:8:48: bigbro.sync_daemon.sync_id: unknown key; did you mean \"syncid\"?",
            "config.yml:13:5: clusters[0].fw_mark: unknown key; did you mean \"fwmark\"?",
            "config.yml:14:5: clusters[0].address: unknown key here: address is a node key (it goes in each entry of nodes)",
            "config.yml:15:5: clusters[0].colour: unknown key (known keys here: scheduler, check_interval, checkInterval, backend_mode, ramp_up_time, has_downpage, downpage_address, max_down_ticks, non_egress_locations, nagios, offset, multi_datacenter, forwarding, gue_port, tunnel_checksum, vip_mode, health, persistence, scheduler_flags, one_packet, start_weight, cluster_name, fwmark, nodes, vips)",
            "config.yml:16:14: clusters[0].health.knd: unknown key; did you mean \"kind\"?",
            "config.yml:17:13: clusters[0].nagios: missing key server (the NSCA server send_nsca sends to)",
            "config.yml:17:14: clusters[0].nagios.sever: unknown key; did you mean \"server\"?",
            "config.yml:18:43: clusters[0].vips[0].proto: unknown key; did you mean \"protocol\"?",
            "config.yml:20:51: clusters[0].nodes[0].wieght: unknown key (known keys here: address, port, path, priority, max_weight, interpol, upper_threshold, lower_threshold)",
            "config.yml:20:62: clusters[0].nodes[0].scheduler: unknown key here: scheduler is a cluster key, not a node key",
            "config.yml:21:1: clusterz: unknown key; did you mean \"clusters\"?",
        ]
    );
}

#[test]
fn rejects_paths_that_do_not_start_with_a_slash() {
    let text = "\
bigbro:
  data_dir: etc/big_brother
  state_dir: ''
  api: {token_file: token}
clusters:
  - cluster_name: web
    fwmark: 7
    scheduler: wlc
    nodes:
      - {address: 10.0.0.1, port: 9001, path: web/status}
      - {address: 10.0.0.2, port: 9001, path: /web status}
";
    assert_eq!(
        errs(text),
        [
            "config.yml:2:13: bigbro.data_dir: \"etc/big_brother\" is not an absolute path (it must start with /)",
            "config.yml:3:14: bigbro.state_dir: \"\" is not an absolute path (it must start with /)",
            "config.yml:4:21: bigbro.api.token_file: \"token\" is not an absolute path (it must start with /)",
            "config.yml:10:47: clusters[0].nodes[0].path: \"web/status\" does not start with /",
            "config.yml:11:47: clusters[0].nodes[1].path: \"/web status\" contains spaces or control characters",
        ]
    );
}

#[test]
fn rejects_ports_out_of_range() {
    let text = "\
bigbro:
  api: {listen: '127.0.0.1:0'}
clusters:
  - cluster_name: web
    fwmark: 7
    scheduler: wlc
    forwarding: gue
    gue_port: 65536
    vips: [{address: 192.0.2.1, port: 0}]
    nodes:
      - {address: 10.0.0.1, port: 0, path: /a}
      - {address: 10.0.0.2, port: 65536, path: /a}
";
    assert_eq!(
        errs(text),
        [
            "config.yml:2:17: bigbro.api.listen: port 0 is outside 1..65535",
            "config.yml:8:15: clusters[0].gue_port: 65536 is outside 1..65535",
            "config.yml:9:39: clusters[0].vips[0].port: 0 is outside 1..65535",
            "config.yml:11:35: clusters[0].nodes[0].port: 0 is outside 1..65535",
            "config.yml:12:35: clusters[0].nodes[1].port: 65536 is outside 1..65535",
        ]
    );
}

#[test]
fn rejects_bad_vips() {
    let text = "\
clusters:
  - cluster_name: web
    fwmark: 7
    scheduler: wlc
    vips:
      - {address: 192.0.2.1, port: 8080-8000}
      - {address: 192.0.2.1, port: http}
      - {address: 192.0.2.1, protocol: icmp, port: 1}
      - {address: 192.0.2.1, port: 1, interface: a-very-long-interface-name}
      - {address: 192.0.2.1}
      - {address: '2001:db8::1', port: 443}
      - {address: 192.0.2.2, port: 1000-2000}
      - {address: 192.0.2.2, port: 1500, interface: eth0}
      - {address: 192.0.2.2, protocol: udp, port: 1500}
    nodes:
      - {address: 10.0.0.1, port: 9001, path: /a}
  - cluster_name: api
    fwmark: 8
    scheduler: wlc
    vips: [{address: 192.0.2.2, port: 2000}]
    nodes:
      - {address: 10.0.0.1, port: 9001, path: /a}
";
    assert_eq!(
        errs(text),
        [
            "config.yml:6:36: clusters[0].vips[0].port: \"8080-8000\" is not a port range: 8080 is above 8000",
            "config.yml:7:36: clusters[0].vips[1].port: \"http\" is not a port or port range (write e.g. 443 or 8000-8080)",
            "config.yml:8:40: clusters[0].vips[2].protocol: \"icmp\" is not a protocol (one of: tcp, udp, sctp)",
            "config.yml:9:50: clusters[0].vips[3].interface: \"a-very-long-interface-name\" is not an interface name (1 to 15 characters, no '/', ':' or spaces)",
            "config.yml:10:9: clusters[0].vips[4]: missing key port (a port such as 443 or a range such as 8000-8080)",
            "config.yml:11:19: clusters[0].vips[5].address: 2001:db8::1 is IPv6 but clusters[0].nodes[0] is IPv4; a cluster serves one address family",
            "config.yml:13:9: clusters[0].vips[7]: 192.0.2.2 tcp 1500 overlaps 192.0.2.2 tcp 1000-2000 of cluster \"web\" (clusters[0].vips[6] at 12:9)",
            "config.yml:20:12: clusters[1].vips[0]: 192.0.2.2 tcp 2000 overlaps 192.0.2.2 tcp 1000-2000 of cluster \"web\" (clusters[0].vips[6] at 12:9)",
        ]
    );
}

#[test]
fn rejects_contradicting_forwarding_options() {
    assert_eq!(
        errs(&with_cluster_keys("    forwarding: gue\n")),
        ["config.yml:5:17: clusters[0].forwarding: forwarding gue needs gue_port (the UDP port the real servers decapsulate on)"]
    );
    assert_eq!(
        errs(&with_cluster_keys("    gue_port: 6080\n")),
        ["config.yml:5:15: clusters[0].gue_port: gue_port only applies to forwarding: gue"]
    );
    assert_eq!(
        errs(&with_cluster_keys("    forwarding: dr\n    tunnel_checksum: csum\n")),
        ["config.yml:6:22: clusters[0].tunnel_checksum: tunnel_checksum only applies to forwarding: gue or gre"]
    );
    assert_eq!(
        errs(&with_cluster_keys("    forwarding: ipvs\n")),
        ["config.yml:5:17: clusters[0].forwarding: \"ipvs\" is not a forwarding method (one of: ipip, gue, gre, dr, nat)"]
    );
    // set as defaults they only apply where they mean something
    let text = format!(
        "_big_brother: {{gue_port: 6080, tunnel_checksum: csum}}\n{}",
        with_cluster_keys("    forwarding: gre\n")
    );
    assert_eq!(
        ok(&text).clusters[0].forwarding,
        Forwarding::Gre {
            checksum: TunnelChecksum::Csum
        }
    );
}

#[test]
fn multi_datacenter_is_for_active_active_clusters() {
    assert_eq!(
        errs(&with_cluster_keys("    backend_mode: active_passive\n    multi_datacenter: true\n")),
        ["config.yml:6:23: clusters[0].multi_datacenter: multi_datacenter needs backend_mode active_active (an active_passive cluster has no relay service)"]
    );
    let text = format!(
        "_big_brother: {{multi_datacenter: true}}\n{}",
        with_cluster_keys("    backend_mode: active_passive\n")
    );
    assert!(!ok(&text).clusters[0].multi_datacenter);
}

#[test]
fn rejects_a_downpage_that_cannot_work() {
    assert_eq!(
        errs(&with_cluster_keys("    has_downpage: true\n    downpage_address: 10.0.0.1\n")),
        ["config.yml:6:23: clusters[0].downpage_address: the downpage 10.0.0.1 is also a node (clusters[0].nodes[0]); it must be a separate address"]
    );
    let v6 = "\
clusters:
  - cluster_name: web
    fwmark: 7
    scheduler: wlc
    has_downpage: true
    nodes: [{address: '2001:db8::1', port: 1, path: /}]
";
    assert_eq!(
        errs(v6),
        ["config.yml:5:19: clusters[0].has_downpage: the downpage 169.254.254.254 (the default downpage_address) is IPv4 but the cluster is IPv6; set downpage_address"]
    );
}

#[test]
fn rejects_bad_cluster_names_nagios_and_sync_daemon() {
    let text = "\
bigbro:
  sync_daemon: {role: primary, syncid: 300}
clusters:
  - cluster_name: web/app
    fwmark: 7
    scheduler: wlc
    nagios: {server: nsca host, host: 'a,b', check: ''}
    nodes: [{address: 10.0.0.1, port: 1, path: /}]
";
    assert_eq!(
        errs(text),
        [
            "config.yml:2:16: bigbro.sync_daemon: missing key interface (the interface sync messages use)",
            "config.yml:2:23: bigbro.sync_daemon.role: \"primary\" is not a sync daemon role (one of: master, backup, both)",
            "config.yml:2:40: bigbro.sync_daemon.syncid: 300 is outside 0..255",
            "config.yml:4:19: clusters[0].cluster_name: \"web/app\" is not a usable cluster name (1 to 64 letters, digits, '.', '_' or '-': it names an API path and a file)",
            "config.yml:7:22: clusters[0].nagios.server: \"nsca host\" is not a host name or address",
            "config.yml:7:39: clusters[0].nagios.host: \"a,b\" cannot contain ',' or control characters (send_nsca splits its line on ',')",
            "config.yml:7:53: clusters[0].nagios.check: cannot be empty",
        ]
    );
}

#[test]
fn wrong_types_everywhere_are_reported_not_fatal() {
    let text = "\
_big_brother: [1, 2]
bigbro: 7
clusters:
  - 5
  - cluster_name: [a]
    fwmark: {x: 1}
    scheduler: [wlc]
    check_interval: ~
    has_downpage: maybe
    non_egress_locations: here
    health: fast
    nodes: {address: 10.0.0.1}
";
    assert_eq!(
        errs(text),
        [
            "config.yml:1:15: _big_brother: expected cluster defaults (a map), found a list",
            "config.yml:2:9: bigbro: expected bigbro settings (a map), found \"7\"",
            "config.yml:4:5: clusters[0]: expected a cluster (a map), found \"5\"",
            "config.yml:5:19: clusters[1].cluster_name: expected a cluster name, found a list",
            "config.yml:6:13: clusters[1].fwmark: expected an integer, found a map",
            "config.yml:7:16: clusters[1].scheduler: expected an IPVS scheduler, found a list",
            "config.yml:8:21: clusters[1].check_interval: expected a number of seconds, found nothing",
            "config.yml:9:19: clusters[1].has_downpage: \"maybe\" is not true or false",
            "config.yml:10:27: clusters[1].non_egress_locations: expected a list of names (a list), found \"here\"",
            "config.yml:11:13: clusters[1].health: expected health-check settings (a map), found \"fast\"",
            "config.yml:12:12: clusters[1].nodes: expected a list of nodes (a list), found a map",
        ]
    );
}

#[test]
fn shapes_that_are_not_a_configuration() {
    assert_eq!(
        errs(""),
        ["config.yml: the file is empty; no clusters: write a `clusters:` list (big_brother's format) or map each cluster's name to its settings"]
    );
    assert_eq!(
        errs("# nothing but a comment\n"),
        ["config.yml: the file is empty; no clusters: write a `clusters:` list (big_brother's format) or map each cluster's name to its settings"]
    );
    assert_eq!(
        errs("- a\n- b\n"),
        ["config.yml:1:1: expected a map at the top level, found a list; no clusters: write a `clusters:` list (big_brother's format) or map each cluster's name to its settings"]
    );
    assert_eq!(
        errs("just text\n"),
        ["config.yml:1:1: expected a map at the top level, found \"just text\"; no clusters: write a `clusters:` list (big_brother's format) or map each cluster's name to its settings"]
    );
    assert_eq!(
        errs("bigbro: {}\n"),
        ["config.yml:1:1: no clusters: write a `clusters:` list (big_brother's format) or map each cluster's name to its settings"]
    );
    assert_eq!(
        errs("_big_brothr: {scheduler: rr}\n"),
        ["config.yml:1:1: _big_brothr: unknown key; did you mean \"_big_brother\"?"]
    );
    // an explicitly empty cluster list is a valid (if idle) configuration
    assert!(ok("clusters: []\n").clusters.is_empty());
}

#[test]
fn yaml_syntax_errors_have_positions() {
    assert_eq!(
        errs("clusters:\n  - cluster_name: web\n    fwmark: [7\n"),
        ["config.yml:3:13: invalid YAML: unclosed bracket '['"]
    );
    assert_eq!(
        errs("a: 1\n b: 2\n"),
        ["config.yml:2:3: invalid YAML: mapping values are not allowed in this context"]
    );
    assert_eq!(
        errs("clusters:\n\t- x\n"),
        ["config.yml:2:2: invalid YAML: tabs disallowed within this context (block indentation)"]
    );
}

#[test]
fn non_utf8_is_reported_with_its_position() {
    let e = parse_bytes("config.yml", b"clusters:\n  - cluster_name: w\xffb\n").unwrap_err();
    assert_eq!(
        e.lines(),
        ["config.yml:2:20: not UTF-8 text (byte 0xff); a configuration is UTF-8 YAML"]
    );
}

/// A tiny deterministic generator, so the garbage tests need no seed handling.
struct Lcg(u64);
impl Lcg {
    fn next(&mut self) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        self.0 >> 33
    }
}

#[test]
fn garbage_never_panics() {
    let valid = REFERENCE_2_2.as_bytes();
    // every truncation of a valid file
    for cut in 0..valid.len() {
        let _ = parse_bytes("config.yml", &valid[..cut]);
    }
    // single-byte mutations with YAML's special characters
    let specials = b":-[]{}#&*!|>'\"%@`, \t\n?~\0\xff";
    let mut rng = Lcg(7);
    for _ in 0..3000 {
        let mut bytes = valid.to_vec();
        for _ in 0..1 + rng.next() % 4 {
            let at = (rng.next() as usize) % bytes.len();
            bytes[at] = specials[(rng.next() as usize) % specials.len()];
        }
        if let Err(e) = parse_bytes("config.yml", &bytes) {
            assert!(!e.is_empty());
        }
    }
    // random binary junk
    for len in [1usize, 7, 64, 4096] {
        let junk: Vec<u8> = (0..len).map(|_| rng.next() as u8).collect();
        assert!(parse_bytes("config.yml", &junk).is_err());
    }
    // deeply nested and enormous documents
    assert!(parse("config.yml", &"{a: ".repeat(5000)).is_err());
    assert!(parse("config.yml", &"- ".repeat(5000)).is_err());
    let wide = format!("clusters: [{}]\n", "1, ".repeat(100_000));
    assert!(parse("config.yml", &wide).is_err());
}

#[test]
fn the_readme_documents_every_key() {
    let readme = include_str!("../../README.md");
    let section = readme
        .split("## Configuration")
        .nth(1)
        .and_then(|s| s.split("\n## ").next())
        .expect("README has a Configuration section");
    let mut keys: Vec<String> = Vec::new();
    for list in [
        raw::SETTING_KEYS,
        raw::IDENTITY_KEYS,
        nodes::NODE_KEYS,
        nodes::VIP_KEYS,
        spelling::TOP_KEYS,
    ] {
        keys.extend(list.iter().map(|k| format!("`{k}`")));
    }
    keys.extend(raw::HEALTH_KEYS.iter().map(|k| format!("`health.{k}`")));
    keys.extend(raw::NAGIOS_KEYS.iter().map(|k| format!("`{k}`")));
    keys.extend(
        options::PERSISTENCE_KEYS
            .iter()
            .map(|k| format!("`persistence.{k}`")),
    );
    keys.extend(settings::API_KEYS.iter().map(|k| format!("`api.{k}`")));
    keys.extend(
        settings::SYNC_KEYS
            .iter()
            .map(|k| format!("`sync_daemon.{k}`")),
    );
    keys.extend(
        settings::GLOBAL_KEYS
            .iter()
            .filter(|k| !matches!(**k, "api" | "sync_daemon"))
            .map(|k| format!("`{k}`")),
    );
    let missing: Vec<&String> = keys
        .iter()
        .filter(|k| !section.contains(k.as_str()))
        .collect();
    assert!(
        missing.is_empty(),
        "README's Configuration section lacks {missing:?}"
    );
}

/// Clusters whose nodes carry every node value the prober would refuse (in the
/// cluster-map spelling; tests/config_check.rs checks the same through `bigbro check`).
#[test]
fn node_values_the_prober_refuses_are_refused_where_written() {
    let text = "\
web:
  fwmark: 7
  scheduler: wlc
  nodes:
    - address: 10.0.0.1
      port: 9001
      path: /caf\u{e9}
    - address: 10.0.0.2
      port: 9001
      path: \"/a\\tb\"
    - address: 10.0.0.3
      port: 9001
      path: status
    - address: 10.0.0.4
      port: 0
      path: /status
api:
  fwmark: 8
  scheduler: rr
  health:
    kind: http
  nodes:
    - address: 10.0.1.1
      port: 80
      path: /na\u{ef}ve/ok
";
    assert_eq!(
        errs(text),
        [
            "config.yml:7:13: web.nodes[0].path: \"/caf\u{e9}\" contains '\u{e9}', which a probe cannot send (a request path is visible ASCII); percent-encode it: %C3%A9",
            "config.yml:10:13: web.nodes[1].path: \"/a\\tb\" contains spaces or control characters",
            "config.yml:13:13: web.nodes[2].path: \"status\" does not start with /",
            "config.yml:15:13: web.nodes[3].port: 0 is outside 1..65535",
            "config.yml:25:13: api.nodes[0].path: \"/na\u{ef}ve/ok\" contains '\u{ef}', which a probe cannot send (a request path is visible ASCII); percent-encode it: %C3%AF",
        ]
    );
}

/// The configuration and the prober apply one rule to a health path: every path the
/// configuration accepts builds a probe target, every path it refuses is one the prober
/// refuses too.
#[test]
fn the_configuration_and_the_prober_agree_on_every_path() {
    use crate::health::{ProbeKind, Target};
    let paths = [
        "/",
        "/ok",
        "/a/b?c=d&e=%20",
        "/~x",
        "/caf\u{e9}",
        "/a b",
        "/a\tb",
        "/a\u{a0}b",
        "/\u{7f}",
        "status",
        "/\u{1f600}",
        "/a\"b",
    ];
    for path in paths {
        let yaml_path = path.replace('\\', "\\\\").replace('"', "\\\"");
        let text = format!(
            "clusters:\n  - {{cluster_name: web, fwmark: 7, scheduler: rr, health: {{kind: http}}, \
             nodes: [{{address: 10.0.0.1, port: 80, path: \"{}\"}}]}}\n",
            yaml_path.replace('\t', "\\t").replace('\u{7f}', "\\x7f").replace('\u{a0}', "\\xa0")
        );
        let config = parse("config.yml", &text);
        if let Ok(m) = &config {
            assert_eq!(m.clusters[0].nodes[0].path, path);
        }
        let prober = Target::new(ProbeKind::Http, ip("10.0.0.1"), 80, path);
        assert_eq!(
            config.is_ok(),
            prober.is_ok(),
            "{path:?}: configuration {config:?}, prober {prober:?}"
        );
    }
}

/// A reload of a file with a node the prober would refuse is refused, with the file's
/// position and key, and the running configuration stays.
#[tokio::test]
async fn a_reload_with_a_path_the_prober_refuses_is_refused() {
    use crate::daemon::{testing::spawn_fake, Error};
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bigbro.yml");
    let good = "clusters:\n  - cluster_name: web\n    fwmark: 7\n    scheduler: wrr\n    nodes:\n      - {address: 10.0.0.1, port: 9001, path: /status}\n";
    std::fs::write(&path, good).unwrap();
    let fake = spawn_fake(&path).unwrap();
    std::fs::write(&path, good.replace("/status", "/caf\u{e9}")).unwrap();
    let Err(Error::ConfigInvalid(errors)) = fake.handle.reload().await else {
        panic!("a path the prober refuses must refuse the reload")
    };
    assert_eq!(
        errors.lines(),
        [format!(
            "{}:6:47: clusters[0].nodes[0].path: \"/caf\u{e9}\" contains '\u{e9}', which a probe cannot send (a request path is visible ASCII); percent-encode it: %C3%A9",
            path.display()
        )]
    );
    assert_eq!(fake.handle.config().clusters[0].nodes[0].path, "/status");
    fake.task.abort();
}

/// A vip interface the mark-rule writer refuses (`nft::MarkRule::validate`) is refused
/// where it is written, by the same rule; one it accepts is kept.
#[test]
fn vip_interfaces_follow_the_mark_rule_writer() {
    let cluster = |iface: &str| {
        format!(
            "clusters:\n  - {{cluster_name: web, fwmark: 7, scheduler: rr, \
             vips: [{{address: 192.0.2.1, port: 80, interface: '{iface}'}}], \
             nodes: [{{address: 10.0.0.1, port: 80, path: /}}]}}\n"
        )
    };
    assert_eq!(
        errs(&cluster("eth*")),
        ["config.yml:2:100: clusters[0].vips[0].interface: interface name \"eth*\" contains '*', which bigbro does not accept in an interface name"]
    );
    for name in [
        "eth0",
        "eth*",
        "a\"b",
        "a\\b",
        "bond0.100",
        "fifteen-chars-x",
        "a:b",
        "a b",
    ] {
        let config = parse("config.yml", &cluster(&name.replace('\'', "''")));
        let writer = crate::nft::iifname_problem(name);
        assert_eq!(
            config.is_ok(),
            writer.is_none(),
            "{name:?}: configuration {config:?}, rule writer {writer:?}"
        );
    }
}

/// Every sync-daemon interface the configuration accepts makes a start-daemon request
/// the IPVS client accepts (`ipvs::Op::check`).
#[test]
fn sync_daemon_interfaces_pass_the_ipvs_client() {
    let config = |name: &str| {
        let text = format!(
            "bigbro:\n  sync_daemon: {{role: both, interface: \"{}\"}}\n\
             clusters:\n  - {{cluster_name: web, fwmark: 7, scheduler: rr, \
             nodes: [{{address: 10.0.0.1, port: 80, path: /}}]}}\n",
            name.escape_default()
        );
        parse("config.yml", &text)
    };
    let mut accepted = 0;
    for name in [
        "eth0",
        "fifteen-chars-x",
        "sixteen-chars-xx",
        "a:b",
        "a\u{1}b",
        "a\u{0}b",
    ] {
        let Ok(m) = config(name) else {
            continue;
        };
        accepted += 1;
        let wanted = m.settings.sync_daemon.as_ref();
        for daemon in crate::reconcile::daemons::desired(wanted) {
            let op = crate::ipvs::Op::StartDaemon(daemon);
            assert_eq!(op.check(), Ok(()), "{name:?}");
        }
    }
    assert_eq!(accepted, 2);
}

/// The shortest check interval is a rule on the interval a cluster ends up with: a
/// `_big_brother` default every cluster overrides is not an error, one a cluster uses is.
#[test]
fn a_too_short_default_interval_counts_only_where_used() {
    let text = |own: &str| {
        format!(
            "_big_brother: {{check_interval: 0.05}}\nclusters:\n  - {{cluster_name: web, fwmark: 7, \
             scheduler: rr, {own}nodes: [{{address: 10.0.0.1, port: 80, path: /}}]}}\n"
        )
    };
    assert_eq!(
        ok(&text("check_interval: 1, ")).clusters[0].check_interval,
        Duration::from_secs(1)
    );
    assert_eq!(
        errs(&text("")),
        ["config.yml:1:32: _big_brother.check_interval: 0.05 s is shorter than the shortest check interval, 0.1 s"]
    );
}

/// The merge generated from the settings table covers every cluster setting: each one
/// written in `_big_brother` reaches a cluster that does not set it, and the cluster's own
/// value wins. (The YAML must name every key of `SETTING_KEYS`, so a new key extends it.)
#[test]
fn every_cluster_setting_merges_from_big_brother() {
    use super::declare::Merge;
    use super::diag::{Diags, KeyPath};
    let every = "\
scheduler: wrr
check_interval: 3
backend_mode: active_passive
ramp_up_time: 5
has_downpage: true
downpage_address: 10.9.9.9
max_down_ticks: 2
non_egress_locations: [a]
nagios: {server: s, host: h, check: c}
offset: 5
multi_datacenter: false
forwarding: gue
gue_port: 6080
tunnel_checksum: csum
vip_mode: none
health: {kind: http, timeout: 1, rise: 2, fall: 3}
persistence: {timeout: 60, netmask: 24}
scheduler_flags: [sh-port]
one_packet: true
start_weight: 0
";
    for key in raw::SETTING_KEYS.iter().filter(|k| **k != "checkInterval") {
        assert!(every.contains(&format!("{key}:")), "{key} is missing here");
    }
    let read = |text: &str| {
        let node = yaml::parse(text).unwrap().unwrap();
        let mut d = Diags::new("t");
        let s = raw::defaults(&node, &KeyPath::root().key("_big_brother"), &mut d);
        assert!(d.is_empty());
        s
    };
    let defaults = read(every);
    assert!(!format!("{defaults:?}").contains("Absent"), "{defaults:?}");
    assert_eq!(
        raw::RawSettings::default().merge(defaults.clone()),
        defaults
    );
    let own = read("scheduler: rr\nhealth: {rise: 5}\n");
    let merged = own.merge(defaults.clone());
    assert_eq!(merged.scheduler.value(), Some(&Scheduler::Rr));
    assert_eq!(merged.offset, defaults.offset);
    let health = merged.health.value().unwrap();
    assert_eq!(health.rise.value(), Some(&5));
    assert_eq!(health.kind.value(), Some(&ProbeKind::Http));
}
