//! The JSON API under `/api/v1/`: clusters and nodes with everything the weight policy and
//! the kernel know of them, start/stop, per-node and per-cluster overrides, reload and
//! the running configuration.
//!
//! The JSON shapes are this module's own (not the daemon's types serialized as they
//! are), so that they change only on purpose. Requests are validated completely before
//! the daemon is asked anything: a malformed one gets a 4xx naming the field and changes
//! nothing.

use std::net::IpAddr;
use std::time::Duration;

use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::{get, post, put};
use axum::Router;
use serde::{Deserialize, Serialize};
use tokio::time::Instant;

use super::body::read_json;
use super::error::{json_response, quote, ApiError};
use super::legacy::BIG_BROTHER_API_VERSION;
use super::server::{AppState, Failure};
use crate::config::BackendMode;
use crate::daemon::{self, ClusterStatus, NodeStatus, StartOutcome, StopOutcome};
use crate::types::Weight;
use crate::weight::{Force, NodeSnapshot, Override, OverrideRequest, OverrideView, Source, Status};

/// The longest override reason accepted.
pub const MAX_REASON_LEN: usize = 500;
/// The longest override lifetime accepted (a year: longer is "until cleared").
pub const MAX_TTL: Duration = Duration::from_secs(366 * 24 * 3600);

const ROUTES: &[&str] = &[
    "GET /api/v1/clusters",
    "GET /api/v1/clusters/{cluster}",
    "POST /api/v1/clusters/{cluster}/start",
    "POST /api/v1/clusters/{cluster}/stop",
    "PUT|DELETE /api/v1/clusters/{cluster}/override",
    "GET /api/v1/clusters/{cluster}/nodes",
    "GET /api/v1/clusters/{cluster}/nodes/{address}",
    "PUT|DELETE /api/v1/clusters/{cluster}/nodes/{address}/override",
    "POST /api/v1/reload",
    "GET /api/v1/config",
    "GET /api/v1/daemon",
];

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/api/v1", get(index))
        .route("/api/v1/clusters", get(clusters))
        .route("/api/v1/clusters/{cluster}", get(cluster))
        .route("/api/v1/clusters/{cluster}/start", post(start))
        .route("/api/v1/clusters/{cluster}/stop", post(stop))
        .route(
            "/api/v1/clusters/{cluster}/override",
            put(set_cluster_override).delete(clear_cluster_override),
        )
        .route("/api/v1/clusters/{cluster}/nodes", get(nodes))
        .route("/api/v1/clusters/{cluster}/nodes/{node}", get(node))
        .route(
            "/api/v1/clusters/{cluster}/nodes/{node}/override",
            put(set_node_override).delete(clear_node_override),
        )
        .route("/api/v1/reload", post(reload))
        .route("/api/v1/config", get(config))
        .route("/api/v1/daemon", get(daemon_status))
}

// ---- JSON shapes ----------------------------------------------------------------------

#[derive(Serialize)]
pub struct ClusterJson {
    pub name: String,
    pub fwmark: u32,
    /// The relay service's fwmark (multi-datacenter clusters).
    pub relay_fwmark: Option<u32>,
    pub running: bool,
    /// big_brother's CombinedWeight: the local nodes' weights, 0 while stopped.
    pub combined_weight: u64,
    pub scheduler: &'static str,
    pub backend_mode: BackendMode,
    /// big_brother's override files (`null` while stopped).
    pub files: Option<FilesJson>,
    #[serde(rename = "override")]
    pub over: Option<OverrideJson>,
    /// active_passive: the node in IPVS.
    pub active_node: Option<IpAddr>,
    pub downpage: Option<DownpageJson>,
    /// Kernel operations for this cluster that failed in the last reconcile pass.
    pub errors: Vec<String>,
    pub nodes: Vec<NodeJson>,
    /// Remote load balancers learned from interpol.
    pub remote_nodes: Vec<RemoteJson>,
}

#[derive(Serialize)]
pub struct FilesJson {
    pub up: bool,
    pub down: bool,
}

#[derive(Serialize)]
pub struct DownpageJson {
    pub address: IpAddr,
    pub active: bool,
}

#[derive(Serialize)]
pub struct RemoteJson {
    pub address: IpAddr,
    pub weight: u32,
    pub down_ticks: u32,
    pub location: Option<String>,
}

