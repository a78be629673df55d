//! The controller: one task that owns the daemon's state (configuration, running clusters,
//! active_passive choices, remote nodes, orphaned services) and drives the reconciler.
//!
//! It takes over the running clusters from the kernel first (a configured fwmark found in
//! IPVS is a running cluster, its nodes keep their kernel weights), and writes nothing to
//! IPVS until that read has succeeded: a failed first dump must never look like "nothing
//! runs". Then it serves commands (start, stop, synchronize, reload, shutdown) and runs a
//! reconciliation pass after each, after weight changes, after interpol changes, and
//! every anti-entropy interval, which repairs hand edits of owned services and of the mark
//! rules. Failed operations are logged, shown in the status and metrics, and retried with
//! a backoff. After every change it publishes a new view for the handles' queries.
//!
//! Weight changes are coalesced on the leading edge: a change that comes when no weight
//! pass has ended within the last `coalesce` gets a pass at once; changes that come
//! within `coalesce` of the end of the last weight pass share one pass at that end plus
//! `coalesce`. So a lone change waits for nothing, and a burst costs at most one pass per
//! `coalesce` (with at least `coalesce` between the end of one and the start of the next).
//!
//! Passes after commands, anti-entropy passes and any pass after a failed read read every
//! owned service (full passes). The others (weights, interpol, drains, retries of failed
//! operations) read and compare only the dirty services: those whose desired state differs
//! from what the kernel held when a pass last read them, and those with failed operations.
//! A hand edit of another service is repaired by the next full pass, within one
//! anti-entropy interval. A weight pass also builds the desired state of only the
//! clusters its weight batches named (and so looks for dirty services only among theirs,
//! those with errors and orphans), unless something else changed since the last build (a
//! command, an interpol update); every other pass builds every cluster. The status shows
//! each service as the last pass that read it found it (read again after every write),
//! without a read of its own.
//!
//! It never touches a service outside the configuration (only the reconciler writes, and
//! only owned keys), and shutting down leaves IPVS and nf_tables exactly as they are.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use tokio::time::{Instant, Interval, MissedTickBehavior};

use super::handle::{Command, Error, Handle, ReloadReport, StartOutcome, StopOutcome, View};
use super::interpol::{self, Poll};
use super::metrics::Metrics;
use super::nagios;
use super::notify::Notifier;
use super::params::node_specs;
use super::status::{
    ClusterStatus, DaemonStatus, DownpageStatus, KernelService, MarksStatus, NodeStatus,
    PassStatus, RemoteNodeStatus, Trigger,
};
use crate::config::{self, Cluster, Model};
use crate::desired::{self, ClusterKeys, Remote, Running};
use crate::health::Prober;
use crate::ipvs::{self, ServiceKey};
use crate::reconcile::{self, IpvsKernel, MarkTable, Observed, Reading};
use crate::types::{ClusterName, Weight};
use crate::weight::{self, DriverHandle, DriverOptions, Initial, WeightBatch};

/// big_brother's command-line flags, applied to every configuration loaded (the first and
/// each reload).
#[derive(Clone, Debug, Default)]
pub struct CliOverrides {
    pub data_dir: Option<PathBuf>,
    pub port: Option<u16>,
    pub binding: Option<IpAddr>,
}

impl CliOverrides {
    pub fn apply(&self, mut model: Model) -> Model {
        model.settings = model
            .settings
            .with_cli(self.data_dir.clone(), self.port, self.binding);
        model
    }
}

/// How the controller runs.
#[derive(Clone, Debug)]
pub struct Options {
    /// The configuration file, read again on reload.
    pub config_path: PathBuf,
    pub cli: CliOverrides,
    /// Weight changes within this window after a weight pass share one pass at its end
    /// (a change outside it gets a pass at once). Default 100 ms.
    pub coalesce: Duration,
    /// First delay before retrying a failed pass (doubling up to the anti-entropy
    /// interval). Default 1 s.
    pub retry: Duration,
    /// The weight driver's options (tick, override-file directory, jitter seed).
    pub driver: DriverOptions,
    /// How long a destination that leaves a running service (the old active_passive
    /// node, the downpage on recovery, a node removed by reload, a remote load balancer)
    /// stays at weight 0 before it is deleted, so its connections finish. Zero deletes at
    /// once, as big_brother did. Default 5 s.
    pub drain: Duration,
    /// The `send_nsca` program. Default `send_nsca` (looked up on PATH).
    pub nsca_program: PathBuf,
    pub notifier: Notifier,
}

impl Options {
    pub fn new(config_path: impl Into<PathBuf>) -> Options {
        Options {
            config_path: config_path.into(),
            cli: CliOverrides::default(),
            coalesce: Duration::from_millis(100),
            retry: Duration::from_secs(1),
            drain: Duration::from_secs(5),
            driver: DriverOptions::default(),
            nsca_program: PathBuf::from("send_nsca"),
            notifier: Notifier::disabled(),
        }
    }
}

