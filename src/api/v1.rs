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

use super::backend::{
    Backend, ClusterView, NodeView, OverrideChange, OverrideError, OverrideRequest, OverrideScope,
    ReloadOutcome, StartOutcome, StopOutcome,
};
use super::body::read_json;
use super::error::{json_response, quote, ApiError};
use super::legacy::BIG_BROTHER_API_VERSION;
use super::server::AppState;
use crate::types::{ClusterName, Weight};
use crate::weight::{Force, OverrideView, Source, Status};

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
];

pub fn routes<B: Backend>() -> Router<AppState<B>> {
    Router::new()
        .route("/api/v1", get(index))
        .route("/api/v1/clusters", get(clusters::<B>))
        .route("/api/v1/clusters/{cluster}", get(cluster::<B>))
        .route("/api/v1/clusters/{cluster}/start", post(start::<B>))
        .route("/api/v1/clusters/{cluster}/stop", post(stop::<B>))
        .route(
            "/api/v1/clusters/{cluster}/override",
            put(set_cluster_override::<B>).delete(clear_cluster_override::<B>),
        )
        .route("/api/v1/clusters/{cluster}/nodes", get(nodes::<B>))
        .route("/api/v1/clusters/{cluster}/nodes/{node}", get(node::<B>))
        .route(
            "/api/v1/clusters/{cluster}/nodes/{node}/override",
            put(set_node_override::<B>).delete(clear_node_override::<B>),
        )
        .route("/api/v1/reload", post(reload::<B>))
        .route("/api/v1/config", get(config::<B>))
}

// ---- JSON shapes ----------------------------------------------------------------------

#[derive(Serialize)]
pub struct ClusterJson {
    pub name: String,
    pub fwmark: u32,
    pub running: bool,
    /// big_brother's CombinedWeight.
    pub combined_weight: u64,
    pub scheduler: String,
    pub backend_mode: String,
    pub files: FilesJson,
    #[serde(rename = "override")]
    pub over: Option<OverrideJson>,
    /// Kernel operations for this cluster that failed in the last reconcile pass.
    pub errors: Vec<String>,
    pub nodes: Vec<NodeJson>,
}

#[derive(Serialize)]
pub struct FilesJson {
    pub up: bool,
    pub down: bool,
}