/// One node. The health fields are `null` while the cluster is stopped (nothing probes
/// it then).
#[derive(Serialize)]
pub struct NodeJson {
    pub address: IpAddr,
    /// Health-check port and path.
    pub port: u16,
    pub path: String,
    pub priority: i64,
    /// The weight bigbro wants in the kernel, and what decided it.
    pub weight: u32,
    pub weight_source: Option<Source>,
    /// Whether bigbro wants it in IPVS (false for passive nodes and stopped clusters).
    pub in_ipvs: bool,
    /// The weight the kernel held at the last reconcile pass (`null`: not in IPVS).
    pub kernel_weight: Option<u32>,
    /// `up`, `down` or `unknown` (not yet judged) after rise/fall.
    pub status: Option<Status>,
    pub status_seconds: Option<f64>,
    /// Rise/fall state: consecutive good and failed probes, and how many are needed.
    pub ok_streak: Option<u32>,
    pub fail_streak: Option<u32>,
    pub rise: Option<u32>,
    pub fall: Option<u32>,
    /// The health the weight is computed from (while up).
    pub health: Option<u16>,
    pub ramp: Option<RampJson>,
    pub max_weight: Option<u32>,
    pub last_probe: Option<ProbeJson>,
    #[serde(rename = "override")]
    pub over: Option<OverrideJson>,
}

#[derive(Serialize)]
pub struct RampJson {
    /// 0.0 ..= 1.0 (1 when not ramping, 0 when not up).
    pub progress: f64,
    pub seconds: f64,
}

#[derive(Serialize)]
pub struct ProbeJson {
    pub ok: bool,
    pub health: Option<u16>,
    pub error: Option<String>,
    pub error_code: Option<&'static str>,
    pub latency_seconds: f64,
    pub seconds_ago: f64,
}

#[derive(Serialize)]
pub struct OverrideJson {
    /// `up`, `down` or `weight`.
    pub force: &'static str,
    /// The weight it forces.
    pub weight: u32,
    pub reason: String,
    pub set_seconds_ago: f64,
    /// `null`: until cleared.
    pub expires_in_seconds: Option<f64>,
}

fn force_name(f: Force) -> &'static str {
    match f {
        Force::Up => "up",
        Force::Down => "down",
        Force::Weight(_) => "weight",
    }
}

impl OverrideJson {
    pub fn from_view(o: &OverrideView) -> OverrideJson {
        OverrideJson {
            force: force_name(o.force),
            weight: o.force.weight().get(),
            reason: o.reason.clone(),
            set_seconds_ago: o.set_seconds_ago,
            expires_in_seconds: o.expires_in_seconds,
        }
    }

    pub fn from_override(o: &Override, now: Instant) -> OverrideJson {
        OverrideJson {
            force: force_name(o.force),
            weight: o.force.weight().get(),
            reason: o.reason.clone(),
            set_seconds_ago: now.saturating_duration_since(o.set_at).as_secs_f64(),
            expires_in_seconds: o
                .expires
                .map(|e| e.saturating_duration_since(now).as_secs_f64()),
        }
    }

    fn from_request(r: &OverrideRequest) -> OverrideJson {
        OverrideJson {
            force: force_name(r.force),
            weight: r.force.weight().get(),
            reason: r.reason.clone(),
            set_seconds_ago: 0.0,
            expires_in_seconds: r.ttl.map(|t| t.as_secs_f64()),
        }
    }
}

impl NodeJson {
    pub fn from_status(n: &NodeStatus, p: Option<&NodeSnapshot>) -> NodeJson {
        NodeJson {
            address: n.address,
            port: n.port,
            path: n.path.clone(),
            priority: n.priority,
            weight: n.weight.get(),
            weight_source: p.map(|p| p.source),
            in_ipvs: n.in_ipvs,
            kernel_weight: n.kernel_weight(),
            status: p.map(|p| p.status),
            status_seconds: p.map(|p| p.status_seconds),
            ok_streak: p.map(|p| p.ok_streak),
            fail_streak: p.map(|p| p.fail_streak),
            rise: p.map(|p| p.rise),
            fall: p.map(|p| p.fall),
            health: p.and_then(|p| p.health),
            ramp: p.map(|p| RampJson {
                progress: p.ramp_progress,
                seconds: p.ramp_up_seconds,
            }),
            max_weight: p.and_then(|p| p.max_weight).map(Weight::get),
            last_probe: p.and_then(|p| p.last_probe.as_ref()).map(|l| ProbeJson {
                ok: l.ok,
                health: l.health,
                error: l.error.clone(),
                error_code: l.error_code,
                latency_seconds: l.latency_seconds,
                seconds_ago: l.seconds_ago,
            }),
            over: p.and_then(|p| p.over.as_ref()).map(OverrideJson::from_view),
        }
    }
}

