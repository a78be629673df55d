//! `GET /metrics` over a real loopback socket: a well-formed Prometheus text exposition
//! (every sample under a declared family with HELP and TYPE, no duplicate series,
//! histograms cumulative with +Inf = _count, label values escaped) whose values follow
//! known events: a start, health values, a failing probe, a kernel error, a refused and an
//! applied reload. (Per-destination IPVS counters need real traffic: the kernel test in
//! api_kernel.rs checks them.)

use crate::api_common;

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use api_common::{start, web1, web2, CONFIG};
use bigbro::health::{ProbeError, Script};

/// One parsed exposition.
struct Exposition {
    /// family -> (type, help)
    families: BTreeMap<String, (String, String)>,
    /// (name, labels) -> value, in order of appearance.
    samples: Vec<(String, BTreeMap<String, String>, f64)>,
}

fn unescape_label(raw: &str) -> (String, usize) {
    // Reads up to the closing quote; returns the value and the bytes consumed.
    let mut out = String::new();
    let mut chars = raw.char_indices();
    while let Some((i, c)) = chars.next() {
        match c {
            '"' => return (out, i + 1),
            '\\' => match chars.next() {
                Some((_, '\\')) => out.push('\\'),
                Some((_, '"')) => out.push('"'),
                Some((_, 'n')) => out.push('\n'),
                other => panic!("bad escape {other:?} in {raw}"),
            },
            '\n' => panic!("raw line feed in a label value"),
            c => out.push(c),
        }
    }
    panic!("unterminated label value in {raw}")
}

fn parse(text: &str) -> Exposition {
    let mut families = BTreeMap::new();
    let mut helps = BTreeMap::new();
    let mut samples = Vec::new();
    let mut seen = BTreeSet::new();
    assert!(
        text.ends_with('\n'),
        "the exposition must end with a line feed"
    );
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# HELP ") {
            let (name, help) = rest.split_once(' ').expect("HELP name text");
            assert!(
                helps.insert(name.to_string(), help.to_string()).is_none(),
                "two HELP for {name}"
            );
            continue;
        }
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, kind) = rest.split_once(' ').expect("TYPE name kind");
            assert!(["counter", "gauge", "histogram"].contains(&kind), "{line}");
            let help = helps
                .get(name)
                .unwrap_or_else(|| panic!("TYPE before HELP for {name}"));
            assert!(
                families
                    .insert(name.to_string(), (kind.to_string(), help.clone()))
                    .is_none(),
                "family {name} declared twice"
            );
            continue;
        }
        assert!(!line.starts_with('#'), "unexpected comment {line}");
        let name_end = line.find(['{', ' ']).expect("sample name");
        let name = &line[..name_end];
        let mut labels = BTreeMap::new();
        let mut rest = &line[name_end..];
        if let Some(inner) = rest.strip_prefix('{') {
            let mut body = inner;
            loop {
                let (key, after) = body.split_once("=\"").expect("label key");
                let (value, used) = unescape_label(after);
                labels.insert(key.to_string(), value);
                body = &after[used..];
                if let Some(more) = body.strip_prefix(',') {
                    body = more;
                } else {
                    rest = body.strip_prefix('}').expect("closing brace");
                    break;
                }
            }
        }
        let value = rest.trim_start();
        let value: f64 = match value {
            "+Inf" => f64::INFINITY,
            "-Inf" => f64::NEG_INFINITY,
            "NaN" => f64::NAN,
            v => v.parse().unwrap_or_else(|_| panic!("bad value in {line}")),
        };
        // The family this sample belongs to.
        let family = [("_bucket"), ("_sum"), ("_count")]
            .iter()
            .find_map(|s| {
                name.strip_suffix(s)
                    .filter(|base| families.get(*base).is_some_and(|(k, _)| k == "histogram"))
            })
            .unwrap_or(name);
        let (kind, _) = families
            .get(family)
            .unwrap_or_else(|| panic!("sample {name} before its TYPE line"));
        if kind == "counter" {
            assert!(
                name.ends_with("_total"),
                "counter {name} should end in _total"
            );
        }
        assert!(
            seen.insert(format!("{name}{labels:?}")),
            "duplicate series {line}"
        );
        samples.push((name.to_string(), labels, value));
    }
    // Histograms: cumulative buckets, +Inf equal to _count.
    for (family, (kind, _)) in &families {
        if kind != "histogram" {
            continue;
        }
        let mut series: BTreeMap<String, Vec<(f64, f64)>> = BTreeMap::new();
        for (name, labels, value) in &samples {
            if name == &format!("{family}_bucket") {
                let mut rest = labels.clone();
                let le = rest.remove("le").expect("le label");
                let le = if le == "+Inf" {
                    f64::INFINITY
                } else {
                    le.parse().unwrap()
                };
                series
                    .entry(format!("{rest:?}"))
                    .or_default()
                    .push((le, *value));
            }
        }
        for (labels, buckets) in series {
            assert!(
                buckets
                    .windows(2)
                    .all(|w| w[0].0 < w[1].0 && w[0].1 <= w[1].1),
                "{family}{labels}: {buckets:?}"
            );
            let inf = buckets.last().unwrap();
            assert!(inf.0.is_infinite());
            let count = samples
                .iter()
                .find(|(n, l, _)| n == &format!("{family}_count") && format!("{l:?}") == labels)
                .expect("a _count")
                .2;
            assert_eq!(
                inf.1, count,
                "{family}{labels}: +Inf bucket is not the count"
            );
        }
    }
    Exposition { families, samples }
}