/// Starts the daemon's controller on the current tokio runtime with `model` (already
/// loaded from `options.config_path`), the IPVS `kernel`, the nf_tables `marks` and the
/// health `prober`. Returns its handle and its task (which ends on shutdown, or when every
/// handle is dropped).
pub fn spawn<K, M, P>(
    model: Model,
    options: Options,
    kernel: Arc<K>,
    marks: Arc<M>,
    prober: P,
) -> (Handle, JoinHandle<()>)
where
    K: IpvsKernel + 'static,
    M: MarkTable + 'static,
    P: Prober,
{
    let model = Arc::new(options.cli.apply(model));
    let (driver, batches) = weight::spawn(options.driver.clone(), prober);
    let (commands_tx, commands) = mpsc::channel(64);
    let (polls_tx, polls) = mpsc::channel(64);
    let metrics = Metrics::new();
    let now = unix_now();
    metrics.loaded(now);
    let mut daemon = DaemonStatus {
        config_path: options.config_path.clone(),
        ..DaemonStatus::default()
    };
    daemon.reload.last_success_unix = Some(now);
    let (view_tx, view) = watch::channel(Arc::new(View {
        model: model.clone(),
        clusters: Vec::new(),
        daemon: daemon.clone(),
    }));
    let mut controller = Controller {
        model,
        options,
        kernel,
        marks,
        driver: driver.clone(),
        metrics: metrics.clone(),
        view: view_tx,
        running: BTreeMap::new(),
        weights: BTreeMap::new(),
        observed: BTreeMap::new(),
        observed_whole: false,
        errors: BTreeMap::new(),
        orphans: BTreeSet::new(),
        built: desired::Built::default(),
        stale: None,
        draining: desired::Draining::new(),
        adopted: false,
        daemon,
        pending: None,
        last_weights_pass: None,
        backoff: None,
        pollers: BTreeMap::new(),
        generation: 0,
        polls_tx,
        nagios_last: BTreeMap::new(),
        managed_daemons: false,
        logged_kernel_error: None,
    };
    controller.publish();
    let task = tokio::spawn(controller.run(commands, batches, polls));
    let handle = Handle {
        commands: commands_tx,
        view,
        driver,
        metrics,
    };
    (handle, task)
}

pub(crate) fn unix_now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

struct Controller<K, M> {
    model: Arc<Model>,
    options: Options,
    kernel: Arc<K>,
    marks: Arc<M>,
    driver: DriverHandle,
    metrics: Metrics,
    view: watch::Sender<Arc<View>>,
    /// Running clusters and their state beyond weights.
    running: BTreeMap<ClusterName, Running>,
    /// The policy's weights, as of the last pass.
    weights: desired::Weights,
    /// The owned services as the last pass that read them found them.
    observed: BTreeMap<ServiceKey, Observed>,
    /// Whether `observed` holds every owned service as last read (false before adoption
    /// and after a failed read): only then may a pass read just the dirty services.
    observed_whole: bool,
    /// The last pass's errors, by service (dump errors under no key).
    errors: BTreeMap<Option<ServiceKey>, Vec<String>>,
    /// Services a previous configuration owned, to delete (fwmark changes, removed
    /// clusters) until a dump shows them gone.
    orphans: BTreeSet<ServiceKey>,
    /// What the last pass wanted (before drains, to see which destinations leave) and
    /// asked for (with them).
    built: desired::Built,
    /// The clusters whose weights changed (named by weight batches) since the desired
    /// state was last built; None: anything else may have changed too (a command, an
    /// interpol update), so the next pass builds every cluster.
    stale: Option<BTreeSet<ClusterName>>,
    /// Destinations at weight 0 until their connections are done.
    draining: desired::Draining,
    /// Whether the running clusters have been read from the kernel.
    adopted: bool,
    daemon: DaemonStatus,
    /// The next pass due, and why.
    pending: Option<(Instant, Trigger)>,
    /// When the last weight-triggered pass ended (the start of the coalescing window).
    last_weights_pass: Option<Instant>,
    /// The current retry delay after failed passes.
    backoff: Option<Duration>,
    /// interpol pollers by cluster: (generation, task).
    pollers: BTreeMap<ClusterName, (u64, JoinHandle<()>)>,
    generation: u64,
    polls_tx: mpsc::Sender<Poll>,
    /// Nodes-down count of the last nagios notification, by cluster.
    nagios_last: BTreeMap<ClusterName, usize>,
    /// Whether bigbro manages the sync daemons (configured now or earlier in this run).
    managed_daemons: bool,
    logged_kernel_error: Option<String>,
}

/// Resolves at the next tick of `interval`, or never.
async fn tick(interval: &mut Option<Interval>) {
    match interval {
        Some(i) => {
            i.tick().await;
        }
        None => std::future::pending().await,
    }
}

fn every(period: Duration) -> Interval {
    let period = period.max(Duration::from_millis(10));
    let mut i = tokio::time::interval_at(Instant::now() + period, period);
    i.set_missed_tick_behavior(MissedTickBehavior::Delay);
    i
}

