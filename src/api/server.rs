//! The listening side: binds the socket under the token rule, accepts connections up to a
//! bound, serves HTTP/1.1 with limits on header size and count and a deadline for the
//! headers, and wraps every request in the same outer layers: panic to 500, the token
//! check, an access log line, and the 404/405 answers.
//!
//! A slow or hostile client costs one connection slot for at most the header or body
//! deadline; it can never hold the daemon: every call into it is bounded by
//! `Limits::backend_timeout`, and on shutdown every connection by
//! `Limits::shutdown_grace`.
//!
//! A request read whole is never lost to the way its client closes: a client that shuts
//! down its write side after sending (`printf ... | nc -N`) is still answered (hyper's
//! half-close support), and a command sent to the daemon runs in a task of its own
//! (`Shared::command`), so it is carried out even if the client goes away first.

use std::future::Future;
use std::net::SocketAddr;
use std::panic::AssertUnwindSafe;
use std::pin::pin;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{Method, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::Router;
use futures_util::FutureExt;
use hyper::service::Service as _;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use super::auth::{self, ListenError, Token};
use super::deadline::WriteDeadline;
use super::error::{error_for_path, is_json_path, ApiError};
use super::probe_stats::{self, ProbeStats};
use super::{legacy, metrics, ui, v1};
use crate::daemon::{self, Handle};

/// Bounds on what one client can make the API hold.
#[derive(Clone, Debug)]
pub struct Limits {
    /// Largest request body read (overrides are a few hundred bytes).
    pub max_body: usize,
    /// Largest request head (request line and headers) in bytes; larger gets 431.
    pub max_head: usize,
    /// Most header fields in a request; more gets 431.
    pub max_headers: usize,
    /// The whole request head must arrive within this, and an idle kept-alive connection
    /// is closed after it.
    pub header_timeout: Duration,
    /// A body must arrive within this; slower gets 408.
    pub body_timeout: Duration,
    /// A client that reads nothing of its answers for this long is disconnected.
    pub write_timeout: Duration,
    /// Longest wait for the daemon to answer one call; longer gets 503 (500
    /// `Application error` on big_brother's routes).
    pub backend_timeout: Duration,
    /// Connections served at once; more wait in the kernel's accept queue.
    pub max_connections: usize,
    /// On shutdown, how long requests in flight get to finish. Connections still open
    /// then (a slow body, a client that does not read) are closed unanswered.
    pub shutdown_grace: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_body: 64 * 1024,
            max_head: 16 * 1024,
            max_headers: 64,
            header_timeout: Duration::from_secs(10),
            body_timeout: Duration::from_secs(10),
            write_timeout: Duration::from_secs(10),
            backend_timeout: Duration::from_secs(15),
            max_connections: 256,
            shutdown_grace: Duration::from_secs(5),
        }
    }
}

/// What every handler shares.
pub struct Shared {
    pub handle: Handle,
    pub token: Option<Token>,
    pub limits: Limits,
    /// Probe latencies and failures, collected from the daemon's samples.
    pub probes: Arc<Mutex<ProbeStats>>,
}

pub type AppState = Arc<Shared>;

/// Why a call into the daemon gave no answer.
#[derive(Debug)]
pub enum Failure {
    Daemon(daemon::Error),
    Timeout(Duration),
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Failure::Daemon(e) => write!(f, "{e}"),
            Failure::Timeout(t) => write!(
                f,
                "the daemon did not answer within {t:?} (a command may still complete; check the status)"
            ),
        }
    }
}

impl Shared {
    /// Runs one command or query on the daemon, bounded by `backend_timeout`.
    pub async fn call<T>(
        &self,
        call: impl Future<Output = Result<T, daemon::Error>>,
    ) -> Result<T, Failure> {
        bounded(self.limits.backend_timeout, call).await
    }

    /// Runs a command that changes the daemon in a task of its own, bounded by
    /// `backend_timeout`: once the request is read whole, the command is carried out even
    /// if the client goes away and the request's future is dropped (see [`detached`]).
    pub async fn command<T, F>(&self, command: impl FnOnce(Handle) -> F) -> Result<T, Failure>
    where
        F: Future<Output = Result<T, daemon::Error>> + Send + 'static,
        T: Send + 'static,
    {
        self.call(detached(command(self.handle.clone()))).await
    }