impl Exposition {
    /// The value of the one sample `name` whose labels include `labels`.
    fn value(&self, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
        let matching: Vec<f64> = self
            .samples
            .iter()
            .filter(|(n, l, _)| {
                n == name
                    && labels
                        .iter()
                        .all(|(k, v)| l.get(*k).map(String::as_str) == Some(*v))
            })
            .map(|(_, _, v)| *v)
            .collect();
        assert!(
            matching.len() <= 1,
            "{name} {labels:?} matches {} samples",
            matching.len()
        );
        matching.first().copied()
    }
    fn get(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        self.value(name, labels)
            .unwrap_or_else(|| panic!("no sample {name} {labels:?}"))
    }
}

async fn scrape(api: &api_common::Api) -> Exposition {
    let r = api.get("/metrics").await;
    assert_eq!(r.status, 200);
    assert_eq!(
        r.header("content-type"),
        Some("text/plain; version=0.0.4; charset=utf-8")
    );
    parse(&r.text())
}

#[tokio::test]
async fn every_family_is_declared_even_before_anything_happens() {
    let api = start(CONFIG).await;
    let m = scrape(&api).await;
    for (family, kind) in [
        ("bigbro_build_info", "gauge"),
        ("bigbro_cluster_running", "gauge"),
        ("bigbro_cluster_combined_weight", "gauge"),
        ("bigbro_node_up", "gauge"),
        ("bigbro_node_health", "gauge"),
        ("bigbro_node_weight", "gauge"),
        ("bigbro_node_kernel_weight", "gauge"),
        ("bigbro_node_ramp_progress", "gauge"),
        ("bigbro_probe_duration_seconds", "histogram"),
        ("bigbro_probe_failures_total", "counter"),
        ("bigbro_kernel_available", "gauge"),
        ("bigbro_reconcile_passes_total", "counter"),
        ("bigbro_reconcile_duration_seconds", "histogram"),
        ("bigbro_reconcile_operations_total", "counter"),
        ("bigbro_reconcile_kernel_errors_total", "counter"),
        ("bigbro_config_reloads_total", "counter"),
        ("bigbro_config_last_reload_successful", "gauge"),
        (
            "bigbro_config_last_reload_success_timestamp_seconds",
            "gauge",
        ),
        ("bigbro_ipvs_dest_connections_total", "counter"),
        ("bigbro_ipvs_dest_in_packets_total", "counter"),
        ("bigbro_ipvs_dest_in_bytes_total", "counter"),
    ] {
        let (k, help) = m
            .families
            .get(family)
            .unwrap_or_else(|| panic!("no family {family}"));
        assert_eq!(k, kind, "{family}");
        assert!(help.len() > 10, "{family} has no real help text");
    }
    assert_eq!(
        m.get(
            "bigbro_cluster_running",
            &[("cluster", "web"), ("fwmark", "7")]
        ),
        0.0
    );
    assert_eq!(m.get("bigbro_kernel_available", &[]), 1.0);
    assert_eq!(m.get("bigbro_config_last_reload_successful", &[]), 1.0);
    assert_eq!(
        m.get("bigbro_config_reloads_total", &[("result", "refused")]),
        0.0
    );
    assert_eq!(
        m.get("bigbro_build_info", &[("big_brother_api", "0.9.12")]),
        1.0
    );
}

