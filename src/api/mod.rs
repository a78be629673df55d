//! The HTTP API: big_brother's routes byte for byte (`legacy`), a JSON API under `/api/v1/`
//! (`v1`), Prometheus metrics (`metrics`) and a status page (`ui`), served by `server`
//! under the token rule of `auth` and the limits of `server::Limits`.
//!
//! The API is a front end: it turns requests into calls on the daemon's `Handle` and
//! renders the answers. It never touches the kernel or the configuration file
//! itself, and a request it refuses (bad JSON, unknown cluster, wrong method, missing
//! token, too large, too slow) changes nothing.
//!
//! `client` is the other side, the `bigbro status|start|stop|...` commands, sending
//! requests to a running daemon through `transport`.
//!
//! Entry points: `serve(backend, listen, token)`, or `bind` (to learn the bound address
//! and report a bind error before READY) followed by `Listener::serve`.

pub mod auth;
pub mod body;
pub mod client;
pub mod deadline;
pub mod error;
pub mod legacy;
pub mod metrics;
pub mod probe_stats;
pub mod prom;
pub mod server;
pub mod transport;
pub mod ui;
pub mod v1;

pub use auth::{ListenError, Token, TokenError};
pub use server::{bind, serve, Drained, Limits, Listener};

/// Reads the token file, if one is configured.
pub fn load_token(path: Option<&std::path::Path>) -> Result<Option<Token>, TokenError> {
    path.map(Token::from_file).transpose()
}

/// Loads the configured token and binds the configured address: what `bigbro daemon` calls
/// before it reports READY, so that a taken port or a missing token is a start failure.
pub async fn bind_configured(api: &crate::config::Api) -> Result<Listener, ListenError> {
    let token = load_token(api.token_file.as_deref())?;
    bind(api.listen, token).await
}