impl ClusterJson {
    pub fn from_status(c: &ClusterStatus) -> ClusterJson {
        let policy = c.policy.as_ref();
        ClusterJson {
            name: c.name.to_string(),
            fwmark: c.fwmark.get(),
            relay_fwmark: c.relay_fwmark.map(|f| f.get()),
            running: c.running,
            combined_weight: c.combined_weight,
            scheduler: c.scheduler.as_str(),
            backend_mode: c.backend_mode,
            files: policy.map(|p| FilesJson {
                up: p.files.up,
                down: p.files.down,
            }),
            over: policy
                .and_then(|p| p.over.as_ref())
                .map(OverrideJson::from_view),
            active_node: c.active_node,
            downpage: c.downpage.as_ref().map(|d| DownpageJson {
                address: d.address,
                active: d.active,
            }),
            errors: c.errors.clone(),
            nodes: c
                .nodes()
                .map(|(n, p)| NodeJson::from_status(n, p))
                .collect(),
            remote_nodes: c
                .remote_nodes
                .iter()
                .map(|r| RemoteJson {
                    address: r.address,
                    weight: r.weight.get(),
                    down_ticks: r.down_ticks,
                    location: r.location.clone(),
                })
                .collect(),
        }
    }
}

/// The body of `PUT .../override`.
#[derive(Deserialize, Debug, Default)]
#[serde(deny_unknown_fields)]
pub struct OverrideBody {
    /// `up`, `down` or `weight`.
    pub force: Option<String>,
    /// With `force: weight`: the weight, 0..=65535.
    pub weight: Option<i64>,
    /// Why (required).
    pub reason: Option<String>,
    /// Lift it by itself after this many seconds (optional).
    pub ttl_seconds: Option<f64>,
}

impl OverrideBody {
    /// Checks every field, naming the first one that is wrong.
    pub fn validate(self) -> Result<OverrideRequest, ApiError> {
        let bad = |m: String| ApiError::bad_request("invalid_override", m);
        let force = match (self.force.as_deref(), self.weight) {
            (None, _) => {
                return Err(bad(
                    "missing `force`: one of \"up\", \"down\", \"weight\"".into()
                ))
            }
            (Some("up"), None) => Force::Up,
            (Some("down"), None) => Force::Down,
            (Some("weight"), Some(w)) if (0..=65535).contains(&w) => {
                Force::Weight(Weight::clamped(w as u64))
            }
            (Some("weight"), Some(w)) => {
                return Err(bad(format!(
                    "`weight` {w} is out of range: IPVS weights are 0 to 65535"
                )))
            }
            (Some("weight"), None) => {
                return Err(bad("`force: \"weight\"` needs `weight` (0 to 65535)".into()))
            }
            (Some("up" | "down"), Some(_)) => {
                return Err(bad("`weight` goes only with `force: \"weight\"`".into()))
            }
            (Some(other), _) => {
                return Err(bad(format!(
                    "`force` {} is not one of \"up\", \"down\", \"weight\"",
                    quote(other)
                )))
            }
        };
        let reason = self.reason.unwrap_or_default();
        let reason = reason.trim();
        if reason.is_empty() {
            return Err(bad(
                "missing `reason`: say why, for whoever looks at this node next".into(),
            ));
        }
        if reason.chars().count() > MAX_REASON_LEN {
            return Err(bad(format!(
                "`reason` is longer than {MAX_REASON_LEN} characters"
            )));
        }
        if reason.chars().any(char::is_control) {
            return Err(bad(
                "`reason` must be one line without control characters".into()
            ));
        }
        let ttl = match self.ttl_seconds {
            None => None,
            Some(s) if s.is_finite() && s > 0.0 && s <= MAX_TTL.as_secs_f64() => {
                Some(Duration::from_secs_f64(s))
            }
            Some(s) => {
                return Err(bad(format!(
                    "`ttl_seconds` {s} must be above 0 and at most {} (a year); leave it out for \"until cleared\"",
                    MAX_TTL.as_secs()
                )))
            }
        };
        Ok(OverrideRequest {
            force,
            reason: reason.to_string(),
            ttl,
        })
    }
}

// ---- handlers -------------------------------------------------------------------------

