//! The weight driver: a tokio task that owns the probe scheduler and the weight policy. It
//! feeds every sample to the policy, re-evaluates on a tick (ramps, override expiries,
//! override files), and sends each batch of weight changes on a channel: the daemon applies
//! them to the map it programs (`src/daemon/weights.rs`), and never asks for the weights.
//! The daemon and the API talk to it through a cloneable `DriverHandle`.
//!
//! It is the policy's only clock: `Instant::now()` is read here and passed in, so the whole
//! chain runs on tokio's paused clock in tests. It never touches the kernel, never blocks on
//! its output (changes go on an unbounded channel; the volume is bounded by the number of
//! nodes per tick) and never blocks on the file system (the override files are listed by a
//! separate task through `spawn_blocking`). It stops when every handle is dropped.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use tokio::sync::{broadcast, mpsc, oneshot};
use tokio::time::{Instant, MissedTickBehavior};

use super::files::{self, OverrideFiles};
use super::node::Status;
use super::overrides::{Force, Override};
use super::policy::{
    ClusterUpdate, Evaluation, NodeKey, NodeSpec, Policy, PolicyError, WeightChange,
};
use super::snapshot::PolicySnapshot;
use crate::health::{ProbeScheduler, Prober, Sample};
use crate::types::{ClusterName, Weight};

/// How the driver runs.
#[derive(Clone, Debug)]
pub struct DriverOptions {
    /// How often everything is re-evaluated (ramps, expiries) and the override files are
    /// listed. Default 1 s.
    pub tick: Duration,
    /// big_brother's `--data-dir`: `up/<cluster>` and `down/<cluster>` are honoured under
    /// it. None: no override files.
    pub data_dir: Option<PathBuf>,
    /// Samples waiting for the driver before probes are held back. Default 4096.
    pub sample_buffer: usize,
    /// Seed for the probe start jitter (tests); None: random.
    pub jitter_seed: Option<u64>,
    /// The runtime the driver task and its probe tasks run on; None: the one `spawn` is
    /// called on. The daemon gives them a current-thread runtime on a thread of their own
    /// (`health::ProbeThread`), so that samples never cross threads on their way to the
    /// policy; only commands and weight batches do.
    pub probe_runtime: Option<tokio::runtime::Handle>,
}

impl Default for DriverOptions {
    fn default() -> Self {
        DriverOptions {
            tick: Duration::from_secs(1),
            data_dir: None,
            sample_buffer: 4096,
            jitter_seed: None,
            probe_runtime: None,
        }
    }
}

/// Weight changes found in one evaluation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WeightBatch {
    pub at: Instant,
    pub changes: Vec<WeightChange>,
}

