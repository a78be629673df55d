//! [`Handle`]: how the HTTP API, the signal handlers and tests control and query the
//! daemon. Commands (start, stop, synchronize, reload, shutdown) go over a channel to the
//! one controller task, which applies them to the kernel before answering; queries are
//! answered from the last published view plus the weight policy's snapshot, without
//! waiting for the controller.
//!
//! A handle never touches the kernel itself, and a command is never answered before the
//! controller has acted on it (so `start` returning `Started` means the pass that creates
//! the service has run; its errors, if any, are in the cluster's status).

use std::collections::HashMap;
use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::Arc;

use tokio::sync::{broadcast, mpsc, oneshot, watch};

use super::metrics::{Metrics, MetricsSnapshot};
use super::status::{ClusterState, ClusterStatus, ClusterSummary, DaemonStatus};
use crate::config::{Errors, Model};
use crate::health::Sample;
use crate::types::ClusterName;
use crate::weight::{
    ClusterSnapshot, DriverError, DriverHandle, NodeKey, Override, OverrideRequest, PolicySnapshot,
};

/// What `start` did (big_brother's `PUT /cluster/NAME`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum StartOutcome {
    /// The cluster was stopped and now runs (200 `OK`).
    Started,
    /// It was already running, or was found in the kernel and adopted (304).
    AlreadyRunning,
    /// No cluster of that name in the configuration (404).
    NotFound,
}

/// What `stop` did (big_brother's `DELETE /cluster/NAME`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum StopOutcome {
    /// The cluster ran and is now stopped: its services are deleted (200 `OK`).
    Stopped,
    /// It was not running (304).
    NotRunning,
    /// No cluster of that name in the configuration (404).
    NotFound,
}

/// A reload that was applied.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct ReloadReport {
    pub added: Vec<ClusterName>,
    pub removed: Vec<ClusterName>,
    /// Clusters present before and after whose configuration changed.
    pub changed: Vec<ClusterName>,
    /// Settings that only take effect when the daemon restarts.
    pub needs_restart: Vec<String>,
}

/// Why a command could not be carried out.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum Error {
    #[error("the daemon is shutting down")]
    Stopped,
    #[error("cluster {0} is not in the configuration")]
    UnknownCluster(String),
    #[error("cluster {cluster} has no node {addr}")]
    UnknownNode { cluster: String, addr: IpAddr },
    #[error("cluster {0} is not running; overrides apply to running clusters (start it first)")]
    NotRunning(String),
    /// The kernel state could not be read, so the running clusters are not known yet and
    /// nothing may be changed.
    #[error("the kernel's IPVS state cannot be read, so nothing was changed: {0}")]
    KernelUnavailable(String),
    /// A reload was refused: the running configuration is unchanged.
    #[error("the new configuration is not valid ({count}); the running configuration is unchanged:\n{errors}", count = .0.count_text(), errors = .0)]
    ConfigInvalid(Errors),
    #[error(transparent)]
    Driver(#[from] DriverError),
}

pub(crate) type Reply<T> = oneshot::Sender<T>;

/// What the controller is asked to do.
pub(crate) enum ControllerCommand {
    Start(String, Reply<Result<StartOutcome, Error>>),
    Stop(String, Reply<Result<StopOutcome, Error>>),
    /// Adopt the cluster from the kernel if it is not running (big_brother's
    /// `synchronize!`); answers whether it exists.
    Synchronize(String, Reply<Result<bool, Error>>),
    Reload(Reply<Result<ReloadReport, Error>>),
    Shutdown(Reply<()>),
}

/// What the controller publishes after every change: everything queries need.
#[derive(Clone, Debug)]
pub(crate) struct View {
    pub model: Arc<Model>,
    /// Every configured cluster, in configuration order.
    pub clusters: Vec<ClusterState>,
    pub daemon: DaemonStatus,
}

