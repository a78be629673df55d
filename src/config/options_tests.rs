//! The service options and node thresholds through the whole loader: what each key
//! becomes in the model, the `_big_brother` merge, and each rule of `options.rs` with its
//! exact message and position.

use super::*;

fn errs(text: &str) -> Vec<String> {
    match parse("config.yml", text) {
        Ok(m) => panic!("expected errors, got a valid model: {m:#?}"),
        Err(e) => e.lines(),
    }
}

fn ok(text: &str) -> Model {
    parse("config.yml", text).unwrap_or_else(|e| panic!("{e}"))
}

/// One cluster with `extra` cluster keys (line 5 onwards) and its node on the line after
/// them (line 6 when there are none).
fn cluster(scheduler: &str, extra: &str, node: &str) -> String {
    format!(
        "clusters:\n  - cluster_name: web\n    fwmark: 7\n    scheduler: {scheduler}\n{extra}    nodes:\n      - {{address: 10.0.0.1, port: 80, path: /{node}}}\n"
    )
}

#[test]
fn every_option_reaches_the_model() {
    let m = ok(&cluster(
        "mh",
        "    persistence: {timeout: 600, netmask: 255.255.255.0}\n    scheduler_flags: [mh-port, mh-fallback, mh-port]\n    one_packet: true\n    start_weight: 0\n",
        ", upper_threshold: 100, lower_threshold: 50",
    ));
    let c = &m.clusters[0];
    assert_eq!(
        c.service_options,
        ServiceOptions {
            persistence: Some(Persistence {
                timeout: 600,
                prefix_len: 24
            }),
            scheduler_flags: vec![SchedulerFlag::MhFallback, SchedulerFlag::MhPort],
            one_packet: true,
        }
    );
    assert_eq!(c.start_weight, Some(crate::types::Weight::ZERO));
    assert_eq!(
        (c.nodes[0].upper_threshold, c.nodes[0].lower_threshold),
        (100, 50)
    );
}

#[test]
fn defaults_change_nothing() {
    let c = &ok(&cluster("wrr", "", "")).clusters[0];
    assert_eq!(c.service_options, ServiceOptions::default());
    assert_eq!(c.start_weight, None);
    assert_eq!(c.initial_weight(false).get(), 1, "big_brother's start");
    assert_eq!(c.initial_weight(true).get(), 0, "a node added by reload");
    assert_eq!(
        (c.nodes[0].upper_threshold, c.nodes[0].lower_threshold),
        (0, 0)
    );
    // persistence alone: ipvsadm's 300 s, each client on its own
    let c = &ok(&cluster("wrr", "    persistence: {}\n", "")).clusters[0];
    assert_eq!(
        c.service_options.persistence,
        Some(Persistence {
            timeout: 300,
            prefix_len: 32
        })
    );
}

#[test]
fn big_brother_defaults_apply_where_they_fit() {
    let text = "\
_big_brother:
  scheduler: mh
  persistence: {timeout: 60}
  scheduler_flags: [mh-port]
  one_packet: true
  start_weight: 0
clusters:
  - cluster_name: dns
    fwmark: 1
    vips: [{address: 192.0.2.1, protocol: udp, port: 53}, {address: 192.0.2.1, port: 53}]
    nodes: [{address: 10.0.0.1, port: 80, path: /}]
  - cluster_name: web
    fwmark: 2
    scheduler: wrr
    persistence: {netmask: 16}
    vips: [{address: 192.0.2.2, port: 443}]
    nodes: [{address: 10.0.0.1, port: 80, path: /}]
  - cluster_name: plain
    fwmark: 3
    persistence: ~
    start_weight: 2
    nodes: [{address: 10.0.0.1, port: 80, path: /}]
";
    let m = ok(text);
    let dns = &m.clusters[0].service_options;
    assert_eq!(dns.scheduler_flags, [SchedulerFlag::MhPort]);
    assert!(dns.one_packet, "a udp vip");
    let web = &m.clusters[1];
    assert_eq!(
        web.service_options,
        ServiceOptions {
            persistence: Some(Persistence {
                timeout: 60,
                prefix_len: 16
            }),
            scheduler_flags: vec![],
            one_packet: false,
        },
        "mh-port left out for wrr, one_packet for a tcp-only cluster, persistence merged"
    );
    let plain = &m.clusters[2];
    assert_eq!(plain.service_options.persistence, None, "~ turns it off");
    assert!(
        plain.service_options.one_packet,
        "no vips: marked elsewhere"
    );
    assert_eq!(plain.initial_weight(true).get(), 2);
    assert_eq!(m.clusters[0].initial_weight(false).get(), 0);
}