/// A daemon failure as a JSON error with the status that fits it.
pub fn failure(e: Failure) -> ApiError {
    let text = e.to_string();
    match e {
        Failure::Timeout(_) => {
            ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "daemon_timeout", text)
        }
        Failure::Daemon(d) => match d {
            daemon::Error::UnknownCluster(c) => ApiError::unknown_cluster(&c),
            daemon::Error::UnknownNode { cluster, addr } => unknown_node(&cluster, addr),
            daemon::Error::NotRunning(_) => {
                ApiError::new(StatusCode::CONFLICT, "cluster_not_running", text)
            }
            daemon::Error::KernelUnavailable(_) => {
                ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "kernel_unavailable", text)
            }
            daemon::Error::Stopped => {
                ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "daemon_stopping", text)
            }
            daemon::Error::ConfigInvalid(errors) => ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "config_refused",
                format!(
                    "{} is not valid ({}); the running configuration is unchanged",
                    errors.file,
                    errors.count_text()
                ),
            )
            .with("errors", errors.lines().into()),
            daemon::Error::Driver(_) => {
                tracing::error!("Error: {text}");
                ApiError::internal(text)
            }
        },
    }
}

fn parse_node(text: &str) -> Result<IpAddr, ApiError> {
    text.parse().map_err(|_| {
        ApiError::bad_request(
            "bad_node",
            format!(
                "{} is not an IP address; nodes are named by their address",
                quote(text)
            ),
        )
    })
}

fn unknown_node(cluster: &str, addr: IpAddr) -> ApiError {
    ApiError::not_found(
        "unknown_node",
        format!(
            "cluster {} has no node {addr}; GET /api/v1/clusters/{cluster}/nodes lists them",
            quote(cluster)
        ),
    )
}

async fn index() -> Response {
    json_response(
        StatusCode::OK,
        &serde_json::json!({
            "bigbro": env!("CARGO_PKG_VERSION"),
            "big_brother_api": BIG_BROTHER_API_VERSION,
            "routes": ROUTES,
        }),
    )
}

async fn find(app: &AppState, name: &str) -> Result<ClusterStatus, ApiError> {
    app.query(app.handle.status(name))
        .await
        .map_err(failure)?
        .ok_or_else(|| ApiError::unknown_cluster(name))
}

async fn clusters(State(app): State<AppState>) -> Result<Response, ApiError> {
    let all = app.query(app.handle.statuses()).await.map_err(failure)?;
    let json: Vec<ClusterJson> = all.iter().map(ClusterJson::from_status).collect();
    Ok(json_response(
        StatusCode::OK,
        &serde_json::json!({ "clusters": json }),
    ))
}

async fn cluster(
    State(app): State<AppState>,
    Path(name): Path<String>,
) -> Result<Response, ApiError> {
    let c = find(&app, &name).await?;
    Ok(json_response(StatusCode::OK, &ClusterJson::from_status(&c)))
}

async fn nodes(
    State(app): State<AppState>,
    Path(name): Path<String>,
) -> Result<Response, ApiError> {
    let c = find(&app, &name).await?;
    let nodes: Vec<NodeJson> = c
        .nodes()
        .map(|(n, p)| NodeJson::from_status(n, p))
        .collect();
    Ok(json_response(
        StatusCode::OK,
        &serde_json::json!({ "cluster": name, "nodes": nodes }),
    ))
}

