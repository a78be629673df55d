//! `GET /metrics`: the daemon's state and counters in the Prometheus text format.
//!
//! Families (every one always declared, so dashboards can rely on the names):
//! clusters (`bigbro_cluster_running`, `_combined_weight`), nodes (`bigbro_node_up`,
//! `_health`, `_weight`, `_kernel_weight`, `_ramp_progress`), probes
//! (`bigbro_probe_duration_seconds` histogram, `bigbro_probe_failures_total` by reason),
//! the reconciler (`bigbro_reconcile_passes_total`, `_failed_passes_total`,
//! `_duration_seconds`, `_operations_total` by kind, `_kernel_errors_total` by kind), config
//! reloads (`bigbro_config_reloads_total` by result, `_last_reload_successful`,
//! `_last_reload_timestamp_seconds`, `_loaded_timestamp_seconds`) and the kernel's
//! per-destination counters (`bigbro_ipvs_dest_*`).
//!
//! Rendering reads views only; a scrape never changes the daemon.

use axum::extract::State;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;

use super::backend::{Backend, ClusterView, Counters};
use super::error::text_response;
use super::prom::{Kind, Writer, CONTENT_TYPE};
use super::server::AppState;
use crate::weight::Status;

pub fn routes<B: Backend>() -> Router<AppState<B>> {
    Router::new().route("/metrics", get(metrics::<B>))
}

async fn metrics<B: Backend>(State(app): State<AppState<B>>) -> Response {
    let clusters = app.call(app.backend.clusters()).await;
    let counters = app.call(app.backend.counters()).await;
    match (clusters, counters) {
        (Ok(clusters), Ok(counters)) => (
            StatusCode::OK,
            [(header::CONTENT_TYPE, HeaderValue::from_static(CONTENT_TYPE))],
            render(&clusters, &counters),
        )
            .into_response(),
        (Err(e), _) | (_, Err(e)) => {
            tracing::error!("Error: {e}");
            text_response(
                StatusCode::SERVICE_UNAVAILABLE,
                format!("metrics unavailable: {e}\n"),
            )
        }
    }
}

/// The whole exposition.
pub fn render(clusters: &[ClusterView], counters: &Counters) -> String {
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
    probe_families(&mut w, counters);
    reconcile_families(&mut w, counters);
    reload_families(&mut w, counters);
    dest_families(&mut w, counters);
    w.finish()
}

fn cluster_families(w: &mut Writer, clusters: &[ClusterView]) {
    w.family(
        "bigbro_cluster_running",
        Kind::Gauge,
        "1 when the cluster's IPVS service is kept in the kernel (big_brother's Running), else 0.",
    );
    for c in clusters {
        let fwmark = c.fwmark.to_string();
        w.sample(
            &[("cluster", c.name.as_str()), ("fwmark", &fwmark)],
            f64::from(u8::from(c.running)),
        );
    }
    w.family(
        "bigbro_cluster_combined_weight",
        Kind::Gauge,
        "Sum of the cluster's node weights while it runs, 0 when stopped (big_brother's CombinedWeight).",
    );
    for c in clusters {
        w.sample(&[("cluster", c.name.as_str())], c.combined_weight() as f64);
    }
}

fn node_families(w: &mut Writer, clusters: &[ClusterView]) {
    let nodes = || {
        clusters.iter().flat_map(|c| {
            c.nodes
                .iter()
                .map(move |n| (c.name.as_str(), n.snapshot.addr.to_string(), n))
        })
    };
    w.family(
        "bigbro_node_up",
        Kind::Gauge,
        "1 when the node is up after rise/fall, 0 when down or not yet judged.",
    );
    for (cluster, node, n) in nodes() {
        let up = n.snapshot.status == Status::Up;
        w.sample(
            &[("cluster", cluster), ("node", &node)],
            f64::from(u8::from(up)),
        );
    }
    w.family(
        "bigbro_node_health",
        Kind::Gauge,
        "The health the node's weight is computed from (absent while not known).",
    );
    for (cluster, node, n) in nodes() {
        if let Some(h) = n.snapshot.health {
            w.sample(&[("cluster", cluster), ("node", &node)], f64::from(h));
        }
    }
    w.family(
        "bigbro_node_weight",
        Kind::Gauge,
        "The weight bigbro wants for the node in IPVS.",
    );
    for (cluster, node, n) in nodes() {
        w.sample(
            &[("cluster", cluster), ("node", &node)],
            f64::from(n.snapshot.weight.get()),
        );
    }
    w.family(
        "bigbro_node_kernel_weight",
        Kind::Gauge,
        "The node's weight in IPVS at the last reconcile pass (absent when not in IPVS).",
    );
    for (cluster, node, n) in nodes() {
        if let Some(k) = n.kernel_weight {
            w.sample(&[("cluster", cluster), ("node", &node)], f64::from(k.get()));
        }
    }
    w.family(
        "bigbro_node_ramp_progress",
        Kind::Gauge,
        "Ramp-up progress from 0 to 1 (1 when not ramping, 0 when not up).",
    );
    for (cluster, node, n) in nodes() {
        w.sample(
            &[("cluster", cluster), ("node", &node)],
            n.snapshot.ramp_progress,
        );
    }
}