/// Controls and queries the daemon. Cheap to clone; every clone talks to the same
/// controller.
#[derive(Clone)]
pub struct Handle {
    pub(crate) commands: mpsc::Sender<ControllerCommand>,
    pub(crate) view: watch::Receiver<Arc<View>>,
    pub(crate) driver: DriverHandle,
    pub(crate) metrics: Metrics,
}

impl Handle {
    async fn ask<T>(
        &self,
        make: impl FnOnce(Reply<Result<T, Error>>) -> ControllerCommand,
    ) -> Result<T, Error> {
        let (tx, rx) = oneshot::channel();
        self.commands
            .send(make(tx))
            .await
            .map_err(|_| Error::Stopped)?;
        rx.await.map_err(|_| Error::Stopped)?
    }

    /// big_brother's start (`PUT /cluster/NAME`): synchronize with the kernel first (a
    /// cluster found there is adopted: `AlreadyRunning`), else create the service with
    /// every node at weight 1 until health is known.
    pub async fn start(&self, cluster: &str) -> Result<StartOutcome, Error> {
        let name = cluster.to_string();
        self.ask(|r| ControllerCommand::Start(name, r)).await
    }

    /// big_brother's stop (`DELETE /cluster/NAME`): delete the cluster's services (main and
    /// relay) and stop probing its nodes.
    pub async fn stop(&self, cluster: &str) -> Result<StopOutcome, Error> {
        let name = cluster.to_string();
        self.ask(|r| ControllerCommand::Stop(name, r)).await
    }

    /// The status of one cluster, from the last published view and the weight policy (no
    /// kernel access): what `GET /cluster/NAME/status` shows. None if the cluster is not
    /// configured.
    pub async fn status(&self, cluster: &str) -> Option<ClusterStatus> {
        let state = self
            .view()
            .clusters
            .iter()
            .find(|c| c.name.as_str() == cluster)?
            .clone();
        let policy = self.driver.snapshot().await.ok();
        let own = policy.and_then(|p| p.clusters.into_iter().find(|c| c.name == state.name));
        Some(ClusterStatus::new(state, own))
    }

    /// big_brother's `GET /cluster/NAME`: if the cluster is not running but its service is
    /// in the kernel, adopt it (without changing any weight), then report its status.
    /// `Ok(None)` if the cluster is not configured.
    pub async fn synchronize(&self, cluster: &str) -> Result<Option<ClusterStatus>, Error> {
        let name = cluster.to_string();
        if !self
            .ask(|r| ControllerCommand::Synchronize(name, r))
            .await?
        {
            return Ok(None);
        }
        Ok(self.status(cluster).await)
    }

    /// Every configured cluster with its status, in configuration order.
    pub async fn statuses(&self) -> Vec<ClusterStatus> {
        let view = self.view();
        let mut policy: HashMap<ClusterName, ClusterSnapshot> = match self.driver.snapshot().await {
            Ok(p) => p
                .clusters
                .into_iter()
                .map(|c| (c.name.clone(), c))
                .collect(),
            Err(_) => HashMap::new(),
        };
        view.clusters
            .iter()
            .map(|state| ClusterStatus::new(state.clone(), policy.remove(&state.name)))
            .collect()
    }

    /// big_brother's `GET /` listing: every configured cluster, in configuration order.
    pub fn clusters(&self) -> Vec<ClusterSummary> {
        self.view()
            .clusters
            .iter()
            .map(|c| ClusterSummary {
                name: c.name.clone(),
                fwmark: c.fwmark,
                running: c.running,
                combined_weight: c.combined_weight,
            })
            .collect()
    }

    /// Re-reads the configuration file (SIGHUP does the same). An invalid file changes
    /// nothing: `Err(Error::ConfigInvalid)` lists every error, and the status and metrics
    /// show the refusal. A valid one is applied (clusters and nodes added and removed,
    /// scheduler, fwmark, vips, downpage, ramp and health settings) before this returns.
    pub async fn reload(&self) -> Result<ReloadReport, Error> {
        self.ask(ControllerCommand::Reload).await
    }