impl<K: IpvsKernel + 'static, M: MarkTable + 'static> Controller<K, M> {
    async fn run(
        mut self,
        mut commands: mpsc::Receiver<Command>,
        mut batches: mpsc::UnboundedReceiver<WeightBatch>,
        mut polls: mpsc::Receiver<Poll>,
    ) {
        if self.try_adopt().await {
            self.pass(Trigger::Command, true).await;
        } else {
            self.schedule_retry();
            self.publish();
        }
        self.sync_daemons().await;
        self.options.notifier.ready(&self.status_line());
        let mut period = self.model.settings.anti_entropy_interval;
        let mut anti_entropy = every(period);
        let mut watchdog = self.options.notifier.watchdog_interval().map(every);
        loop {
            let pending = self.pending;
            tokio::select! {
                command = commands.recv() => match command {
                    None => return self.shutdown().await,
                    Some(Command::Shutdown(reply)) => {
                        self.shutdown().await;
                        let _ = reply.send(());
                        return;
                    }
                    Some(command) => self.command(command).await,
                },
                batch = batches.recv() => match batch {
                    Some(batch) => {
                        self.note_stale(&batch);
                        while let Ok(batch) = batches.try_recv() {
                            self.note_stale(&batch);
                        }
                        self.weights_changed().await;
                    }
                    None => {
                        tracing::error!("the weight driver stopped; the controller stops too (IPVS is left as it is)");
                        return self.shutdown().await;
                    }
                },
                Some(poll) = polls.recv() => self.interpol(poll),
                _ = tokio::time::sleep_until(pending.map_or_else(Instant::now, |p| p.0)), if pending.is_some() => {
                    self.pending = None;
                    let trigger = pending.map_or(Trigger::Retry, |p| p.1);
                    self.pass(trigger, trigger == Trigger::Retry).await;
                }
                _ = anti_entropy.tick() => {
                    self.pass(Trigger::AntiEntropy, true).await;
                    self.sync_daemons().await;
                }
                _ = tick(&mut watchdog) => self.options.notifier.watchdog(),
            }
            if self.model.settings.anti_entropy_interval != period {
                period = self.model.settings.anti_entropy_interval;
                anti_entropy = every(period);
            }
        }
    }

    async fn shutdown(&mut self) {
        tracing::info!("stopping: probes end, IPVS and nf_tables are left exactly as they are");
        for (_, (_, task)) in std::mem::take(&mut self.pollers) {
            task.abort();
        }
        for name in self.running.keys() {
            let _ = self.driver.remove_cluster(name.clone()).await;
        }
    }

    async fn command(&mut self, command: Command) {
        // Commands change the configuration and the running clusters.
        self.stale = None;
        match command {
            Command::Start(name, reply) => {
                let r = self.start(&name).await;
                let _ = reply.send(r);
            }
            Command::Stop(name, reply) => {
                let r = self.stop(&name).await;
                let _ = reply.send(r);
            }
            Command::Synchronize(name, reply) => {
                let r = self.synchronize(&name).await;
                let _ = reply.send(r);
            }
            Command::Reload(reply) => {
                self.options.notifier.reloading();
                let r = self.reload().await;
                self.options.notifier.ready(&self.status_line());
                let _ = reply.send(r);
            }
            Command::Shutdown(reply) => {
                let _ = reply.send(());
            }
        }
    }

    // ---- lifecycle ------------------------------------------------------------------

    async fn start(&mut self, name: &str) -> Result<StartOutcome, Error> {
        let Some(c) = self.model.cluster(name).cloned() else {
            return Ok(StartOutcome::NotFound);
        };
        self.ensure_adopted().await?;
        if self.running.contains_key(&c.name) {
            return Ok(StartOutcome::AlreadyRunning);
        }
        if self.synchronize_one(&c).await? {
            return Ok(StartOutcome::AlreadyRunning);
        }
        tracing::info!(
            "Starting monitoring on {} cluster {} ({})",
            mode(&c),
            c.name,
            c.fwmark
        );
        self.running.insert(c.name.clone(), Running::default());
        self.set_policy(&c, |_| Initial::Fresh(Weight::clamped(1)))
            .await;
        self.start_poller(&c);
        self.pass(Trigger::Command, true).await;
        Ok(StartOutcome::Started)
    }

    async fn stop(&mut self, name: &str) -> Result<StopOutcome, Error> {
        let Some(c) = self.model.cluster(name).cloned() else {
            return Ok(StopOutcome::NotFound);
        };
        if !self.running.contains_key(&c.name) {
            return Ok(StopOutcome::NotRunning);
        }
        tracing::info!("Stopping monitoring on cluster {} ({})", c.name, c.fwmark);
        self.forget(&c.name).await;
        self.pass(Trigger::Command, true).await;
        Ok(StopOutcome::Stopped)
    }

    /// Forgets a running cluster: policy, poller, nagios state.
    async fn forget(&mut self, name: &ClusterName) {
        self.running.remove(name);
        if let Err(e) = self.driver.remove_cluster(name.clone()).await {
            tracing::error!("cluster {name}: {e}");
        }
        self.stop_poller(name);
        self.nagios_last.remove(name);
    }

    async fn synchronize(&mut self, name: &str) -> Result<bool, Error> {
        let Some(c) = self.model.cluster(name).cloned() else {
            return Ok(false);
        };
        self.ensure_adopted().await?;
        if !self.running.contains_key(&c.name) {
            self.synchronize_one(&c).await?;
        }
        Ok(true)
    }