#[test]
fn options_that_contradict_are_errors_where_written() {
    assert_eq!(
        errs(&cluster("wrr", "    scheduler_flags: [sh-port]\n", "")),
        ["config.yml:5:23: clusters[0].scheduler_flags[0]: sh-port is a flag of the sh scheduler, but this cluster's scheduler is wrr"]
    );
    assert_eq!(
        errs(&cluster("sh", "    scheduler_flags: [sh-fallback, mh-port]\n", "")),
        ["config.yml:5:36: clusters[0].scheduler_flags[1]: mh-port is a flag of the mh scheduler, but this cluster's scheduler is sh"]
    );
    assert_eq!(
        errs(&cluster("sh", "    scheduler_flags: [sh-porte]\n", "")),
        ["config.yml:5:23: clusters[0].scheduler_flags[0]: \"sh-porte\" is not a scheduler flag; did you mean \"sh-port\"?"]
    );
    assert_eq!(
        errs(&cluster(
            "wrr",
            "    one_packet: true\n    vips: [{address: 192.0.2.1, port: 443}]\n",
            ""
        )),
        ["config.yml:5:17: clusters[0].one_packet: one_packet only applies to UDP, and none of this cluster's vips is udp"]
    );
    assert_eq!(
        errs(&cluster(
            "wrr",
            "    persistence: {timeout: 0, netmask: 33}\n",
            ""
        )),
        [
            "config.yml:5:28: clusters[0].persistence.timeout: 0 is outside 1..2678400",
            "config.yml:5:40: clusters[0].persistence.netmask: an IPv4 netmask is at most 32 bits",
        ]
    );
    assert_eq!(
        errs(&cluster("wrr", "    persistence: {netmask: 255.0.255.0}\n", "")),
        ["config.yml:5:28: clusters[0].persistence.netmask: \"255.0.255.0\" is not a netmask (a prefix length such as 24, or an IPv4 mask such as 255.255.255.0)"]
    );
    assert_eq!(
        errs("clusters:\n  - {cluster_name: v6, fwmark: 1, scheduler: rr, persistence: {netmask: 255.255.0.0}, nodes: [{address: 'fd00::1', port: 80, path: /}]}\n"),
        ["config.yml:2:73: clusters[0].persistence.netmask: an IPv6 cluster takes a prefix length (1 to 128), not a dotted mask"]
    );
    assert_eq!(
        errs(&cluster("wrr", "    start_weight: -1\n", "")),
        ["config.yml:5:19: clusters[0].start_weight: -1 is outside 0..65535"]
    );
}

#[test]
fn thresholds_must_agree() {
    assert_eq!(
        errs(&cluster("wrr", "", ", upper_threshold: 10, lower_threshold: 20")),
        ["config.yml:6:86: clusters[0].nodes[0].lower_threshold: lower_threshold 20 is above upper_threshold 10"]
    );
    assert_eq!(
        errs(&cluster("wrr", "", ", lower_threshold: 20")),
        ["config.yml:6:65: clusters[0].nodes[0].lower_threshold: lower_threshold needs an upper_threshold (it is where a node held at its upper threshold takes new connections again)"]
    );
    let m = ok(&cluster(
        "wrr",
        "",
        ", upper_threshold: 10, lower_threshold: 10",
    ));
    assert_eq!(m.clusters[0].nodes[0].lower_threshold, 10);
}
