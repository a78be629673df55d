//! `GET /metrics`: the daemon's state and counters in the Prometheus text format.
//!
//! Families (every one always declared, so dashboards can rely on the names): clusters
//! (`bigbro_cluster_running`, `_combined_weight`, `_errors`), nodes (`bigbro_node_up`,
//! `_health`, `_weight`, `_kernel_weight`, `_ramp_progress`), probes
//! (`bigbro_probe_duration_seconds` histogram, `bigbro_probe_failures_total` by reason), the
//! kernel and the reconciler (`bigbro_kernel_available`, `bigbro_reconcile_passes_total` by
//! trigger, `_duration_seconds`, `_operations_total` and `_kernel_errors_total` by kind,
//! `_repairs_total`, `_last_pass_errors`, `_last_pass_timestamp_seconds`), mark rules,
//! config reloads (`bigbro_config_reloads_total` by result, `_last_reload_successful`,
//! `_last_reload_success_timestamp_seconds`, `_last_reload_failure_timestamp_seconds`),
//! nagios and interpol, and the kernel's per-destination counters (`bigbro_ipvs_dest_*`).
//!
//! Rendering reads views only; a scrape never changes the daemon.

use axum::extract::State;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;

use super::error::text_response;
use super::probe_stats::{self, ProbeCounters};
use super::prom::{Kind, Writer, CONTENT_TYPE};
use super::server::AppState;
use crate::daemon::metrics::PASS_BUCKETS;
use crate::daemon::{ClusterStatus, DaemonStatus, KernelDest, MetricsSnapshot};
use crate::weight::Status;

pub fn routes() -> Router<AppState> {
    Router::new().route("/metrics", get(metrics))
}

async fn metrics(State(app): State<AppState>) -> Response {
    match app.query(app.handle.statuses()).await {
        Ok(clusters) => {
            let probes = {
                let mut stats = probe_stats::lock(&app.probes);
                // Forget targets a reload removed, so their series end.
                let config = app.handle.config();
                stats.retain(|t| {
                    config.clusters.iter().any(|c| {
                        c.node(t.addr()).is_some_and(|n| n.port == t.port())
                            || c.interpol
                                .iter()
                                .any(|i| i.address == t.addr() && i.port == t.port())
                    })
                });
                stats.counters()
            };
            let body = render(
                &clusters,
                &app.handle.daemon_status(),
                &app.handle.metrics(),
                &probes,
            );
            (
                StatusCode::OK,
                [(header::CONTENT_TYPE, HeaderValue::from_static(CONTENT_TYPE))],
                body,
            )
                .into_response()
        }
        Err(e) => {
            tracing::error!("Error: {e}");
            text_response(
                StatusCode::SERVICE_UNAVAILABLE,
                format!("metrics unavailable: {e}\n"),
            )
        }
    }
}

/// The whole exposition.
pub fn render(
    clusters: &[ClusterStatus],
    daemon: &DaemonStatus,
    m: &MetricsSnapshot,
    probes: &[ProbeCounters],
) -> String {
    let mut w = Writer::new();
    w.family(
        "bigbro_build_info",
        Kind::Gauge,
        "Always 1; the labels tell the versions.",
    );
    w.sample(
        &[
            ("version", env!("CARGO_PKG_VERSION")),
            ("big_brother_api", super::legacy::BIG_BROTHER_API_VERSION),
        ],
        1.0,
    );
    cluster_families(&mut w, clusters);
    node_families(&mut w, clusters);
    probe_families(&mut w, probes);
    reconcile_families(&mut w, daemon, m);
    reload_families(&mut w, daemon, m);
    other_families(&mut w, daemon, m);
    vip_families(&mut w, daemon, m);
    dest_families(&mut w, clusters);
    w.finish()
}

fn flag(b: bool) -> f64 {
    f64::from(u8::from(b))
}