    /// Stops the controller, leaving IPVS and nf_tables exactly as they are (SIGTERM).
    pub async fn shutdown(&self) {
        let (tx, rx) = oneshot::channel();
        if self
            .commands
            .send(ControllerCommand::Shutdown(tx))
            .await
            .is_ok()
        {
            let _ = rx.await;
        }
    }

    /// The configuration the daemon runs.
    pub fn config(&self) -> Arc<Model> {
        self.view().model.clone()
    }

    /// The daemon as a whole: kernel access, last pass, mark rules, reloads.
    pub fn daemon_status(&self) -> DaemonStatus {
        self.view().daemon.clone()
    }

    /// The configuration file the daemon reads on reload.
    pub fn config_path(&self) -> PathBuf {
        self.view().daemon.config_path.clone()
    }

    /// Every counter, for `/metrics`.
    pub fn metrics(&self) -> MetricsSnapshot {
        self.metrics.snapshot()
    }

    /// The weight policy of every running cluster.
    pub async fn policy(&self) -> Result<PolicySnapshot, Error> {
        Ok(self.driver.snapshot().await?)
    }

    /// Every probe sample from now on (probe latency and failures for metrics).
    pub fn subscribe_samples(&self) -> broadcast::Receiver<Sample> {
        self.driver.subscribe_samples()
    }

    /// Resolves when the published view changes (after a pass, command or reload); for
    /// status pages and tests that wait for an event instead of sleeping.
    pub async fn changed(&mut self) -> Result<(), Error> {
        self.view.changed().await.map_err(|_| Error::Stopped)
    }

    /// Forces a node's weight (up = 100, down = 0 while staying in IPVS, or a fixed
    /// weight), replacing any override it had; returns the replaced one.
    pub async fn set_node_override(
        &self,
        cluster: &str,
        addr: IpAddr,
        request: OverrideRequest,
    ) -> Result<Option<Override>, Error> {
        let key = self.running_node(cluster, addr)?;
        Ok(self.driver.set_node_override(key, request).await?)
    }

    /// Clears a node's override; returns it (None if it had none).
    pub async fn clear_node_override(
        &self,
        cluster: &str,
        addr: IpAddr,
    ) -> Result<Option<Override>, Error> {
        let key = self.running_node(cluster, addr)?;
        Ok(self.driver.clear_node_override(key).await?)
    }

    /// Forces every node of a cluster, replacing any cluster override; returns the
    /// replaced one.
    pub async fn set_cluster_override(
        &self,
        cluster: &str,
        request: OverrideRequest,
    ) -> Result<Option<Override>, Error> {
        let name = self.running_cluster(cluster)?;
        Ok(self.driver.set_cluster_override(name, request).await?)
    }

    /// Clears a cluster's override; returns it (None if it had none).
    pub async fn clear_cluster_override(&self, cluster: &str) -> Result<Option<Override>, Error> {
        let name = self.running_cluster(cluster)?;
        Ok(self.driver.clear_cluster_override(name).await?)
    }

    fn view(&self) -> Arc<View> {
        self.view.borrow().clone()
    }

    fn running_cluster(&self, cluster: &str) -> Result<ClusterName, Error> {
        let view = self.view();
        let status = view
            .clusters
            .iter()
            .find(|c| c.name.as_str() == cluster)
            .ok_or_else(|| Error::UnknownCluster(cluster.to_string()))?;
        if !status.running {
            return Err(Error::NotRunning(cluster.to_string()));
        }
        Ok(status.name.clone())
    }

    fn running_node(&self, cluster: &str, addr: IpAddr) -> Result<NodeKey, Error> {
        let name = self.running_cluster(cluster)?;
        let known = self
            .view()
            .model
            .cluster(cluster)
            .is_some_and(|c| c.node(addr).is_some());
        if !known {
            return Err(Error::UnknownNode {
                cluster: cluster.to_string(),
                addr,
            });
        }
        Ok(NodeKey::new(&name, addr))
    }
}