    /// big_brother's `synchronize!` for a stopped cluster: adopts it if its service is in
    /// the kernel. Returns whether it did.
    async fn synchronize_one(&mut self, c: &Cluster) -> Result<bool, Error> {
        let key = BTreeSet::from([c.service_key()]);
        let observed = reconcile::observe(&*self.kernel, &key)
            .await
            .map_err(|e| Error::KernelUnavailable(e.to_string()))?;
        let Some(main) = observed.first() else {
            return Ok(false);
        };
        tracing::info!("Resuming monitoring on cluster {} ({})", c.name, c.fwmark);
        self.adopt_cluster(c, main).await;
        self.pass(Trigger::Command, true).await;
        Ok(true)
    }

    async fn ensure_adopted(&mut self) -> Result<(), Error> {
        if self.adopted {
            return Ok(());
        }
        if self.try_adopt().await {
            self.pass(Trigger::Command, true).await;
            Ok(())
        } else {
            self.publish();
            Err(Error::KernelUnavailable(
                self.daemon.kernel_error.clone().unwrap_or_default(),
            ))
        }
    }

    /// Reads the owned services and adopts every configured cluster found there.
    async fn try_adopt(&mut self) -> bool {
        self.stale = None;
        let owned = desired::owned(&self.model);
        let observed = match reconcile::observe(&*self.kernel, &owned).await {
            Ok(o) => o,
            Err(e) => {
                self.kernel_unavailable(&e);
                return false;
            }
        };
        self.daemon.kernel_error = None;
        self.logged_kernel_error = None;
        let clusters: Vec<Cluster> = self.model.clusters.clone();
        for c in &clusters {
            if let Some(main) = observed
                .iter()
                .find(|o| o.service.service.key == c.service_key())
            {
                tracing::info!(
                    "resuming previously running cluster {} from kernel state ({}); weights are kept",
                    c.name,
                    c.fwmark
                );
                self.adopt_cluster(c, main).await;
            }
        }
        self.adopted = true;
        self.daemon.adopted = true;
        self.record_observed(None, observed);
        true
    }

    fn kernel_unavailable(&mut self, e: &ipvs::Error) {
        let text = e.to_string();
        if self.logged_kernel_error.as_ref() != Some(&text) {
            tracing::error!("cannot read IPVS, so nothing is changed until it can be read: {text}");
            self.logged_kernel_error = Some(text.clone());
        }
        self.daemon.kernel_error = Some(text);
        self.metrics.ops(&[], &[e]);
    }

    /// Takes a cluster over from its kernel service: its nodes start from the kernel's
    /// weights, so nothing changes; nodes missing from the kernel start at 0 (or 1 when the
    /// service holds none of the nodes, as a start would); an active_passive cluster keeps
    /// the node it has; a multi-datacenter cluster keeps its remote nodes until interpol
    /// says otherwise.
    async fn adopt_cluster(&mut self, c: &Cluster, main: &Observed) {
        let kernel: BTreeMap<IpAddr, u32> = main
            .dests
            .iter()
            .map(|d| (d.dest.addr, d.dest.weight))
            .collect();
        let any_node = c.nodes.iter().any(|n| kernel.contains_key(&n.address));
        let mut run = Running::default();
        let foreign = |addr: &IpAddr| c.node(*addr).is_none() && c.downpage != Some(*addr);
        if !c.interpol.is_empty() {
            for d in &main.dests {
                if foreign(&d.dest.addr) {
                    run.remote.insert(
                        d.dest.addr,
                        Remote {
                            weight: Weight::clamped(u64::from(d.dest.weight)),
                            down_ticks: 0,
                            location: None,
                        },
                    );
                }
            }
        }
        if c.is_active_passive() {
            run.active = main
                .dests
                .iter()
                .map(|d| d.dest.addr)
                .find(|a| c.node(*a).is_some() || run.remote.contains_key(a));
        }
        self.running.insert(c.name.clone(), run);
        self.set_policy(c, |addr| match kernel.get(&addr) {
            Some(w) => Initial::Adopted(Weight::clamped(u64::from(*w))),
            None if any_node => Initial::Fresh(Weight::ZERO),
            None => Initial::Fresh(Weight::clamped(1)),
        })
        .await;
        self.start_poller(c);
    }

    /// Gives the policy the cluster's nodes (nodes it knows keep their state).
    async fn set_policy(&mut self, c: &Cluster, initial: impl Fn(IpAddr) -> Initial) {
        let (specs, errors) = node_specs(c, initial);
        for e in errors {
            tracing::error!(
                "cluster {}: {e}; the node is not probed and gets weight 0",
                c.name
            );
        }
        if let Err(e) = self.driver.set_cluster(c.name.clone(), specs).await {
            tracing::error!("cluster {}: {e}", c.name);
        }
    }

    // ---- reload ---------------------------------------------------------------------