fn cluster_families(w: &mut Writer, clusters: &[ClusterStatus]) {
    w.family(
        "bigbro_cluster_running",
        Kind::Gauge,
        "1 when bigbro runs the cluster (big_brother's Running), else 0.",
    );
    for c in clusters {
        let fwmark = c.fwmark.to_string();
        w.sample(
            &[("cluster", c.name.as_str()), ("fwmark", &fwmark)],
            flag(c.running),
        );
    }
    w.family(
        "bigbro_cluster_combined_weight",
        Kind::Gauge,
        "Sum of the cluster's local node weights, 0 when stopped (big_brother's CombinedWeight).",
    );
    for c in clusters {
        w.sample(&[("cluster", c.name.as_str())], c.combined_weight as f64);
    }
    w.family(
        "bigbro_cluster_errors",
        Kind::Gauge,
        "Kernel operations for the cluster that failed in the last reconcile pass.",
    );
    for c in clusters {
        w.sample(&[("cluster", c.name.as_str())], c.errors.len() as f64);
    }
}

fn node_families(w: &mut Writer, clusters: &[ClusterStatus]) {
    let nodes = || {
        clusters.iter().flat_map(|c| {
            c.nodes()
                .map(move |(n, p)| (c.name.as_str(), n.address.to_string(), n, p))
        })
    };
    w.family(
        "bigbro_node_up",
        Kind::Gauge,
        "1 when the node is up after rise/fall, 0 when down, not yet judged or not probed (cluster stopped).",
    );
    for (cluster, node, _, p) in nodes() {
        let up = p.is_some_and(|p| p.status == Status::Up);
        w.sample(&[("cluster", cluster), ("node", &node)], flag(up));
    }
    w.family(
        "bigbro_node_health",
        Kind::Gauge,
        "The health the node's weight is computed from (absent while not known).",
    );
    for (cluster, node, _, p) in nodes() {
        if let Some(h) = p.and_then(|p| p.health) {
            w.sample(&[("cluster", cluster), ("node", &node)], f64::from(h));
        }
    }
    w.family(
        "bigbro_node_weight",
        Kind::Gauge,
        "The weight bigbro wants for the node (0 while the cluster is stopped).",
    );
    for (cluster, node, n, _) in nodes() {
        w.sample(
            &[("cluster", cluster), ("node", &node)],
            f64::from(n.weight.get()),
        );
    }
    w.family(
        "bigbro_node_kernel_weight",
        Kind::Gauge,
        "The node's weight in IPVS at the last reconcile pass (absent when not in IPVS).",
    );
    for (cluster, node, n, _) in nodes() {
        if let Some(k) = n.kernel_weight() {
            w.sample(&[("cluster", cluster), ("node", &node)], f64::from(k));
        }
    }
    w.family(
        "bigbro_node_ramp_progress",
        Kind::Gauge,
        "Ramp-up progress from 0 to 1 (1 when not ramping, 0 when not up; absent when not probed).",
    );
    for (cluster, node, _, p) in nodes() {
        if let Some(p) = p {
            w.sample(&[("cluster", cluster), ("node", &node)], p.ramp_progress);
        }
    }
}

fn probe_families(w: &mut Writer, probes: &[ProbeCounters]) {
    w.family(
        "bigbro_probe_duration_seconds",
        Kind::Histogram,
        "How long health probes took, failed ones included.",
    );
    for p in probes {
        let address = p.address.to_string();
        let port = p.port.to_string();
        w.histogram(
            &[
                ("target", &p.target),
                ("address", &address),
                ("port", &port),
            ],
            &p.latency,
        );
    }
    w.family(
        "bigbro_probe_failures_total",
        Kind::Counter,
        "Failed health probes by reason (timeout, refused, status, no_health...).",
    );
    for p in probes {
        let address = p.address.to_string();
        let port = p.port.to_string();
        for (reason, n) in &p.failures {
            w.sample(
                &[
                    ("target", &p.target),
                    ("address", &address),
                    ("port", &port),
                    ("reason", reason),
                ],
                *n as f64,
            );
        }
    }
}