#[tokio::test]
async fn values_follow_a_start_health_and_a_failing_probe() {
    let api = start(CONFIG).await;
    api.fake.set_health(&web1(), 30);
    api.fake.set_health(&web2(), 70);
    assert_eq!(api.put("/cluster/web").await.status, 200);
    api.wait_weight("web", 100).await;

    let m = scrape(&api).await;
    let web1_labels = [("cluster", "web"), ("node", "10.0.0.1")];
    let web2_labels = [("cluster", "web"), ("node", "10.0.0.2")];
    assert_eq!(m.get("bigbro_cluster_running", &[("cluster", "web")]), 1.0);
    assert_eq!(m.get("bigbro_cluster_running", &[("cluster", "db")]), 0.0);
    assert_eq!(
        m.get("bigbro_cluster_combined_weight", &[("cluster", "web")]),
        100.0
    );
    assert_eq!(m.get("bigbro_node_up", &web1_labels), 1.0);
    assert_eq!(m.get("bigbro_node_health", &web1_labels), 30.0);
    assert_eq!(m.get("bigbro_node_health", &web2_labels), 70.0);
    assert_eq!(m.get("bigbro_node_weight", &web2_labels), 70.0);
    assert_eq!(m.get("bigbro_node_kernel_weight", &web2_labels), 70.0);
    assert_eq!(m.get("bigbro_node_ramp_progress", &web2_labels), 1.0);
    assert_eq!(
        m.value("bigbro_node_health", &[("cluster", "db")]),
        None,
        "db is not probed"
    );
    // The start created one service and two destinations (at weight 1), then health
    // edited both.
    assert_eq!(
        m.get(
            "bigbro_reconcile_operations_total",
            &[("kind", "add_service")]
        ),
        1.0
    );
    assert_eq!(
        m.get("bigbro_reconcile_operations_total", &[("kind", "add_dest")]),
        2.0
    );
    assert!(
        m.get(
            "bigbro_reconcile_operations_total",
            &[("kind", "edit_dest")]
        ) >= 2.0
    );
    let passes: f64 = m
        .samples
        .iter()
        .filter(|(n, _, _)| n == "bigbro_reconcile_passes_total")
        .map(|(_, _, v)| v)
        .sum();
    assert!(m.get("bigbro_reconcile_passes_total", &[("trigger", "command")]) >= 1.0);
    assert_eq!(
        m.get("bigbro_reconcile_duration_seconds_count", &[]),
        passes
    );

    // 10.0.0.1's health endpoint starts refusing connections.
    api.fake.prober.set(
        &web1(),
        Script::Answer {
            result: Err(ProbeError::Refused),
            after: Duration::from_millis(2),
        },
    );
    api.wait_weight("web", 70).await;
    let m = scrape(&api).await;
    let target = [("target", "litmus http://10.0.0.1:9001/web/status")];
    assert!(
        m.get(
            "bigbro_probe_failures_total",
            &[target[0], ("reason", "refused")]
        ) >= 1.0
    );
    assert_eq!(
        m.value(
            "bigbro_probe_failures_total",
            &[("target", "litmus http://10.0.0.2:9001/web/status")]
        ),
        None,
        "10.0.0.2 never failed"
    );
    assert!(m.get("bigbro_probe_duration_seconds_count", &target) >= 2.0);
    assert_eq!(m.get("bigbro_node_up", &web1_labels), 0.0);
    assert_eq!(m.get("bigbro_node_weight", &web1_labels), 0.0);
    assert_eq!(m.get("bigbro_node_kernel_weight", &web1_labels), 0.0);
    assert_eq!(
        m.get("bigbro_cluster_combined_weight", &[("cluster", "web")]),
        70.0
    );
}