    /// Runs a query that cannot fail, bounded by `backend_timeout`.
    pub async fn query<T>(&self, query: impl Future<Output = T>) -> Result<T, Failure> {
        self.call(async { Ok(query.await) }).await
    }
}

/// Runs one call into the daemon, giving up after `limit` (the daemon may still carry a
/// command out; the caller is told so).
pub async fn bounded<T>(
    limit: Duration,
    call: impl Future<Output = Result<T, daemon::Error>>,
) -> Result<T, Failure> {
    match tokio::time::timeout(limit, call).await {
        Ok(result) => result.map_err(Failure::Daemon),
        Err(_) => Err(Failure::Timeout(limit)),
    }
}

/// Runs `call` in a task of its own and waits for it. Dropping the returned future (hyper
/// drops a handler when its connection ends) leaves the task running, so a command sent to
/// the daemon is never cut between "sent" and "done". A panic in the task goes on in the
/// caller (the 500 of `catch_panic`).
pub async fn detached<T: Send + 'static>(
    call: impl Future<Output = Result<T, daemon::Error>> + Send + 'static,
) -> Result<T, daemon::Error> {
    match tokio::spawn(call).await {
        Ok(result) => result,
        Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
        // Only when the runtime itself shuts down.
        Err(_) => Err(daemon::Error::Stopped),
    }
}

/// The peer of a request's connection (a request extension, for the access log).
#[derive(Clone, Copy, Debug)]
pub struct Peer(pub SocketAddr);

/// Every route, with the outer layers.
pub fn router(state: AppState) -> Router {
    Router::new()
        .merge(legacy::routes())
        .merge(v1::routes())
        .merge(metrics::routes())
        .merge(ui::routes())
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(middleware::from_fn_with_state(state.clone(), authorize))
        .layer(middleware::from_fn(access_log))
        .layer(middleware::from_fn(catch_panic))
        .with_state(state)
}

/// A bound API socket, not yet serving.
pub struct Listener {
    listener: TcpListener,
    token: Option<Token>,
    limits: Limits,
}

/// Binds `listen` under the token rule (a non-loopback address needs a token).
pub async fn bind(listen: SocketAddr, token: Option<Token>) -> Result<Listener, ListenError> {
    auth::check_listen(listen, token.as_ref())?;
    let listener = TcpListener::bind(listen)
        .await
        .map_err(|source| ListenError::Bind {
            addr: listen,
            source,
        })?;
    Ok(Listener {
        listener,
        token,
        limits: Limits::default(),
    })
}

impl Listener {
    pub fn local_addr(&self) -> SocketAddr {
        self.listener
            .local_addr()
            .expect("a bound TCP socket has a local address")
    }

    pub fn with_limits(mut self, limits: Limits) -> Listener {
        self.limits = limits;
        self
    }

    /// Serves the daemon behind `handle` until the returned future is dropped (which also
    /// closes every connection it accepted).
    pub async fn serve(self, handle: Handle) {
        self.serve_until(handle, std::future::pending()).await;
    }