/// An override as requested through the API.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OverrideRequest {
    pub force: Force,
    pub reason: String,
    /// None: until cleared.
    pub ttl: Option<Duration>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DriverError {
    #[error("the weight driver has stopped")]
    Stopped,
    #[error(transparent)]
    Policy(#[from] PolicyError),
}

type Reply<T> = oneshot::Sender<T>;

pub(super) enum DriverCommand {
    SetCluster(
        ClusterName,
        Vec<NodeSpec>,
        Reply<Result<ClusterUpdate, PolicyError>>,
    ),
    RemoveCluster(ClusterName, Reply<Vec<NodeKey>>),
    NodeOverride(
        NodeKey,
        Option<OverrideRequest>,
        Reply<Result<Option<Override>, PolicyError>>,
    ),
    ClusterOverride(
        ClusterName,
        Option<OverrideRequest>,
        Reply<Result<Option<Override>, PolicyError>>,
    ),
    Snapshot(Reply<PolicySnapshot>),
    Weights(Reply<BTreeMap<NodeKey, Weight>>),
}

/// Talks to the driver task. Cheap to clone.
#[derive(Clone)]
pub struct DriverHandle {
    commands: mpsc::Sender<DriverCommand>,
    samples: broadcast::Sender<Sample>,
}

impl DriverHandle {
    async fn ask<T>(&self, make: impl FnOnce(Reply<T>) -> DriverCommand) -> Result<T, DriverError> {
        let (tx, rx) = oneshot::channel();
        self.commands
            .send(make(tx))
            .await
            .map_err(|_| DriverError::Stopped)?;
        rx.await.map_err(|_| DriverError::Stopped)
    }

    /// Makes `cluster`'s nodes exactly `nodes` (see `Policy::set_cluster`) and updates the
    /// probes to match.
    pub async fn set_cluster(
        &self,
        cluster: ClusterName,
        nodes: Vec<NodeSpec>,
    ) -> Result<ClusterUpdate, DriverError> {
        Ok(self
            .ask(|r| DriverCommand::SetCluster(cluster, nodes, r))
            .await??)
    }

    /// Forgets a cluster and stops probing what only it used.
    pub async fn remove_cluster(&self, cluster: ClusterName) -> Result<Vec<NodeKey>, DriverError> {
        self.ask(|r| DriverCommand::RemoveCluster(cluster, r)).await
    }

    /// Sets a node's override (replacing any), returning the replaced one.
    pub async fn set_node_override(
        &self,
        key: NodeKey,
        request: OverrideRequest,
    ) -> Result<Option<Override>, DriverError> {
        Ok(self
            .ask(|r| DriverCommand::NodeOverride(key, Some(request), r))
            .await??)
    }

    /// Clears a node's override, returning it.
    pub async fn clear_node_override(&self, key: NodeKey) -> Result<Option<Override>, DriverError> {
        Ok(self
            .ask(|r| DriverCommand::NodeOverride(key, None, r))
            .await??)
    }

    /// Sets a cluster-wide override (replacing any), returning the replaced one.
    pub async fn set_cluster_override(
        &self,
        cluster: ClusterName,
        request: OverrideRequest,
    ) -> Result<Option<Override>, DriverError> {
        Ok(self
            .ask(|r| DriverCommand::ClusterOverride(cluster, Some(request), r))
            .await??)
    }

    /// Clears a cluster-wide override, returning it.
    pub async fn clear_cluster_override(
        &self,
        cluster: ClusterName,
    ) -> Result<Option<Override>, DriverError> {
        Ok(self
            .ask(|r| DriverCommand::ClusterOverride(cluster, None, r))
            .await??)
    }

    /// Every cluster's and node's state.
    pub async fn snapshot(&self) -> Result<PolicySnapshot, DriverError> {
        self.ask(DriverCommand::Snapshot).await
    }

    /// A copy of every node's current weight, for tests and tools (O(nodes)). The daemon
    /// keeps its own map from the batches instead (`src/daemon/weights.rs`).
    pub async fn weights(&self) -> Result<BTreeMap<NodeKey, Weight>, DriverError> {
        self.ask(DriverCommand::Weights).await
    }

    /// Every probe sample from now on (for metrics). A receiver that falls behind by more
    /// than 4096 samples is told how many it missed (`RecvError::Lagged`).
    pub fn subscribe_samples(&self) -> broadcast::Receiver<Sample> {
        self.samples.subscribe()
    }
}

/// Starts the driver with `prober`. Returns its handle and the stream of weight changes.
/// Must be called inside a tokio runtime.
pub fn spawn<P: Prober>(
    options: DriverOptions,
    prober: P,
) -> (DriverHandle, mpsc::UnboundedReceiver<WeightBatch>) {
    let (commands_tx, commands) = mpsc::channel(64);
    let (samples_tx, samples) = mpsc::channel(options.sample_buffer.max(1));
    let (broadcast_tx, _) = broadcast::channel(4096);
    let (changes_tx, changes) = mpsc::unbounded_channel();
    let scheduler = match options.jitter_seed {
        Some(seed) => ProbeScheduler::with_seed(prober, samples_tx, seed),
        None => ProbeScheduler::new(prober, samples_tx),
    };
    let (files_tx, files) = mpsc::channel(1);
    if let Some(dir) = options.data_dir.clone() {
        tokio::spawn(watch_files(dir, options.tick, files_tx));
    }
    let driver = Driver {
        policy: Policy::new(),
        scheduler,
        changes: changes_tx,
        samples_out: broadcast_tx.clone(),
    };
    // The scheduler spawns its probe tasks from inside the driver task, so on its runtime.
    let run = driver.run(options.tick, commands, samples, files);
    match &options.probe_runtime {
        Some(runtime) => drop(runtime.spawn(run)),
        None => drop(tokio::spawn(run)),
    }
    let handle = DriverHandle {
        commands: commands_tx,
        samples: broadcast_tx,
    };
    (handle, changes)
}

pub(super) struct Driver<P: Prober> {
    pub(super) policy: Policy,
    pub(super) scheduler: ProbeScheduler<P>,
    pub(super) changes: mpsc::UnboundedSender<WeightBatch>,
    pub(super) samples_out: broadcast::Sender<Sample>,
}

impl<P: Prober> Driver<P> {
    async fn run(
        mut self,
        tick: Duration,
        mut commands: mpsc::Receiver<DriverCommand>,
        mut samples: mpsc::Receiver<Sample>,
        mut files: mpsc::Receiver<OverrideFiles>,
    ) {
        let mut ticker = tokio::time::interval(tick.max(Duration::from_millis(1)));
        ticker.set_missed_tick_behavior(MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                command = commands.recv() => match command {
                    Some(command) => self.command(command),
                    None => return,
                },
                Some(sample) = samples.recv() => {
                    self.sample(sample);
                    // Take what else is waiting, then evaluate once for all of it.
                    for _ in 0..1024 {
                        match samples.try_recv() {
                            Ok(sample) => self.sample(sample),
                            Err(_) => break,
                        }
                    }
                    self.evaluate(false);
                }
                Some(found) = files.recv() => {
                    for (cluster, state) in self.policy.set_override_files(&found) {
                        tracing::info!(%cluster, up = state.up, down = state.down, "override files changed");
                    }
                    self.evaluate(false);
                }
                _ = ticker.tick() => self.evaluate(true),
            }
        }
    }

    fn sample(&mut self, sample: Sample) {
        for (key, t) in self.policy.observe(&sample) {
            match (t.to, &sample.result) {
                (Status::Up, result) => tracing::info!(
                    "{key} is up after {} good probe(s) of {} (health {})",
                    t.streak,
                    sample.target,
                    result.as_ref().map_or(0, |h| *h)
                ),
                (_, Err(e)) => tracing::info!(
                    "{key} is down after {} failed probe(s) of {}: {e}",
                    t.streak,
                    sample.target
                ),
                (_, Ok(h)) => tracing::info!(
                    "{key} is down after {} failed probe(s) of {}: health {h}",
                    t.streak,
                    sample.target
                ),
            }
        }
        let _ = self.samples_out.send(sample);
    }

    fn evaluate(&mut self, all: bool) {
        let now = Instant::now();
        let Evaluation { changes, expired } = if all {
            self.policy.evaluate_all(now)
        } else {
            self.policy.evaluate(now)
        };
        for (scope, o) in &expired {
            tracing::info!(
                "override on {scope} expired ({:?}, reason: {})",
                o.force,
                o.reason
            );
        }
        for c in &changes {
            tracing::debug!("{} weight {} -> {} ({:?})", c.key, c.from, c.to, c.source);
        }
        if !changes.is_empty() {
            let _ = self.changes.send(WeightBatch { at: now, changes });
        }
    }

    /// Updates the probes of the targets whose nodes changed, and only those: registering
    /// n nodes cluster by cluster must stay O(n), not O(n²) (the daemon's start and reload).
    fn sync_probes(&mut self) {
        for (target, settings) in self.policy.take_probe_changes() {
            self.scheduler.set(target, settings);
        }
    }

    /// Carries out a command. A command that changes weights (nodes, overrides) is
    /// evaluated at once, and its batch is sent before its answer: whoever asked finds
    /// every change it caused waiting on the batch channel when the answer comes (the
    /// daemon's weight map relies on it, `src/daemon/weights.rs`).
    pub(super) fn command(&mut self, command: DriverCommand) {
        let now = Instant::now();
        let over = |r: OverrideRequest| Override::new(r.force, r.reason, now, r.ttl);
        match command {
            DriverCommand::SetCluster(cluster, nodes, reply) => {
                let result = self.policy.set_cluster(&cluster, nodes, now);
                self.sync_probes();
                self.evaluate(false);
                let _ = reply.send(result);
            }
            DriverCommand::RemoveCluster(cluster, reply) => {
                let removed = self.policy.remove_cluster(&cluster);
                self.sync_probes();
                self.evaluate(false);
                let _ = reply.send(removed);
            }
            DriverCommand::NodeOverride(key, request, reply) => {
                let result = match request {
                    Some(r) => {
                        tracing::info!("override on {key}: {:?} ({})", r.force, r.reason);
                        self.policy.set_node_override(&key, over(r))
                    }
                    None => self.policy.clear_node_override(&key),
                };
                self.evaluate(false);
                let _ = reply.send(result);
            }
            DriverCommand::ClusterOverride(cluster, request, reply) => {
                let result = match request {
                    Some(r) => {
                        tracing::info!(
                            "override on cluster {cluster}: {:?} ({})",
                            r.force,
                            r.reason
                        );
                        self.policy.set_cluster_override(&cluster, over(r))
                    }
                    None => self.policy.clear_cluster_override(&cluster),
                };
                self.evaluate(false);
                let _ = reply.send(result);
            }
            DriverCommand::Snapshot(reply) => {
                let _ = reply.send(self.policy.snapshot(now));
            }
            DriverCommand::Weights(reply) => {
                let _ = reply.send(self.policy.weights());
            }
        }
    }
}

/// Lists the override files every `tick` off the async threads and sends what it finds
/// whenever it changes. On an error it logs (once per distinct message) and sends nothing,
/// so the policy keeps the last state it knew.
async fn watch_files(dir: PathBuf, tick: Duration, out: mpsc::Sender<OverrideFiles>) {
    let mut ticker = tokio::time::interval(tick.max(Duration::from_millis(1)));
    ticker.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let mut last: Option<OverrideFiles> = None;
    let mut last_error: Option<String> = None;
    loop {
        ticker.tick().await;
        if out.is_closed() {
            return;
        }
        let scan_dir = dir.clone();
        let found = match tokio::task::spawn_blocking(move || files::scan(&scan_dir)).await {
            Ok(found) => found,
            Err(_) => return,
        };
        match found {
            Ok(found) => {
                last_error = None;
                if last.as_ref() != Some(&found) {
                    last = Some(found.clone());
                    if out.send(found).await.is_err() {
                        return;
                    }
                }
            }
            Err(e) => {
                let message = e.to_string();
                if last_error.as_ref() != Some(&message) {
                    tracing::warn!("{message}");
                    last_error = Some(message);
                }
            }
        }
    }
}