    async fn reload(&mut self) -> Result<ReloadReport, Error> {
        let path = self.options.config_path.clone();
        tracing::info!("reloading {} (SIGHUP)", path.display());
        let now = unix_now();
        let new = match config::load(&path) {
            Ok(m) => Arc::new(self.options.cli.apply(m)),
            Err(errors) => {
                for line in errors.lines() {
                    tracing::error!("{line}");
                }
                tracing::error!(
                    "{} is not valid ({}); the running configuration is unchanged and nothing was touched",
                    path.display(),
                    errors.count_text()
                );
                self.daemon.reload.last_failure_unix = Some(now);
                self.daemon.reload.last_errors = errors.lines();
                self.metrics.reload(false, now);
                self.publish();
                return Err(Error::ConfigInvalid(errors));
            }
        };
        let old = std::mem::replace(&mut self.model, new.clone());
        let mut report = ReloadReport::default();
        let new_owned = desired::owned(&new);
        for key in desired::owned(&old) {
            if !new_owned.contains(&key) {
                self.orphans.insert(key);
            }
        }
        for c in &old.clusters {
            if new.cluster(c.name.as_str()).is_none() {
                report.removed.push(c.name.clone());
                if self.running.contains_key(&c.name) {
                    tracing::info!(
                        "cluster {} ({}) is no longer configured: its services are deleted",
                        c.name,
                        c.fwmark
                    );
                    self.forget(&c.name).await;
                }
            }
        }
        let mut added = Vec::new();
        for c in &new.clusters {
            let Some(before) = old.cluster(c.name.as_str()) else {
                report.added.push(c.name.clone());
                added.push(c.clone());
                continue;
            };
            if before == c {
                continue;
            }
            report.changed.push(c.name.clone());
            if !self.running.contains_key(&c.name) {
                continue;
            }
            if before.fwmark != c.fwmark {
                tracing::info!(
                    "cluster {} moves from fwmark {} to {}",
                    c.name,
                    before.fwmark,
                    c.fwmark
                );
            }
            // Nodes that stay keep their state; new ones wait at 0 until healthy.
            self.set_policy(c, |_| Initial::Fresh(Weight::ZERO)).await;
            if let Some(run) = self.running.get_mut(&c.name) {
                if c.interpol.is_empty() {
                    run.remote.clear();
                }
                if run
                    .active
                    .is_some_and(|a| c.node(a).is_none() && !run.remote.contains_key(&a))
                {
                    run.active = None;
                }
            }
            let poller_inputs = |c: &Cluster| {
                (
                    c.interpol.clone(),
                    c.fwmark,
                    c.offset,
                    c.check_interval,
                    c.non_egress_locations.clone(),
                )
            };
            if poller_inputs(before) != poller_inputs(c) {
                self.start_poller(c);
            }
        }
        if self.adopted && !added.is_empty() {
            let keys: BTreeSet<ServiceKey> = added.iter().map(Cluster::service_key).collect();
            match reconcile::observe(&*self.kernel, &keys).await {
                Ok(observed) => {
                    for c in &added {
                        if let Some(main) = observed
                            .iter()
                            .find(|o| o.service.service.key == c.service_key())
                        {
                            tracing::info!(
                                "resuming previously running cluster {} from kernel state ({})",
                                c.name,
                                c.fwmark
                            );
                            self.adopt_cluster(c, main).await;
                        }
                    }
                }
                Err(e) => tracing::error!("{e}; new clusters are not adopted from the kernel"),
            }
        }
        let (a, b) = (&old.settings, &new.settings);
        if a.api != b.api {
            report.needs_restart.push("bigbro.api".into());
        }
        if a.data_dir != b.data_dir {
            report.needs_restart.push("bigbro.data_dir".into());
        }
        if a.state_dir != b.state_dir {
            report.needs_restart.push("bigbro.state_dir".into());
        }
        for what in &report.needs_restart {
            tracing::warn!("{what} changed: it takes effect when the daemon restarts");
        }
        self.daemon.reload.last_success_unix = Some(now);
        self.daemon.reload.last_errors.clear();
        self.metrics.reload(true, now);
        tracing::info!(
            added = ?report.added.iter().map(|n| n.as_str()).collect::<Vec<_>>(),
            removed = ?report.removed.iter().map(|n| n.as_str()).collect::<Vec<_>>(),
            changed = ?report.changed.iter().map(|n| n.as_str()).collect::<Vec<_>>(),
            "configuration reloaded"
        );
        self.pass(Trigger::Command, true).await;
        self.sync_daemons().await;
        Ok(report)
    }

    // ---- passes ---------------------------------------------------------------------

    fn schedule(&mut self, trigger: Trigger, after: Duration) {
        let at = Instant::now() + after;
        match self.pending {
            Some((when, _)) if when <= at => {}
            _ => self.pending = Some((at, trigger)),
        }
    }

    /// Notes the clusters a weight batch names, for the next pass to build.
    fn note_stale(&mut self, batch: &WeightBatch) {
        if let Some(stale) = &mut self.stale {
            stale.extend(batch.changes.iter().map(|c| c.key.cluster.clone()));
        }
    }

    /// Weight batches came: a pass now if no weight pass ended within `coalesce`,
    /// otherwise one pass when that window ends.
    async fn weights_changed(&mut self) {
        let now = Instant::now();
        match self
            .last_weights_pass
            .map(|end| end + self.options.coalesce)
        {
            Some(window_end) if window_end > now => {
                self.schedule(Trigger::Weights, window_end - now);
            }
            _ => {
                // This pass covers a trailing weight pass that is due now.
                if matches!(self.pending, Some((_, Trigger::Weights))) {
                    self.pending = None;
                }
                self.pass(Trigger::Weights, false).await;
            }
        }
    }