    /// Serves the daemon behind `handle` until `stop` completes, then shuts down
    /// gracefully: closes the listening socket (new connections are refused), lets every
    /// request in flight finish and closes idle kept-alive connections, and once
    /// `Limits::shutdown_grace` has passed closes whatever connection is still open. Never
    /// takes much longer than the grace period after `stop`.
    pub async fn serve_until(self, handle: Handle, stop: impl Future<Output = ()>) -> Drained {
        let addr = self.local_addr();
        let probes = probe_stats::collect(handle.subscribe_samples());
        let state = Arc::new(Shared {
            handle,
            token: self.token,
            limits: self.limits.clone(),
            probes,
        });
        tracing::info!(
            listen = %addr,
            token = state.token.is_some(),
            "HTTP API listening"
        );
        let app = router(state);
        let slots = Arc::new(Semaphore::new(self.limits.max_connections.max(1)));
        let mut connections = JoinSet::new();
        let stopping = CancellationToken::new();
        let mut http = hyper::server::conn::http1::Builder::new();
        http.timer(TokioTimer::new())
            .header_read_timeout(self.limits.header_timeout)
            .max_buf_size(self.limits.max_head.max(8192))
            .max_headers(self.limits.max_headers)
            // A client may shut down its write side once its request is sent (`printf ... |
            // nc -N`, busybox nc): the end of its input is not the end of the exchange, and
            // without this hyper dropped the request in flight on seeing it.
            .half_close(true)
            .keep_alive(true);
        let mut stop = pin!(stop);
        loop {
            let slot = tokio::select! {
                biased;
                () = &mut stop => break,
                slot = slots.clone().acquire_owned() => match slot {
                    Ok(slot) => slot,
                    Err(_) => break,
                },
            };
            let accepted = tokio::select! {
                biased;
                () = &mut stop => break,
                accepted = self.listener.accept() => accepted,
            };
            let (stream, peer) = match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    // Out of file descriptors and the like: wait a little rather than spin.
                    tracing::warn!("HTTP API: cannot accept a connection: {e}");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            };
            while connections.try_join_next().is_some() {}
            let app = TowerToHyperService::new(app.clone());
            let service =
                hyper::service::service_fn(move |mut request: Request<hyper::body::Incoming>| {
                    request.extensions_mut().insert(Peer(peer));
                    app.call(request.map(Body::new))
                });
            let stream = WriteDeadline::new(stream, self.limits.write_timeout);
            let connection = http.serve_connection(TokioIo::new(stream), service);
            let stopping = stopping.clone();
            connections.spawn(async move {
                let _slot = slot;
                let mut connection = pin!(connection);
                let ended = tokio::select! {
                    ended = connection.as_mut() => ended,
                    () = stopping.cancelled() => {
                        // Answers the request in flight, if any, then closes.
                        connection.as_mut().graceful_shutdown();
                        connection.await
                    }
                };
                if let Err(e) = ended {
                    tracing::debug!(%peer, "HTTP API connection ended: {e}");
                }
            });
        }
        drop(self.listener);
        stopping.cancel();
        while connections.try_join_next().is_some() {}
        let open = connections.len();
        let grace = self.limits.shutdown_grace;
        tracing::info!(
            open,
            "HTTP API stopped listening; finishing the requests in flight (at most {grace:?})"
        );
        let _ = tokio::time::timeout(grace, async {
            while connections.join_next().await.is_some() {}
        })
        .await;
        let cut = connections.len();
        if cut > 0 {
            tracing::warn!(
                "HTTP API: closing {cut} connection(s) still open after the {grace:?} grace period"
            );
        }
        connections.shutdown().await;
        Drained { open, cut }
    }
}

/// What a graceful shutdown of the API found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Drained {
    /// Connections open when the shutdown began.
    pub open: usize,
    /// Of those, the ones still open after the grace period, closed unanswered.
    pub cut: usize,
}

/// Binds and serves in one call: `api::serve(handle, listen, token)`.
pub async fn serve(
    handle: Handle,
    listen: SocketAddr,
    token: Option<Token>,
) -> Result<(), ListenError> {
    bind(listen, token).await?.serve(handle).await;
    Ok(())
}

async fn authorize(State(app): State<AppState>, request: Request, next: Next) -> Response {
    match auth::authorize(app.token.as_ref(), request.method(), request.headers()) {
        Ok(()) => next.run(request).await,
        Err(denied) => {
            let path = request.uri().path().to_string();
            tracing::warn!(
                method = %request.method(),
                path = %path,
                peer = ?request.extensions().get::<Peer>().map(|p| p.0),
                "refused: {}",
                match denied {
                    auth::Denied::Missing => "no bearer token",
                    auth::Denied::Wrong => "wrong bearer token",
                }
            );
            let mut response = error_for_path(
                &path,
                StatusCode::UNAUTHORIZED,
                match denied {
                    auth::Denied::Missing => "token_required",
                    auth::Denied::Wrong => "token_invalid",
                },
                denied.message(),
            );
            let challenge = match denied {
                auth::Denied::Missing => "Bearer realm=\"bigbro\"",
                auth::Denied::Wrong => "Bearer realm=\"bigbro\", error=\"invalid_token\"",
            };
            response.headers_mut().insert(
                axum::http::header::WWW_AUTHENTICATE,
                axum::http::HeaderValue::from_static(challenge),
            );
            response
        }
    }
}