async fn node(
    State(app): State<AppState>,
    Path((name, node)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    let addr = parse_node(&node)?;
    let c = find(&app, &name).await?;
    let n = c
        .nodes
        .iter()
        .find(|n| n.address == addr)
        .ok_or_else(|| unknown_node(&name, addr))?;
    let json = NodeJson::from_status(n, c.node_policy(addr));
    Ok(json_response(StatusCode::OK, &json))
}

async fn start(
    State(app): State<AppState>,
    Path(name): Path<String>,
) -> Result<Response, ApiError> {
    let result = match app
        .command({
            let name = name.clone();
            move |daemon| async move { daemon.start(&name).await }
        })
        .await
        .map_err(failure)?
    {
        StartOutcome::Started => "started",
        StartOutcome::AlreadyRunning => "already_running",
        StartOutcome::NotFound => return Err(ApiError::unknown_cluster(&name)),
    };
    tracing::info!(cluster = %name, result, "start through the API");
    Ok(json_response(
        StatusCode::OK,
        &serde_json::json!({ "cluster": name, "result": result }),
    ))
}

async fn stop(State(app): State<AppState>, Path(name): Path<String>) -> Result<Response, ApiError> {
    let result = match app
        .command({
            let name = name.clone();
            move |daemon| async move { daemon.stop(&name).await }
        })
        .await
        .map_err(failure)?
    {
        StopOutcome::Stopped => "stopped",
        StopOutcome::NotRunning => "not_running",
        StopOutcome::NotFound => return Err(ApiError::unknown_cluster(&name)),
    };
    tracing::info!(cluster = %name, result, "stop through the API");
    Ok(json_response(
        StatusCode::OK,
        &serde_json::json!({ "cluster": name, "result": result }),
    ))
}

/// The answer to an override change: what is in force now and what it replaced.
fn override_answer(
    cluster: &str,
    node: Option<IpAddr>,
    current: Option<&OverrideRequest>,
    previous: Option<Override>,
) -> Response {
    let now = Instant::now();
    json_response(
        StatusCode::OK,
        &serde_json::json!({
            "cluster": cluster,
            "node": node,
            "override": current.map(OverrideJson::from_request),
            "previous": previous.as_ref().map(|o| OverrideJson::from_override(o, now)),
        }),
    )
}

async fn read_override(app: &AppState, body: Body) -> Result<OverrideRequest, ApiError> {
    read_json::<OverrideBody>(body, app.limits.max_body, app.limits.body_timeout)
        .await?
        .validate()
}

async fn set_cluster_override(
    State(app): State<AppState>,
    Path(name): Path<String>,
    body: Body,
) -> Result<Response, ApiError> {
    let request = read_override(&app, body).await?;
    let previous = app
        .command({
            let (name, request) = (name.clone(), request.clone());
            move |daemon| async move { daemon.set_cluster_override(&name, request).await }
        })
        .await
        .map_err(failure)?;
    tracing::info!(cluster = %name, force = ?request.force, reason = %request.reason, ttl = ?request.ttl, "cluster override set");
    Ok(override_answer(&name, None, Some(&request), previous))
}

async fn clear_cluster_override(
    State(app): State<AppState>,
    Path(name): Path<String>,
) -> Result<Response, ApiError> {
    let previous = app
        .command({
            let name = name.clone();
            move |daemon| async move { daemon.clear_cluster_override(&name).await }
        })
        .await
        .map_err(failure)?;
    tracing::info!(cluster = %name, had = previous.is_some(), "cluster override cleared");
    Ok(override_answer(&name, None, None, previous))
}

async fn set_node_override(
    State(app): State<AppState>,
    Path((name, node)): Path<(String, String)>,
    body: Body,
) -> Result<Response, ApiError> {
    let addr = parse_node(&node)?;
    let request = read_override(&app, body).await?;
    let previous = app
        .command({
            let (name, request) = (name.clone(), request.clone());
            move |daemon| async move { daemon.set_node_override(&name, addr, request).await }
        })
        .await
        .map_err(failure)?;
    tracing::info!(cluster = %name, node = %addr, force = ?request.force, reason = %request.reason, ttl = ?request.ttl, "node override set");
    Ok(override_answer(&name, Some(addr), Some(&request), previous))
}

async fn clear_node_override(
    State(app): State<AppState>,
    Path((name, node)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    let addr = parse_node(&node)?;
    let previous = app
        .command({
            let name = name.clone();
            move |daemon| async move { daemon.clear_node_override(&name, addr).await }
        })
        .await
        .map_err(failure)?;
    tracing::info!(cluster = %name, node = %addr, had = previous.is_some(), "node override cleared");
    Ok(override_answer(&name, Some(addr), None, previous))
}

async fn reload(State(app): State<AppState>) -> Result<Response, ApiError> {
    let report = app
        .command(|daemon| async move { daemon.reload().await })
        .await
        .map_err(|e| {
            if let Failure::Daemon(daemon::Error::ConfigInvalid(errors)) = &e {
                tracing::warn!("reload through the API refused ({})", errors.count_text());
            }
            failure(e)
        })?;
    tracing::info!(?report, "configuration reloaded through the API");
    Ok(json_response(
        StatusCode::OK,
        &serde_json::json!({
            "result": "applied",
            "added": report.added,
            "removed": report.removed,
            "changed": report.changed,
            "needs_restart": report.needs_restart,
        }),
    ))
}

async fn config(State(app): State<AppState>) -> Result<Response, ApiError> {
    let model = app
        .query(async { app.handle.config() })
        .await
        .map_err(failure)?;
    Ok(json_response(StatusCode::OK, &*model))
}

async fn daemon_status(State(app): State<AppState>) -> Result<Response, ApiError> {
    let status = app
        .query(async { app.handle.daemon_status() })
        .await
        .map_err(failure)?;
    Ok(json_response(StatusCode::OK, &status))
}