    fn schedule_retry(&mut self) {
        let cap = self.model.settings.anti_entropy_interval;
        let delay = self
            .backoff
            .map_or(self.options.retry, |b| (b * 2).min(cap))
            .max(Duration::from_millis(10));
        self.backoff = Some(delay);
        self.schedule(Trigger::Retry, delay);
    }

    /// Every owned key: the configuration's, plus orphans still to delete.
    fn owned(&self) -> BTreeSet<ServiceKey> {
        let mut owned = desired::owned(&self.model);
        owned.extend(self.orphans.iter().copied());
        owned
    }

    /// One reconciliation pass; `structural` also reconciles the mark rules. Full (every
    /// owned service read) after commands, for anti-entropy, and when the last read failed;
    /// otherwise over the dirty services only.
    async fn pass(&mut self, trigger: Trigger, structural: bool) {
        let mut full =
            matches!(trigger, Trigger::Command | Trigger::AntiEntropy) || !self.observed_whole;
        if !self.adopted {
            full = true;
            if !self.try_adopt().await {
                self.schedule_retry();
                self.publish();
                return;
            }
            tracing::info!("IPVS can be read again; reconciling");
        }
        let started = Instant::now();
        let weights_read = match self.driver.weights().await {
            Ok(w) => {
                self.weights = w;
                true
            }
            Err(e) => {
                tracing::error!("{e}; using the last known weights");
                false
            }
        };
        // A weight pass builds only the clusters its batches named, when nothing else
        // changed since the last build; every other pass builds everything.
        let scope = match trigger == Trigger::Weights && !full {
            true => self.stale.take(),
            false => None,
        };
        // Without the new weights, the next pass builds everything again.
        self.stale = weights_read.then(BTreeSet::new);
        self.choose_active_nodes(scope.as_ref());
        let (drained, built) = desired::rebuild(
            &mut self.built,
            scope.as_ref(),
            &self.model,
            &self.running,
            &self.weights,
            &mut self.draining,
            Instant::now(),
            self.options.drain,
        );
        let owned = self.owned();
        let (keys, reading) = match (full, built) {
            (true, _) => (owned, Reading::Dump),
            (false, None) => (self.dirty(&owned, owned.iter().copied()), Reading::Each),
            // Only the services just built can have changed, besides those with errors
            // and orphans still to delete.
            (false, Some(built)) => {
                let errors = self.errors.keys().flatten().copied();
                let candidates = built
                    .into_iter()
                    .chain(errors)
                    .chain(self.orphans.iter().copied());
                (self.dirty(&owned, candidates), Reading::Each)
            }
        };
        let desired = &self.built.desired;
        let mut report = reconcile::pass_with(&*self.kernel, &keys, desired, reading).await;
        for op in &report.applied {
            if trigger == Trigger::AntiEntropy {
                tracing::warn!(
                    "repaired a change made behind bigbro's back: ipvsadm {}",
                    op.ipvsadm_args()
                );
            } else {
                tracing::info!("ipvsadm {}", op.ipvsadm_args());
            }
        }
        // Errors of services outside a partial pass stay (there are none: a service with
        // errors is dirty, and a failed read makes the next pass full).
        self.errors
            .retain(|k, _| !full && k.is_some_and(|k| !keys.contains(&k)));
        let mut failures: Vec<&ipvs::Error> = report.failed.iter().collect();
        for e in &report.failed {
            tracing::error!("{e} (retried on the next pass)");
            let key = match e.operation() {
                ipvs::Operation::Apply(op) => op.service().copied(),
                _ => None,
            };
            self.errors.entry(key).or_default().push(e.to_string());
        }
        if let Some(e) = &report.dump_error {
            tracing::error!("{e}; nothing was changed (retried on the next pass)");
            self.errors.entry(None).or_default().push(e.to_string());
            failures.push(e);
        }
        match report.observed.take() {
            Some(observed) => self.record_observed((!full).then_some(&keys), observed),
            None => {
                self.observed_whole = false;
                if let Some(e) = &report.reread_error {
                    tracing::warn!(
                        "{e}; the status shows the previous reading until the next pass, which reads every service"
                    );
                }
            }
        }
        let clean = report.is_clean();
        let took = started.elapsed();
        self.metrics.pass(trigger, took, &report.applied, &failures);
        self.daemon.last_pass = Some(PassStatus {
            at_unix: unix_now(),
            duration_seconds: took.as_secs_f64(),
            trigger,
            applied: report.applied.len(),
            errors: self.errors.values().flatten().cloned().collect(),
            full,
            services: keys.len(),
        });
        if structural || trigger == Trigger::AntiEntropy {
            self.marks_pass(trigger).await;
        }
        self.nagios();
        if clean {
            self.backoff = None;
        } else {
            self.schedule_retry();
        }
        if let Some(end) = drained {
            self.schedule(
                Trigger::Drain,
                end.saturating_duration_since(Instant::now()),
            );
        }
        if trigger == Trigger::Weights {
            self.last_weights_pass = Some(Instant::now());
        }
        self.publish();
    }