#[tokio::test]
async fn kernel_errors_and_reloads_are_counted() {
    let api = start(CONFIG).await;
    api.fake
        .kernel
        .fail_ops_matching("adding service FWM 8", nix::libc::EPERM);
    // The start is carried out and its failure reported in the status, not as an error.
    let r = api.put("/cluster/db").await;
    assert_eq!(r.status, 200, "{}", r.text());
    let m = scrape(&api).await;
    assert!(
        m.get(
            "bigbro_reconcile_kernel_errors_total",
            &[("kind", "add_service")]
        ) >= 1.0
    );
    assert!(m.get("bigbro_cluster_errors", &[("cluster", "db")]) >= 1.0);
    assert!(m.get("bigbro_reconcile_last_pass_errors", &[]) >= 1.0);
    assert_eq!(m.get("bigbro_cluster_errors", &[("cluster", "web")]), 0.0);

    // A refused reload, then an applied one.
    let good = std::fs::read_to_string(&api.config).unwrap();
    std::fs::write(&api.config, "clusters: [{cluster_name: x}]\n").unwrap();
    assert_eq!(api.post("/api/v1/reload").await.status, 422);
    let m = scrape(&api).await;
    assert_eq!(
        m.get("bigbro_config_reloads_total", &[("result", "refused")]),
        1.0
    );
    assert_eq!(
        m.get("bigbro_config_reloads_total", &[("result", "applied")]),
        0.0
    );
    assert_eq!(m.get("bigbro_config_last_reload_successful", &[]), 0.0);
    let failed_at = m.get("bigbro_config_last_reload_failure_timestamp_seconds", &[]);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64();
    assert!((now - failed_at).abs() < 60.0, "{failed_at} vs {now}");
    let loaded_at = m.get("bigbro_config_last_reload_success_timestamp_seconds", &[]);
    assert!(loaded_at <= failed_at);

    std::fs::write(&api.config, good).unwrap();
    assert_eq!(api.post("/api/v1/reload").await.status, 200);
    let m = scrape(&api).await;
    assert_eq!(
        m.get("bigbro_config_reloads_total", &[("result", "applied")]),
        1.0
    );
    assert_eq!(m.get("bigbro_config_last_reload_successful", &[]), 1.0);
    assert!(m.get("bigbro_config_last_reload_success_timestamp_seconds", &[]) >= failed_at);
}

