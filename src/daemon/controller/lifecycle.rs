//! The controller's cluster commands: start, stop and synchronize, and taking running
//! clusters over from the kernel (at startup, on synchronize, and for clusters a reload
//! adds). A cluster is adopted only from a successful read of the kernel, and nothing is
//! written before the first one succeeds; adoption itself never changes a weight.

use std::collections::BTreeSet;
use std::net::IpAddr;

use super::{mode, Controller};
use crate::config::Cluster;
use crate::daemon::adopt::Adopted;
use crate::daemon::handle::{Error, StartOutcome, StopOutcome};
use crate::daemon::params::node_specs;
use crate::daemon::status::Trigger;
use crate::desired::ClusterKeys;
use crate::desired::{self, Running};
use crate::ipvs;
use crate::reconcile::{IpvsKernel, MarkTable};
use crate::route::RouteKernel;
use crate::types::{ClusterName, Weight};
use crate::weight::Initial;

impl<K: IpvsKernel + 'static, M: MarkTable + 'static, R: RouteKernel + 'static>
    Controller<K, M, R>
{
    pub(super) async fn start(&mut self, name: &str) -> Result<StartOutcome, Error> {
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
        let weight = c.initial_weight(false);
        self.set_policy(&c, |_| Initial::Fresh(weight)).await;
        self.pollers.start(&c);
        self.pass(Trigger::Command, true).await;
        Ok(StartOutcome::Started)
    }

    pub(super) async fn stop(&mut self, name: &str) -> Result<StopOutcome, Error> {
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

    /// Forgets a running cluster: policy and weights, poller, nagios state.
    pub(super) async fn forget(&mut self, name: &ClusterName) {
        self.running.remove(name);
        if let Err(e) = self.driver.remove_cluster(name.clone()).await {
            tracing::error!("cluster {name}: {e}");
        }
        self.weights.cluster_removed(name);
        self.pollers.stop(name);
        self.nagios.forget(name);
    }

    pub(super) async fn synchronize(&mut self, name: &str) -> Result<bool, Error> {
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
    pub(super) async fn synchronize_one(&mut self, c: &Cluster) -> Result<bool, Error> {
        let key = BTreeSet::from([c.service_key()]);
        let observed = self
            .reconciler
            .read(&key)
            .await
            .map_err(|e| Error::KernelUnavailable(e.to_string()))?;
        let Some(main) = observed.first() else {
            return Ok(false);
        };
        tracing::info!("Resuming monitoring on cluster {} ({})", c.name, c.fwmark);
        self.adopt_cluster(c, Adopted::new(c, main)).await;
        self.pass(Trigger::Command, true).await;
        Ok(true)
    }

    pub(super) async fn ensure_adopted(&mut self) -> Result<(), Error> {
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
    pub(super) async fn try_adopt(&mut self) -> bool {
        self.weights.all_stale();
        let owned = desired::owned(&self.model);
        if let Err(e) = self.reconciler.read_all(&owned).await {
            self.kernel_unavailable(&e);
            return false;
        }
        self.daemon.kernel_error = None;
        self.logged_kernel_error = None;
        let observed = self.reconciler.observed();
        let found: Vec<(Cluster, Adopted)> = self
            .model
            .clusters
            .iter()
            .filter_map(|c| Some((c.clone(), Adopted::new(c, observed.get(&c.service_key())?))))
            .collect();
        for (c, adopted) in found {
            tracing::info!(
                "resuming previously running cluster {} from kernel state ({}); weights are kept",
                c.name,
                c.fwmark
            );
            self.adopt_cluster(&c, adopted).await;
        }
        self.adopted = true;
        self.daemon.adopted = true;
        true
    }

    pub(super) fn kernel_unavailable(&mut self, e: &ipvs::Error) {
        let text = e.to_string();
        if self.logged_kernel_error.as_ref() != Some(&text) {
            tracing::error!("cannot read IPVS, so nothing is changed until it can be read: {text}");
            self.logged_kernel_error = Some(text.clone());
        }
        self.daemon.kernel_error = Some(text);
        self.metrics.ops(&[], &[e]);
    }

    /// Takes a cluster over from its kernel service (see [`Adopted`]), so nothing
    /// changes in the kernel.
    pub(super) async fn adopt_cluster(&mut self, c: &Cluster, adopted: Adopted) {
        self.running.insert(c.name.clone(), adopted.running.clone());
        self.set_policy(c, |addr| adopted.initial(addr)).await;
        self.pollers.start(c);
    }

    /// Gives the policy the cluster's nodes (nodes it knows keep their state).
    pub(super) async fn set_policy(&mut self, c: &Cluster, initial: impl Fn(IpAddr) -> Initial) {
        let (specs, errors) = node_specs(c, initial);
        for e in errors {
            tracing::error!(
                "cluster {}: {e}; the node is not probed and gets weight 0",
                c.name
            );
        }
        let initial: Vec<(IpAddr, Weight)> =
            specs.iter().map(|s| (s.addr, s.initial.weight())).collect();
        // Changes sent before this command concern the nodes as they were.
        self.weights.take_waiting();
        match self.driver.set_cluster(c.name.clone(), specs).await {
            Ok(update) => self.weights.cluster_set(&c.name, &initial, &update),
            Err(e) => tracing::error!("cluster {}: {e}", c.name),
        }
    }
}
