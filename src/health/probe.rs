//! One probe of one target: litmus, http or tcp, bounded by a deadline, giving a health value
//! or a typed reason. Also the `Prober` seam, so the scheduler can be driven by a scripted
//! prober on tokio's paused clock in tests.
//!
//! A failing status is known from the response head and returned at once; a success status
//! counts only once the answer is complete (or the body limit is reached) within the
//! deadline, so a backend that sends `200` and then stalls is a timeout, not a success.
//!
//! A probe never retries, never follows a redirect, never reads past the body limit and never
//! outlives its deadline. It knows nothing of clusters, weights or the kernel.

use std::future::Future;
use std::time::Duration;

use tokio::net::TcpStream;
use tokio::time::Instant;

use super::error::{Phase, ProbeError};
use super::http::{self, Limits};
use super::parse::{body_health, header_health, BodyHealth};
use super::target::{ProbeKind, Target};

/// A probe's outcome: the health (0..=65535) or why there is none.
pub type ProbeResult = Result<u16, ProbeError>;

/// Health reported by the `http` and `tcp` kinds on success.
pub const FULL_HEALTH: u16 = 100;

/// Something that can probe a target. The scheduler calls it at most once at a time per
/// target and, unless `enforces_deadline` says the prober does it, also enforces `deadline`
/// itself, so an implementation that overruns is cut off.
pub trait Prober: Send + Sync + 'static {
    /// Probes `target`, finishing by `deadline` (`timeout` after the start; given for
    /// messages).
    fn probe(
        &self,
        target: &Target,
        timeout: Duration,
        deadline: Instant,
    ) -> impl Future<Output = ProbeResult> + Send;

    /// True if every future `probe` returns is certain to finish by its deadline, so the
    /// scheduler need not arm a timer of its own for each probe. Default false.
    fn enforces_deadline(&self) -> bool {
        false
    }
}

/// The real prober: TCP and HTTP over the network, with the default limits.
#[derive(Clone, Copy, Debug, Default)]
pub struct NetProber {
    pub limits: Limits,
}

impl Prober for NetProber {
    fn probe(
        &self,
        target: &Target,
        timeout: Duration,
        deadline: Instant,
    ) -> impl Future<Output = ProbeResult> + Send {
        probe_until(target, timeout, deadline, self.limits)
    }

    /// `probe_until` bounds the whole probe with `deadline` (and names the phase it cut).
    fn enforces_deadline(&self) -> bool {
        true
    }
}

/// Probes `target` once with `timeout` and the default limits.
pub async fn probe(target: &Target, timeout: Duration) -> ProbeResult {
    probe_until(target, timeout, Instant::now() + timeout, Limits::default()).await
}

/// Probes `target` once, giving up at `deadline`.
pub async fn probe_until(
    target: &Target,
    timeout: Duration,
    deadline: Instant,
    limits: Limits,
) -> ProbeResult {
    let mut phase = Phase::Connect;
    let outcome = tokio::time::timeout_at(deadline, run(target, limits, &mut phase)).await;
    match outcome {
        Ok(result) => result,
        Err(_elapsed) => Err(ProbeError::Timeout { timeout, phase }),
    }
}

async fn run(target: &Target, limits: Limits, phase: &mut Phase) -> ProbeResult {
    match target.kind() {
        ProbeKind::Tcp => {
            *phase = Phase::Connect;
            let stream = TcpStream::connect(target.socket_addr())
                .await
                .map_err(|e| ProbeError::from_io(&e, Phase::Connect))?;
            drop(stream);
            Ok(FULL_HEALTH)
        }
        ProbeKind::Http | ProbeKind::Litmus => {
            let kind = target.kind();
            let wanted = |status| reads_body(kind, status);
            let r = http::get(target.socket_addr(), target.path(), limits, wanted, phase).await?;
            judge(kind, r, limits)
        }
    }
}

/// Whether an answer with `status` counts as success for an `http` or `litmus` probe, and
/// so whether its body is read at all.
pub fn reads_body(kind: ProbeKind, status: u16) -> bool {
    match kind {
        ProbeKind::Litmus => status == 200,
        ProbeKind::Http => (200..300).contains(&status),
        ProbeKind::Tcp => false,
    }
}

/// The outcome of an `http` or `litmus` probe, given the answer read with
/// `reads_body(kind, _)` deciding on the body and `limits` bounding it. Pure: the network
/// part is `http::get` (or `http::exchange` on any stream).
pub fn judge(kind: ProbeKind, r: http::Response, limits: Limits) -> ProbeResult {
    match kind {
        ProbeKind::Tcp => Ok(FULL_HEALTH),
        ProbeKind::Http => {
            if reads_body(kind, r.head.status) {
                Ok(FULL_HEALTH)
            } else {
                Err(ProbeError::Status {
                    status: r.head.status,
                    wanted: "2xx",
                })
            }
        }
        ProbeKind::Litmus => {
            if !reads_body(kind, r.head.status) {
                return Err(ProbeError::Status {
                    status: r.head.status,
                    wanted: "exactly 200",
                });
            }
            if let Some(value) = r.head.header("x-health") {
                return header_health(value);
            }
            let body = r.body.unwrap_or(http::Body {
                bytes: Vec::new(),
                complete: true,
            });
            match body_health(&body.bytes, body.complete) {
                BodyHealth::Found(h) => Ok(h),
                BodyHealth::Absent if body.complete => Err(ProbeError::NoHealth),
                BodyHealth::Absent | BodyHealth::Cut => Err(ProbeError::BodyTooLarge {
                    limit: limits.max_body,
                }),
            }
        }
    }
}
