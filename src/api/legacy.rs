//! big_brother's HTTP routes, byte for byte (docs/api.md, "big_brother's routes"). pacemaker's OCF
//! agent and litmus_paper's `big_brother_service` parse these bodies, so they are a frozen
//! contract: `Running: <bool>\nCombinedWeight: <int>\n`, `OK`, an empty 304,
//! `Cluster <name> not found`, `Application error`.
//!
//! Deliberate differences, none in a body a program reads: the content type is
//! `text/plain` (Sinatra said `text/html` for plain text) and `application/json` for
//! `status_detail` (big_brother served that JSON with Sinatra's default content type);
//! the banner's version is big_brother's API level followed by bigbro's own version (see
//! `BANNER_VERSION`); a wrong method gets 405 with
//! `Allow` instead of Sinatra's 404 page.
//!
//! These handlers only translate: every decision (adopt, start, stop) is the daemon's.

use std::fmt::Write as _;

use axum::extract::{Path, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;

use super::error::text_response;
use super::server::{AppState, Failure};
use crate::daemon::{ClusterStatus, ClusterSummary, StartOutcome, StopOutcome};

/// The big_brother release whose API bigbro serves unchanged.
pub const BIG_BROTHER_API_VERSION: &str = "0.9.12";

/// The version in the `Big Brother: <version>` banner of `GET /`: big_brother's API level
/// first (a script that compares it with big_brother releases, e.g. to know that
/// `status_detail` exists since 0.9.6, keeps working), then what is really running, so
/// that a person reading the page is not misled. No known client parses this line; the
/// OCF agent and litmus_paper read `/cluster/NAME` only.
pub fn banner_version() -> String {
    format!(
        "{BIG_BROTHER_API_VERSION} (bigbro {})",
        env!("CARGO_PKG_VERSION")
    )
}

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/", get(index))
        .route(
            "/cluster/{name}",
            get(status_synchronized).put(start).delete(stop),
        )
        .route("/cluster/{name}/status", get(status))
        .route("/cluster/{name}/status_detail", get(status_detail))
}

/// big_brother's `GET /` body.
pub fn render_index(clusters: &[ClusterSummary]) -> String {
    let mut out = format!("Big Brother: {}\n\nRunning:\n", banner_version());
    for c in clusters.iter().filter(|c| c.running) {
        let _ = writeln!(
            out,
            "+ {} ({}) - CombinedWeight: {}",
            c.name, c.fwmark, c.combined_weight
        );
    }
    out.push_str("\nStopped:\n");
    for c in clusters.iter().filter(|c| !c.running) {
        let _ = writeln!(out, "- {} ({})", c.name, c.fwmark);
    }
    out.push('\n');
    out
}

/// big_brother's `GET /cluster/NAME` and `/status` body.
pub fn render_status(c: &ClusterStatus) -> String {
    format!(
        "Running: {}\nCombinedWeight: {}\n",
        c.running, c.combined_weight
    )
}

/// big_brother's `status_detail` JSON: `{"nodes":{addr:weight},"cluster":name,
/// "running":bool}`, keys in that order, local nodes keyed by address, weights 0 while
/// the cluster is stopped (big_brother zeroed them on stop).
pub fn render_status_detail(c: &ClusterStatus) -> String {
    let mut out = String::from("{\"nodes\":{");
    for (i, n) in c.nodes.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        let weight = if c.running { n.weight.get() } else { 0 };
        let key = serde_json::to_string(&n.address.to_string()).unwrap_or_default();
        let _ = write!(out, "{key}:{weight}");
    }
    let name = serde_json::to_string(c.name.as_str()).unwrap_or_default();
    let _ = write!(out, "}},\"cluster\":{name},\"running\":{}}}", c.running);
    out
}

/// 404 `Cluster <name> not found`, as big_brother's before-filter answered.
pub fn not_found(name: &str) -> Response {
    text_response(StatusCode::NOT_FOUND, format!("Cluster {name} not found"))
}

/// 500 `Application error`, logged as big_brother did (`Error: ...`).
pub fn application_error(e: &Failure) -> Response {
    tracing::error!("Error: {e}");
    text_response(StatusCode::INTERNAL_SERVER_ERROR, "Application error")
}

fn ok() -> Response {
    text_response(StatusCode::OK, "OK")
}

fn not_modified() -> Response {
    StatusCode::NOT_MODIFIED.into_response()
}

async fn index(State(app): State<AppState>) -> Response {
    match app.query(async { app.handle.clusters() }).await {
        Ok(clusters) => text_response(StatusCode::OK, render_index(&clusters)),
        Err(e) => application_error(&e),
    }
}

fn status_body(c: &ClusterStatus) -> Response {
    text_response(StatusCode::OK, render_status(c))
}

fn detail_body(c: &ClusterStatus) -> Response {
    (
        StatusCode::OK,
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        )],
        render_status_detail(c),
    )
        .into_response()
}

fn answer(
    name: &str,
    found: Result<Option<ClusterStatus>, Failure>,
    render: fn(&ClusterStatus) -> Response,
) -> Response {
    match found {
        Ok(Some(c)) => render(&c),
        Ok(None) => not_found(name),
        Err(e) => application_error(&e),
    }
}

/// `GET /cluster/NAME`: adopts the cluster from the kernel first if it is stopped there
/// but running in IPVS (big_brother's `synchronize!`); the OCF monitor and litmus_paper
/// call this.
async fn status_synchronized(State(app): State<AppState>, Path(name): Path<String>) -> Response {
    let found = app
        .command({
            let name = name.clone();
            move |daemon| async move { daemon.synchronize(&name).await }
        })
        .await;
    answer(&name, found, status_body)
}

/// `GET /cluster/NAME/status`: the same without adoption, cheap enough to poll often.
async fn status(State(app): State<AppState>, Path(name): Path<String>) -> Response {
    let found = app.query(app.handle.status(&name)).await;
    answer(&name, found, status_body)
}

async fn status_detail(State(app): State<AppState>, Path(name): Path<String>) -> Response {
    let found = app.query(app.handle.status(&name)).await;
    answer(&name, found, detail_body)
}

async fn start(State(app): State<AppState>, Path(name): Path<String>) -> Response {
    match app
        .command({
            let name = name.clone();
            move |daemon| async move { daemon.start(&name).await }
        })
        .await
    {
        Ok(StartOutcome::Started) => {
            tracing::info!(cluster = %name, "started through the API");
            ok()
        }
        Ok(StartOutcome::AlreadyRunning) => not_modified(),
        Ok(StartOutcome::NotFound) => not_found(&name),
        Err(e) => application_error(&e),
    }
}

async fn stop(State(app): State<AppState>, Path(name): Path<String>) -> Response {
    match app
        .command({
            let name = name.clone();
            move |daemon| async move { daemon.stop(&name).await }
        })
        .await
    {
        Ok(StopOutcome::Stopped) => {
            tracing::info!(cluster = %name, "stopped through the API");
            ok()
        }
        Ok(StopOutcome::NotRunning) => not_modified(),
        Ok(StopOutcome::NotFound) => not_found(&name),
        Err(e) => application_error(&e),
    }
}

/// For the fallback: `/cluster/<name>/...` names a cluster (big_brother's before-filter
/// answered 404 `Cluster <name> not found` for any path under an unknown cluster).
pub fn cluster_in_path(path: &str) -> Option<&str> {
    let rest = path.strip_prefix("/cluster/")?;
    let name = rest.split('/').next()?;
    (!name.is_empty()).then_some(name)
}