    /// Takes a pass's reading: of every owned service (`read` None: a full pass), or of
    /// the services in `read` only.
    fn record_observed(&mut self, read: Option<&BTreeSet<ServiceKey>>, observed: Vec<Observed>) {
        let observed = observed.into_iter().map(|o| (o.service.service.key, o));
        match read {
            Some(keys) => {
                self.observed.retain(|k, _| !keys.contains(k));
                self.observed.extend(observed);
            }
            None => {
                self.observed = observed.collect();
                self.observed_whole = true;
            }
        }
        let present = &self.observed;
        self.orphans.retain(|k| present.contains_key(k));
    }

    /// The owned services among `candidates` a partial pass must read: those whose
    /// desired state differs from what the kernel held when last read (a weight, a node, a
    /// drain that ended, a service to create or delete), and those whose operations failed.
    fn dirty(
        &self,
        owned: &BTreeSet<ServiceKey>,
        candidates: impl Iterator<Item = ServiceKey>,
    ) -> BTreeSet<ServiceKey> {
        let desired = &self.built.desired;
        candidates
            .filter(|k| {
                owned.contains(k)
                    && (self.errors.contains_key(&Some(*k))
                        || reconcile::differs(desired.services.get(k), self.observed.get(k)))
            })
            .collect()
    }

    /// Chooses the active node of the active_passive clusters (of those in `only`, if
    /// given).
    fn choose_active_nodes(&mut self, only: Option<&BTreeSet<ClusterName>>) {
        for c in &self.model.clusters {
            if !c.is_active_passive() || only.is_some_and(|o| !o.contains(&c.name)) {
                continue;
            }
            let Some(run) = self.running.get_mut(&c.name) else {
                continue;
            };
            let next = desired::choose_active(c, run.active, run, &self.weights);
            if next != run.active {
                match (run.active, next) {
                    (Some(old), Some(new)) => tracing::info!(
                        "active/passive cluster {} ({}): failing over from {old} to {new}",
                        c.name,
                        c.fwmark
                    ),
                    (None, Some(new)) => tracing::info!(
                        "active/passive cluster {} ({}): active node {new}",
                        c.name,
                        c.fwmark
                    ),
                    _ => {}
                }
                run.active = next;
            }
        }
    }

    async fn marks_pass(&mut self, trigger: Trigger) {
        let wanted = desired::mark_rules(&self.model, &self.running);
        let report = reconcile::marks::pass(&*self.marks, &wanted).await;
        if report.wrote {
            let what = report.differences.join("; ");
            if trigger == Trigger::AntiEntropy && self.daemon.marks.in_sync {
                tracing::warn!(
                    "repaired the nf_tables mark rules changed behind bigbro's back: {what}"
                );
            } else {
                tracing::info!(
                    "nf_tables mark rules updated ({} rules): {what}",
                    wanted.len()
                );
            }
        }
        let error = report.error.map(|e| e.to_string());
        if let Some(e) = &error {
            if self.daemon.marks.error.as_ref() != Some(e) {
                tracing::error!("nf_tables mark rules: {e} (retried on the next pass)");
            }
        }
        self.metrics.marks(report.wrote, error.is_some());
        self.daemon.marks = MarksStatus {
            wanted: wanted.len(),
            in_sync: error.is_none(),
            differences: report.differences,
            error,
        };
    }

    async fn sync_daemons(&mut self) {
        if !self.adopted {
            return;
        }
        let config = self.model.settings.sync_daemon.as_ref();
        if config.is_none() && !self.managed_daemons {
            return;
        }
        self.managed_daemons = true;
        let wanted = reconcile::daemons::desired(config);
        let report = reconcile::daemons::pass(&*self.kernel, &wanted).await;
        for op in &report.applied {
            tracing::info!("ipvsadm {}", op.ipvsadm_args());
        }
        let mut errors: Vec<&ipvs::Error> = report.failed.iter().collect();
        errors.extend(report.dump_error.iter());
        let text: Vec<String> = errors.iter().map(|e| e.to_string()).collect();
        for t in &text {
            tracing::error!("IPVS sync daemon: {t}");
        }
        self.metrics.ops(&report.applied, &errors);
        self.daemon.sync_daemon_error = (!text.is_empty()).then(|| text.join("; "));
        self.publish();
    }

    // ---- interpol and nagios --------------------------------------------------------

    fn start_poller(&mut self, c: &Cluster) {
        self.stop_poller(&c.name);
        if c.interpol.is_empty() {
            return;
        }
        self.generation += 1;
        let task = tokio::spawn(interpol::poll(
            c.clone(),
            self.generation,
            self.polls_tx.clone(),
        ));
        self.pollers.insert(c.name.clone(), (self.generation, task));
    }

    fn stop_poller(&mut self, name: &ClusterName) {
        if let Some((_, task)) = self.pollers.remove(name) {
            task.abort();
        }
    }