fn reconcile_families(w: &mut Writer, daemon: &DaemonStatus, m: &MetricsSnapshot) {
    w.family(
        "bigbro_kernel_available",
        Kind::Gauge,
        "1 when bigbro can read and write IPVS, 0 when it cannot (see the log or /api/v1/daemon).",
    );
    w.sample(&[], flag(daemon.kernel_error.is_none()));
    w.family(
        "bigbro_reconcile_passes_total",
        Kind::Counter,
        "Reconcile passes run (dump, diff, apply), by what caused them.",
    );
    for trigger in crate::daemon::Trigger::ALL {
        let n = m.passes.get(trigger.name()).copied().unwrap_or(0);
        w.sample(&[("trigger", trigger.name())], n as f64);
    }
    w.family(
        "bigbro_reconcile_duration_seconds",
        Kind::Histogram,
        "How long reconcile passes took.",
    );
    let buckets: Vec<(f64, u64)> = PASS_BUCKETS
        .iter()
        .copied()
        .zip(m.pass_duration_buckets.iter().copied())
        .collect();
    w.histogram_buckets(
        &[],
        &buckets,
        m.pass_duration_count,
        m.pass_duration_sum_seconds,
    );
    w.family(
        "bigbro_reconcile_operations_total",
        Kind::Counter,
        "IPVS operations the kernel accepted, by kind.",
    );
    for (kind, n) in &m.ops {
        w.sample(&[("kind", kind)], *n as f64);
    }
    w.family(
        "bigbro_reconcile_kernel_errors_total",
        Kind::Counter,
        "Kernel errors met, by the kind of operation that failed (dump for reads).",
    );
    for (kind, n) in &m.kernel_errors {
        w.sample(&[("kind", kind)], *n as f64);
    }
    w.family(
        "bigbro_reconcile_repairs_total",
        Kind::Counter,
        "Operations applied by anti-entropy passes: repairs of changes made behind bigbro's back.",
    );
    w.sample(&[], m.repairs as f64);
    w.family(
        "bigbro_reconcile_last_pass_errors",
        Kind::Gauge,
        "Operations that failed in the last reconcile pass.",
    );
    w.sample(
        &[],
        daemon.last_pass.as_ref().map_or(0, |p| p.errors.len()) as f64,
    );
    w.family(
        "bigbro_reconcile_last_pass_timestamp_seconds",
        Kind::Gauge,
        "When the last reconcile pass finished (Unix time).",
    );
    if let Some(p) = &daemon.last_pass {
        w.sample(&[], p.at_unix);
    }
}

fn reload_families(w: &mut Writer, daemon: &DaemonStatus, m: &MetricsSnapshot) {
    w.family(
        "bigbro_config_reloads_total",
        Kind::Counter,
        "Configuration reloads, by result (applied, or refused with the old configuration kept).",
    );
    w.sample(&[("result", "applied")], m.reload_success as f64);
    w.sample(&[("result", "refused")], m.reload_failure as f64);
    w.family(
        "bigbro_config_last_reload_successful",
        Kind::Gauge,
        "1 when the last configuration load was applied, 0 when it was refused.",
    );
    w.sample(&[], flag(m.last_reload_ok));
    w.family(
        "bigbro_config_last_reload_success_timestamp_seconds",
        Kind::Gauge,
        "When the configuration now running was loaded (Unix time; the first load counts).",
    );
    w.sample(&[], m.last_reload_success_unix);
    w.family(
        "bigbro_config_last_reload_failure_timestamp_seconds",
        Kind::Gauge,
        "When a reload was last refused (Unix time; absent if none was).",
    );
    if let Some(t) = daemon.reload.last_failure_unix {
        w.sample(&[], t);
    }
}

fn other_families(w: &mut Writer, daemon: &DaemonStatus, m: &MetricsSnapshot) {
    let counters: [(&str, &str, u64); 6] = [
        (
            "bigbro_marks_writes_total",
            "Times bigbro (re)wrote its nf_tables mark rules.",
            m.mark_writes,
        ),
        (
            "bigbro_marks_errors_total",
            "Failures reading or writing the nf_tables mark rules.",
            m.mark_errors,
        ),
        (
            "bigbro_nagios_sent_total",
            "Nagios passive checks sent with send_nsca.",
            m.nagios_sent,
        ),
        (
            "bigbro_nagios_failed_total",
            "Nagios passive checks that send_nsca failed to send.",
            m.nagios_failed,
        ),
        (
            "bigbro_interpol_polls_total",
            "interpol polls for remote load balancers.",
            m.interpol_polls,
        ),
        (
            "bigbro_interpol_failures_total",
            "interpol polls that got no usable answer.",
            m.interpol_failures,
        ),
    ];
    w.family(
        "bigbro_marks_in_sync",
        Kind::Gauge,
        "1 when the kernel held exactly bigbro's mark rules at the last check.",
    );
    w.sample(&[], flag(daemon.marks.in_sync));
    for (name, help, value) in counters {
        w.family(name, Kind::Counter, help);
        w.sample(&[], value as f64);
    }
}