/// One line per request: changes at info, reads at debug (pacemaker polls every 10 s).
/// Never the headers: they may hold the token.
async fn access_log(request: Request, next: Next) -> Response {
    let method = request.method().clone();
    let path = request.uri().path().to_string();
    let peer = request.extensions().get::<Peer>().map(|p| p.0);
    let started = tokio::time::Instant::now();
    let response = next.run(request).await;
    let status = response.status().as_u16();
    let ms = started.elapsed().as_secs_f64() * 1000.0;
    if auth::is_mutating(&method) {
        tracing::info!(%method, %path, status, ?peer, ms, "HTTP API request");
    } else {
        tracing::debug!(%method, %path, status, ?peer, ms, "HTTP API request");
    }
    response
}

/// A panic in a handler becomes big_brother's 500 `Application error` (JSON under /api).
async fn catch_panic(request: Request, next: Next) -> Response {
    let path = request.uri().path().to_string();
    match AssertUnwindSafe(next.run(request)).catch_unwind().await {
        Ok(response) => response,
        Err(panic) => {
            let what = panic
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "a panic".to_string());
            tracing::error!(%path, "Error: {what}");
            if is_json_path(&path) {
                ApiError::internal("the request failed inside bigbro; the log has the details")
                    .into_response()
            } else {
                super::error::text_response(StatusCode::INTERNAL_SERVER_ERROR, "Application error")
            }
        }
    }
}

async fn not_found(State(app): State<AppState>, method: Method, request: Request) -> Response {
    let path = request.uri().path();
    if let Some(name) = legacy::cluster_in_path(path) {
        // big_brother answered any path under an unknown cluster this way.
        if app.handle.config().cluster(name).is_none() {
            return legacy::not_found(name);
        }
    }
    if is_json_path(path) {
        ApiError::not_found(
            "no_route",
            format!(
                "no route {method} {}; GET /api/v1 lists the routes",
                super::error::quote(path)
            ),
        )
        .into_response()
    } else {
        super::error::text_response(StatusCode::NOT_FOUND, "Not Found\n")
    }
}

async fn method_not_allowed(method: Method, request: Request) -> Response {
    error_for_path(
        request.uri().path(),
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        &format!(
            "{method} is not allowed on {}; the Allow header lists the methods that are",
            super::error::quote(request.uri().path())
        ),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_detached_call_completes_when_its_caller_is_dropped() {
        let (release, released) = tokio::sync::oneshot::channel::<()>();
        let (done, finished) = tokio::sync::oneshot::channel();
        let caller = detached(async move {
            let _ = released.await;
            let _ = done.send("carried out");
            Ok(())
        });
        // The caller starts the call, then goes (as a handler whose client closed).
        let mut caller = Box::pin(caller);
        assert!(caller.as_mut().now_or_never().is_none());
        drop(caller);
        release.send(()).unwrap();
        assert_eq!(finished.await, Ok("carried out"));
    }

    #[tokio::test(start_paused = true)]
    async fn a_daemon_that_does_not_answer_is_a_timeout() {
        let limit = Duration::from_secs(15);
        let hung = std::future::pending::<Result<(), daemon::Error>>();
        let started = tokio::time::Instant::now();
        let e = bounded(limit, hung).await.unwrap_err();
        assert!(matches!(e, Failure::Timeout(t) if t == limit), "{e}");
        assert_eq!(started.elapsed(), limit);
        assert!(e.to_string().contains("did not answer within 15s"), "{e}");
        let stopped = bounded(limit, async { Err::<(), _>(daemon::Error::Stopped) }).await;
        assert!(matches!(
            stopped,
            Err(Failure::Daemon(daemon::Error::Stopped))
        ));
        assert_eq!(bounded(limit, async { Ok(7) }).await.unwrap(), 7);
    }
}