    fn interpol(&mut self, poll: Poll) {
        if self.pollers.get(&poll.cluster).map(|p| p.0) != Some(poll.generation) {
            return;
        }
        let Some(c) = self.model.cluster(poll.cluster.as_str()) else {
            return;
        };
        let max_down_ticks = c.max_down_ticks;
        self.metrics.interpol(poll.error.is_none());
        if let Some(e) = &poll.error {
            tracing::debug!("interpol for cluster {}: {e}", poll.cluster);
        }
        let Some(run) = self.running.get_mut(&poll.cluster) else {
            return;
        };
        let before: BTreeSet<IpAddr> = run.remote.keys().copied().collect();
        if interpol::update(&mut run.remote, &poll.remote, max_down_ticks) {
            let after: BTreeSet<IpAddr> = run.remote.keys().copied().collect();
            for a in after.difference(&before) {
                tracing::info!("Adding remote {a} to cluster {}", poll.cluster);
            }
            for a in before.difference(&after) {
                tracing::info!("Removing remote {a} from cluster {}", poll.cluster);
            }
            self.stale = None;
            self.schedule(Trigger::Remote, self.options.coalesce);
        }
    }

    fn nagios(&mut self) {
        for c in &self.model.clusters {
            let Some(n) = &c.nagios else { continue };
            if !self.running.contains_key(&c.name) || c.nodes.is_empty() {
                continue;
            }
            let down = c
                .nodes
                .iter()
                .filter(|node| desired::weight_of(&self.weights, c, node.address) == Weight::ZERO)
                .count();
            if self.nagios_last.get(&c.name) == Some(&down) {
                continue;
            }
            self.nagios_last.insert(c.name.clone(), down);
            let check = nagios::check(down, c.nodes.len());
            let (n, program, metrics, name) = (
                n.clone(),
                self.options.nsca_program.clone(),
                self.metrics.clone(),
                c.name.clone(),
            );
            tokio::spawn(async move {
                match nagios::send(&program, &n, &check).await {
                    Ok(()) => {
                        tracing::info!("nagios: {}", nagios::line(&n, &check).trim_end());
                        metrics.nagios(true);
                    }
                    Err(e) => {
                        tracing::error!("nagios notification for cluster {name}: {e}");
                        metrics.nagios(false);
                    }
                }
            });
        }
    }

    // ---- the published view ---------------------------------------------------------

    fn status_line(&self) -> String {
        let errors = self.daemon.last_pass.as_ref().map_or(0, |p| p.errors.len());
        let kernel = match (&self.daemon.kernel_error, errors) {
            (Some(e), _) => format!("IPVS unavailable: {e}"),
            (None, 0) => "in sync".to_string(),
            (None, n) => format!("{n} kernel errors"),
        };
        format!(
            "{} clusters, {} running; {kernel}",
            self.model.clusters.len(),
            self.running.len()
        )
    }

    fn publish(&mut self) {
        let clusters = self
            .model
            .clusters
            .iter()
            .map(|c| self.cluster_status(c))
            .collect();
        self.view.send_replace(Arc::new(View {
            model: self.model.clone(),
            clusters,
            daemon: self.daemon.clone(),
        }));
    }

    fn cluster_status(&self, c: &Cluster) -> ClusterStatus {
        let run = self.running.get(&c.name);
        let kernel = self
            .observed
            .get(&c.service_key())
            .map(KernelService::from_observed);
        let relay_kernel = c
            .relay_service_key()
            .and_then(|k| self.observed.get(&k))
            .map(KernelService::from_observed);
        let weight = |addr| match run {
            Some(_) => desired::weight_of(&self.weights, c, addr),
            None => Weight::ZERO,
        };
        let nodes = c
            .nodes
            .iter()
            .map(|n| NodeStatus {
                address: n.address,
                port: n.port,
                path: n.path.clone(),
                priority: n.priority,
                weight: weight(n.address),
                in_ipvs: run.is_some_and(|r| !c.is_active_passive() || r.active == Some(n.address)),
                kernel: kernel.as_ref().and_then(|k| k.dest(n.address)).cloned(),
                policy: None,
            })
            .collect();
        let remote_nodes = run
            .map(|r| {
                r.remote
                    .iter()
                    .map(|(a, rem)| RemoteNodeStatus {
                        address: *a,
                        weight: rem.weight,
                        down_ticks: rem.down_ticks,
                        location: rem.location.clone(),
                    })
                    .collect()
            })
            .unwrap_or_default();
        let mut errors: Vec<String> = Vec::new();
        if run.is_some() {
            for key in std::iter::once(Some(c.service_key()))
                .chain(std::iter::once(c.relay_service_key()).filter(Option::is_some))
                .chain(std::iter::once(None))
            {
                errors.extend(self.errors.get(&key).into_iter().flatten().cloned());
            }
        }
        ClusterStatus {
            name: c.name.clone(),
            fwmark: c.fwmark,
            relay_fwmark: c.relay_fwmark(),
            scheduler: c.scheduler,
            backend_mode: c.backend_mode,
            running: run.is_some(),
            combined_weight: run.map_or(0, |_| desired::combined_weight(&self.weights, c)),
            nodes,
            remote_nodes,
            downpage: c.downpage.map(|address| DownpageStatus {
                address,
                active: run.is_some_and(|r| desired::downpage_wanted(c, r, &self.weights)),
            }),
            active_node: run.and_then(|r| r.active).filter(|_| c.is_active_passive()),
            kernel,
            relay_kernel,
            errors,
            policy: None,
        }
    }
}

fn mode(c: &Cluster) -> &'static str {
    if c.is_active_passive() {
        "active_passive"
    } else {
        "active_active"
    }
}