#[tokio::test]
async fn label_values_are_escaped() {
    // A health path holding a double quote and a backslash (visible ASCII, so valid).
    let config = r#"
clusters:
  - cluster_name: web
    fwmark: 7
    scheduler: wrr
    ramp_up_time: 0
    check_interval: 0.2
    nodes:
      - {address: 10.0.0.1, port: 9001, path: '/st"at\us'}
"#;
    let api = start(config).await;
    assert_eq!(api.put("/cluster/web").await.status, 200);
    // Wait for a probe of the odd target to be recorded.
    let odd = "litmus http://10.0.0.1:9001/st\"at\\us";
    let raw = loop {
        let text = api.get("/metrics").await.text();
        if text.contains("bigbro_probe_duration_seconds_count{target=\"litmus http://10.0.0.1") {
            break text;
        }
        let mut h = api.handle().clone();
        let _ = tokio::time::timeout(Duration::from_secs(5), h.changed()).await;
    };
    assert!(
        raw.contains(r#"target="litmus http://10.0.0.1:9001/st\"at\\us""#),
        "not escaped: {}",
        raw.lines()
            .find(|l| l.contains("10.0.0.1:9001/st"))
            .unwrap_or("")
    );
    let m = parse(&raw);
    assert!(m.get("bigbro_probe_duration_seconds_count", &[("target", odd)]) >= 1.0);
}

#[tokio::test]
async fn probe_series_of_a_removed_node_end_with_the_reload() {
    let api = start(CONFIG).await;
    assert_eq!(api.put("/cluster/web").await.status, 200);
    api.wait_weight("web", 200).await;
    let gone = [("target", "litmus http://10.0.0.2:9001/web/status")];
    assert!(
        scrape(&api)
            .await
            .get("bigbro_probe_duration_seconds_count", &gone)
            >= 1.0
    );
    let without = CONFIG.replace(
        "      - {address: 10.0.0.2, port: 9001, path: /web/status}\n",
        "",
    );
    assert_ne!(without, CONFIG);
    std::fs::write(&api.config, without).unwrap();
    assert_eq!(api.post("/api/v1/reload").await.status, 200);
    let m = scrape(&api).await;
    assert_eq!(m.value("bigbro_probe_duration_seconds_count", &gone), None);
    assert_eq!(m.value("bigbro_node_weight", &[("node", "10.0.0.2")]), None);
    let kept = [("target", "litmus http://10.0.0.1:9001/web/status")];
    assert!(m.get("bigbro_probe_duration_seconds_count", &kept) >= 1.0);
}

#[tokio::test]
async fn vip_addresses_show_in_the_daemon_status_and_the_metrics() {
    let yaml = CONFIG.replace(
        "    fwmark: 7\n",
        "    fwmark: 7\n    vips: [{address: 192.0.2.10, port: 80}, {address: 192.0.2.11, port: 80}]\n",
    );
    let api = start(&yaml).await;
    // 192.0.2.11 is already a local address elsewhere: a conflict, left alone.
    let eth0 = api.fake.route.add_link("eth0", None);
    api.fake
        .route
        .hand_add(eth0, "192.0.2.11".parse().unwrap(), 24);
    assert_eq!(api.put("/cluster/web").await.status, 200);
    let d = api.get("/api/v1/daemon").await.json();
    let v = &d["vips"];
    assert_eq!(v["managed"], true, "{d}");
    assert_eq!(v["interface"], "bigbro0");
    assert_eq!(v["wanted"], serde_json::json!(["192.0.2.10", "192.0.2.11"]));
    assert_eq!(v["present"], serde_json::json!(["192.0.2.10"]));
    assert_eq!(v["in_sync"], true);
    assert!(
        v["conflicts"][0]
            .as_str()
            .unwrap()
            .contains("192.0.2.11 is already a local address on eth0"),
        "{v}"
    );
    let m = scrape(&api).await;
    assert_eq!(m.get("bigbro_vips_managed", &[]), 1.0);
    assert_eq!(m.get("bigbro_vips_wanted", &[]), 2.0);
    assert_eq!(m.get("bigbro_vips_present", &[]), 1.0);
    assert_eq!(m.get("bigbro_vips_conflicts", &[]), 1.0);
    assert_eq!(m.get("bigbro_vips_in_sync", &[]), 1.0);
    assert_eq!(m.get("bigbro_vips_operations_total", &[]), 1.0);
    assert_eq!(m.get("bigbro_vips_errors_total", &[]), 0.0);
    // Stopped: the address goes (one more operation), the foreign one stays.
    assert_eq!(api.delete("/cluster/web").await.status, 200);
    let m = scrape(&api).await;
    assert_eq!(m.get("bigbro_vips_present", &[]), 0.0);
    assert_eq!(m.get("bigbro_vips_operations_total", &[]), 2.0);
    assert_eq!(
        api.fake
            .route
            .all()
            .iter()
            .filter(|a| a.interface == "eth0")
            .count(),
        1
    );
}