/// The VIP addresses on bigbro's interface (all 0, `in_sync` 1, while bigbro manages none).
fn vip_families(w: &mut Writer, daemon: &DaemonStatus, m: &MetricsSnapshot) {
    let v = &daemon.vips;
    let gauges: [(&str, &str, f64); 5] = [
        (
            "bigbro_vips_managed",
            "1 when bigbro manages VIP addresses on its interface (a cluster has vips with vip_mode address).",
            flag(v.managed),
        ),
        (
            "bigbro_vips_wanted",
            "VIP addresses the running clusters want on bigbro's interface.",
            v.wanted.len() as f64,
        ),
        (
            "bigbro_vips_present",
            "VIP addresses on bigbro's interface after the last VIP pass.",
            v.present.len() as f64,
        ),
        (
            "bigbro_vips_conflicts",
            "Wanted VIPs left alone because they are already a local address elsewhere.",
            v.conflicts.len() as f64,
        ),
        (
            "bigbro_vips_in_sync",
            "1 when bigbro's interface held exactly the wanted VIPs (conflicts aside) with no error at the last VIP pass.",
            flag(v.in_sync || !v.managed),
        ),
    ];
    for (name, help, value) in gauges {
        w.family(name, Kind::Gauge, help);
        w.sample(&[], value);
    }
    let counters: [(&str, &str, u64); 2] = [
        (
            "bigbro_vips_operations_total",
            "VIP address changes (ip addr add/del on bigbro's interface) the kernel accepted.",
            m.vip_ops,
        ),
        (
            "bigbro_vips_errors_total",
            "Route netlink failures: VIP address changes, or reading the interface or addresses.",
            m.vip_errors,
        ),
    ];
    for (name, help, value) in counters {
        w.family(name, Kind::Counter, help);
        w.sample(&[], value as f64);
    }
}

fn dest_families(w: &mut Writer, clusters: &[ClusterStatus]) {
    type Field = fn(&KernelDest) -> f64;
    let families: [(&str, Kind, &str, Field); 7] = [
        (
            "bigbro_ipvs_dest_connections_total",
            Kind::Counter,
            "Connections IPVS scheduled to the destination.",
            |d| d.conns as f64,
        ),
        (
            "bigbro_ipvs_dest_active_connections",
            Kind::Gauge,
            "The destination's active connections in IPVS.",
            |d| f64::from(d.active_conns),
        ),
        (
            "bigbro_ipvs_dest_inactive_connections",
            Kind::Gauge,
            "The destination's inactive connections in IPVS.",
            |d| f64::from(d.inactive_conns),
        ),
        (
            "bigbro_ipvs_dest_in_packets_total",
            Kind::Counter,
            "Packets IPVS forwarded to the destination.",
            |d| d.inpkts as f64,
        ),
        (
            "bigbro_ipvs_dest_out_packets_total",
            Kind::Counter,
            "Packets from the destination through IPVS (0 with tunnelling and direct routing).",
            |d| d.outpkts as f64,
        ),
        (
            "bigbro_ipvs_dest_in_bytes_total",
            Kind::Counter,
            "Bytes IPVS forwarded to the destination.",
            |d| d.inbytes as f64,
        ),
        (
            "bigbro_ipvs_dest_out_bytes_total",
            Kind::Counter,
            "Bytes from the destination through IPVS (0 with tunnelling and direct routing).",
            |d| d.outbytes as f64,
        ),
    ];
    let services = || {
        clusters.iter().flat_map(|c| {
            let main = c.kernel.as_ref().map(|k| (c, c.fwmark, k));
            let relay = c
                .relay_kernel
                .as_ref()
                .zip(c.relay_fwmark)
                .map(|(k, f)| (c, f, k));
            main.into_iter().chain(relay)
        })
    };
    for (name, kind, help, field) in families {
        w.family(name, kind, help);
        for (c, fwmark, service) in services() {
            let fwmark = fwmark.to_string();
            for d in &service.dests {
                let address = d.address.to_string();
                let port = d.port.to_string();
                w.sample(
                    &[
                        ("cluster", c.name.as_str()),
                        ("fwmark", &fwmark),
                        ("address", &address),
                        ("port", &port),
                    ],
                    field(d),
                );
            }
        }
    }
}
