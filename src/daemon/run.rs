//! `bigbro daemon`: loads the configuration (refusing to start on any error), connects to
//! IPVS and nf_tables (lazily: a missing module is reported and retried, not fatal), starts
//! the controller, and turns signals into commands: SIGHUP reloads (an invalid file changes
//! nothing), SIGTERM and SIGINT stop the API gracefully (requests in flight are answered,
//! for at most `api::Limits::shutdown_grace`), stop probing and exit 0 leaving IPVS and
//! nf_tables exactly as they are, so traffic keeps flowing across a restart.
//!
//! Signal handlers are installed before anything else runs, so an early SIGHUP can never
//! kill the daemon (its default action).

use std::net::IpAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use tokio::signal::unix::{signal, SignalKind};
use tokio_util::sync::CancellationToken;

use super::controller::{spawn, CliOverrides, Options};
use super::kernel::{LazyIpvs, LazyNft, LazyRoute};
use super::notify::Notifier;
use crate::config;
use crate::health::{NetProber, ProbeThread};
use crate::weight::DriverOptions;

/// The daemon's command line (big_brother's flags).
#[derive(Clone, Debug)]
pub struct Args {
    pub config: PathBuf,
    pub data_dir: Option<PathBuf>,
    pub port: Option<u16>,
    pub binding: Option<IpAddr>,
}

/// Runs the daemon until SIGTERM or SIGINT. Exit status 1 when the configuration is
/// invalid or the runtime cannot start.
pub fn main(args: Args) -> ExitCode {
    tracing::info!(config = %args.config.display(), version = env!("CARGO_PKG_VERSION"), "starting bigbro");
    let model = match config::load(&args.config) {
        Ok(m) => m,
        Err(errors) => {
            for line in errors.lines() {
                tracing::error!("{line}");
            }
            tracing::error!(
                "{} is not valid ({}); nothing was started",
                args.config.display(),
                errors.count_text()
            );
            return ExitCode::from(1);
        }
    };
    // The probes run on a thread of their own (see health::thread); declared before the
    // runtime so that it is dropped after it, once the driver that feeds it is gone.
    let probes = match ProbeThread::start("bigbro-probes") {
        Ok(p) => p,
        Err(e) => {
            tracing::error!("cannot start the probe thread: {e}");
            return ExitCode::from(1);
        }
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            tracing::error!("cannot start the async runtime: {e}");
            return ExitCode::from(1);
        }
    };
    runtime.block_on(serve(args, model, probes.handle()))
}

async fn serve(args: Args, model: config::Model, probes: tokio::runtime::Handle) -> ExitCode {
    let signals = (
        signal(SignalKind::hangup()),
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    );
    let (mut hup, mut term, mut int) = match signals {
        (Ok(h), Ok(t), Ok(i)) => (h, t, i),
        _ => {
            tracing::error!("cannot install the signal handlers");
            return ExitCode::from(1);
        }
    };
    let cli = CliOverrides {
        data_dir: args.data_dir.clone(),
        port: args.port,
        binding: args.binding,
    };
    let settings = cli.apply(model.clone()).settings;
    let notifier = Notifier::from_env();
    let mut options = Options::new(&args.config);
    options.cli = cli;
    options.notifier = notifier.clone();
    options.driver = DriverOptions {
        data_dir: Some(settings.data_dir.clone()),
        probe_runtime: Some(probes),
        ..DriverOptions::default()
    };
    tracing::info!(
        clusters = model.clusters.len(),
        api = %settings.api.listen,
        data_dir = %settings.data_dir.display(),
        anti_entropy = %config::fmt_secs(settings.anti_entropy_interval),
        "configuration {} is valid",
        args.config.display()
    );
    // The HTTP API (src/api): bound before the controller starts, so a taken port or a
    // missing token fails the start instead of READY being sent without an API.
    let api = match crate::api::bind_configured(&settings.api).await {
        Ok(api) => api,
        Err(e) => {
            tracing::error!("{e}");
            return ExitCode::from(1);
        }
    };
    let (handle, mut task) = spawn(
        model,
        options,
        Arc::new(LazyIpvs::new()),
        Arc::new(LazyNft::new()),
        Arc::new(LazyRoute::new()),
        NetProber::default(),
    );
    let stop_api = CancellationToken::new();
    let mut api = tokio::spawn(api.serve_until(handle.clone(), stop_api.clone().cancelled_owned()));
    loop {
        tokio::select! {
            _ = hup.recv() => {
                tracing::info!("HUP trapped. Reconfiguring big brother");
                match handle.reload().await {
                    Ok(_) => {}
                    Err(e) => tracing::error!("reload refused: {}", e.to_string().lines().next().unwrap_or("")),
                }
            }
            _ = term.recv() => break,
            _ = int.recv() => break,
            r = &mut task => {
                tracing::error!("the controller ended unexpectedly ({r:?}); exiting, IPVS is left as it is");
                return ExitCode::from(1);
            }
        }
    }
    notifier.stopping();
    // The API first, while the controller still answers: requests in flight finish
    // (within the API's grace period), new connections are refused. Another SIGTERM or
    // SIGINT meanwhile cuts them at once.
    stop_api.cancel();
    tokio::select! {
        _ = &mut api => {}
        _ = term.recv() => api.abort(),
        _ = int.recv() => api.abort(),
    }
    handle.shutdown().await;
    tracing::info!("stopped");
    ExitCode::SUCCESS
}
