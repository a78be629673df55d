//! The controller: the daemon's event loop and its commands. It owns the configuration,
//! the running clusters (with their active_passive choices and remote nodes), the weights
//! it programs (`weights`), the interpol pollers and nagios state, and it decides when a
//! reconciliation pass runs; everything kernel-facing (what was read, what is dirty,
//! errors and backoff, orphans, drains) is the [`Reconciler`]'s (`src/reconcile/`).
//!
//! It takes over the running clusters from the kernel first (a configured fwmark found in
//! IPVS is a running cluster, its nodes keep their kernel weights), and writes nothing to
//! IPVS until that read has succeeded: a failed first dump must never look like "nothing
//! runs". Then it serves commands (start, stop, synchronize, reload, shutdown) and runs a
//! reconciliation pass after each, after weight changes, after interpol changes, and
//! every anti-entropy interval, which repairs hand edits of owned services, of the mark
//! rules and of the VIP addresses on bigbro's interface (`src/reconcile/vips.rs`; those
//! follow the running clusters, so they change only with commands: start, stop, reload).
//! Failed operations are logged, shown in the status and metrics, and retried with a
//! backoff. After every change it publishes a new view for the handles' queries.
//!
//! Weight changes are coalesced on the leading edge: a change that comes when no weight
//! pass has ended within the last `coalesce` gets a pass at once; changes that come
//! within `coalesce` of the end of the last weight pass share one pass at that end plus
//! `coalesce`. So a lone change waits for nothing, and a burst costs at most one pass per
//! `coalesce` (with at least `coalesce` between the end of one and the start of the next).
//!
//! Passes after commands, anti-entropy passes and any pass after a failed read read every
//! owned service (full passes). The others (weights, interpol, drains, retries of failed
//! operations) read and compare only the dirty services (see `src/reconcile/reconciler.rs`).
//! A hand edit of another service is repaired by the next full pass, within one
//! anti-entropy interval. A weight pass also builds the desired state of only the
//! clusters its weight batches named (and so looks for dirty services only among theirs,
//! those with errors and orphans), unless something else changed since the last build (a
//! command, an interpol update); every other pass builds every cluster. The status shows
//! each service as the last pass that read it found it (read again after every write),
//! without a read of its own.
//!
//! The weights it programs come one way: the weight driver sends each change, the
//! controller applies it to its own map (`src/daemon/weights.rs`) and never asks the
//! driver for its weights; the published status shows that same map.
//!
//! It never writes to or reads the kernel itself, and keeps no kernel-facing state (what
//! was read, what is dirty or failed, orphans, drains): that is the reconciler's, which
//! writes only owned keys. Shutting down leaves IPVS, nf_tables and the VIP addresses
//! exactly as they are.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use tokio::time::{Instant, Interval, MissedTickBehavior};

use super::handle::{ControllerCommand, Handle, View};
use super::interpol::{self, Poll, Pollers};
use super::metrics::Metrics;
use super::nagios::Reporter;
use super::status::{cluster_status, DaemonStatus, MarksStatus, PassStatus, Trigger, VipsStatus};
use super::weights::LiveWeights;
use crate::config::{Cluster, Model};
use crate::desired::{self, Running};
use crate::health::Prober;
use crate::ipvs::{self, ServiceKey};
use crate::reconcile::{IpvsKernel, MarkTable, Observed, Reconciler, Scope};
use crate::route::RouteKernel;
use crate::types::ClusterName;
use crate::weight::{self, DriverHandle};

pub use super::options::{CliOverrides, Options};

mod lifecycle;
mod reload;

/// Starts the daemon's controller on the current tokio runtime with `model` (already
/// loaded from `options.config_path`), the IPVS `kernel`, the nf_tables `marks`, route
/// netlink (`route`, for the VIP addresses) and the health `prober`. Returns its handle
/// and its task (which ends on shutdown, or when every handle is dropped).
pub fn spawn<K, M, R, P>(
    model: Model,
    options: Options,
    kernel: Arc<K>,
    marks: Arc<M>,
    route: Arc<R>,
    prober: P,
) -> (Handle, JoinHandle<()>)
where
    K: IpvsKernel + 'static,
    M: MarkTable + 'static,
    R: RouteKernel + 'static,
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
        reconciler: Reconciler::new(kernel, marks, route),
        nagios: Reporter::new(options.nsca_program.clone(), metrics.clone()),
        options,
        driver: driver.clone(),
        metrics: metrics.clone(),
        view: view_tx,
        running: BTreeMap::new(),
        weights: LiveWeights::new(batches),
        adopted: false,
        daemon,
        pending: None,
        last_weights_pass: None,
        pollers: Pollers::new(polls_tx),
        logged_kernel_error: None,
    };
    controller.publish();
    let task = tokio::spawn(controller.run(commands, polls));
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