fn probe_families(w: &mut Writer, counters: &Counters) {
    w.family(
        "bigbro_probe_duration_seconds",
        Kind::Histogram,
        "How long health probes took, failed ones included.",
    );
    for p in &counters.probes {
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
    for p in &counters.probes {
        let address = p.address.to_string();
        for (reason, n) in &p.failures {
            w.sample(
                &[
                    ("target", &p.target),
                    ("address", &address),
                    ("reason", reason),
                ],
                *n as f64,
            );
        }
    }
}

fn reconcile_families(w: &mut Writer, counters: &Counters) {
    let r = &counters.reconcile;
    w.family(
        "bigbro_reconcile_passes_total",
        Kind::Counter,
        "Reconcile passes run (dump, diff, apply).",
    );
    w.sample(&[], r.passes as f64);
    w.family(
        "bigbro_reconcile_failed_passes_total",
        Kind::Counter,
        "Reconcile passes that left operations failing or could not read the kernel.",
    );
    w.sample(&[], r.failed_passes as f64);
    w.family(
        "bigbro_reconcile_duration_seconds",
        Kind::Histogram,
        "How long reconcile passes took.",
    );
    w.histogram(&[], &r.duration);
    w.family(
        "bigbro_reconcile_operations_total",
        Kind::Counter,
        "IPVS operations the kernel accepted, by kind.",
    );
    for (kind, n) in &r.operations {
        w.sample(&[("kind", kind)], *n as f64);
    }
    w.family(
        "bigbro_reconcile_kernel_errors_total",
        Kind::Counter,
        "Kernel errors met by reconcile passes, by kind.",
    );
    for (kind, n) in &r.kernel_errors {
        w.sample(&[("kind", kind)], *n as f64);
    }
}

fn reload_families(w: &mut Writer, counters: &Counters) {
    let r = &counters.reload;
    w.family(
        "bigbro_config_reloads_total",
        Kind::Counter,
        "Configuration reloads, by result (applied, or refused with the old configuration kept).",
    );
    w.sample(&[("result", "applied")], r.applied as f64);
    w.sample(&[("result", "refused")], r.refused as f64);
    w.family(
        "bigbro_config_last_reload_successful",
        Kind::Gauge,
        "1 when the last reload was applied, 0 when it was refused (1 before any reload).",
    );
    w.sample(&[], f64::from(u8::from(r.last_ok.unwrap_or(true))));
    w.family(
        "bigbro_config_last_reload_timestamp_seconds",
        Kind::Gauge,
        "When the last reload was attempted (Unix time; absent before the first).",
    );
    if let Some(t) = r.last_unix {
        w.sample(&[], t);
    }
    w.family(
        "bigbro_config_loaded_timestamp_seconds",
        Kind::Gauge,
        "When the configuration now running was loaded (Unix time).",
    );
    if let Some(t) = r.loaded_unix {
        w.sample(&[], t);
    }
}

fn dest_families(w: &mut Writer, counters: &Counters) {
    type Field = fn(&super::backend::DestCounters) -> f64;
    let families: [(&str, Kind, &str, Field); 7] = [
        (
            "bigbro_ipvs_dest_connections_total",
            Kind::Counter,
            "Connections IPVS scheduled to the destination.",
            |d| d.stats.conns as f64,
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
            |d| d.stats.inpkts as f64,
        ),
        (
            "bigbro_ipvs_dest_out_packets_total",
            Kind::Counter,
            "Packets from the destination through IPVS (0 with tunnelling and direct routing).",
            |d| d.stats.outpkts as f64,
        ),
        (
            "bigbro_ipvs_dest_in_bytes_total",
            Kind::Counter,
            "Bytes IPVS forwarded to the destination.",
            |d| d.stats.inbytes as f64,
        ),
        (
            "bigbro_ipvs_dest_out_bytes_total",
            Kind::Counter,
            "Bytes from the destination through IPVS (0 with tunnelling and direct routing).",
            |d| d.stats.outbytes as f64,
        ),
    ];
    for (name, kind, help, field) in families {
        w.family(name, kind, help);
        for d in &counters.dests {
            let fwmark = d.fwmark.to_string();
            let address = d.address.to_string();
            let port = d.port.to_string();
            let cluster = d.cluster.as_ref().map(|c| c.as_str()).unwrap_or("");
            w.sample(
                &[
                    ("cluster", cluster),
                    ("fwmark", &fwmark),
                    ("address", &address),
                    ("port", &port),
                ],
                field(d),
            );
        }
    }
}