#[derive(Serialize)]
pub struct NodeJson {
    pub address: IpAddr,
    /// What is probed: `litmus http://10.0.0.1:9001/app/status`.
    pub target: String,
    /// `up`, `down` or `unknown` (not yet judged).
    pub status: Status,
    pub status_seconds: f64,
    /// Rise/fall state: consecutive good and failed probes, and how many are needed.
    pub ok_streak: u32,
    pub fail_streak: u32,
    pub rise: u32,
    pub fall: u32,
    /// The health the weight is computed from (while up).
    pub health: Option<u16>,
    /// The weight bigbro wants in the kernel, and what decided it.
    pub weight: u32,
    pub weight_source: Source,
    /// The weight the kernel has (`null`: the node is not in IPVS).
    pub kernel_weight: Option<u32>,
    pub ramp: RampJson,
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

impl OverrideJson {
    pub fn from_view(o: &OverrideView) -> OverrideJson {
        OverrideJson {
            force: match o.force {
                Force::Up => "up",
                Force::Down => "down",
                Force::Weight(_) => "weight",
            },
            weight: o.force.weight().get(),
            reason: o.reason.clone(),
            set_seconds_ago: o.set_seconds_ago,
            expires_in_seconds: o.expires_in_seconds,
        }
    }
}

impl NodeJson {
    pub fn from_view(n: &NodeView) -> NodeJson {
        let s = &n.snapshot;
        NodeJson {
            address: s.addr,
            target: s.target.to_string(),
            status: s.status,
            status_seconds: s.status_seconds,
            ok_streak: s.ok_streak,
            fail_streak: s.fail_streak,
            rise: s.rise,
            fall: s.fall,
            health: s.health,
            weight: s.weight.get(),
            weight_source: s.source,
            kernel_weight: n.kernel_weight.map(Weight::get),
            ramp: RampJson {
                progress: s.ramp_progress,
                seconds: s.ramp_up_seconds,
            },
            max_weight: s.max_weight.map(Weight::get),
            last_probe: s.last_probe.as_ref().map(|p| ProbeJson {
                ok: p.ok,
                health: p.health,
                error: p.error.clone(),
                error_code: p.error_code,
                latency_seconds: p.latency_seconds,
                seconds_ago: p.seconds_ago,
            }),
            over: s.over.as_ref().map(OverrideJson::from_view),
        }
    }
}

impl ClusterJson {
    pub fn from_view(c: &ClusterView) -> ClusterJson {
        ClusterJson {
            name: c.name.to_string(),
            fwmark: c.fwmark.get(),
            running: c.running,
            combined_weight: c.combined_weight(),
            scheduler: c.scheduler.clone(),
            backend_mode: c.backend_mode.clone(),
            files: FilesJson {
                up: c.files.up,
                down: c.files.down,
            },
            over: c.over.as_ref().map(OverrideJson::from_view),
            errors: c.errors.clone(),
            nodes: c.nodes.iter().map(NodeJson::from_view).collect(),
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

fn backend_error(e: super::backend::BackendError) -> ApiError {
    tracing::error!("Error: {e}");
    ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "daemon_error", e.message)
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

async fn find<B: Backend>(app: &AppState<B>, name: &str) -> Result<ClusterView, ApiError> {
    app.call(app.backend.cluster(ClusterName(name.to_string()), false))
        .await
        .map_err(backend_error)?
        .ok_or_else(|| ApiError::unknown_cluster(name))
}

async fn clusters<B: Backend>(State(app): State<AppState<B>>) -> Result<Response, ApiError> {
    let all = app
        .call(app.backend.clusters())
        .await
        .map_err(backend_error)?;
    let json: Vec<ClusterJson> = all.iter().map(ClusterJson::from_view).collect();
    Ok(json_response(
        StatusCode::OK,
        &serde_json::json!({ "clusters": json }),
    ))
}

async fn cluster<B: Backend>(
    State(app): State<AppState<B>>,
    Path(name): Path<String>,
) -> Result<Response, ApiError> {
    let c = find(&app, &name).await?;
    Ok(json_response(StatusCode::OK, &ClusterJson::from_view(&c)))
}

async fn nodes<B: Backend>(
    State(app): State<AppState<B>>,
    Path(name): Path<String>,
) -> Result<Response, ApiError> {
    let c = find(&app, &name).await?;
    let nodes: Vec<NodeJson> = c.nodes.iter().map(NodeJson::from_view).collect();
    Ok(json_response(
        StatusCode::OK,
        &serde_json::json!({ "cluster": name, "nodes": nodes }),
    ))
}

async fn node<B: Backend>(
    State(app): State<AppState<B>>,
    Path((name, node)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    let addr = parse_node(&node)?;
    let c = find(&app, &name).await?;
    let n = c.node(addr).ok_or_else(|| unknown_node(&name, addr))?;
    Ok(json_response(StatusCode::OK, &NodeJson::from_view(n)))
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

async fn start<B: Backend>(
    State(app): State<AppState<B>>,
    Path(name): Path<String>,
) -> Result<Response, ApiError> {
    let result = match app
        .call(app.backend.start(ClusterName(name.clone())))
        .await
        .map_err(backend_error)?
    {
        StartOutcome::Started => "started",
        StartOutcome::AlreadyRunning => "already_running",
        StartOutcome::NotFound => return Err(ApiError::unknown_cluster(&name)),
    };
    Ok(json_response(
        StatusCode::OK,
        &serde_json::json!({ "cluster": name, "result": result }),
    ))
}

async fn stop<B: Backend>(
    State(app): State<AppState<B>>,
    Path(name): Path<String>,
) -> Result<Response, ApiError> {
    let result = match app
        .call(app.backend.stop(ClusterName(name.clone())))
        .await
        .map_err(backend_error)?
    {
        StopOutcome::Stopped => "stopped",
        StopOutcome::NotRunning => "not_running",
        StopOutcome::NotFound => return Err(ApiError::unknown_cluster(&name)),
    };
    Ok(json_response(
        StatusCode::OK,
        &serde_json::json!({ "cluster": name, "result": result }),
    ))
}

async fn change_override<B: Backend>(
    app: &AppState<B>,
    scope: OverrideScope,
    request: Option<OverrideRequest>,
) -> Result<Response, ApiError> {
    let what = match &scope {
        OverrideScope::Cluster(c) => format!("cluster {c}"),
        OverrideScope::Node(c, n) => format!("node {n} of cluster {c}"),
    };
    let describe = request
        .as_ref()
        .map(|r| format!("{:?} ({})", r.force, r.reason));
    let change: OverrideChange = app
        .call(app.backend.set_override(scope.clone(), request))
        .await
        .map_err(|e| match e {
            OverrideError::UnknownCluster(c) => ApiError::unknown_cluster(&c),
            OverrideError::UnknownNode { cluster, node } => unknown_node(&cluster, node),
            OverrideError::Backend(e) => backend_error(e),
        })?;
    match describe {
        Some(d) => tracing::info!("override of {what} set: {d}"),
        None => tracing::info!("override of {what} cleared"),
    }
    let (cluster, node) = match scope {
        OverrideScope::Cluster(c) => (c, None),
        OverrideScope::Node(c, n) => (c, Some(n)),
    };
    Ok(json_response(
        StatusCode::OK,
        &serde_json::json!({
            "cluster": cluster,
            "node": node,
            "override": change.current.as_ref().map(OverrideJson::from_view),
            "previous": change.previous.as_ref().map(OverrideJson::from_view),
        }),
    ))
}

async fn set_cluster_override<B: Backend>(
    State(app): State<AppState<B>>,
    Path(name): Path<String>,
    body: Body,
) -> Result<Response, ApiError> {
    let request = read_json::<OverrideBody>(body, app.limits.max_body, app.limits.body_timeout)
        .await?
        .validate()?;
    change_override(
        &app,
        OverrideScope::Cluster(ClusterName(name)),
        Some(request),
    )
    .await
}

async fn clear_cluster_override<B: Backend>(
    State(app): State<AppState<B>>,
    Path(name): Path<String>,
) -> Result<Response, ApiError> {
    change_override(&app, OverrideScope::Cluster(ClusterName(name)), None).await
}

async fn set_node_override<B: Backend>(
    State(app): State<AppState<B>>,
    Path((name, node)): Path<(String, String)>,
    body: Body,
) -> Result<Response, ApiError> {
    let addr = parse_node(&node)?;
    let request = read_json::<OverrideBody>(body, app.limits.max_body, app.limits.body_timeout)
        .await?
        .validate()?;
    change_override(
        &app,
        OverrideScope::Node(ClusterName(name), addr),
        Some(request),
    )
    .await
}

async fn clear_node_override<B: Backend>(
    State(app): State<AppState<B>>,
    Path((name, node)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    let addr = parse_node(&node)?;
    change_override(&app, OverrideScope::Node(ClusterName(name), addr), None).await
}

async fn reload<B: Backend>(State(app): State<AppState<B>>) -> Result<Response, ApiError> {
    match app
        .call(app.backend.reload())
        .await
        .map_err(backend_error)?
    {
        ReloadOutcome::Applied { clusters } => {
            tracing::info!(clusters, "configuration reloaded through the API");
            Ok(json_response(
                StatusCode::OK,
                &serde_json::json!({ "result": "applied", "clusters": clusters }),
            ))
        }
        ReloadOutcome::Refused { errors } => {
            tracing::warn!(errors = errors.len(), "reload through the API refused");
            Err(ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "config_refused",
                format!(
                    "the configuration file has {} error{}; the running configuration is unchanged",
                    errors.len(),
                    if errors.len() == 1 { "" } else { "s" }
                ),
            )
            .with("errors", errors.into()))
        }
    }
}

async fn config<B: Backend>(State(app): State<AppState<B>>) -> Result<Response, ApiError> {
    let model = app
        .call(app.backend.config())
        .await
        .map_err(backend_error)?;
    Ok(json_response(StatusCode::OK, &*model))
}