struct Controller<K, M, R> {
    model: Arc<Model>,
    options: Options,
    /// The kernel-facing state and the only writer.
    reconciler: Reconciler<K, M, R>,
    driver: DriverHandle,
    metrics: Metrics,
    view: watch::Sender<Arc<View>>,
    /// Running clusters and their state beyond weights.
    running: BTreeMap<ClusterName, Running>,
    /// The weights the passes program, kept from the driver's batches.
    weights: LiveWeights,
    /// Whether the running clusters have been read from the kernel.
    adopted: bool,
    daemon: DaemonStatus,
    /// The next pass due, and why.
    pending: Option<(Instant, Trigger)>,
    /// When the last weight-triggered pass ended (the start of the coalescing window).
    last_weights_pass: Option<Instant>,
    pollers: Pollers,
    nagios: Reporter,
    /// The last kernel error logged while IPVS cannot be read (each one is logged once).
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

impl<K: IpvsKernel + 'static, M: MarkTable + 'static, R: RouteKernel + 'static>
    Controller<K, M, R>
{
    async fn run(
        mut self,
        mut commands: mpsc::Receiver<ControllerCommand>,
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
                    Some(ControllerCommand::Shutdown(reply)) => {
                        self.shutdown().await;
                        let _ = reply.send(());
                        return;
                    }
                    Some(command) => self.command(command).await,
                },
                more = self.weights.recv() => match more {
                    true => self.weights_changed().await,
                    false => {
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
        tracing::info!(
            "stopping: probes end, IPVS, nf_tables and the VIP addresses are left exactly as they are"
        );
        self.pollers.stop_all();
        for name in self.running.keys() {
            let _ = self.driver.remove_cluster(name.clone()).await;
        }
    }

    async fn command(&mut self, command: ControllerCommand) {
        // Commands change the configuration and the running clusters.
        self.weights.all_stale();
        match command {
            ControllerCommand::Start(name, reply) => {
                let r = self.start(&name).await;
                let _ = reply.send(r);
            }
            ControllerCommand::Stop(name, reply) => {
                let r = self.stop(&name).await;
                let _ = reply.send(r);
            }
            ControllerCommand::Synchronize(name, reply) => {
                let r = self.synchronize(&name).await;
                let _ = reply.send(r);
            }
            ControllerCommand::Reload(reply) => {
                self.options.notifier.reloading();
                let r = self.reload().await;
                self.options.notifier.ready(&self.status_line());
                let _ = reply.send(r);
            }
            ControllerCommand::Shutdown(reply) => {
                let _ = reply.send(());
            }
        }
    }

    // ---- passes ---------------------------------------------------------------------

    fn schedule(&mut self, trigger: Trigger, after: Duration) {
        let at = Instant::now() + after;
        match self.pending {
            Some((when, _)) if when <= at => {}
            _ => self.pending = Some((at, trigger)),
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
        let delay = self.reconciler.retry_delay(self.options.retry, cap);
        self.schedule(Trigger::Retry, delay);
    }

    /// One reconciliation pass; `structural` also reconciles the mark rules. Full (every
    /// owned service read) after commands, for anti-entropy, and when the last read failed;
    /// otherwise over the dirty services only.
    async fn pass(&mut self, trigger: Trigger, structural: bool) {
        let mut full = matches!(trigger, Trigger::Command | Trigger::AntiEntropy)
            || !self.reconciler.has_whole_reading();
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
        // Every change the driver has sent so far is in this pass.
        self.weights.take_waiting();
        // A weight pass builds only the clusters its batches named, when nothing else
        // changed since the last build; every other pass builds everything.
        let only = self
            .weights
            .take_stale(trigger == Trigger::Weights && !full);
        self.choose_active_nodes(only.as_ref());
        let (model, running, weights) = (&self.model, &self.running, self.weights.get());
        let (now, period) = (Instant::now(), self.options.drain);
        let (drained, built) = self.reconciler.rebuild(|built, draining| {
            desired::rebuild(
                built,
                only.as_ref(),
                model,
                running,
                weights,
                draining,
                now,
                period,
            )
        });
        let scope = match full {
            true => Scope::Full {
                repair: trigger == Trigger::AntiEntropy,
            },
            false => Scope::Dirty(built),
        };
        let outcome = self
            .reconciler
            .pass(scope, &desired::owned(&self.model))
            .await;
        let took = started.elapsed();
        let failures: Vec<&ipvs::Error> = outcome.failures.iter().collect();
        self.metrics
            .pass(trigger, took, &outcome.applied, &failures);
        self.daemon.last_pass = Some(PassStatus {
            at_unix: unix_now(),
            duration_seconds: took.as_secs_f64(),
            trigger,
            applied: outcome.applied.len(),
            errors: self
                .reconciler
                .errors()
                .values()
                .flatten()
                .cloned()
                .collect(),
            full: outcome.full,
            services: outcome.services,
        });
        let mut vips_clean = true;
        if structural || trigger == Trigger::AntiEntropy {
            self.marks_pass(trigger).await;
            vips_clean = self.vips_pass(trigger).await;
        }
        self.nagios
            .report(&self.model, &self.running, self.weights.get());
        if !outcome.is_clean() || !vips_clean {
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
            let next = desired::choose_active(c, run.active, run, self.weights.get());
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
        let repair = trigger == Trigger::AntiEntropy;
        let outcome = self.reconciler.marks_pass(&wanted, repair).await;
        self.metrics.marks(outcome.wrote, outcome.error.is_some());
        self.daemon.marks = MarksStatus {
            wanted: wanted.len(),
            in_sync: outcome.error.is_none(),
            differences: outcome.differences,
            error: outcome.error,
        };
    }

    /// The VIP addresses of the running clusters on bigbro's interface (nothing at all
    /// while no cluster has vips with `vip_mode: address`). Returns whether it was clean.
    async fn vips_pass(&mut self, trigger: Trigger) -> bool {
        let wanted = desired::vip_addresses(&self.model, &self.running);
        let manage = desired::manages_addresses(&self.model);
        let interface = &self.model.settings.vip_interface;
        let repair = trigger == Trigger::AntiEntropy;
        let Some(report) = self
            .reconciler
            .vips_pass(interface, &wanted, manage, repair)
            .await
        else {
            return true;
        };
        let failures: Vec<&crate::route::Error> = report.failures.iter().collect();
        self.metrics.vips(&report.applied, &failures);
        self.daemon.vips = VipsStatus::of(report);
        report.is_clean()
    }

    async fn sync_daemons(&mut self) {
        if !self.adopted {
            return;
        }
        let config = self.model.settings.sync_daemon.as_ref();
        let Some(outcome) = self.reconciler.daemons_pass(config).await else {
            return;
        };
        let errors: Vec<&ipvs::Error> = outcome.failures.iter().collect();
        self.metrics.ops(&outcome.applied, &errors);
        let text: Vec<String> = errors.iter().map(|e| e.to_string()).collect();
        self.daemon.sync_daemon_error = (!text.is_empty()).then(|| text.join("; "));
        self.publish();
    }

    /// An interpol poll: a change of the remote nodes gets a pass (after `coalesce`).
    fn interpol(&mut self, poll: Poll) {
        if !self.pollers.is_current(&poll) {
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
        if interpol::take(&poll, &mut run.remote, max_down_ticks) {
            self.weights.all_stale();
            self.schedule(Trigger::Remote, self.options.coalesce);
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
        let (weights, observed) = (self.weights.get(), self.reconciler.observed());
        let errors = self.reconciler.errors();
        let clusters = self
            .model
            .clusters
            .iter()
            .map(|c| cluster_status(c, self.running.get(&c.name), weights, observed, errors))
            .collect();
        self.view.send_replace(Arc::new(View {
            model: self.model.clone(),
            clusters,
            daemon: self.daemon.clone(),
        }));
    }
}

/// The service `key` among those read.
fn find(observed: &[Observed], key: ServiceKey) -> Option<&Observed> {
    observed.iter().find(|o| o.service.service.key == key)
}

fn mode(c: &Cluster) -> &'static str {
    if c.is_active_passive() {
        "active_passive"
    } else {
        "active_active"
    }
}
